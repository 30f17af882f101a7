"""Generic operand access by kind: the dispatcher reads operands with
read_operand, hands their values to the instruction's semantics, and writes
the result back with write_operand."""
from emu.core.jit import jit
from emu.core.memory import read_mem, write_mem
from emu.core.layout import (EA, D_K0, D_S0, D_MOD, D_RM, D_REG, D_SEG, D_IMM, D_IMM2, D_DISP,
                             D_OPCODE, D_BASE, D_INDEX, D_SCALE, D_ASIZE, K_RM, K_REG, K_IMM,
                             K_IMM2, K_REL, K_MOFFS, K_OPREG, K_SREG, K_MEM, K_ONE, K_GPR,
                             K_SEGFIX, K_RMREG, K_FARPTR, SEG_SLOTS, SEG_STRIDE, SEG_SEL)


@jit
def get_reg(cpu, r, size):
    """General register r (ModRM numbering) at a width; for bytes 4-7 are
    AH CH DH BH."""
    if size == 4:
        return cpu[r] & 0xFFFFFFFF
    if size == 2:
        return cpu[r] & 0xFFFF
    if r < 4:
        return cpu[r] & 0xFF
    return (cpu[r - 4] >> 8) & 0xFF


@jit
def set_reg(cpu, r, size, value):
    """Write a general register at a width; narrower writes keep the other
    bits of the full register (SDM Vol. 1, 3.4.1)."""
    if size == 4:
        cpu[r] = value & 0xFFFFFFFF
    elif size == 2:
        cpu[r] = (cpu[r] & 0xFFFF0000) | (value & 0xFFFF)
    elif r < 4:
        cpu[r] = (cpu[r] & 0xFFFFFF00) | (value & 0xFF)
    else:
        cpu[r - 4] = (cpu[r - 4] & 0xFFFF00FF) | ((value & 0xFF) << 8)


@jit
def effective_address(cpu, d):
    """Offset of the ModRM memory operand: base + index * scale + disp,
    wrapped to the address size (SDM Vol. 2, 2.1.5)."""
    ea = d[D_DISP]
    if d[D_BASE] >= 0:
        ea += cpu[d[D_BASE]]
    if d[D_INDEX] >= 0:
        ea += cpu[d[D_INDEX]] << d[D_SCALE]
    if d[D_ASIZE] == 2:
        return ea & 0xFFFF
    return ea & 0xFFFFFFFF


@jit
def size_mask(size):
    return (1 << (size * 8)) - 1


@jit
def read_operand(g, d, i):
    cpu = g.cpu
    kind = d[D_K0 + i]
    size = d[D_S0 + i]
    if kind == K_RM:
        if d[D_MOD] == 3:
            return get_reg(cpu, d[D_RM], size)
        return read_mem(g, d[D_SEG], cpu[EA], size)
    if kind == K_REG:
        return get_reg(cpu, d[D_REG], size)
    if kind == K_IMM or kind == K_FARPTR:
        return d[D_IMM] & size_mask(size)
    if kind == K_REL:
        return d[D_IMM]          # signed displacement
    if kind >= K_GPR and kind < K_SEGFIX:
        return get_reg(cpu, kind - K_GPR, size)
    if kind == K_OPREG:
        return get_reg(cpu, d[D_OPCODE] & 7, size)
    if kind == K_MEM:
        return read_mem(g, d[D_SEG], cpu[EA], size)
    if kind == K_MOFFS:
        return read_mem(g, d[D_SEG], d[D_DISP], size)
    if kind == K_ONE:
        return 1
    if kind == K_IMM2:
        return d[D_IMM2] & size_mask(size)
    if kind >= K_SEGFIX:
        return cpu[SEG_SLOTS + (kind - K_SEGFIX) * SEG_STRIDE + SEG_SEL]
    if kind == K_SREG:
        return cpu[SEG_SLOTS + d[D_REG] * SEG_STRIDE + SEG_SEL]
    if kind == K_RMREG:
        return cpu[d[D_RM]] & 0xFFFFFFFF
    return 0


@jit
def write_operand(g, d, i, value):
    """Write a register or memory operand; returns False with a fault
    pending when the memory write is refused."""
    cpu = g.cpu
    kind = d[D_K0 + i]
    size = d[D_S0 + i]
    if kind == K_RM:
        if d[D_MOD] == 3:
            set_reg(cpu, d[D_RM], size, value)
            return True
        return write_mem(g, d[D_SEG], cpu[EA], size, value)
    if kind == K_REG:
        set_reg(cpu, d[D_REG], size, value)
        return True
    if kind >= K_GPR and kind < K_SEGFIX:
        set_reg(cpu, kind - K_GPR, size, value)
        return True
    if kind == K_OPREG:
        set_reg(cpu, d[D_OPCODE] & 7, size, value)
        return True
    if kind == K_MEM:
        return write_mem(g, d[D_SEG], cpu[EA], size, value)
    if kind == K_MOFFS:
        return write_mem(g, d[D_SEG], d[D_DISP], size, value)
    if kind == K_RMREG:
        cpu[d[D_RM]] = value & 0xFFFFFFFF
        return True
    return True
