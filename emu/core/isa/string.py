"""String instructions (SDM Vol. 1, 7.3.9; Vol. 2 MOVS CMPS SCAS LODS STOS
INS OUTS and REP/REPE/REPNE).

One REP instruction is one step of the API: the element loop runs inside
the instruction.  It is restartable: each element updates rSI/rDI/rCX as
it completes, so a fault (or a port access handed to Python) leaves the
registers at the element where it stopped and EIP on the instruction.
After CHUNK elements the instruction yields (EIP stays, nothing faults) so
a huge count cannot hold the host; the run loop comes straight back.  Each
yield counts as an instruction, so an instruction budget of N bounds a
guest's work at N x CHUNK elements: a guest spinning on REP STOSD with
ECX=FFFFFFFFh gets its fair share of the host and no more.

REP MOVS and REP STOS, after an element done the generic way, go on a
page at a time (``string_run``): the elements that stay on the page
(and within the segment limit) are copied in RAM directly, once the
generic element has shown that the segments allow the access and the TLB
maps both pages for it; element by element, so overlapping copies come
out as the SDM's element loop leaves them.  Pages that are not plain RAM
(MMIO, holes, the locked ROM), watchpoints, or ``Machine.fast_path =
False`` keep to the element loop.
"""
import numpy as np

from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import get_eflags, set_lazy, LF_SUB
from emu.core.memory import (read_mem, write_mem, check_write, note_write, tlb_lookup, PAGE_SHIFT,
                             PAGE_MASK, BIOS_ROM, ACCESS_READ, ACCESS_WRITE)
from emu.core.operands import get_reg, set_reg
from emu.core.isa.io import port_allowed, port_read, port_write
from emu.core.layout import (FAULT, EAX, ECX, EDX, ESI, EDI, ES, DS, NEXT_EIP, INSN_EIP, EXIT_REASON,
                             D_ASIZE, D_SEGOVR, D_REP, D_S0, D_S1, FLAG_DF, FLAG_ZF, REP_NONE,
                             REP_E, REP_NE, VEC_GP, REP_YIELD, OPTIONS, OPT_NO_FAST_PATH, WATCH_COUNT,
                             SEG_SLOTS, SEG_STRIDE, SEG_BASE, SEG_LIMIT, SEG_ATTR, CR0, CR0_PG,
                             CPL, A20_MASK, STRING_PAGED)
from devices.chips.layout import ROM_LOCKED

CHUNK = 1024

OP_MOVS, OP_CMPS, OP_SCAS, OP_LODS, OP_STOS, OP_INS, OP_OUTS = 0, 1, 2, 3, 4, 5, 6


@jit
def page_span(g, seg, off, size, step, amask, write):
    """(elements, physical address of the first) of the string elements at
    seg:off, off+step, ... that lie on one page of plain RAM mapped by the
    TLB for the access (as translate_paged would find it) and within the
    segment's limit and the address size; (0, 0) when there are none (the
    element loop does them)."""
    cpu = g.cpu
    s = SEG_SLOTS + seg * SEG_STRIDE
    if (cpu[s + SEG_ATTR] & 0x1C) == 0x14:
        return 0, 0                    # expand-down: left to segment_check
    limit = cpu[s + SEG_LIMIT]
    lin = (cpu[s + SEG_BASE] + off) & 0xFFFFFFFF
    at = lin & PAGE_MASK
    if at + size > 0x1000 or off + size - 1 > limit:
        return 0, 0
    if step > 0:
        n = min((0x1000 - at) // size, (amask + 1 - off) // size, (limit + 1 - off) // size)
    else:
        n = min(at // size, off // size) + 1
    if cpu[CR0] & CR0_PG:
        pa = tlb_lookup(g, lin, ACCESS_WRITE if write else ACCESS_READ, cpu[CPL] == 3)
        if pa < 0:
            return 0, 0
    else:
        pa = lin & cpu[A20_MASK]
    if pa < 0 or (pa | PAGE_MASK) >= g.mem.shape[0]:
        return 0, 0
    if write:
        if (pa >> 16) == (BIOS_ROM >> 16) and g.dev[ROM_LOCKED]:
            return 0, 0
        if (pa >> PAGE_SHIFT) >= g.pm.shape[0]:
            return 0, 0
    return n, pa


@jit
def string_run(g, op, size, step, asize, src_seg, most):
    """REP MOVS or STOS over the elements the current pages hold (at most
    ECX of them, and ``most``): how many were done (0: none, the element
    loop goes on)."""
    cpu = g.cpu
    mem = g.mem
    amask = 0xFFFFFFFF if asize == 4 else 0xFFFF
    di = get_reg(cpu, EDI, asize)
    n, dst = page_span(g, ES, di, size, step, amask, True)
    if n == 0:
        return 0
    n = min(n, get_reg(cpu, ECX, asize), most)
    if op == OP_MOVS:
        si = get_reg(cpu, ESI, asize)
        m, src = page_span(g, src_seg, si, size, step, amask, False)
        n = min(n, m)
        if n == 0:
            return 0
        for i in range(n):
            a = src + i * step
            b = dst + i * step
            v = 0
            for k in range(size):
                v |= np.int64(mem[a + k]) << (8 * k)
            for k in range(size):
                mem[b + k] = (v >> (8 * k)) & 0xFF
        set_reg(cpu, ESI, asize, (si + n * step) & amask)
    else:
        v = get_reg(cpu, EAX, size)
        for i in range(n):
            b = dst + i * step
            for k in range(size):
                mem[b + k] = (v >> (8 * k)) & 0xFF
    note_write(g, dst >> PAGE_SHIFT)
    set_reg(cpu, EDI, asize, (di + n * step) & amask)
    set_reg(cpu, ECX, asize, get_reg(cpu, ECX, asize) - n)
    cpu[STRING_PAGED] += n
    return n


@jit
def string_loop(g, d, op, size):
    cpu = g.cpu
    asize = d[D_ASIZE]
    amask = 0xFFFFFFFF if asize == 4 else 0xFFFF
    src_seg = d[D_SEGOVR] if d[D_SEGOVR] >= 0 else DS
    rep = d[D_REP]
    step = -size if get_eflags(cpu) & FLAG_DF else size
    if op == OP_INS or op == OP_OUTS:
        port = get_reg(cpu, EDX, 2)
        if not port_allowed(g, port, size):
            raise_fault(cpu, VEC_GP, 0)
            return
    else:
        port = 0
    done = 0
    by_page = rep != REP_NONE and (op == OP_MOVS or op == OP_STOS) and cpu[WATCH_COUNT] == 0 \
        and not cpu[OPTIONS] & OPT_NO_FAST_PATH
    while True:
        if rep != REP_NONE and get_reg(cpu, ECX, asize) == 0:
            return
        if by_page and done > 0 and done < CHUNK:
            n = string_run(g, op, size, step, asize, src_seg, CHUNK - done)
            if n > 0:
                done += n
                if done >= CHUNK and get_reg(cpu, ECX, asize) != 0:
                    cpu[NEXT_EIP] = cpu[INSN_EIP]
                    cpu[REP_YIELD] = 1
                    return
                continue
        si = get_reg(cpu, ESI, asize)
        di = get_reg(cpu, EDI, asize)
        if op == OP_MOVS:
            v = read_mem(g, src_seg, si, size)
            if cpu[FAULT] >= 0 or not write_mem(g, ES, di, size, v):
                return
            set_reg(cpu, ESI, asize, (si + step) & amask)
            set_reg(cpu, EDI, asize, (di + step) & amask)
        elif op == OP_STOS:
            if not write_mem(g, ES, di, size, get_reg(cpu, EAX, size)):
                return
            set_reg(cpu, EDI, asize, (di + step) & amask)
        elif op == OP_LODS:
            v = read_mem(g, src_seg, si, size)
            if cpu[FAULT] >= 0:
                return
            set_reg(cpu, EAX, size, v)
            set_reg(cpu, ESI, asize, (si + step) & amask)
        elif op == OP_CMPS:
            a = read_mem(g, src_seg, si, size)
            b = read_mem(g, ES, di, size)
            if cpu[FAULT] >= 0:
                return
            set_lazy(cpu, LF_SUB, a, b, a - b, size)
            set_reg(cpu, ESI, asize, (si + step) & amask)
            set_reg(cpu, EDI, asize, (di + step) & amask)
        elif op == OP_SCAS:
            b = read_mem(g, ES, di, size)
            if cpu[FAULT] >= 0:
                return
            a = get_reg(cpu, EAX, size)
            set_lazy(cpu, LF_SUB, a, b, a - b, size)
            set_reg(cpu, EDI, asize, (di + step) & amask)
        elif op == OP_INS:
            # the destination is probed before the port is read: the read has side effects
            if not check_write(g, ES, di, size):
                return
            v = port_read(g, port, size)
            if v < 0:
                return
            if not write_mem(g, ES, di, size, v):
                return
            set_reg(cpu, EDI, asize, (di + step) & amask)
        else:
            v = read_mem(g, src_seg, si, size)
            if cpu[FAULT] >= 0:
                return
            if not port_write(g, port, size, v):
                return
            set_reg(cpu, ESI, asize, (si + step) & amask)
        if rep == REP_NONE:
            return
        set_reg(cpu, ECX, asize, get_reg(cpu, ECX, asize) - 1)
        if cpu[EXIT_REASON] != 0:
            # a port write ended the run (debug exit, reset): resume here later
            if get_reg(cpu, ECX, asize) != 0:
                cpu[NEXT_EIP] = cpu[INSN_EIP]
            return
        if op == OP_CMPS or op == OP_SCAS:
            zf = (get_eflags(cpu) & FLAG_ZF) != 0
            if (rep == REP_E and not zf) or (rep == REP_NE and zf):
                return
        done += 1
        if done >= CHUNK and get_reg(cpu, ECX, asize) != 0:
            cpu[NEXT_EIP] = cpu[INSN_EIP]
            cpu[REP_YIELD] = 1
            return


@jit
def movs(g, d):
    string_loop(g, d, OP_MOVS, d[D_S0])


@jit
def cmps(g, d):
    string_loop(g, d, OP_CMPS, d[D_S0])


@jit
def scas(g, d):
    string_loop(g, d, OP_SCAS, d[D_S1])


@jit
def lods(g, d):
    string_loop(g, d, OP_LODS, d[D_S0])


@jit
def stos(g, d):
    string_loop(g, d, OP_STOS, d[D_S0])


@jit
def ins(g, d):
    string_loop(g, d, OP_INS, d[D_S0])


@jit
def outs(g, d):
    string_loop(g, d, OP_OUTS, d[D_S1])
