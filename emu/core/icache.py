"""Decoded-instruction cache, keyed by the physical address of an
instruction's first byte and the decode mode: D_TAG = ((pa + 1) <<
IC_TAG_SHIFT) | mode, so a zeroed array is empty and one compare checks both
(the fast tier makes it once per instruction).

An entry is valid while its page's generation (pm[page] >> 8 with the code
bit) is what it was at decode time: any write to the page bumps it
(memory.note_write), so self-modifying code is re-decoded.  Instructions
that cross a page boundary are decoded into the spare last row every time,
because their second page may map anywhere.
"""
from emu.core.jit import jit
from emu.core.decode import decode
from emu.core.fastpath import classify
from emu.core.memory import translate, ACCESS_EXEC, PM_CODE, PAGE_SHIFT
from emu.core.exceptions import raise_fault
from emu.core.layout import (D_TAG, D_GEN, D_MODE, D_LEN, IC_ENTRIES, IC_TAG_SHIFT, CS, SEG_SLOTS, SEG_STRIDE,
                             SEG_BASE, SEG_LIMIT, SEG_ATTR, ATTR_DB, CPL, CR0, CR0_PE, EFLAGS,
                             FLAG_VM, MODE_CS32, MODE_PE, MODE_VM, ICACHE_HITS, ICACHE_MISSES,
                             VEC_GP)

SPARE_ROW = IC_ENTRIES       # the icache array has IC_ENTRIES + 1 rows


@jit
def decode_mode(cpu):
    mode = 0
    if cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_ATTR] & ATTR_DB:
        mode |= MODE_CS32
    if cpu[CR0] & CR0_PE:
        mode |= MODE_PE
    if cpu[EFLAGS] & FLAG_VM:
        mode |= MODE_VM
    return mode


@jit
def lookup(g, eip):
    """Row of the icache holding the decoded instruction at CS:eip, or -1
    with a fault pending."""
    cpu = g.cpu
    cs = SEG_SLOTS + CS * SEG_STRIDE
    if eip > cpu[cs + SEG_LIMIT]:
        raise_fault(cpu, VEC_GP, 0)
        return -1
    lin = (cpu[cs + SEG_BASE] + eip) & 0xFFFFFFFF
    pa = translate(g, lin, ACCESS_EXEC, cpu[CPL] == 3)
    if pa < 0:
        return -1
    mode = decode_mode(cpu)
    ic = g.ic
    pm = g.pm
    page = pa >> PAGE_SHIFT
    cacheable = (lin & 0xFFF) <= 0x1000 - 15 and page < pm.shape[0]
    if cacheable:
        idx = (pa ^ (pa >> 13)) & (IC_ENTRIES - 1)
        if ic[idx, D_TAG] == ((pa + 1) << IC_TAG_SHIFT) | mode and ic[idx, D_GEN] == pm[page] \
                and eip + ic[idx, D_LEN] - 1 <= cpu[cs + SEG_LIMIT]:
            cpu[ICACHE_HITS] += 1
            return idx
    else:
        idx = SPARE_ROW
    cpu[ICACHE_MISSES] += 1
    d = ic[idx]
    d[D_TAG] = 0
    if not decode(g, eip, (mode & MODE_CS32) != 0, d):
        return -1
    classify(d)
    if cacheable:
        pm[page] |= PM_CODE
        d[D_TAG] = ((pa + 1) << IC_TAG_SHIFT) | mode
        d[D_MODE] = mode
        d[D_GEN] = pm[page]
    return idx
