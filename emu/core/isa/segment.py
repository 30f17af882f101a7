"""Segment register instructions (SDM Vol. 2: MOV Sreg, POP Sreg, LDS LES
LFS LGS LSS, ARPL, LAR, LSL, VERR, VERW)."""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import set_flag_bits
from emu.core.memory import read_mem, write_mem
from emu.core.operands import read_operand, write_operand, set_reg
from emu.core.segments import (load_segment, protected_mode, read_descriptor, desc_attr,
                               desc_limit)
from emu.core.stackops import stack_mask, set_sp
from emu.core.layout import (FAULT, EA, ESP, SS, CS, CPL, INHIBIT_IRQ, D_REG, D_OSIZE, D_ASIZE,
                             D_SEG, D_MOD, D_RM, D_K0, K_SEGFIX, SEG_SLOTS, SEG_STRIDE, SEG_SEL,
                             FLAG_ZF, DESC_SCRATCH, VEC_UD, NO_ERROR_CODE)


@jit
def mov_to_sreg(g, d):
    """MOV Sreg, r/m16.  Loading CS (or a register number above GS) is #UD;
    loading SS blocks interrupts for one instruction."""
    cpu = g.cpu
    seg = d[D_REG]
    if seg == CS or seg > 5:
        raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
        return
    sel = read_operand(g, d, 1)
    if cpu[FAULT] >= 0:
        return
    if load_segment(g, seg, sel, cpu[DESC_SCRATCH:DESC_SCRATCH + 2]) and seg == SS:
        cpu[INHIBIT_IRQ] = 1


@jit
def mov_from_sreg(g, d):
    """MOV r/m, Sreg: a memory destination is always 16 bits; a 32-bit
    register gets the selector zero-extended (P6 and later, SDM Vol. 2, MOV)."""
    cpu = g.cpu
    seg = d[D_REG]
    if seg > 5:
        raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
        return
    write_selector(g, d, cpu[SEG_SLOTS + seg * SEG_STRIDE + SEG_SEL])


@jit
def write_selector(g, d, sel):
    """Store a selector to r/m: memory always takes 16 bits, a register gets
    it zero-extended to the operand size (P6 and later, SDM Vol. 2, MOV)."""
    cpu = g.cpu
    if d[D_MOD] == 3:
        set_reg(cpu, d[D_RM], d[D_OSIZE], sel)
    else:
        write_mem(g, d[D_SEG], cpu[EA], 2, sel)


@jit
def pop_sreg(g, d):
    cpu = g.cpu
    seg = d[D_K0] - K_SEGFIX
    size = d[D_OSIZE]
    sel = read_mem(g, SS, cpu[ESP] & stack_mask(cpu), size) & 0xFFFF
    if cpu[FAULT] >= 0:
        return
    if load_segment(g, seg, sel, cpu[DESC_SCRATCH:DESC_SCRATCH + 2]):
        set_sp(cpu, cpu[ESP] + size)
        if seg == SS:
            cpu[INHIBIT_IRQ] = 1


@jit
def load_far_pointer(g, d, seg):
    """LxS r, m16:16/m16:32: the segment is loaded (and checked) before the
    register is written, so a refused selector changes nothing."""
    cpu = g.cpu
    size = d[D_OSIZE]
    off = read_mem(g, d[D_SEG], cpu[EA], size)
    sel = read_mem(g, d[D_SEG], (cpu[EA] + size) & (0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF), 2)
    if cpu[FAULT] >= 0:
        return
    if load_segment(g, seg, sel, cpu[DESC_SCRATCH:DESC_SCRATCH + 2]):
        set_reg(cpu, d[D_REG], size, off)
        if seg == SS:
            cpu[INHIBIT_IRQ] = 1


@jit
def les(g, d):
    load_far_pointer(g, d, 0)


@jit
def lds(g, d):
    load_far_pointer(g, d, 3)


@jit
def lss(g, d):
    load_far_pointer(g, d, 2)


@jit
def lfs(g, d):
    load_far_pointer(g, d, 4)


@jit
def lgs(g, d):
    load_far_pointer(g, d, 5)


@jit
def arpl(g, d):
    """ARPL: raise the destination selector's RPL to the source's; ZF says
    whether it changed.  #UD outside protected mode."""
    cpu = g.cpu
    if not protected_mode(cpu):
        raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
        return
    dest = read_operand(g, d, 0)
    src = read_operand(g, d, 1)
    if cpu[FAULT] >= 0:
        return
    if (dest & 3) < (src & 3):
        if write_operand(g, d, 0, (dest & ~3) | (src & 3)):
            set_flag_bits(cpu, FLAG_ZF, FLAG_ZF)
    else:
        set_flag_bits(cpu, FLAG_ZF, 0)


# what LAR / LSL accept among system descriptor types (SDM Vol. 2, LAR and LSL tables)
LAR_SYSTEM_TYPES = (1, 2, 3, 4, 5, 9, 11, 12)
LSL_SYSTEM_TYPES = (1, 2, 3, 9, 11)

CHECK_LAR, CHECK_LSL, CHECK_VERR, CHECK_VERW = 0, 1, 2, 3


@jit
def descriptor_visible(g, sel, check, dsc):
    """Whether LAR/LSL/VERR/VERW may see the descriptor of ``sel``."""
    cpu = g.cpu
    if (sel & 0xFFFC) == 0 or not read_descriptor(g, sel, dsc):
        return False
    attr = desc_attr(dsc[1])
    if not attr & 0x10:
        typ = attr & 0xF
        if check == CHECK_LAR:
            ok = typ in LAR_SYSTEM_TYPES
        elif check == CHECK_LSL:
            ok = typ in LSL_SYSTEM_TYPES
        else:
            ok = False
        if not ok:
            return False
    else:
        is_code = (attr & 8) != 0
        if check == CHECK_VERR and is_code and not attr & 2:
            return False
        if check == CHECK_VERW and (is_code or not attr & 2):
            return False
        if is_code and (attr & 4):
            return True            # conforming code: no privilege check
    dpl = (attr >> 5) & 3
    return dpl >= cpu[CPL] and dpl >= (sel & 3)


@jit
def selector_check(g, d, check):
    cpu = g.cpu
    if not protected_mode(cpu):
        raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
        return False
    operand = 1 if check <= CHECK_LSL else 0
    sel = read_operand(g, d, operand) & 0xFFFF
    if cpu[FAULT] >= 0:
        return False
    dsc = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    ok = descriptor_visible(g, sel, check, dsc)
    set_flag_bits(cpu, FLAG_ZF, FLAG_ZF if ok else 0)
    return ok


@jit
def lar(g, d):
    """LAR: access rights (descriptor bytes 5-7, masked 00FxFF00H)."""
    cpu = g.cpu
    if selector_check(g, d, CHECK_LAR):
        write_operand(g, d, 0, cpu[DESC_SCRATCH + 1] & 0x00F0FF00)


@jit
def lsl(g, d):
    """LSL: the segment limit in bytes (scaled by G)."""
    cpu = g.cpu
    if selector_check(g, d, CHECK_LSL):
        write_operand(g, d, 0, desc_limit(cpu[DESC_SCRATCH], cpu[DESC_SCRATCH + 1]))


@jit
def verr(g, d):
    selector_check(g, d, CHECK_VERR)


@jit
def verw(g, d):
    selector_check(g, d, CHECK_VERW)
