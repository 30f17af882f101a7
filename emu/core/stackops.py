"""Push and pop on SS:(E)SP.  The stack address size comes from SS.B
(SDM Vol. 1, 6.2.3); a push that faults leaves ESP unchanged."""
from emu.core.jit import jit
from emu.core.memory import read_mem, write_mem
from emu.core.layout import ESP, SS, FAULT, SEG_SLOTS, SEG_STRIDE, SEG_ATTR, ATTR_DB

SS_ATTR = SEG_SLOTS + SS * SEG_STRIDE + SEG_ATTR


@jit
def stack_mask(cpu):
    return 0xFFFFFFFF if cpu[SS_ATTR] & ATTR_DB else 0xFFFF


@jit
def set_sp(cpu, value):
    """Write (E)SP, leaving the upper half alone for a 16-bit stack."""
    if cpu[SS_ATTR] & ATTR_DB:
        cpu[ESP] = value & 0xFFFFFFFF
    else:
        cpu[ESP] = (cpu[ESP] & 0xFFFF0000) | (value & 0xFFFF)


@jit
def push(g, value, size):
    cpu = g.cpu
    mask = stack_mask(cpu)
    sp = (cpu[ESP] - size) & mask
    if not write_mem(g, SS, sp, size, value):
        return False
    set_sp(cpu, sp)
    return True


@jit
def stack_top(cpu, offset):
    """Offset of SS:(E)SP + offset, wrapped by the stack size."""
    return (cpu[ESP] + offset) & stack_mask(cpu)


@jit
def peek(g, offset, size):
    """Read at SS:(E)SP + offset without popping."""
    return read_mem(g, SS, stack_top(g.cpu, offset), size)


@jit
def pop(g, size):
    """Pop a value; on a fault ESP is unchanged (check cpu[FAULT])."""
    cpu = g.cpu
    v = read_mem(g, SS, cpu[ESP] & stack_mask(cpu), size)
    if cpu[FAULT] < 0:
        set_sp(cpu, cpu[ESP] + size)
    return v
