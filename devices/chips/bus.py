"""The PC's I/O bus and virtual clock, in the loop: routes port accesses
to the chips through the port map, keeps the devices caught up with
virtual time, and drives the CPU's INTR line from the PIC.

Virtual time (ns) = CLK_BASE_NS + (ICOUNT - CLK_BASE_ICOUNT) * CLK_NS_PER_INSN.
The run loop calls ``catch_up`` when ICOUNT reaches DEADLINE_ICOUNT (the
first instruction at or after the earliest device event); chips touched by
a port access catch up first, so they always answer for the present.
"""
from emu.core.jit import jit
from emu.core.layout import (ICOUNT, INTR_LINE, A20_MASK, EXIT_REASON, EXIT_ARG, EXIT_DEBUG_EXIT,
                             EXIT_RESET, EXIT_SERIAL)
from devices.chips.layout import (CHIP_NONE, CHIP_PYTHON, CHIP_PIC_MASTER, CHIP_PIC_SLAVE,
                                  CHIP_PIT, CHIP_PORT61, CHIP_COM1, CHIP_COM2, CHIP_RTC, CHIP_KBC,
                                  CHIP_PORT92, CHIP_POST, CHIP_DEBUG_EXIT, CHIP_ATA,
                                  CHIP_ATA_CONTROL, CLK_BASE_NS,
                                  CLK_BASE_ICOUNT, CLK_NS_PER_INSN, DEADLINE_ICOUNT,
                                  NEXT_EVENT_NS, LAST_NS, CLK_HOST, POST_CODE, PORT92_VALUE, NEVER,
                                  KBC_BASE, KBC_OUTPUT_PORT, RTC_BASE, RTC_IRQ_LEVEL, IO_IN_BYTES,
                                  IO_OUT_BYTES)
from devices.chips import pic8259, pit8254, uart16550, rtc_cmos, kbc8042, ata

IRQ_PIT = 0
IRQ_KEYBOARD = 1
IRQ_COM2 = 3
IRQ_COM1 = 4
IRQ_RTC = 8
IRQ_ATA = 14
A20_ON = 0xFFFFFFFF
A20_OFF = 0xFFEFFFFF
PORT92_A20 = 0x02
PORT92_RESET = 0x01
IO_DONE = 1
IO_TO_PYTHON = 0
IO_RETRY = 2          # the chip cannot take it now (transmit ring full): drain, then retry


@jit
def now_ns(g):
    dev = g.dev
    t = dev[CLK_BASE_NS] + (g.cpu[ICOUNT] - dev[CLK_BASE_ICOUNT]) * dev[CLK_NS_PER_INSN]
    # virtual time never runs backwards (e.g. after the rate changed)
    if t < dev[LAST_NS]:
        t = dev[LAST_NS]
    dev[LAST_NS] = t
    return t


@jit
def update_lines(g):
    """Level-triggered sources to the PIC, then the PIC's INT to the CPU."""
    dev = g.dev
    pic8259.set_irq(dev, IRQ_COM1, uart16550.irq_level(dev, 0))
    pic8259.set_irq(dev, IRQ_COM2, uart16550.irq_level(dev, 1))
    pic8259.set_irq(dev, IRQ_KEYBOARD, kbc8042.irq_level(dev))
    pic8259.set_irq(dev, IRQ_RTC, dev[RTC_BASE + RTC_IRQ_LEVEL])
    pic8259.set_irq(dev, IRQ_ATA, ata.irq_level(dev))
    g.cpu[INTR_LINE] = 1 if pic8259.interrupt_requested(dev) else 0


@jit
def schedule(g, now):
    """Turn the earliest device event into the run loop's ICOUNT deadline."""
    dev = g.dev
    t = pit8254.next_deadline_ns(dev)
    r = rtc_cmos.next_deadline_ns(dev)
    if r < t:
        t = r
    dev[NEXT_EVENT_NS] = t
    if t >= NEVER:
        dev[DEADLINE_ICOUNT] = NEVER
        return
    # rebase the clock on the present so the deadline arithmetic stays small
    dev[CLK_BASE_NS] = now
    dev[CLK_BASE_ICOUNT] = g.cpu[ICOUNT]
    per = dev[CLK_NS_PER_INSN]
    if per <= 0:
        dev[DEADLINE_ICOUNT] = g.cpu[ICOUNT] + 1
        return
    wait = t - now
    if wait < 0:
        wait = 0
    dev[DEADLINE_ICOUNT] = g.cpu[ICOUNT] + (wait + per - 1) // per


@jit
def advance_timers(g, now):
    dev = g.dev
    if pit8254.channel0_irq_due(dev, now):
        pic8259.pulse_irq(dev, IRQ_PIT)
    rtc_cmos.advance(dev, now)


@jit
def catch_up(g):
    """Bring every device up to the present: timer interrupts, the INTR
    line, the next deadline."""
    now = now_ns(g)
    advance_timers(g, now)
    uart16550.take_host_input(g.dev, 0)
    uart16550.take_host_input(g.dev, 1)
    update_lines(g)
    schedule(g, now)


@jit
def skip_to_next_event(g):
    """The CPU halts: let virtual time jump to the next device event.
    False when no event will ever come."""
    dev = g.dev
    if dev[CLK_HOST]:
        return False          # on the host clock, Python sleeps until the event instead
    now = now_ns(g)
    t = dev[NEXT_EVENT_NS]
    if t >= NEVER:
        return False
    if t > now:
        dev[CLK_BASE_NS] = t
        dev[CLK_BASE_ICOUNT] = g.cpu[ICOUNT]
        dev[LAST_NS] = t
    catch_up(g)
    return True


@jit
def apply_a20_and_reset(g):
    """The 8042 output port and port 0x92 drive the A20 gate and reset."""
    dev = g.dev
    cpu = g.cpu
    out = dev[KBC_BASE + KBC_OUTPUT_PORT]
    if not out & kbc8042.OUTPUT_NOT_RESET:
        dev[KBC_BASE + KBC_OUTPUT_PORT] = out | kbc8042.OUTPUT_NOT_RESET
        cpu[EXIT_REASON] = EXIT_RESET


@jit
def set_a20(g, on):
    """The A20 gate changes every translation: drop the TLB."""
    g.cpu[A20_MASK] = A20_ON if on else A20_OFF
    tlb = g.tlb
    for i in range(tlb.shape[0]):
        tlb[i, 0] = 0


@jit
def chip_read(g, chip, port, now):
    dev = g.dev
    if chip == CHIP_PIC_MASTER:
        return pic8259.read_port(dev, 0, port & 1)
    if chip == CHIP_PIC_SLAVE:
        return pic8259.read_port(dev, 1, port & 1)
    if chip == CHIP_PIT:
        return pit8254.read_port(dev, port & 3, now)
    if chip == CHIP_PORT61:
        return pit8254.read_port61(dev, now)
    if chip == CHIP_COM1:
        return uart16550.read_port(dev, 0, port & 7)
    if chip == CHIP_COM2:
        return uart16550.read_port(dev, 1, port & 7)
    if chip == CHIP_RTC:
        return rtc_cmos.read_port(dev, port & 1, now)
    if chip == CHIP_KBC:
        v = kbc8042.read_port(dev, port & 4)
        if port & 4 == 0:
            # reading the output buffer empties it before the next queued byte
            # is loaded: IRQ 1 falls and rises again, an edge for each byte
            pic8259.set_irq(dev, IRQ_KEYBOARD, 0)
        return v
    if chip == CHIP_PORT92:
        return dev[PORT92_VALUE] & ~PORT92_RESET
    if chip == CHIP_ATA:
        return ata.read_port(dev, port & 7) if port & 7 else ata.read_data(dev, g.disk, 1)
    if chip == CHIP_ATA_CONTROL:
        return ata.read_alt_status(dev)
    return 0xFF                          # unassigned, POST and debug-exit read all ones


@jit
def chip_write(g, chip, port, value, now):
    """One byte to one chip; IO_DONE or IO_RETRY."""
    dev = g.dev
    if chip == CHIP_PIC_MASTER:
        pic8259.write_port(dev, 0, port & 1, value)
    elif chip == CHIP_PIC_SLAVE:
        pic8259.write_port(dev, 1, port & 1, value)
    elif chip == CHIP_PIT:
        pit8254.write_port(dev, port & 3, value, now)
    elif chip == CHIP_PORT61:
        pit8254.write_port61(dev, value, now)
    elif chip == CHIP_COM1:
        if not uart16550.write_port(dev, 0, port & 7, value):
            return IO_RETRY
    elif chip == CHIP_COM2:
        if not uart16550.write_port(dev, 1, port & 7, value):
            return IO_RETRY
    elif chip == CHIP_RTC:
        rtc_cmos.write_port(dev, port & 1, value, now)
    elif chip == CHIP_KBC:
        before = dev[KBC_BASE + KBC_OUTPUT_PORT]
        kbc8042.write_port(dev, port & 4, value)
        after = dev[KBC_BASE + KBC_OUTPUT_PORT]
        if (before ^ after) & kbc8042.OUTPUT_A20:
            set_a20(g, after & kbc8042.OUTPUT_A20)
            dev[PORT92_VALUE] = (dev[PORT92_VALUE] & ~PORT92_A20) | (after & kbc8042.OUTPUT_A20)
        apply_a20_and_reset(g)
    elif chip == CHIP_PORT92:
        if (dev[PORT92_VALUE] ^ value) & PORT92_A20:
            set_a20(g, value & PORT92_A20)
            o = dev[KBC_BASE + KBC_OUTPUT_PORT]
            dev[KBC_BASE + KBC_OUTPUT_PORT] = (o & ~kbc8042.OUTPUT_A20) | (value & PORT92_A20)
        dev[PORT92_VALUE] = value & ~PORT92_RESET
        if value & PORT92_RESET:
            g.cpu[EXIT_REASON] = EXIT_RESET
    elif chip == CHIP_POST:
        dev[POST_CODE] = value
    elif chip == CHIP_ATA:
        if port & 7:
            ata.write_port(dev, g.disk, port & 7, value)
        else:
            ata.write_data(dev, g.disk, 1, value)
    elif chip == CHIP_ATA_CONTROL:
        ata.write_control(dev, value)
    return IO_DONE


@jit
def io_read(g, port, size):
    """An IN of ``size`` bytes: the value, or -1 when a Python device must
    serve it (the whole access goes to Python)."""
    ports = g.ports
    first = ports[port & 0xFFFF]
    if first == CHIP_PYTHON:
        return -1
    for i in range(1, size):
        if ports[(port + i) & 0xFFFF] == CHIP_PYTHON:
            return -1
    now = now_ns(g)
    advance_timers(g, now)
    if first == CHIP_ATA and (port & 7) == 0:
        # the ATA data port is 16 (or 32) bits wide: one access moves that many bytes
        g.dev[IO_IN_BYTES + CHIP_ATA] += size
        v = ata.read_data(g.dev, g.disk, size)
        update_lines(g)
        schedule(g, now)
        return v
    v = 0
    for i in range(size):
        p = (port + i) & 0xFFFF
        chip = ports[p]
        g.dev[IO_IN_BYTES + (chip & 15)] += 1
        b = 0xFF if chip == CHIP_NONE else chip_read(g, chip, p, now) & 0xFF
        v |= b << (8 * i)
    if uart16550.wants_more_input(g.dev, 0) or uart16550.wants_more_input(g.dev, 1):
        # after this instruction, let Python refill the host input ring
        g.cpu[EXIT_REASON] = EXIT_SERIAL
    update_lines(g)
    schedule(g, now)
    return v


@jit
def io_write(g, port, size, value):
    """An OUT: IO_DONE, IO_TO_PYTHON (a Python device serves it) or
    IO_RETRY (nothing was written; retry after Python drained output)."""
    ports = g.ports
    first = ports[port & 0xFFFF]
    if first == CHIP_PYTHON:
        return IO_TO_PYTHON
    for i in range(1, size):
        if ports[(port + i) & 0xFFFF] == CHIP_PYTHON:
            return IO_TO_PYTHON
    cpu = g.cpu
    if first == CHIP_DEBUG_EXIT:
        g.dev[IO_OUT_BYTES + CHIP_DEBUG_EXIT] += size
        # QEMU's isa-debug-exit: the whole value written, status (v << 1) | 1
        cpu[EXIT_REASON] = EXIT_DEBUG_EXIT
        cpu[EXIT_ARG] = ((value & ((1 << (8 * size)) - 1)) << 1) | 1
        return IO_DONE
    for i in range(size):
        p = (port + i) & 0xFFFF
        if (ports[p] == CHIP_COM1 and uart16550.tx_ring_full(g.dev, 0)) or \
                (ports[p] == CHIP_COM2 and uart16550.tx_ring_full(g.dev, 1)):
            return IO_RETRY
    now = now_ns(g)
    advance_timers(g, now)
    if first == CHIP_ATA and (port & 7) == 0:
        g.dev[IO_OUT_BYTES + CHIP_ATA] += size
        ata.write_data(g.dev, g.disk, size, value)
        update_lines(g)
        schedule(g, now)
        return IO_DONE
    for i in range(size):
        p = (port + i) & 0xFFFF
        chip = ports[p]
        g.dev[IO_OUT_BYTES + (chip & 15)] += 1
        if chip != CHIP_NONE:
            chip_write(g, chip, p, (value >> (8 * i)) & 0xFF, now)
    update_lines(g)
    schedule(g, now)
    return IO_DONE


@jit
def interrupt_acknowledge(g):
    """The CPU takes INTR: the vector from the PIC."""
    v = pic8259.acknowledge(g.dev)
    update_lines(g)
    return v
