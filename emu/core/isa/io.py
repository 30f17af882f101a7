"""Port I/O (SDM Vol. 1, chapter 19): IN and OUT, and the port protocol the
string forms INS/OUTS share.

The chips of the board answer inside the loop (devices/chips/bus.py).  A
port that belongs to a device written in Python is an exit: the
instruction stores the port, size, direction and data in the IO_* slots and
sets EXIT_IO without retiring; Python serves it (Machine._serve_io), sets
IO_PENDING, and the instruction runs again and completes with IO_DATA.  A
chip that cannot take a write yet (a full serial transmit ring) exits the
same way with IO_RETRY set: Python drains the ring and the instruction runs
again from the start.
"""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.memory import read_linear, ACCESS_READ
from emu.core.operands import read_operand, set_reg
from emu.core.segments import protected_mode
from devices.chips.bus import io_read, io_write, IO_DONE, IO_RETRY as BUS_RETRY
from emu.core.layout import (IO_RETRY, FAULT, EAX, CPL, EFLAGS, FLAG_IOPL, FLAG_VM, IO_PORT, IO_SIZE, IO_DIR,
                             IO_DATA, IO_PENDING, EXIT_REASON, EXIT_IO, SEG_SLOTS, SEG_STRIDE,
                             SEG_BASE, SEG_LIMIT, SEG_ATTR, TR, D_S0, D_S1, VEC_GP)
from emu.core.layout import (WATCH_COUNT, WATCH_FIRST, WATCH_STRIDE, WATCH_MAX, WATCH_HIT_ADDR,
                             WATCH_HIT_SIZE, WATCH_HIT_KIND, WATCH_READ, WATCH_WRITE, WATCH_PORT,
                             EXIT_NONE, EXIT_WATCH)


@jit
def watch_port(g, port, size, direction):
    """A port access that completed: end the run after this instruction
    when a port watchpoint covers it (the I/O breakpoints of the debug
    registers, SDM Vol. 3, 17.2.4, are traps too)."""
    cpu = g.cpu
    if cpu[EXIT_REASON] != EXIT_NONE:
        return
    for i in range(min(cpu[WATCH_COUNT], WATCH_MAX)):
        w = WATCH_FIRST + WATCH_STRIDE * i
        if (cpu[w + 2] & WATCH_PORT) and port < cpu[w + 1] and cpu[w] < port + size:
            cpu[EXIT_REASON] = EXIT_WATCH
            cpu[WATCH_HIT_ADDR] = port
            cpu[WATCH_HIT_SIZE] = size
            cpu[WATCH_HIT_KIND] = WATCH_PORT | direction
            return


@jit
def port_allowed(g, port, size):
    """CPL <= IOPL (and not virtual-8086 mode), or every bit of the port in
    the TSS I/O permission bitmap is clear (SDM Vol. 1, 19.5.2)."""
    cpu = g.cpu
    vm = (cpu[EFLAGS] & FLAG_VM) != 0
    if not vm and (not protected_mode(cpu) or cpu[CPL] <= (cpu[EFLAGS] & FLAG_IOPL) >> 12):
        return True
    trs = SEG_SLOTS + TR * SEG_STRIDE
    if (cpu[trs + SEG_ATTR] & 0xF) not in (0x9, 0xB):
        return False
    limit = cpu[trs + SEG_LIMIT]
    if limit < 0x67:
        return False
    base = cpu[trs + SEG_BASE]
    iomap = read_linear(g, base + 0x66, 2, ACCESS_READ, False)
    if cpu[FAULT] >= 0:
        return False    # a #PF reading the TSS is delivered as such
    at = iomap + (port >> 3)
    if at + 1 > limit:
        return False
    bits = read_linear(g, base + at, 2, ACCESS_READ, False)
    if cpu[FAULT] >= 0:
        return False
    return ((bits >> (port & 7)) & ((1 << size) - 1)) == 0


@jit
def port_read(g, port, size):
    """Value of an IN from ``port``, or -1 when the access has just been
    handed to Python (EXIT_IO) and the instruction must return now."""
    cpu = g.cpu
    if cpu[IO_PENDING]:
        cpu[IO_PENDING] = 0
        if cpu[WATCH_COUNT] > 0:
            watch_port(g, port, size, WATCH_READ)
        return cpu[IO_DATA] & ((1 << (8 * size)) - 1)
    v = io_read(g, port, size)
    if v >= 0:
        if cpu[WATCH_COUNT] > 0:
            watch_port(g, port, size, WATCH_READ)
        return v
    cpu[IO_PORT] = port
    cpu[IO_SIZE] = size
    cpu[IO_DIR] = 0
    cpu[EXIT_REASON] = EXIT_IO
    return -1


@jit
def port_write(g, port, size, value):
    """True when the OUT is done; False when it has just been handed to
    Python (EXIT_IO)."""
    cpu = g.cpu
    if cpu[IO_PENDING]:
        cpu[IO_PENDING] = 0
        if cpu[WATCH_COUNT] > 0:
            watch_port(g, port, size, WATCH_WRITE)
        return True
    r = io_write(g, port, size, value)
    if r == IO_DONE:
        if cpu[WATCH_COUNT] > 0:
            watch_port(g, port, size, WATCH_WRITE)
        return True
    cpu[IO_RETRY] = 1 if r == BUS_RETRY else 0
    cpu[IO_PORT] = port
    cpu[IO_SIZE] = size
    cpu[IO_DIR] = 1
    cpu[IO_DATA] = value & ((1 << (8 * size)) - 1)
    cpu[EXIT_REASON] = EXIT_IO
    return False


@jit
def in_(g, d):
    """IN AL/AX/EAX, imm8 or DX."""
    cpu = g.cpu
    port = read_operand(g, d, 1) & 0xFFFF
    size = d[D_S0]
    if not port_allowed(g, port, size):
        raise_fault(cpu, VEC_GP, 0)
        return
    v = port_read(g, port, size)
    if v >= 0:
        set_reg(cpu, EAX, size, v)


@jit
def out(g, d):
    """OUT imm8 or DX, AL/AX/EAX."""
    cpu = g.cpu
    port = read_operand(g, d, 0) & 0xFFFF
    size = d[D_S1]
    if not port_allowed(g, port, size):
        raise_fault(cpu, VEC_GP, 0)
        return
    port_write(g, port, size, read_operand(g, d, 1))
