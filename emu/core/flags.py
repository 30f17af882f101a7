"""Lazy arithmetic flags.

Arithmetic records its operands and unmasked result in the LF_* slots; the
six arithmetic flags (OF SF ZF AF PF CF) are computed only when something
reads them (Jcc, PUSHF, ADC ...).  Keeping the result unmasked (a + b + c or
a - b - c in int64) makes CF one shift for both addition and subtraction.
"""
from emu.core.jit import jit
from emu.core.layout import (EFLAGS, LF_OP, LF_A, LF_B, LF_R, LF_SIZE, FLAG_CF, FLAG_PF,
                             FLAG_AF, FLAG_ZF, FLAG_SF, FLAG_OF, FLAGS_ARITH, FLAG_RESERVED1,
                             UNDEFINED_FLAGS, UNDEF_INTEL, UNDEF_AMD)

LF_NONE = 0      # EFLAGS holds every flag
LF_ADD = 1       # r = a + b (+ carry)
LF_SUB = 2       # r = a - b (- borrow)
LF_INC = 3       # like LF_ADD, CF kept in EFLAGS (INC)
LF_DEC = 4       # like LF_SUB, CF kept in EFLAGS (DEC)
LF_LOGIC = 5     # r = a op b; CF = OF = 0, AF = 0


@jit
def parity(v):
    """PF: 1 when the low byte has an even number of set bits."""
    v &= 0xFF
    v ^= v >> 4
    v ^= v >> 2
    v ^= v >> 1
    return (~v) & 1


@jit
def size_mask(size):
    return (1 << (size * 8)) - 1


@jit
def set_lazy(cpu, op, a, b, r, size):
    cpu[LF_OP] = op
    cpu[LF_A] = a
    cpu[LF_B] = b
    cpu[LF_R] = r
    cpu[LF_SIZE] = size


@jit
def lazy_arith_flags(op, a, b, r, size):
    """The six arithmetic flags of a recorded operation."""
    bits = size * 8
    mask = (1 << bits) - 1
    res = r & mask
    f = 0
    if res == 0:
        f |= FLAG_ZF
    if (res >> (bits - 1)) & 1:
        f |= FLAG_SF
    if parity(res):
        f |= FLAG_PF
    if op == LF_LOGIC:
        return f
    if (a ^ b ^ r) & 0x10:
        f |= FLAG_AF
    if op == LF_ADD or op == LF_INC:
        if ((a ^ r) & (b ^ r)) >> (bits - 1) & 1:
            f |= FLAG_OF
    else:
        if ((a ^ b) & (a ^ r)) >> (bits - 1) & 1:
            f |= FLAG_OF
    if (op == LF_ADD or op == LF_SUB) and (r >> bits) & 1:
        f |= FLAG_CF
    return f


@jit
def get_eflags(cpu):
    """Materialise EFLAGS (and drop the lazy record)."""
    op = cpu[LF_OP]
    if op != LF_NONE:
        keep = ~FLAGS_ARITH
        if op == LF_INC or op == LF_DEC:
            keep |= FLAG_CF
        f = lazy_arith_flags(op, cpu[LF_A], cpu[LF_B], cpu[LF_R], cpu[LF_SIZE])
        cpu[EFLAGS] = (cpu[EFLAGS] & keep) | f
        cpu[LF_OP] = LF_NONE
    return cpu[EFLAGS] | FLAG_RESERVED1


@jit
def set_eflags_raw(cpu, value):
    """Set EFLAGS as given (callers apply privilege and mode rules)."""
    cpu[LF_OP] = LF_NONE
    cpu[EFLAGS] = (value & 0xFFFFFFFF) | FLAG_RESERVED1


@jit
def set_flag_bits(cpu, mask, values):
    """Set the flags in ``mask`` to the bits of ``values``; others unchanged."""
    if (mask & FLAGS_ARITH) == FLAGS_ARITH:
        # every arithmetic flag is replaced: the lazy record is dropped unread
        # (materialising it cost a fifth of an IMUL/SHR loop)
        cpu[LF_OP] = LF_NONE
        f = cpu[EFLAGS] | FLAG_RESERVED1
    else:
        f = get_eflags(cpu)
    cpu[EFLAGS] = (f & ~mask) | (values & mask)


@jit
def get_cf(cpu):
    op = cpu[LF_OP]
    if op == LF_ADD or op == LF_SUB:
        return (cpu[LF_R] >> (cpu[LF_SIZE] * 8)) & 1
    if op == LF_LOGIC:
        return 0
    return cpu[EFLAGS] & FLAG_CF


@jit
def keep_carry(cpu):
    """Before INC or DEC records itself: move CF (all they keep of the
    arithmetic flags, SDM Vol. 2, INC) from the lazy record into EFLAGS.
    The other five arithmetic bits left in EFLAGS are stale, and never
    read: an LF_INC/LF_DEC record supplies them (get_eflags keeps only CF
    from EFLAGS).  Cheaper than materialising every flag."""
    cpu[EFLAGS] = (cpu[EFLAGS] & ~FLAG_CF) | get_cf(cpu)


@jit
def get_flag(cpu, flag):
    return 1 if get_eflags(cpu) & flag else 0


@jit
def condition(cpu, cc):
    """Evaluate condition code cc (0-15), SDM Vol. 1, appendix B."""
    c = cc >> 1
    if cpu[LF_OP] != LF_NONE and (c == 1 or c == 2 or c == 3 or c == 4):
        # B/AE, E/NE, BE/A, S/NS (the Jcc after CMP, SUB, DEC, TEST): CF, ZF
        # and SF straight from the lazy record, without materialising EFLAGS
        if c == 4:
            t = ((cpu[LF_R] >> (cpu[LF_SIZE] * 8 - 1)) & 1) != 0
            return (not t) if cc & 1 else t
        zf = (cpu[LF_R] & size_mask(cpu[LF_SIZE])) == 0
        if c == 2:
            t = zf
        else:
            cf = get_cf(cpu) != 0
            t = cf if c == 1 else (cf or zf)
        if cc & 1:
            return not t
        return t
    f = get_eflags(cpu)
    if c == 0:
        t = (f & FLAG_OF) != 0
    elif c == 1:
        t = (f & FLAG_CF) != 0
    elif c == 2:
        t = (f & FLAG_ZF) != 0
    elif c == 3:
        t = (f & (FLAG_CF | FLAG_ZF)) != 0
    elif c == 4:
        t = (f & FLAG_SF) != 0
    elif c == 5:
        t = (f & FLAG_PF) != 0
    elif c == 6:
        t = ((f & FLAG_SF) != 0) != ((f & FLAG_OF) != 0)
    else:
        t = ((f & FLAG_ZF) != 0) or (((f & FLAG_SF) != 0) != ((f & FLAG_OF) != 0))
    if cc & 1:
        return not t
    return t


@jit
def set_result_flags(cpu, mask, r, size, cf, of, af):
    """Eager flags for instructions whose rules are not add/sub/logic
    (shifts, multiplies, BCD): ZF SF PF from r, and CF OF AF as given, all
    restricted to ``mask``."""
    bits = size * 8
    res = r & ((1 << bits) - 1)
    f = 0
    if res == 0:
        f |= FLAG_ZF
    if (res >> (bits - 1)) & 1:
        f |= FLAG_SF
    if parity(res):
        f |= FLAG_PF
    if cf:
        f |= FLAG_CF
    if of:
        f |= FLAG_OF
    if af:
        f |= FLAG_AF
    set_flag_bits(cpu, mask, f)


@jit
def pick_undefined(cpu, intel, amd):
    """The value of a flag (or flags) the SDM leaves undefined, by the
    machine's policy (UNDEFINED_FLAGS): Intel's, AMD's, or 0."""
    policy = cpu[UNDEFINED_FLAGS]
    if policy == UNDEF_INTEL:
        return intel
    if policy == UNDEF_AMD:
        return amd
    return 0


@jit
def set_undefined(cpu, mask, intel, amd):
    """Set the undefined flags in ``mask`` to the policy's bits."""
    set_flag_bits(cpu, mask, pick_undefined(cpu, intel, amd))
