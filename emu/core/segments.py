"""Segment registers and their hidden descriptor caches (SDM Vol. 3, 3.4-3.5).

Real mode (and virtual-8086 mode) loads only the selector and base =
selector * 16, leaving limit and attributes as they were (that is what makes
"unreal mode" work).  Protected mode reads the descriptor from the GDT or LDT
and checks type, privilege and presence before the load.
"""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.memory import read_linear, write_linear, ACCESS_READ
from emu.core.layout import (CPL, CR0, CR0_PE, EFLAGS, FLAG_VM, SEG_SLOTS, SEG_STRIDE, SEG_SEL,
                             SEG_BASE, SEG_LIMIT, SEG_ATTR, ATTR_UNUSABLE, GDTR_BASE, GDTR_LIMIT,
                             LDTR, TR, SS, CS, FAULT, VEC_GP, VEC_NP, VEC_SS, VEC_TS)


@jit
def seg_slot(seg):
    return SEG_SLOTS + seg * SEG_STRIDE


@jit
def set_segment_cache(cpu, seg, sel, base, limit, attr):
    s = SEG_SLOTS + seg * SEG_STRIDE
    cpu[s + SEG_SEL] = sel & 0xFFFF
    cpu[s + SEG_BASE] = base & 0xFFFFFFFF
    cpu[s + SEG_LIMIT] = limit & 0xFFFFFFFF
    cpu[s + SEG_ATTR] = attr


@jit
def protected_mode(cpu):
    return (cpu[CR0] & CR0_PE) != 0 and (cpu[EFLAGS] & FLAG_VM) == 0


@jit
def load_segment_real(cpu, seg, sel):
    s = SEG_SLOTS + seg * SEG_STRIDE
    cpu[s + SEG_SEL] = sel & 0xFFFF
    cpu[s + SEG_BASE] = (sel & 0xFFFF) << 4
    if cpu[EFLAGS] & FLAG_VM:
        # virtual-8086 segments are always 64 KiB, DPL 3 data (SDM Vol. 3, 20.1.1)
        cpu[s + SEG_LIMIT] = 0xFFFF
        cpu[s + SEG_ATTR] = 0xF3 if seg != CS else 0xFB


# --- descriptors ---------------------------------------------------------------

@jit
def desc_base(lo, hi):
    return ((lo >> 16) & 0xFFFF) | ((hi & 0xFF) << 16) | (hi & 0xFF000000)


@jit
def desc_limit(lo, hi):
    limit = (lo & 0xFFFF) | (hi & 0xF0000)
    if hi & 0x800000:          # G: 4 KiB granularity
        limit = (limit << 12) | 0xFFF
    return limit


@jit
def desc_attr(hi):
    return (hi >> 8) & 0xF0FF


@jit
def read_descriptor(g, sel, lo_hi):
    """Read the 8-byte descriptor of ``sel`` into lo_hi[0:2].  Returns False
    when the selector is beyond its table's limit (no fault raised: the
    caller knows which exception applies)."""
    cpu = g.cpu
    index = sel & 0xFFF8
    if sel & 4:
        s = SEG_SLOTS + LDTR * SEG_STRIDE
        if cpu[s + SEG_ATTR] & ATTR_UNUSABLE or (cpu[s + SEG_SEL] & 0xFFFC) == 0:
            return False
        base = cpu[s + SEG_BASE]
        limit = cpu[s + SEG_LIMIT]
    else:
        base = cpu[GDTR_BASE]
        limit = cpu[GDTR_LIMIT]
    if index + 7 > limit:
        return False
    lo_hi[0] = read_linear(g, base + index, 4, ACCESS_READ, False)
    lo_hi[1] = read_linear(g, base + index + 4, 4, ACCESS_READ, False)
    return True


@jit
def descriptor_address(g, sel):
    cpu = g.cpu
    if sel & 4:
        return cpu[SEG_SLOTS + LDTR * SEG_STRIDE + SEG_BASE] + (sel & 0xFFF8)
    return cpu[GDTR_BASE] + (sel & 0xFFF8)


@jit
def set_accessed(g, sel, hi):
    """Set the descriptor's accessed bit as the processor does on a load."""
    if not hi & 0x100:
        write_linear(g, descriptor_address(g, sel) + 4, 4, hi | 0x100, False)


@jit
def load_segment(g, seg, sel, lo_hi):
    """MOV/POP/LxS to a data or stack segment register, with the checks of
    SDM Vol. 2 "MOV" (protected-mode exceptions).  Returns False with a
    fault raised when the load is refused; the register is then unchanged."""
    cpu = g.cpu
    sel &= 0xFFFF
    if not protected_mode(cpu):
        load_segment_real(cpu, seg, sel)
        return True
    cpl = cpu[CPL]
    if (sel & 0xFFFC) == 0:
        if seg == SS:
            raise_fault(cpu, VEC_GP, 0)
            return False
        set_segment_cache(cpu, seg, sel, 0, 0, ATTR_UNUSABLE)
        return True
    if not read_descriptor(g, sel, lo_hi):
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return False
    lo = lo_hi[0]
    hi = lo_hi[1]
    attr = desc_attr(hi)
    dpl = (attr >> 5) & 3
    rpl = sel & 3
    is_code = (attr & 0x18) == 0x18
    is_data = (attr & 0x18) == 0x10
    if seg == SS:
        if rpl != cpl or dpl != cpl or not is_data or not (attr & 2):
            raise_fault(cpu, VEC_GP, sel & 0xFFFC)
            return False
        if not attr & 0x80:
            raise_fault(cpu, VEC_SS, sel & 0xFFFC)
            return False
    else:
        if not (is_data or (is_code and (attr & 2))):
            raise_fault(cpu, VEC_GP, sel & 0xFFFC)
            return False
        conforming_code = is_code and (attr & 4)
        if not conforming_code and (dpl < cpl or dpl < rpl):
            raise_fault(cpu, VEC_GP, sel & 0xFFFC)
            return False
        if not attr & 0x80:
            raise_fault(cpu, VEC_NP, sel & 0xFFFC)
            return False
    set_accessed(g, sel, hi)
    set_segment_cache(cpu, seg, sel, desc_base(lo, hi), desc_limit(lo, hi), attr | 1)
    return True


@jit
def load_code_segment(cpu, sel, lo, hi, cpl):
    """Load CS from an already-checked code descriptor, RPL = new CPL."""
    set_segment_cache(cpu, CS, (sel & 0xFFFC) | cpl, desc_base(lo, hi), desc_limit(lo, hi),
                      desc_attr(hi) | 1)
    cpu[CPL] = cpl


@jit
def invalidate_for_cpl(cpu):
    """After a return to an outer privilege level, data segment registers
    whose DPL is below the new CPL become null (SDM Vol. 2, RET/IRET)."""
    cpl = cpu[CPL]
    for seg in (0, 3, 4, 5):
        s = SEG_SLOTS + seg * SEG_STRIDE
        attr = cpu[s + SEG_ATTR]
        if attr & ATTR_UNUSABLE:
            continue
        dpl = (attr >> 5) & 3
        conforming_code = (attr & 0x1C) == 0x1C
        if not conforming_code and dpl < cpl:
            cpu[s + SEG_SEL] = 0
            cpu[s + SEG_ATTR] = ATTR_UNUSABLE


@jit
def inner_stack(g, dpl, ext, dsc):
    """The stack for privilege level ``dpl`` from the current TSS, as an
    interrupt or a call gate into a more privileged level takes it (SDM
    Vol. 3, 5.8.5 and 6.12.1): SS must be a present, writable data segment
    with RPL = DPL = dpl.  Returns (ok, esp, ss, base, limit, attributes);
    when not ok, #TS or #SS (error code + ``ext``) is pending."""
    cpu = g.cpu
    trs = SEG_SLOTS + TR * SEG_STRIDE
    tss32 = (cpu[trs + SEG_ATTR] & 8) != 0
    at = (4 + dpl * 8) if tss32 else (2 + dpl * 4)
    if at + (5 if tss32 else 3) > cpu[trs + SEG_LIMIT]:
        raise_fault(cpu, VEC_TS, (cpu[trs + SEG_SEL] & 0xFFFC) + ext)
        return False, 0, 0, 0, 0, 0
    tbase = cpu[trs + SEG_BASE]
    esp = read_linear(g, tbase + at, 4 if tss32 else 2, ACCESS_READ, False)
    ss = read_linear(g, tbase + at + (4 if tss32 else 2), 2, ACCESS_READ, False)
    if cpu[FAULT] >= 0:
        return False, 0, 0, 0, 0, 0
    if (ss & 0xFFFC) == 0:
        raise_fault(cpu, VEC_TS, ext)
        return False, 0, 0, 0, 0, 0
    if not read_descriptor(g, ss, dsc):
        raise_fault(cpu, VEC_TS, (ss & 0xFFFC) + ext)
        return False, 0, 0, 0, 0, 0
    lo = dsc[0]
    hi = dsc[1]
    attr = desc_attr(hi)
    if (ss & 3) != dpl or ((attr >> 5) & 3) != dpl or (attr & 0x1A) != 0x12:
        raise_fault(cpu, VEC_TS, (ss & 0xFFFC) + ext)
        return False, 0, 0, 0, 0, 0
    if not attr & 0x80:
        raise_fault(cpu, VEC_SS, (ss & 0xFFFC) + ext)
        return False, 0, 0, 0, 0, 0
    set_accessed(g, ss, hi)
    return True, esp, ss, desc_base(lo, hi), desc_limit(lo, hi), attr | 1
