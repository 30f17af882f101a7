"""8254 programmable interval timer (Intel 8254 data sheet): three
channels clocked at 1.193182 MHz, modes 0-5, counter latch and read-back
commands, low/high byte access; channel 0 drives IRQ 0, channel 2's gate
and output appear on port 0x61.

The counters are not stepped: each channel remembers the clock tick at
which it started counting, and its count and OUT pin are computed from the
elapsed ticks whenever they are read, so the timer costs nothing between
accesses.  Channel 0 publishes the tick of its next rising OUT edge; the bus
turns that into the run loop's deadline.
"""
from emu.core.jit import jit
from devices.chips.layout import (PIT_BASE, PIT_STRIDE, PIT_COUNT, PIT_MODE, PIT_ACCESS, PIT_BCD,
                                  PIT_WRITE_HIGH, PIT_READ_HIGH, PIT_LATCHED, PIT_LATCH_VALUE,
                                  PIT_STATUS_LATCHED, PIT_STATUS_VALUE, PIT_START_TICK, PIT_GATE,
                                  PIT_FROZEN, PIT_NULL, PIT_NEXT_EDGE, PIT_LOW_BYTE, PORT61_VALUE,
                                  NEVER)
from devices.chips.timebase import ticks_at, ns_of_tick

PIT_HZ = 1193182
ACCESS_LATCH = 0
ACCESS_LOW = 1
ACCESS_HIGH = 2
ACCESS_WORD = 3
NOT_COUNTING = -1
REFRESH_PERIOD_NS = 15085      # port 0x61 bit 4 toggles with DRAM refresh


@jit
def chan(c):
    return PIT_BASE + c * PIT_STRIDE


@jit
def to_bcd(v):
    return (v % 10) | ((v // 10 % 10) << 4) | ((v // 100 % 10) << 8) | ((v // 1000 % 10) << 12)


@jit
def from_bcd(v):
    return (v & 0xF) % 10 + ((v >> 4) & 0xF) % 10 * 10 + ((v >> 8) & 0xF) % 10 * 100 \
        + ((v >> 12) & 0xF) % 10 * 1000


@jit
def elapsed(dev, s, now_tick):
    start = dev[s + PIT_START_TICK]
    if start == NOT_COUNTING or now_tick < start:
        return -1
    return now_tick - start


@jit
def count_at(dev, s, now_tick):
    """The counting element's value (SDM of the chip: 8254 data sheet,
    'Mode definitions')."""
    if dev[s + PIT_FROZEN] >= 0:
        return dev[s + PIT_FROZEN]
    n = dev[s + PIT_COUNT]
    d = elapsed(dev, s, now_tick)
    if d < 0:
        return n & 0xFFFF
    mode = dev[s + PIT_MODE]
    modulus = 10000 if dev[s + PIT_BCD] else 65536
    if mode == 2:
        return n - d % n
    if mode == 3:
        return (n - (2 * d) % n) & 0xFFFF
    return (n - d) % modulus


@jit
def out_at(dev, s, now_tick):
    """The OUT pin."""
    mode = dev[s + PIT_MODE]
    n = dev[s + PIT_COUNT]
    d = elapsed(dev, s, now_tick)
    if dev[s + PIT_FROZEN] >= 0:
        d = -1 if mode != 0 else n - dev[s + PIT_FROZEN]
    if d < 0:
        return 0 if mode == 0 else 1
    if mode == 0 or mode == 1:
        return 1 if d >= n else 0
    if mode == 2:
        return 0 if d % n == n - 1 else 1
    if mode == 3:
        return 1 if d % n < (n + 1) // 2 else 0
    return 0 if d == n else 1       # modes 4 and 5: one low tick at terminal count


@jit
def next_rising_edge(dev, s, now_tick):
    """Tick of the first rising OUT edge after ``now_tick``, or -1."""
    if dev[s + PIT_FROZEN] >= 0:
        return -1
    d = elapsed(dev, s, now_tick)
    start = dev[s + PIT_START_TICK]
    if start == NOT_COUNTING:
        return -1
    if d < 0:
        d = -1
    n = dev[s + PIT_COUNT]
    mode = dev[s + PIT_MODE]
    if mode == 0 or mode == 1:
        return start + n if d < n else -1
    if mode == 2 or mode == 3:
        return start + (d // n + 1) * n if d >= 0 else start + n
    return start + n + 1 if d < n + 1 else -1


@jit
def status_byte(dev, s, now_tick):
    return (out_at(dev, s, now_tick) << 7) | (dev[s + PIT_NULL] << 6) | (dev[s + PIT_ACCESS] << 4) \
        | (dev[s + PIT_MODE] << 1) | dev[s + PIT_BCD]


@jit
def reported_count(dev, s, now_tick):
    v = count_at(dev, s, now_tick)
    if dev[s + PIT_BCD]:
        return to_bcd(v % 10000)
    return v & 0xFFFF


@jit
def latch_count(dev, s, now_tick):
    if dev[s + PIT_LATCHED] == 0:
        dev[s + PIT_LATCH_VALUE] = reported_count(dev, s, now_tick)
        dev[s + PIT_LATCHED] = 2 if dev[s + PIT_ACCESS] == ACCESS_WORD else 1


@jit
def start_counting(dev, s, c, now_tick):
    """A count was written: modes 1 and 5 wait for a gate trigger, the others
    count from now unless a low gate holds them."""
    dev[s + PIT_FROZEN] = -1
    mode = dev[s + PIT_MODE]
    if mode == 1 or mode == 5:
        dev[s + PIT_START_TICK] = NOT_COUNTING
    elif dev[s + PIT_GATE] == 0:
        dev[s + PIT_START_TICK] = NOT_COUNTING
        dev[s + PIT_FROZEN] = dev[s + PIT_COUNT] & 0xFFFF
    else:
        dev[s + PIT_START_TICK] = now_tick
    update_edge(dev, c, now_tick)


@jit
def update_edge(dev, c, now_tick):
    if c == 0:
        dev[chan(0) + PIT_NEXT_EDGE] = next_rising_edge(dev, chan(0), now_tick)


@jit
def load_count(dev, s, c, value, now_tick):
    if dev[s + PIT_BCD]:
        n = from_bcd(value)
        if n == 0:
            n = 10000
    else:
        n = value if value != 0 else 65536
    if dev[s + PIT_MODE] == 2 and n == 1:
        n = 2                      # a count of 1 is illegal in mode 2
    dev[s + PIT_COUNT] = n
    dev[s + PIT_NULL] = 0
    start_counting(dev, s, c, now_tick)


@jit
def write_control(dev, value, now_tick):
    """Port 0x43: control word, counter latch or read-back command."""
    c = value >> 6
    if c == 3:                                    # read-back
        for ch in range(3):
            if value & (2 << ch):
                s = chan(ch)
                if not value & 0x20:
                    latch_count(dev, s, now_tick)
                if not value & 0x10 and not dev[s + PIT_STATUS_LATCHED]:
                    dev[s + PIT_STATUS_VALUE] = status_byte(dev, s, now_tick)
                    dev[s + PIT_STATUS_LATCHED] = 1
        return
    s = chan(c)
    access = (value >> 4) & 3
    if access == ACCESS_LATCH:
        latch_count(dev, s, now_tick)
        return
    mode = (value >> 1) & 7
    if mode > 5:
        mode -= 4                                 # 6 and 7 are aliases of 2 and 3
    dev[s + PIT_MODE] = mode
    dev[s + PIT_ACCESS] = access
    dev[s + PIT_BCD] = value & 1
    dev[s + PIT_WRITE_HIGH] = 0
    dev[s + PIT_READ_HIGH] = 0
    dev[s + PIT_LATCHED] = 0
    dev[s + PIT_STATUS_LATCHED] = 0
    dev[s + PIT_NULL] = 1
    dev[s + PIT_START_TICK] = NOT_COUNTING
    dev[s + PIT_FROZEN] = -1
    update_edge(dev, c, now_tick)


@jit
def write_counter(dev, c, value, now_tick):
    s = chan(c)
    access = dev[s + PIT_ACCESS]
    if access == ACCESS_LOW:
        load_count(dev, s, c, value, now_tick)
    elif access == ACCESS_HIGH:
        load_count(dev, s, c, value << 8, now_tick)
    elif access == ACCESS_WORD:
        if not dev[s + PIT_WRITE_HIGH]:
            dev[s + PIT_LOW_BYTE] = value
            dev[s + PIT_WRITE_HIGH] = 1
            if dev[s + PIT_MODE] == 0:
                # mode 0: writing the first byte stops the count (data sheet)
                dev[s + PIT_FROZEN] = count_at(dev, s, now_tick)
                dev[s + PIT_START_TICK] = NOT_COUNTING
                update_edge(dev, c, now_tick)
        else:
            dev[s + PIT_WRITE_HIGH] = 0
            load_count(dev, s, c, dev[s + PIT_LOW_BYTE] | (value << 8), now_tick)


@jit
def read_counter(dev, c, now_tick):
    s = chan(c)
    if dev[s + PIT_STATUS_LATCHED]:
        dev[s + PIT_STATUS_LATCHED] = 0
        return dev[s + PIT_STATUS_VALUE]
    access = dev[s + PIT_ACCESS]
    if dev[s + PIT_LATCHED]:
        v = dev[s + PIT_LATCH_VALUE]
        if dev[s + PIT_LATCHED] == 2:
            dev[s + PIT_LATCHED] = 1
            return v & 0xFF
        dev[s + PIT_LATCHED] = 0
        return (v >> 8) & 0xFF if access != ACCESS_LOW else v & 0xFF
    v = reported_count(dev, s, now_tick)
    if access == ACCESS_LOW:
        return v & 0xFF
    if access == ACCESS_HIGH:
        return (v >> 8) & 0xFF
    if dev[s + PIT_READ_HIGH]:
        dev[s + PIT_READ_HIGH] = 0
        return (v >> 8) & 0xFF
    dev[s + PIT_READ_HIGH] = 1
    return v & 0xFF


@jit
def set_gate(dev, c, level, now_tick):
    """Gate input (only channel 2's is wired, to port 0x61 bit 0)."""
    s = chan(c)
    old = dev[s + PIT_GATE]
    dev[s + PIT_GATE] = level
    if old == level:
        return
    mode = dev[s + PIT_MODE]
    if level:
        if dev[s + PIT_NULL] and dev[s + PIT_FROZEN] < 0 and dev[s + PIT_START_TICK] == NOT_COUNTING:
            return                       # no count written yet
        if mode == 0 or mode == 4:
            # resume from the held count
            held = dev[s + PIT_FROZEN]
            dev[s + PIT_FROZEN] = -1
            if held >= 0:
                dev[s + PIT_START_TICK] = now_tick - ((dev[s + PIT_COUNT] - held) % 65536)
        else:
            # modes 1, 2, 3, 5: a rising gate edge (re)starts from the reload value
            dev[s + PIT_FROZEN] = -1
            dev[s + PIT_START_TICK] = now_tick
    elif mode != 1 and mode != 5 and dev[s + PIT_START_TICK] != NOT_COUNTING:
        dev[s + PIT_FROZEN] = count_at(dev, s, now_tick)
        dev[s + PIT_START_TICK] = NOT_COUNTING
    update_edge(dev, c, now_tick)


@jit
def reset(dev):
    for c in range(3):
        s = chan(c)
        for i in range(PIT_STRIDE):
            dev[s + i] = 0
        dev[s + PIT_COUNT] = 65536
        dev[s + PIT_START_TICK] = NOT_COUNTING
        dev[s + PIT_FROZEN] = -1
        dev[s + PIT_NEXT_EDGE] = -1
        dev[s + PIT_GATE] = 1 if c != 2 else 0
        dev[s + PIT_ACCESS] = ACCESS_WORD
    dev[PORT61_VALUE] = 0


@jit
def channel0_irq_due(dev, now_ns):
    """True (once) when channel 0's OUT rose since the last call: a tick of
    IRQ 0.  Missed edges coalesce into one, as an edge-triggered IRR does."""
    s = chan(0)
    edge = dev[s + PIT_NEXT_EDGE]
    if edge < 0:
        return False
    now_tick = ticks_at(now_ns, PIT_HZ)
    if now_tick < edge:
        return False
    dev[s + PIT_NEXT_EDGE] = next_rising_edge(dev, s, now_tick)
    return True


@jit
def next_deadline_ns(dev):
    edge = dev[chan(0) + PIT_NEXT_EDGE]
    if edge < 0:
        return NEVER
    return ns_of_tick(edge, PIT_HZ)


@jit
def read_port(dev, offset, now_ns):
    """Ports 0x40-0x43 (offset 0-3)."""
    if offset == 3:
        return 0xFF                      # the control register is write-only
    return read_counter(dev, offset, ticks_at(now_ns, PIT_HZ))


@jit
def write_port(dev, offset, value, now_ns):
    now_tick = ticks_at(now_ns, PIT_HZ)
    if offset == 3:
        write_control(dev, value, now_tick)
    else:
        write_counter(dev, offset, value, now_tick)


@jit
def read_port61(dev, now_ns):
    """System control port B: bits 0-3 as written, bit 4 the refresh
    toggle, bit 5 channel 2's OUT."""
    out2 = out_at(dev, chan(2), ticks_at(now_ns, PIT_HZ))
    refresh = (now_ns // REFRESH_PERIOD_NS) & 1
    return (dev[PORT61_VALUE] & 0x0F) | (refresh << 4) | (out2 << 5)


@jit
def write_port61(dev, value, now_ns):
    dev[PORT61_VALUE] = value & 0x0F
    set_gate(dev, 2, value & 1, ticks_at(now_ns, PIT_HZ))
