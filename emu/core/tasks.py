"""Hardware task switching (SDM Vol. 3, chapter 7): JMP or CALL to a TSS
descriptor or a task gate, an interrupt or exception through a task gate in
the IDT, and IRET with EFLAGS.NT set (return to the task in the back link).

The order follows SDM Vol. 3, 7.3: checks on the new TSS descriptor, read
the whole new task state (so that a fault there leaves the old task
untouched), save the old task into its TSS, update the busy bits, the back
link and NT, load TR, CR3, LDTR, the registers, and finally the segment
registers, whose faults belong to the new task.
"""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import get_eflags, set_eflags_raw
from emu.core.memory import read_linear, write_linear, tlb_flush, ACCESS_READ
from emu.core.segments import (read_descriptor, descriptor_address, desc_base, desc_limit,
                               desc_attr, set_segment_cache, set_accessed, load_segment_real)
from emu.core.stackops import push
from emu.core.layout import (CR4, CR4_PGE, EAX, EIP, NEXT_EIP, EFLAGS, CPL, CR0, CR0_TS, CR3, SEG_SLOTS,
                             SEG_STRIDE, SEG_SEL, SEG_BASE, SEG_LIMIT, SEG_ATTR, ATTR_UNUSABLE,
                             ES, CS, SS, DS, FS, GS, LDTR, TR, FLAG_NT, FLAG_VM, FLAG_RESERVED1,
                             FAULT, SCRATCH, DESC_SCRATCH, VEC_GP, VEC_TS, VEC_NP, VEC_SS)

TS_JMP = 0
TS_CALL = 1
TS_IRET = 2
TS_INT = 3          # interrupt or exception through a task gate (nests like CALL)

TSS32_MIN_LIMIT = 0x67
TSS16_MIN_LIMIT = 0x2B
DESC_BUSY = 0x200   # bit 9 of a TSS descriptor's high dword

# where the new task's state waits between reading and loading
NEW_EIP = SCRATCH
NEW_EFLAGS = SCRATCH + 1
NEW_GPR = SCRATCH + 2          # 8 slots, EAX..EDI
NEW_SEG = SCRATCH + 10         # 6 slots, ES..GS
NEW_LDT = SCRATCH + 16
NEW_CR3 = SCRATCH + 17


@jit
def tss_layout(tss32):
    """(width, eip, eflags, first GPR, first segment, LDT) offsets of a 32- or
    16-bit TSS (SDM Vol. 3, figures 7-2 and 7-11)."""
    if tss32:
        return 4, 0x20, 0x24, 0x28, 0x48, 0x60
    return 2, 0x0E, 0x10, 0x12, 0x22, 0x2A


@jit
def read_new_task(g, base, tss32):
    """Read the new task's registers into scratch; False if a read faulted."""
    cpu = g.cpu
    w, o_eip, o_flags, o_gpr, o_seg, o_ldt = tss_layout(tss32)
    cpu[NEW_EIP] = read_linear(g, base + o_eip, w, ACCESS_READ, False)
    cpu[NEW_EFLAGS] = read_linear(g, base + o_flags, w, ACCESS_READ, False)
    for i in range(8):
        cpu[NEW_GPR + i] = read_linear(g, base + o_gpr + i * w, w, ACCESS_READ, False)
    for i in range(6):
        cpu[NEW_SEG + i] = read_linear(g, base + o_seg + i * (4 if tss32 else 2), 2, ACCESS_READ, False)
    cpu[NEW_LDT] = read_linear(g, base + o_ldt, 2, ACCESS_READ, False)
    cpu[NEW_CR3] = read_linear(g, base + 0x1C, 4, ACCESS_READ, False) if tss32 else cpu[CR3]
    return cpu[FAULT] < 0


@jit
def save_old_task(g, return_eip, flags):
    """Store the dynamic fields of the current task in its TSS."""
    cpu = g.cpu
    trs = SEG_SLOTS + TR * SEG_STRIDE
    base = cpu[trs + SEG_BASE]
    tss32 = (cpu[trs + SEG_ATTR] & 8) != 0
    w, o_eip, o_flags, o_gpr, o_seg, o_ldt = tss_layout(tss32)
    ok = write_linear(g, base + o_eip, w, return_eip, False)
    ok = ok and write_linear(g, base + o_flags, w, flags, False)
    for i in range(8):
        ok = ok and write_linear(g, base + o_gpr + i * w, w, cpu[EAX + i], False)
    for i in range(6):
        ok = ok and write_linear(g, base + o_seg + i * (4 if tss32 else 2), 2,
                                 cpu[SEG_SLOTS + i * SEG_STRIDE + SEG_SEL], False)
    return ok


@jit
def set_busy(g, sel, busy):
    addr = descriptor_address(g, sel) + 4
    hi = read_linear(g, addr, 4, ACCESS_READ, False)
    if cpu_fault(g):
        return False
    hi = (hi | DESC_BUSY) if busy else (hi & ~DESC_BUSY)
    return write_linear(g, addr, 4, hi, False)


@jit
def cpu_fault(g):
    return g.cpu[FAULT] >= 0


@jit
def load_task_ldt(g, sel, ext):
    """LDTR from the new TSS: null, or an LDT descriptor in the GDT."""
    cpu = g.cpu
    d = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    if (sel & 0xFFFC) == 0:
        set_segment_cache(cpu, LDTR, sel, 0, 0, ATTR_UNUSABLE)
        return True
    if (sel & 4) or not read_descriptor(g, sel, d):
        raise_fault(cpu, VEC_TS, (sel & 0xFFFC) + ext)
        return False
    attr = desc_attr(d[1])
    if (attr & 0x1F) != 0x02:
        raise_fault(cpu, VEC_TS, (sel & 0xFFFC) + ext)
        return False
    if not attr & 0x80:
        raise_fault(cpu, VEC_NP, (sel & 0xFFFC) + ext)
        return False
    set_segment_cache(cpu, LDTR, sel, desc_base(d[0], d[1]), desc_limit(d[0], d[1]), attr)
    return True


@jit
def load_task_segment(g, seg, sel, cpl, ext):
    """A segment register of the new task, with the checks of SDM Vol. 3,
    7.3 step 13 (violations are #TS with the selector; not present is #NP,
    #SS for the stack)."""
    cpu = g.cpu
    d = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    err = (sel & 0xFFFC) + ext
    if (sel & 0xFFFC) == 0:
        if seg == CS or seg == SS:
            raise_fault(cpu, VEC_TS, ext)
            return False
        set_segment_cache(cpu, seg, sel, 0, 0, ATTR_UNUSABLE)
        return True
    if not read_descriptor(g, sel, d):
        raise_fault(cpu, VEC_TS, err)
        return False
    lo = d[0]
    hi = d[1]
    attr = desc_attr(hi)
    dpl = (attr >> 5) & 3
    rpl = sel & 3
    is_code = (attr & 0x18) == 0x18
    is_data = (attr & 0x18) == 0x10
    if seg == CS:
        conforming = (attr & 4) != 0
        if not is_code or (conforming and dpl > rpl) or (not conforming and dpl != rpl):
            raise_fault(cpu, VEC_TS, err)
            return False
        if not attr & 0x80:
            raise_fault(cpu, VEC_NP, err)
            return False
    elif seg == SS:
        if not is_data or not attr & 2 or rpl != cpl or dpl != cpl:
            raise_fault(cpu, VEC_TS, err)
            return False
        if not attr & 0x80:
            raise_fault(cpu, VEC_SS, err)
            return False
    else:
        if not (is_data or (is_code and attr & 2)):
            raise_fault(cpu, VEC_TS, err)
            return False
        if not (is_code and attr & 4) and (dpl < cpl or dpl < rpl):
            raise_fault(cpu, VEC_TS, err)
            return False
        if not attr & 0x80:
            raise_fault(cpu, VEC_NP, err)
            return False
    set_accessed(g, sel, hi)
    set_segment_cache(cpu, seg, sel, desc_base(lo, hi), desc_limit(lo, hi), attr | 1)
    return True


@jit
def switch_task(g, sel, source, ext, error_code, return_eip):
    """Switch to the task of TSS selector ``sel``.  ``source`` is TS_JMP,
    TS_CALL, TS_IRET or TS_INT; ``return_eip`` is saved in the old TSS; an
    ``error_code`` >= 0 is pushed on the new task's stack (exceptions)."""
    cpu = g.cpu
    sel &= 0xFFFF
    d = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    refuse = VEC_TS if source == TS_IRET else VEC_GP
    err = (sel & 0xFFFC) + ext
    if (sel & 4) or (sel & 0xFFFC) == 0 or not read_descriptor(g, sel, d):
        raise_fault(cpu, refuse, err)
        return False
    lo = d[0]
    hi = d[1]
    attr = desc_attr(hi)
    typ = attr & 0x1F
    if typ != 0x01 and typ != 0x03 and typ != 0x09 and typ != 0x0B:
        raise_fault(cpu, refuse, err)
        return False
    busy = (typ & 2) != 0
    if busy != (source == TS_IRET):
        # IRET returns to a busy task; JMP, CALL and interrupts need an available one
        raise_fault(cpu, refuse, err)
        return False
    if not attr & 0x80:
        raise_fault(cpu, VEC_NP, err)
        return False
    new32 = (typ & 8) != 0
    limit = desc_limit(lo, hi)
    if limit < (TSS32_MIN_LIMIT if new32 else TSS16_MIN_LIMIT):
        raise_fault(cpu, VEC_TS, err)
        return False
    base = desc_base(lo, hi)
    if not read_new_task(g, base, new32):
        return False

    # --- the old task -------------------------------------------------------
    old_sel = cpu[SEG_SLOTS + TR * SEG_STRIDE + SEG_SEL]
    flags = get_eflags(cpu)
    saved_flags = flags & ~FLAG_NT if source == TS_IRET else flags
    if not save_old_task(g, return_eip, saved_flags):
        return False
    if source == TS_JMP or source == TS_IRET:
        if not set_busy(g, old_sel, False):
            return False
    new_flags = cpu[NEW_EFLAGS]
    if source == TS_CALL or source == TS_INT:
        if not write_linear(g, base, 2, old_sel, False):
            return False
        new_flags |= FLAG_NT
    if source != TS_IRET:
        if not set_busy(g, sel, True):
            return False

    # --- commit: the new task -------------------------------------------------
    set_segment_cache(cpu, TR, sel, base, limit, (attr | 2) & 0xF0FF)
    cpu[CR0] |= CR0_TS
    if new32 and cpu[CR0] & (1 << 31):
        cpu[CR3] = cpu[NEW_CR3] & 0xFFFFFFF8
        tlb_flush(g, (cpu[CR4] & CR4_PGE) != 0)
    if not new32:
        new_flags &= 0xFFFF
    set_eflags_raw(cpu, new_flags | FLAG_RESERVED1)
    w = 4 if new32 else 2
    for i in range(8):
        v = cpu[NEW_GPR + i]
        cpu[EAX + i] = v if new32 else (cpu[EAX + i] & 0xFFFF0000) | (v & 0xFFFF)
    cpu[EIP] = cpu[NEW_EIP] & (0xFFFFFFFF if new32 else 0xFFFF)
    cpu[NEXT_EIP] = cpu[EIP]
    # selectors first, descriptors after: a fault below is taken by the new task
    for i in range(6):
        s = SEG_SLOTS + i * SEG_STRIDE
        cpu[s + SEG_SEL] = cpu[NEW_SEG + i]
    if not load_task_ldt(g, cpu[NEW_LDT], ext):
        return False
    if new_flags & FLAG_VM:
        for i in range(6):
            load_segment_real(cpu, i, cpu[NEW_SEG + i])
        cpu[CPL] = 3
    else:
        cpl = cpu[NEW_SEG + CS] & 3
        cpu[CPL] = cpl
        for i in (CS, SS, DS, ES, FS, GS):
            if not load_task_segment(g, i, cpu[NEW_SEG + i], cpl, ext):
                return False
    if error_code >= 0:
        if not push(g, error_code, w):
            return False
    return True
