"""Binary arithmetic and logic (SDM Vol. 1, 7.3.2 and 7.3.3; Vol. 2 pages
ADD ADC SUB SBB CMP INC DEC NEG AND OR XOR TEST NOT).

Each function takes operand values already fetched and returns the result
for the generic write-back; flags are recorded lazily (core/flags.py)."""
from emu.core.jit import jit
from emu.core.flags import set_lazy, get_cf, keep_carry, LF_ADD, LF_SUB, LF_INC, LF_DEC, LF_LOGIC


@jit
def _mask(size):
    return (1 << (size * 8)) - 1


@jit
def add(cpu, a, b, size):
    r = a + b
    set_lazy(cpu, LF_ADD, a, b, r, size)
    return r & _mask(size)


@jit
def adc(cpu, a, b, size):
    r = a + b + get_cf(cpu)
    set_lazy(cpu, LF_ADD, a, b, r, size)
    return r & _mask(size)


@jit
def sub(cpu, a, b, size):
    r = a - b
    set_lazy(cpu, LF_SUB, a, b, r, size)
    return r & _mask(size)


@jit
def sbb(cpu, a, b, size):
    r = a - b - get_cf(cpu)
    set_lazy(cpu, LF_SUB, a, b, r, size)
    return r & _mask(size)


@jit
def cmp(cpu, a, b, size):
    """CMP: SUB without storing the result (NO_WRITEBACK in the table)."""
    r = a - b
    set_lazy(cpu, LF_SUB, a, b, r, size)
    return r & _mask(size)


@jit
def and_(cpu, a, b, size):
    r = a & b
    set_lazy(cpu, LF_LOGIC, a, b, r, size)
    return r


@jit
def or_(cpu, a, b, size):
    r = a | b
    set_lazy(cpu, LF_LOGIC, a, b, r, size)
    return r


@jit
def xor(cpu, a, b, size):
    r = a ^ b
    set_lazy(cpu, LF_LOGIC, a, b, r, size)
    return r


@jit
def test(cpu, a, b, size):
    r = a & b
    set_lazy(cpu, LF_LOGIC, a, b, r, size)
    return r


@jit
def inc(cpu, a, size):
    """INC: like ADD 1 but CF is preserved (SDM Vol. 2, INC, flags)."""
    keep_carry(cpu)
    r = a + 1
    set_lazy(cpu, LF_INC, a, 1, r, size)
    return r & _mask(size)


@jit
def dec(cpu, a, size):
    keep_carry(cpu)
    r = a - 1
    set_lazy(cpu, LF_DEC, a, 1, r, size)
    return r & _mask(size)


@jit
def neg(cpu, a, size):
    """NEG: 0 - a; CF = (a != 0) falls out of the borrow (SDM Vol. 2, NEG)."""
    r = -a
    set_lazy(cpu, LF_SUB, 0, a, r, size)
    return r & _mask(size)


@jit
def not_(cpu, a, size):
    """NOT changes no flags."""
    return ~a & _mask(size)
