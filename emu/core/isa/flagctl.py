"""Flag control (SDM Vol. 1, 7.3.13): CLC STC CMC CLD STD CLI STI SAHF LAHF."""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import get_eflags, set_flag_bits
from emu.core.operands import get_reg, set_reg
from emu.core.segments import protected_mode
from emu.core.layout import (EAX, CPL, EFLAGS, INHIBIT_IRQ, FLAG_CF, FLAG_DF, FLAG_IF, FLAG_IOPL,
                             FLAG_PF, FLAG_AF, FLAG_ZF, FLAG_SF, FLAG_VM, VEC_GP)


@jit
def clc(g, d):
    set_flag_bits(g.cpu, FLAG_CF, 0)


@jit
def stc(g, d):
    set_flag_bits(g.cpu, FLAG_CF, FLAG_CF)


@jit
def cmc(g, d):
    set_flag_bits(g.cpu, FLAG_CF, ~get_eflags(g.cpu))


@jit
def cld(g, d):
    g.cpu[EFLAGS] &= ~FLAG_DF


@jit
def std(g, d):
    g.cpu[EFLAGS] |= FLAG_DF


@jit
def may_change_if(cpu):
    """CLI/STI: in protected mode CPL must be <= IOPL, in virtual-8086 mode
    IOPL must be 3; otherwise #GP(0) (SDM Vol. 2, CLI; no VME/PVI here)."""
    iopl = (cpu[EFLAGS] & FLAG_IOPL) >> 12
    if cpu[EFLAGS] & FLAG_VM:
        return iopl == 3
    if protected_mode(cpu):
        return cpu[CPL] <= iopl
    return True


@jit
def cli(g, d):
    cpu = g.cpu
    if not may_change_if(cpu):
        raise_fault(cpu, VEC_GP, 0)
        return
    cpu[EFLAGS] &= ~FLAG_IF


@jit
def sti(g, d):
    """STI opens a one-instruction interrupt shadow when it sets IF."""
    cpu = g.cpu
    if not may_change_if(cpu):
        raise_fault(cpu, VEC_GP, 0)
        return
    if not cpu[EFLAGS] & FLAG_IF:
        cpu[INHIBIT_IRQ] = 1
    cpu[EFLAGS] |= FLAG_IF


@jit
def sahf(g, d):
    """AH -> SF ZF AF PF CF (bits 7 6 4 2 0)."""
    cpu = g.cpu
    ah = get_reg(cpu, 4, 1)
    set_flag_bits(cpu, FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF | FLAG_CF, ah)


@jit
def lahf(g, d):
    """SF ZF 0 AF 0 PF 1 CF -> AH."""
    cpu = g.cpu
    set_reg(cpu, 4, 1, (get_eflags(cpu) & 0xD5) | 2)
