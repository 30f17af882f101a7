"""Shifts and rotates (SDM Vol. 2: SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR,
SHLD, SHRD).

The count is masked to 5 bits; a masked count of 0 changes nothing, flags
included.  What the SDM leaves undefined follows the machine's policy
(flags.pick_undefined):

- OF for a count above 1: Intel processors give the OF of the first
  one-bit step, from the source; AMD's the OF of the last step, from the
  result (measured on a Zen 4 by `emu fuzz`, and box64's models agree).
- AF after SHL SHR SAR SHLD SHRD: Intel 0, AMD 1.
- CF of SHL and SHR when the count is at least the operand size: both
  give the last bit shifted out (0 past the operand).
- SHLD and SHRD with a 16-bit operand and a count above 16: the result and
  every flag.  Intel: the operands act as the 48-bit b:a:b; AMD rotates
  the source b by count - 16 and clears CF."""
from emu.core.jit import jit
from emu.core.flags import get_eflags, set_flag_bits, set_result_flags, pick_undefined
from emu.core.layout import (FLAG_CF, FLAG_OF, FLAG_SF, FLAG_ZF, FLAG_PF, FLAG_AF, UNDEFINED_FLAGS,
                             UNDEF_ZERO)

SHIFT_FLAGS = FLAG_CF | FLAG_OF | FLAG_SF | FLAG_ZF | FLAG_PF | FLAG_AF
ROTATE_FLAGS = FLAG_CF | FLAG_OF


@jit
def _msb(v, size):
    return (v >> (size * 8 - 1)) & 1


@jit
def _nxt(v, size):
    """The bit below the most significant one."""
    return (v >> (size * 8 - 2)) & 1


@jit
def _shift_af(cpu):
    return pick_undefined(cpu, 0, 1)


@jit
def rol(cpu, a, b, size):
    count = b & 0x1F
    if count == 0:
        return a
    bits = size * 8
    mask = (1 << bits) - 1
    n = count % bits
    r = ((a << n) | (a >> (bits - n))) & mask if n else a
    cf = r & 1
    of = _msb(r, size) ^ cf
    if count != 1:
        of = pick_undefined(cpu, _msb(a, size) ^ _nxt(a, size), of)
    set_flag_bits(cpu, ROTATE_FLAGS, (FLAG_CF if cf else 0) | (FLAG_OF if of else 0))
    return r


@jit
def ror(cpu, a, b, size):
    count = b & 0x1F
    if count == 0:
        return a
    bits = size * 8
    mask = (1 << bits) - 1
    n = count % bits
    r = ((a >> n) | (a << (bits - n))) & mask if n else a
    cf = _msb(r, size)
    of = cf ^ _nxt(r, size)
    if count != 1:
        of = pick_undefined(cpu, _msb(a, size) ^ (a & 1), of)
    set_flag_bits(cpu, ROTATE_FLAGS, (FLAG_CF if cf else 0) | (FLAG_OF if of else 0))
    return r


@jit
def rcl(cpu, a, b, size):
    """Rotate through CF: a (size*8 + 1)-bit rotation."""
    bits = size * 8
    count = b & 0x1F
    if bits < 32:
        count %= bits + 1
    if (b & 0x1F) == 0:
        return a
    cf = 1 if get_eflags(cpu) & FLAG_CF else 0
    x = (cf << bits) | a                     # bits+1 wide
    width = bits + 1
    x = ((x << count) | (x >> (width - count))) & ((1 << width) - 1) if count else x
    r = x & ((1 << bits) - 1)
    cf = (x >> bits) & 1
    of = _msb(r, size) ^ cf
    if (b & 0x1F) != 1:
        # Intel: the first step's OF, but none at all for a whole turn (count 0 mod bits + 1)
        intel = _msb(a, size) ^ _nxt(a, size)
        if count == 0:
            intel = 1 if get_eflags(cpu) & FLAG_OF else 0
        of = pick_undefined(cpu, intel, of)
    set_flag_bits(cpu, ROTATE_FLAGS, (FLAG_CF if cf else 0) | (FLAG_OF if of else 0))
    return r


@jit
def rcr(cpu, a, b, size):
    bits = size * 8
    count = b & 0x1F
    if bits < 32:
        count %= bits + 1
    if (b & 0x1F) == 0:
        return a
    cf = 1 if get_eflags(cpu) & FLAG_CF else 0
    of = _msb(a, size) ^ cf                  # computed before the rotation (SDM, RCR)
    x = (cf << bits) | a
    width = bits + 1
    x = ((x >> count) | (x << (width - count))) & ((1 << width) - 1) if count else x
    r = x & ((1 << bits) - 1)
    cf = (x >> bits) & 1
    if (b & 0x1F) != 1:
        intel = of
        if count == 0:
            intel = 1 if get_eflags(cpu) & FLAG_OF else 0
        of = pick_undefined(cpu, intel, _msb(r, size) ^ _nxt(r, size))
    set_flag_bits(cpu, ROTATE_FLAGS, (FLAG_CF if cf else 0) | (FLAG_OF if of else 0))
    return r


@jit
def shl(cpu, a, b, size):
    count = b & 0x1F
    if count == 0:
        return a
    bits = size * 8
    wide = a << count
    r = wide & ((1 << bits) - 1)
    cf = (wide >> bits) & 1
    if count >= bits:
        cf = pick_undefined(cpu, cf, cf)
    of = _msb(r, size) ^ cf
    if count != 1:
        of = pick_undefined(cpu, _msb(a, size) ^ _nxt(a, size), of)
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, of, _shift_af(cpu))
    return r


@jit
def shr(cpu, a, b, size):
    count = b & 0x1F
    if count == 0:
        return a
    r = a >> count
    cf = (a >> (count - 1)) & 1
    if count >= size * 8:
        cf = pick_undefined(cpu, cf, cf)
    of = _msb(a, size)
    if count != 1:
        of = pick_undefined(cpu, of, _msb(r, size) ^ _nxt(r, size))
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, of, _shift_af(cpu))
    return r


@jit
def sar(cpu, a, b, size):
    count = b & 0x1F
    if count == 0:
        return a
    bits = size * 8
    s = a - (1 << bits) if _msb(a, size) else a
    r = (s >> count) & ((1 << bits) - 1)
    cf = (s >> (count - 1)) & 1
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, False, _shift_af(cpu))
    return r


@jit
def _rotate16(v, k, left):
    v &= 0xFFFF
    return (((v << k) | (v >> (16 - k))) if left else ((v >> k) | (v << (16 - k)))) & 0xFFFF


@jit
def shld(cpu, a, b, c, size):
    """Shift a left, filling from the top of b."""
    count = c & 0x1F
    if count == 0:
        return a
    bits = size * 8
    mask = (1 << bits) - 1
    if count <= bits:
        r = ((a << count) | (b >> (bits - count))) & mask
        cf = (a >> (bits - count)) & 1
        of = _msb(r, size) ^ _msb(a, size)
        if count != 1:
            amd = cf if count == bits else _msb(r, size) ^ cf
            of = pick_undefined(cpu, _msb(a, size) ^ _nxt(a, size), amd)
    else:
        k = count - bits
        r = pick_undefined(cpu, ((b << k) | (a >> (bits - k))) & mask, _rotate16(b, k, True))
        cf = pick_undefined(cpu, (b >> (bits - k)) & 1, 0)
        of = pick_undefined(cpu, _msb(a, size) ^ _nxt(a, size), 0)
        if cpu[UNDEFINED_FLAGS] == UNDEF_ZERO:
            r = ((b << k) | (a >> (bits - k))) & mask
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, of, _shift_af(cpu))
    if count > bits and cpu[UNDEFINED_FLAGS] == UNDEF_ZERO:
        set_flag_bits(cpu, SHIFT_FLAGS, 0)        # every flag is undefined past the operand size
    return r


@jit
def shrd(cpu, a, b, c, size):
    """Shift a right, filling from the bottom of b."""
    count = c & 0x1F
    if count == 0:
        return a
    bits = size * 8
    mask = (1 << bits) - 1
    if count <= bits:
        r = ((a >> count) | (b << (bits - count))) & mask
        cf = (a >> (count - 1)) & 1
    else:
        k = count - bits
        r = pick_undefined(cpu, ((b >> k) | (a << (bits - k))) & mask, _rotate16(b, k, False))
        cf = pick_undefined(cpu, (b >> (k - 1)) & 1, 0)
        if cpu[UNDEFINED_FLAGS] == UNDEF_ZERO:
            r = ((b >> k) | (a << (bits - k))) & mask
    of = _msb(r, size) ^ _msb(a, size)
    if count != 1:
        of = pick_undefined(cpu, _msb(a, size) ^ (b & 1), _msb(r, size) ^ _nxt(r, size))
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, of, _shift_af(cpu))
    if count > bits and cpu[UNDEFINED_FLAGS] == UNDEF_ZERO:
        set_flag_bits(cpu, SHIFT_FLAGS, 0)        # every flag is undefined past the operand size
    return r
