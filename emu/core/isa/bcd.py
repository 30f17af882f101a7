"""Decimal arithmetic (SDM Vol. 1, 7.3.4; Vol. 2 DAA DAS AAA AAS AAM AAD),
following the SDM's pseudocode for IA-32 processors."""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import get_eflags, set_flag_bits, set_result_flags
from emu.core.operands import get_reg, set_reg
from emu.core.layout import (EAX, D_IMM, FLAG_CF, FLAG_AF, FLAG_SF, FLAG_ZF, FLAG_PF, FLAG_OF,
                             VEC_DE, NO_ERROR_CODE)

SZPAC = FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_AF | FLAG_CF


@jit
def daa(g, d):
    """OF is undefined: set as the 8-bit signed overflow of the adjustment
    (what Intel processors do), so it is deterministic."""
    cpu = g.cpu
    f = get_eflags(cpu)
    al = get_reg(cpu, EAX, 1)
    old_al = al
    old_cf = (f & FLAG_CF) != 0
    cf = False
    af = False
    if (al & 0xF) > 9 or (f & FLAG_AF):
        al = al + 6
        cf = old_cf or al > 0xFF
        al &= 0xFF
        af = True
    if old_al > 0x99 or old_cf:
        al = (al + 0x60) & 0xFF
        cf = True
    set_reg(cpu, EAX, 1, al)
    of = (~old_al & al & 0x80) != 0
    set_result_flags(cpu, SZPAC | FLAG_OF, al, 1, cf, of, af)


@jit
def das(g, d):
    cpu = g.cpu
    f = get_eflags(cpu)
    al = get_reg(cpu, EAX, 1)
    old_al = al
    old_cf = (f & FLAG_CF) != 0
    cf = False
    af = False
    if (al & 0xF) > 9 or (f & FLAG_AF):
        cf = old_cf or al < 6
        al = (al - 6) & 0xFF
        af = True
    if old_al > 0x99 or old_cf:
        al = (al - 0x60) & 0xFF
        cf = True
    set_reg(cpu, EAX, 1, al)
    of = (old_al & ~al & 0x80) != 0
    set_result_flags(cpu, SZPAC | FLAG_OF, al, 1, cf, of, af)


@jit
def aaa(g, d):
    """IF (AL & 0FH) > 9 or AF: AX += 106H, AF = CF = 1; AL &= 0FH."""
    cpu = g.cpu
    f = get_eflags(cpu)
    ax = get_reg(cpu, EAX, 2)
    if (ax & 0xF) > 9 or (f & FLAG_AF):
        ax = (ax + 0x106) & 0xFFFF
        set_reg(cpu, EAX, 2, ax & 0xFF0F)
        set_flag_bits(cpu, FLAG_AF | FLAG_CF, FLAG_AF | FLAG_CF)
    else:
        set_reg(cpu, EAX, 2, ax & 0xFF0F)
        set_flag_bits(cpu, FLAG_AF | FLAG_CF, 0)


@jit
def aas(g, d):
    """IF (AL & 0FH) > 9 or AF: AX -= 6, AH -= 1, AF = CF = 1; AL &= 0FH."""
    cpu = g.cpu
    f = get_eflags(cpu)
    ax = get_reg(cpu, EAX, 2)
    if (ax & 0xF) > 9 or (f & FLAG_AF):
        ax = (ax - 6) & 0xFFFF
        ax = (ax - 0x100) & 0xFFFF
        set_reg(cpu, EAX, 2, ax & 0xFF0F)
        set_flag_bits(cpu, FLAG_AF | FLAG_CF, FLAG_AF | FLAG_CF)
    else:
        set_reg(cpu, EAX, 2, ax & 0xFF0F)
        set_flag_bits(cpu, FLAG_AF | FLAG_CF, 0)


@jit
def aam(g, d):
    """AH = AL / imm8, AL = AL mod imm8; imm8 = 0 is #DE."""
    cpu = g.cpu
    base = d[D_IMM] & 0xFF
    if base == 0:
        raise_fault(cpu, VEC_DE, NO_ERROR_CODE)
        return
    al = get_reg(cpu, EAX, 1)
    r = al % base
    set_reg(cpu, EAX, 2, ((al // base) << 8) | r)
    set_result_flags(cpu, FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_OF | FLAG_AF | FLAG_CF, r, 1,
                     False, False, False)


@jit
def aad(g, d):
    """AL = (AL + AH * imm8) & FFH, AH = 0."""
    cpu = g.cpu
    base = d[D_IMM] & 0xFF
    al = get_reg(cpu, EAX, 1)
    ah = get_reg(cpu, 4, 1)
    r = (al + ah * base) & 0xFF
    set_reg(cpu, EAX, 2, r)
    set_result_flags(cpu, FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_OF | FLAG_AF | FLAG_CF, r, 1,
                     False, False, False)
