"""MC146818 real-time clock and CMOS RAM (Motorola MC146818A data sheet):
index port 0x70 (bit 7 masks NMI), data port 0x71; the clock registers in
BCD or binary, 12- or 24-hour; registers A-D; the periodic and update-ended
interrupts on IRQ 8.

The clock reads virtual time: RTC_EPOCH (seconds since 1970 at virtual time
0, fixed by default so runs are deterministic) plus what the guest set.
Alarm interrupts are not implemented (the alarm registers hold values).
"""
from emu.core.jit import jit
from devices.chips.layout import (RTC_BASE, RTC_INDEX, RTC_NMI_DISABLED, RTC_EPOCH, RTC_OFFSET,
                                  RTC_NEXT_PERIODIC, RTC_NEXT_UPDATE, RTC_IRQ_LEVEL, RTC_RAM,
                                  RTC_RAM_SIZE, NEVER)
from devices.chips.timebase import ticks_at, ns_of_tick, NS_PER_S

REG_SECONDS, REG_MINUTES, REG_HOURS = 0x00, 0x02, 0x04
REG_WEEKDAY, REG_DAY, REG_MONTH, REG_YEAR = 0x06, 0x07, 0x08, 0x09
REG_A, REG_B, REG_C, REG_D = 0x0A, 0x0B, 0x0C, 0x0D
REG_CENTURY = 0x32
A_UIP = 0x80
B_SET = 0x80
B_PIE = 0x40
B_AIE = 0x20
B_UIE = 0x10
B_BINARY = 0x04
B_24H = 0x02
C_IRQF = 0x80
C_PF = 0x40
C_UF = 0x10
D_VRT = 0x80
UPDATE_CYCLE_NS = 244_000      # UIP is set this long before each update


@jit
def days_to_civil(days):
    """(year, month, day) of a day number counted from 1970-01-01 in the
    proleptic Gregorian calendar (400-year eras of 146097 days)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


@jit
def civil_to_days(year, month, day):
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@jit
def ram(dev, index):
    return dev[RTC_RAM + (index & (RTC_RAM_SIZE - 1))]


@jit
def seconds_now(dev, now_ns):
    return dev[RTC_BASE + RTC_EPOCH] + dev[RTC_BASE + RTC_OFFSET] + now_ns // NS_PER_S


@jit
def encode(dev, v):
    if ram(dev, REG_B) & B_BINARY:
        return v
    return (v // 10) * 16 + v % 10


@jit
def decode(dev, v):
    if ram(dev, REG_B) & B_BINARY:
        return v
    return (v >> 4) * 10 + (v & 0xF)


@jit
def clock_fields(seconds):
    days = seconds // 86400
    rest = seconds % 86400
    year, month, day = days_to_civil(days)
    weekday = (days + 4) % 7 + 1          # 1970-01-01 was a Thursday; Sunday = 1
    return year, month, day, weekday, rest // 3600, rest // 60 % 60, rest % 60


@jit
def read_clock_register(dev, index, now_ns):
    year, month, day, weekday, hour, minute, second = clock_fields(seconds_now(dev, now_ns))
    if index == REG_SECONDS:
        return encode(dev, second)
    if index == REG_MINUTES:
        return encode(dev, minute)
    if index == REG_HOURS:
        if ram(dev, REG_B) & B_24H:
            return encode(dev, hour)
        h12 = hour % 12
        if h12 == 0:
            h12 = 12
        return encode(dev, h12) | (0x80 if hour >= 12 else 0)
    if index == REG_WEEKDAY:
        return encode(dev, weekday)
    if index == REG_DAY:
        return encode(dev, day)
    if index == REG_MONTH:
        return encode(dev, month)
    if index == REG_YEAR:
        return encode(dev, year % 100)
    return encode(dev, year // 100)       # REG_CENTURY


@jit
def write_clock_register(dev, index, value, now_ns):
    """Setting one field moves the clock by the difference."""
    now_s = seconds_now(dev, now_ns)
    year, month, day, weekday, hour, minute, second = clock_fields(now_s)
    if index == REG_HOURS:
        pm = value & 0x80
        v = decode(dev, value & 0x7F)
        if not ram(dev, REG_B) & B_24H:
            v = v % 12 + (12 if pm else 0)
    else:
        v = decode(dev, value)
    if index == REG_SECONDS:
        second = v % 60
    elif index == REG_MINUTES:
        minute = v % 60
    elif index == REG_HOURS:
        hour = v % 24
    elif index == REG_DAY:
        day = min(max(v, 1), 31)
    elif index == REG_MONTH:
        month = min(max(v, 1), 12)
    elif index == REG_YEAR:
        year = year // 100 * 100 + v % 100
    elif index == REG_CENTURY:
        year = v * 100 + year % 100
    else:
        return                             # weekday: derived from the date
    new_s = civil_to_days(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    dev[RTC_BASE + RTC_OFFSET] += new_s - now_s


@jit
def is_clock_register(index):
    return index in (REG_SECONDS, REG_MINUTES, REG_HOURS, REG_WEEKDAY, REG_DAY, REG_MONTH,
                     REG_YEAR, REG_CENTURY)


@jit
def periodic_hz(dev):
    """Rate select of register A (data sheet table 3, 32.768 kHz base)."""
    rate = ram(dev, REG_A) & 0xF
    if rate == 0 or (ram(dev, REG_A) >> 4) & 7 != 2:
        return 0
    if rate <= 2:
        rate += 7
    return 65536 >> rate


@jit
def schedule(dev, now_ns):
    b = ram(dev, REG_B)
    hz = periodic_hz(dev)
    if b & B_PIE and hz:
        dev[RTC_BASE + RTC_NEXT_PERIODIC] = ns_of_tick(ticks_at(now_ns, hz) + 1, hz)
    else:
        dev[RTC_BASE + RTC_NEXT_PERIODIC] = -1
    if b & B_UIE and not b & B_SET:
        dev[RTC_BASE + RTC_NEXT_UPDATE] = (now_ns // NS_PER_S + 1) * NS_PER_S
    else:
        dev[RTC_BASE + RTC_NEXT_UPDATE] = -1


@jit
def raise_flags(dev, flags):
    c = ram(dev, REG_C) | flags
    if (c & 0x70) & (ram(dev, REG_B) & 0x70):
        c |= C_IRQF
    dev[RTC_RAM + REG_C] = c


@jit
def advance(dev, now_ns):
    """Catch up with virtual time: periodic and update-ended events."""
    p = dev[RTC_BASE + RTC_NEXT_PERIODIC]
    u = dev[RTC_BASE + RTC_NEXT_UPDATE]
    if p >= 0 and now_ns >= p:
        raise_flags(dev, C_PF)
        hz = periodic_hz(dev)
        dev[RTC_BASE + RTC_NEXT_PERIODIC] = ns_of_tick(ticks_at(now_ns, hz) + 1, hz) if hz else -1
    if u >= 0 and now_ns >= u:
        raise_flags(dev, C_UF)
        dev[RTC_BASE + RTC_NEXT_UPDATE] = (now_ns // NS_PER_S + 1) * NS_PER_S
    dev[RTC_BASE + RTC_IRQ_LEVEL] = 1 if ram(dev, REG_C) & C_IRQF else 0


@jit
def next_deadline_ns(dev):
    p = dev[RTC_BASE + RTC_NEXT_PERIODIC]
    u = dev[RTC_BASE + RTC_NEXT_UPDATE]
    best = NEVER
    if p >= 0:
        best = p
    if u >= 0 and u < best:
        best = u
    return best


@jit
def read_port(dev, offset, now_ns):
    if offset == 0:
        return 0xFF                       # the index register is write-only
    index = dev[RTC_BASE + RTC_INDEX]
    if is_clock_register(index) and not ram(dev, REG_B) & B_SET:
        return read_clock_register(dev, index, now_ns)
    if index == REG_A:
        uip = A_UIP if now_ns % NS_PER_S >= NS_PER_S - UPDATE_CYCLE_NS else 0
        return (ram(dev, REG_A) & 0x7F) | uip
    if index == REG_C:
        v = ram(dev, REG_C)
        dev[RTC_RAM + REG_C] = 0
        dev[RTC_BASE + RTC_IRQ_LEVEL] = 0
        return v
    if index == REG_D:
        return D_VRT
    return ram(dev, index)


@jit
def write_port(dev, offset, value, now_ns):
    if offset == 0:
        dev[RTC_BASE + RTC_INDEX] = value & 0x7F
        dev[RTC_BASE + RTC_NMI_DISABLED] = (value >> 7) & 1
        return
    index = dev[RTC_BASE + RTC_INDEX]
    if index == REG_C or index == REG_D:
        return                            # read-only
    if is_clock_register(index):
        write_clock_register(dev, index, value, now_ns)
    if index == REG_A:
        value &= 0x7F
    if index == REG_B and value & B_SET:
        value &= ~B_UIE
    dev[RTC_RAM + (index & (RTC_RAM_SIZE - 1))] = value
    if index == REG_A or index == REG_B:
        schedule(dev, now_ns)


@jit
def reset(dev, epoch_seconds):
    for i in range(8):
        dev[RTC_BASE + i] = 0
    dev[RTC_BASE + RTC_EPOCH] = epoch_seconds
    dev[RTC_BASE + RTC_NEXT_PERIODIC] = -1
    dev[RTC_BASE + RTC_NEXT_UPDATE] = -1
    dev[RTC_RAM + REG_A] = 0x26
    dev[RTC_RAM + REG_B] = B_24H
    dev[RTC_RAM + REG_C] = 0
    dev[RTC_RAM + REG_D] = D_VRT
