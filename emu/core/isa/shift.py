"""Shifts and rotates (SDM Vol. 2: SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR,
SHLD, SHRD).

The count is masked to 5 bits; a masked count of 0 changes nothing, flags
included.  OF is defined for a count of 1 only; for larger counts these
functions use the same formula (what Intel processors do), so results are
deterministic.  AF is left unchanged (undefined)."""
from emu.core.jit import jit
from emu.core.flags import get_eflags, set_flag_bits, set_result_flags
from emu.core.layout import FLAG_CF, FLAG_OF, FLAG_SF, FLAG_ZF, FLAG_PF

SHIFT_FLAGS = FLAG_CF | FLAG_OF | FLAG_SF | FLAG_ZF | FLAG_PF
ROTATE_FLAGS = FLAG_CF | FLAG_OF


@jit
def _msb(v, size):
    return (v >> (size * 8 - 1)) & 1


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
    set_flag_bits(cpu, ROTATE_FLAGS, (FLAG_CF if cf else 0) | (FLAG_OF if _msb(r, size) ^ cf else 0))
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
    of = cf ^ ((r >> (bits - 2)) & 1)
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
    set_flag_bits(cpu, ROTATE_FLAGS, (FLAG_CF if cf else 0) | (FLAG_OF if _msb(r, size) ^ cf else 0))
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
        of = _msb(r, size) ^ ((r >> (bits - 2)) & 1)
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
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, _msb(r, size) ^ cf, False)
    return r


@jit
def shr(cpu, a, b, size):
    count = b & 0x1F
    if count == 0:
        return a
    r = a >> count
    cf = (a >> (count - 1)) & 1
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, _msb(a, size), False)
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
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, False, False)
    return r


@jit
def shld(cpu, a, b, c, size):
    """Shift a left, filling from the top of b.  A 16-bit count above 16 is
    undefined; here the operands act as the 48-bit b:a:b, as Intel's do."""
    count = c & 0x1F
    if count == 0:
        return a
    bits = size * 8
    mask = (1 << bits) - 1
    if count <= bits:
        r = ((a << count) | (b >> (bits - count))) & mask
        cf = (a >> (bits - count)) & 1
    else:
        k = count - bits
        r = ((b << k) | (a >> (bits - k))) & mask
        cf = (b >> (bits - k)) & 1
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, _msb(r, size) ^ _msb(a, size), False)
    return r


@jit
def shrd(cpu, a, b, c, size):
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
        r = ((b >> k) | (a << (bits - k))) & mask
        cf = (b >> (k - 1)) & 1
    set_result_flags(cpu, SHIFT_FLAGS, r, size, cf, _msb(r, size) ^ _msb(a, size), False)
    return r
