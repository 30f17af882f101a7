"""Multiply and divide (SDM Vol. 2: MUL, IMUL, DIV, IDIV).

The double-width forms use AL/AX/EAX with AH/DX/EDX.  DIV and IDIV raise
#DE (a fault: registers unchanged) for a zero divisor and for a quotient
that does not fit its destination."""
import numpy as np

from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import get_eflags, parity, set_undefined, set_flag_bits
from emu.core.operands import read_operand, write_operand, get_reg, set_reg
from emu.core.layout import (FAULT, EAX, EDX, D_S0, D_NOPS, FLAG_CF, FLAG_OF,
                             FLAG_SF, FLAG_ZF, FLAG_PF, FLAG_AF, FLAGS_ARITH, VEC_DE, NO_ERROR_CODE,
                             UNDEFINED_FLAGS, UNDEF_INTEL, UNDEF_AMD)

MUL_DEFINED = FLAG_CF | FLAG_OF
MUL_UNDEFINED = FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF
DIV_UNDEFINED = FLAG_CF | FLAG_OF | FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF


@jit
def mul_flags(cpu, lo, size, overflow):
    """CF = OF = the product did not fit the low half.  SF ZF AF PF are
    undefined: Intel processors set SF and PF from the low half and clear
    ZF and AF; AMD's leave all four as they were (the multiply has not
    touched them yet).  All six are written at once, so a lazy record of
    the previous arithmetic is only materialised for AMD's."""
    policy = cpu[UNDEFINED_FLAGS]
    if policy == UNDEF_INTEL:
        undefined = (FLAG_SF if (lo >> (size * 8 - 1)) & 1 else 0) | (FLAG_PF if parity(lo) else 0)
    elif policy == UNDEF_AMD:
        undefined = get_eflags(cpu)
    else:
        undefined = 0
    defined = (FLAG_CF | FLAG_OF) if overflow else 0
    set_flag_bits(cpu, FLAGS_ARITH, defined | (undefined & MUL_UNDEFINED))


@jit
def div_flags(cpu, flags_in, signed_divide):
    """Every arithmetic flag is undefined after DIV and IDIV.  Intel: DIV
    clears CF OF SF AF and sets ZF PF, IDIV changes nothing.  AMD: both keep
    CF and OF, clear SF ZF PF and set AF."""
    amd = (flags_in & (FLAG_CF | FLAG_OF)) | FLAG_AF
    set_undefined(cpu, DIV_UNDEFINED, flags_in if signed_divide else FLAG_ZF | FLAG_PF, amd)


@jit
def signed(v, size):
    bits = size * 8
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


@jit
def store_double(cpu, size, lo, hi):
    """AX = product for bytes; DX:AX or EDX:EAX for words and dwords."""
    if size == 1:
        set_reg(cpu, EAX, 2, (lo & 0xFF) | ((hi & 0xFF) << 8))
    else:
        set_reg(cpu, EAX, size, lo)
        set_reg(cpu, EDX, size, hi)


@jit
def multiply_double(cpu, src, size, signed_multiply):
    """MUL and one-operand IMUL: AX, DX:AX or EDX:EAX = the accumulator *
    src; CF = OF = the product does not fit the low half (unsigned), or is
    not the low half sign-extended (signed).  Both factors have at most 32
    bits, so an int64 product keeps every bit of it (it wraps, unsigned)."""
    a = get_reg(cpu, EAX, size)
    mask = (1 << (size * 8)) - 1
    if signed_multiply:
        p = signed(a, size) * signed(src, size)
        overflow = p != signed(p & mask, size)
    else:
        p = a * src
        overflow = ((p >> (size * 8)) & mask) != 0
    lo = p & mask
    store_double(cpu, size, lo, (p >> (size * 8)) & mask)
    mul_flags(cpu, lo, size, overflow)


@jit
def mul(g, d):
    """Unsigned EDX:EAX = EAX * r/m; CF = OF = (upper half != 0)."""
    cpu = g.cpu
    src = read_operand(g, d, 0)
    if cpu[FAULT] >= 0:
        return
    multiply_double(cpu, src, d[D_S0], False)


@jit
def imul(g, d):
    """IMUL in its three forms (SDM Vol. 2, IMUL): one operand (F6/F7 /5,
    double width), two operands (0F AF, truncated), three operands (69/6B).
    CF = OF = the signed result did not fit the destination."""
    cpu = g.cpu
    size = d[D_S0]
    if d[D_NOPS] == 1:
        src = read_operand(g, d, 0)
        if cpu[FAULT] >= 0:
            return
        multiply_double(cpu, src, size, True)
        return
    if d[D_NOPS] == 2:
        a = read_operand(g, d, 0)
        b = read_operand(g, d, 1)
    else:
        a = read_operand(g, d, 1)
        b = read_operand(g, d, 2)
    if cpu[FAULT] >= 0:
        return
    p = signed(a, size) * signed(b, size)
    lo = p & ((1 << (size * 8)) - 1)
    write_operand(g, d, 0, lo)
    if cpu[FAULT] < 0:
        mul_flags(cpu, lo, size, p != signed(lo, size))


@jit
def div(g, d):
    cpu = g.cpu
    size = d[D_S0]
    divisor = read_operand(g, d, 0)
    if cpu[FAULT] >= 0:
        return
    if divisor == 0:
        raise_fault(cpu, VEC_DE, NO_ERROR_CODE)
        return
    bits = size * 8
    if size == 1:
        hi = get_reg(cpu, 4, 1)
        lo = get_reg(cpu, EAX, 1)
    else:
        hi = get_reg(cpu, EDX, size)
        lo = get_reg(cpu, EAX, size)
    if hi >= divisor:
        raise_fault(cpu, VEC_DE, NO_ERROR_CODE)     # quotient would not fit
        return
    n = (np.uint64(hi) << np.uint64(bits)) | np.uint64(lo)
    q = np.int64(n // np.uint64(divisor))
    r = np.int64(n % np.uint64(divisor))
    div_flags(cpu, get_eflags(cpu), False)
    store_double(cpu, size, q, r)


@jit
def idiv(g, d):
    cpu = g.cpu
    size = d[D_S0]
    divisor = read_operand(g, d, 0)
    if cpu[FAULT] >= 0:
        return
    if divisor == 0:
        raise_fault(cpu, VEC_DE, NO_ERROR_CODE)
        return
    bits = size * 8
    if size == 1:
        n = signed(get_reg(cpu, EAX, 2), 2)
    elif size == 2:
        n = signed((get_reg(cpu, EDX, 2) << 16) | get_reg(cpu, EAX, 2), 4)
    else:
        hi = get_reg(cpu, EDX, 4)
        if hi == 0x80000000 and get_reg(cpu, EAX, 4) == 0:
            raise_fault(cpu, VEC_DE, NO_ERROR_CODE)   # -2**63: no 32-bit divisor makes it fit
            return
        n = (signed(hi, 4) << 32) | get_reg(cpu, EAX, 4)
    dv = signed(divisor, size)
    # truncate toward zero (SDM: "the quotient is truncated toward 0")
    q = abs(n) // abs(dv)
    if (n < 0) != (dv < 0):
        q = -q
    r = n - q * dv
    if q < -(1 << (bits - 1)) or q > (1 << (bits - 1)) - 1:
        raise_fault(cpu, VEC_DE, NO_ERROR_CODE)
        return
    div_flags(cpu, get_eflags(cpu), True)
    store_double(cpu, size, q, r)
