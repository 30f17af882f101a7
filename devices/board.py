"""The PC as data: which chip answers which I/O ports and raises which IRQ,
and Python views to configure and inspect each chip.

The wiring below becomes the port map (one byte per port) that the jitted
bus reads; overlapping claims are refused when the map is built, and a
device written in Python claims free ports through ``Board.attach``.
"""
from dataclasses import dataclass
import time

import numpy as np

from devices.chips import layout as D

PORT_COM1 = 0x3F8
PORT_COM2 = 0x2F8
PORT_DEBUG_EXIT = 0xF4
DEFAULT_NS_PER_INSTRUCTION = 10          # a 100 MIPS virtual processor
# 2026-01-01 00:00:00 UTC: the RTC's time at virtual time 0, unless told otherwise
DEFAULT_RTC_EPOCH = 1767225600


@dataclass(frozen=True)
class Wire:
    name: str
    chip: int
    ports: tuple      # ((first, count), ...)
    irq: int | None = None


PC_WIRING = (
    Wire("pic-master", D.CHIP_PIC_MASTER, ((0x20, 2),)),
    Wire("pic-slave", D.CHIP_PIC_SLAVE, ((0xA0, 2),)),
    Wire("pit", D.CHIP_PIT, ((0x40, 4),), irq=0),
    Wire("kbc", D.CHIP_KBC, ((0x60, 1), (0x64, 1)), irq=1),
    Wire("port61", D.CHIP_PORT61, ((0x61, 1),)),
    Wire("rtc", D.CHIP_RTC, ((0x70, 2),), irq=8),
    Wire("post", D.CHIP_POST, ((0x80, 1),)),
    Wire("port92", D.CHIP_PORT92, ((0x92, 1),)),
    Wire("debug-exit", D.CHIP_DEBUG_EXIT, ((PORT_DEBUG_EXIT, 4),)),
    Wire("com2", D.CHIP_COM2, ((PORT_COM2, 8),), irq=3),
    Wire("com1", D.CHIP_COM1, ((PORT_COM1, 8),), irq=4),
    Wire("ata", D.CHIP_ATA, ((0x1F0, 8),), irq=14),
    Wire("ata-control", D.CHIP_ATA_CONTROL, ((0x3F6, 1),)),
)


class PortConflict(ValueError):
    pass


def build_port_map(wiring):
    """One byte per I/O port naming its chip; overlapping claims are refused."""
    ports = np.zeros(65536, np.uint8)
    owner = {}
    for w in wiring:
        for first, count in w.ports:
            for p in range(first, first + count):
                if not 0 <= p <= 0xFFFF:
                    raise PortConflict(f"{w.name}: port {p:#x} is outside the 64 KiB I/O space")
                if p in owner:
                    raise PortConflict(f"{w.name} and {owner[p]} both claim port {p:#x}")
                owner[p] = w.name
                ports[p] = w.chip
    return ports, owner


class Uart:
    """A 16550A as the host sees it: what the guest transmitted, and bytes
    to send to the guest."""

    def __init__(self, board, index, name):
        self._board = board
        self._u = index
        self.name = name
        self._base = D.UART_BASE + index * D.UART_STRIDE
        self._tx = D.COM1_TX if index == 0 else D.COM2_TX
        self._in = D.COM1_IN if index == 0 else D.COM2_IN
        self._received = bytearray()      # drained, not yet read by the user
        self._waiting_input = bytearray()  # sent by the host, not yet in the ring
        self.sink = None                  # callable(bytes) that takes output as it comes
        self.tx_bytes = 0                 # metering: bytes the guest transmitted, and received
        self.rx_bytes = 0

    def drain(self):
        """Move what the guest transmitted out of the ring (called by Machine)."""
        dev = self._board.dev
        head, tail = dev.item(self._base + D.U_TX_HEAD), dev.item(self._base + D.U_TX_TAIL)
        if head == tail:
            return
        idx = (np.arange(tail, head) % D.UART_TX_RING) + self._tx
        data = dev[idx].astype(np.uint8).tobytes()
        dev[self._base + D.U_TX_TAIL] = head
        self.tx_bytes += len(data)
        if self.sink is not None:
            self.sink(data)
        else:
            self._received += data

    def read(self):
        """Everything the guest has transmitted since the last read."""
        self.drain()
        data = bytes(self._received)
        self._received.clear()
        return data

    def send(self, data):
        """Bytes for the guest to receive, in order; none is lost."""
        if isinstance(data, str):
            data = data.encode()
        self._waiting_input += bytes(data)
        self.feed()

    def feed(self):
        """Move waiting host input into the ring as it has room."""
        if not self._waiting_input:
            return
        dev = self._board.dev
        head, tail = int(dev[self._base + D.U_IN_HEAD]), int(dev[self._base + D.U_IN_TAIL])
        room = D.UART_IN_RING - (head - tail)
        n = min(room, len(self._waiting_input))
        for i in range(n):
            dev[self._in + (head + i) % D.UART_IN_RING] = self._waiting_input[i]
        del self._waiting_input[:n]
        self.rx_bytes += n
        dev[self._base + D.U_IN_HEAD] = head + n
        dev[self._base + D.U_IN_MORE] = 1 if self._waiting_input else 0
        self._board.poke()

    @property
    def input_waiting(self):
        dev = self._board.dev
        return len(self._waiting_input) + int(dev[self._base + D.U_IN_HEAD] - dev[self._base + D.U_IN_TAIL])

    @property
    def registers(self):
        dev = self._board.dev
        b = self._base
        return {"ier": int(dev[b + D.U_IER]), "lcr": int(dev[b + D.U_LCR]), "mcr": int(dev[b + D.U_MCR]),
                "divisor": int(dev[b + D.U_DLL] | dev[b + D.U_DLM] << 8),
                "fcr": int(dev[b + D.U_FCR]), "scr": int(dev[b + D.U_SCR]),
                "rx_fifo": int(dev[b + D.U_RX_COUNT])}

    def __repr__(self):
        r = self.registers
        return f"<Uart {self.name} divisor={r['divisor']} lcr={r['lcr']:#x} mcr={r['mcr']:#x} ier={r['ier']:#x}>"


class Pic:
    """The two 8259As: request, mask and in-service registers."""

    def __init__(self, board):
        self._board = board

    def _reg(self, chip, slot):
        return int(self._board.dev[D.PIC_BASE + chip * D.PIC_STRIDE + slot])

    @property
    def irr(self):
        return self._reg(0, D.PIC_IRR) | self._reg(1, D.PIC_IRR) << 8

    @property
    def imr(self):
        return self._reg(0, D.PIC_IMR) | self._reg(1, D.PIC_IMR) << 8

    @property
    def isr(self):
        return self._reg(0, D.PIC_ISR) | self._reg(1, D.PIC_ISR) << 8

    @property
    def vector_bases(self):
        return self._reg(0, D.PIC_VECTOR_BASE), self._reg(1, D.PIC_VECTOR_BASE)

    def __repr__(self):
        return f"<Pic irr={self.irr:#06x} imr={self.imr:#06x} isr={self.isr:#06x} vectors={self.vector_bases}>"


class Pit:
    """The 8254: each channel's reload value, mode, access mode and count."""

    def __init__(self, board):
        self._board = board

    def channel(self, c):
        from devices.chips import pit8254
        from devices.chips.timebase import ticks_at
        if c not in (0, 1, 2):
            raise ValueError(f"the 8254 has channels 0, 1 and 2, not {c!r}")
        dev = self._board.dev
        s = D.PIT_BASE + c * D.PIT_STRIDE
        tick = ticks_at(self._board.virtual_time_ns, pit8254.PIT_HZ)
        counting = int(dev[s + D.PIT_START_TICK]) >= 0 or int(dev[s + D.PIT_FROZEN]) >= 0
        return {"reload": int(dev[s + D.PIT_COUNT]), "mode": int(dev[s + D.PIT_MODE]),
                "access": int(dev[s + D.PIT_ACCESS]), "bcd": bool(dev[s + D.PIT_BCD]),
                "gate": int(dev[s + D.PIT_GATE]), "counting": counting,
                "count": int(pit8254.count_at(dev, s, tick)) if counting else None,
                "out": int(pit8254.out_at(dev, s, tick))}

    def __repr__(self):
        ch = self.channel(0)
        return f"<Pit channel 0: mode {ch['mode']}, reload {ch['reload']}, counting={ch['counting']}>"


class Rtc:
    """The MC146818: CMOS bytes and the clock's epoch."""

    def __init__(self, board):
        self._board = board

    def cmos(self, index):
        """A byte of CMOS RAM as stored (the clock registers are computed on read by the guest)."""
        if not 0 <= index < D.RTC_RAM_SIZE:
            raise ValueError(f"CMOS index {index!r} is outside 0-127")
        return int(self._board.dev[D.RTC_RAM + index])

    def set_cmos(self, index, value):
        if not 0 <= index < D.RTC_RAM_SIZE or not 0 <= value <= 0xFF:
            raise ValueError(f"CMOS[{index!r}] = {value!r}: index 0-127, value 0-255")
        self._board.dev[D.RTC_RAM + index] = value

    @property
    def seconds(self):
        """The guest's clock, in seconds since 1970."""
        dev = self._board.dev
        return int(dev[D.RTC_BASE + D.RTC_EPOCH] + dev[D.RTC_BASE + D.RTC_OFFSET]) \
            + self._board.virtual_time_ns // 1_000_000_000

    def __repr__(self):
        return f"<Rtc {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(self.seconds))} UTC>"


class Kbc:
    """The 8042: command byte, output port (A20, reset) and queued bytes."""

    def __init__(self, board):
        self._board = board

    @property
    def command_byte(self):
        return int(self._board.dev[D.KBC_BASE + D.KBC_COMMAND_BYTE])

    @property
    def output_port(self):
        return int(self._board.dev[D.KBC_BASE + D.KBC_OUTPUT_PORT])

    @property
    def queued(self):
        return int(self._board.dev[D.KBC_BASE + D.KBC_OUT_COUNT])

    def __repr__(self):
        return f"<Kbc command byte {self.command_byte:#04x}, output port {self.output_port:#04x}, {self.queued} queued>"


class Board:
    """The devices of one machine: state array, port map and views."""

    def __init__(self, machine, wiring=PC_WIRING, *, ns_per_instruction=DEFAULT_NS_PER_INSTRUCTION,
                 rtc_epoch=DEFAULT_RTC_EPOCH):
        self._machine = machine
        self.wiring = tuple(wiring)
        self.ports, self._owner = build_port_map(self.wiring)
        self.dev = np.zeros(D.DEV_SLOTS, np.int64)
        if not isinstance(ns_per_instruction, int) or ns_per_instruction < 1:
            raise ValueError(f"ns_per_instruction must be a positive int, not {ns_per_instruction!r}")
        self.ns_per_instruction = ns_per_instruction
        self.rtc_epoch = int(rtc_epoch)
        self.com1 = Uart(self, 0, "com1")
        self.com2 = Uart(self, 1, "com2")
        self.pic = Pic(self)
        self.pit = Pit(self)
        self.rtc = Rtc(self)
        self.kbc = Kbc(self)
        self.python_devices = {}
        self.mmio_devices = {}
        self.host_clock = False

    # --- wiring ---------------------------------------------------------------------

    def attach(self, device, ports):
        """Wire a device written in Python to free ports: ``device.read(port,
        size)`` and ``device.write(port, size, value)`` are called through an
        exit from the run loop."""
        ports = list(ports)
        for p in ports:
            if not isinstance(p, int) or not 0 <= p <= 0xFFFF:
                raise ValueError(f"port {p!r} is not an I/O port (0 to 0xFFFF)")
            if p in self._owner or p in self.python_devices:
                who = self._owner.get(p) or repr(self.python_devices[p])
                raise PortConflict(f"port {p:#x} is already wired to {who}")
        for p in ports:
            self.python_devices[p] = device
            self.ports[p] = D.CHIP_PYTHON

    def attach_mmio(self, device, first, size):
        """Wire a device written in Python to the physical range [first,
        first + size), which must lie outside RAM: ``device.read(address,
        size)`` and ``device.write(address, size, value)`` are called through
        an exit from the run loop, and the instruction then completes."""
        ram = self._machine.memory_size
        end = first + size
        if size <= 0 or first < 0 or end > 1 << 32:
            raise ValueError(f"MMIO range {first:#x}+{size:#x} is not inside the 4 GiB physical space")
        if first < ram:
            raise PortConflict(f"MMIO range {first:#x}-{end - 1:#x} overlaps RAM (0-{ram - 1:#x}): "
                               f"MMIO devices live above RAM")
        for (f, e), other in self.mmio_devices.items():
            if first < e and f < end:
                raise PortConflict(f"MMIO range {first:#x}-{end - 1:#x} overlaps {other!r} at {f:#x}-{e - 1:#x}")
        if len(self.mmio_devices) >= D.MMIO_MAX:
            raise ValueError(f"at most {D.MMIO_MAX} MMIO ranges per machine")
        self.mmio_devices[(first, end)] = device
        self._write_mmio_table()

    def _write_mmio_table(self):
        dev = self.dev
        for i, (f, e) in enumerate(sorted(self.mmio_devices)):
            dev[D.MMIO_TABLE + 2 * i] = f
            dev[D.MMIO_TABLE + 2 * i + 1] = e
        dev[D.MMIO_COUNT] = len(self.mmio_devices)

    def mmio_device(self, address):
        for (f, e), device in self.mmio_devices.items():
            if f <= address < e:
                return device
        return None

    def detach(self, port):
        if port not in self.python_devices:
            raise KeyError(f"no Python device on port {port:#x}")
        del self.python_devices[port]
        self.ports[port] = D.CHIP_NONE

    def owner(self, port):
        """Which device answers ``port`` (None if unassigned)."""
        if port in self.python_devices:
            return self.python_devices[port]
        return self._owner.get(port)

    # --- state ------------------------------------------------------------------------

    CHIP_NAMES = {D.CHIP_NONE: "unassigned", D.CHIP_PIC_MASTER: "pic_master", D.CHIP_PIC_SLAVE: "pic_slave",
                  D.CHIP_PIT: "pit", D.CHIP_PORT61: "port61", D.CHIP_COM1: "com1", D.CHIP_COM2: "com2",
                  D.CHIP_RTC: "rtc_cmos", D.CHIP_KBC: "kbc8042", D.CHIP_PORT92: "port92",
                  D.CHIP_POST: "post", D.CHIP_DEBUG_EXIT: "debug_exit", D.CHIP_ATA: "ata",
                  D.CHIP_ATA_CONTROL: "ata_control"}

    def io_bytes(self):
        """{chip name: (bytes in, bytes out)} of the port I/O the chips served in the loop."""
        dev = self.dev
        out = {}
        for chip, name in self.CHIP_NAMES.items():
            i, o = int(dev[D.IO_IN_BYTES + chip]), int(dev[D.IO_OUT_BYTES + chip])
            if i or o:
                out[name] = (i, o)
        return out

    def reset(self, memory_size, disk_sectors=0):
        """Power-on state of every chip, and the CMOS memory-size bytes."""
        from devices.chips import pit8254, uart16550, rtc_cmos, kbc8042, ata
        dev = self.dev
        rom = int(dev[D.ROM_LOCKED])          # the BIOS ROM stays a ROM across resets
        # CMOS RAM is battery-backed: its configuration bytes (floppy type,
        # boot order, ...) survive a reset; the clock registers do not matter
        cmos = dev[D.RTC_RAM + 0x0E:D.RTC_RAM + 0x80].copy()
        meters = dev[D.IO_IN_BYTES:D.IO_OUT_BYTES + 16].copy()      # metering counts across reboots
        dev[:] = 0
        dev[D.IO_IN_BYTES:D.IO_OUT_BYTES + 16] = meters
        dev[D.ROM_LOCKED] = rom
        dev[D.CLK_NS_PER_INSN] = self.ns_per_instruction
        dev[D.CLK_HOST] = 1 if self.host_clock else 0
        self._host_t0 = time.monotonic_ns()
        self._write_mmio_table()
        dev[D.PORT92_VALUE] = 0x02           # A20 on, as the CPU reset leaves it
        pit8254.reset(dev)
        uart16550.reset(dev, 0)
        uart16550.reset(dev, 1)
        rtc_cmos.reset(dev, self.rtc_epoch)
        kbc8042.reset(dev)
        ata.reset(dev, *disk_geometry(disk_sectors))
        for p in (0, 1):
            dev[D.PIC_BASE + p * D.PIC_STRIDE + D.PIC_LOWEST] = 7
        if cmos.any():
            dev[D.RTC_RAM + 0x0E:D.RTC_RAM + 0x80] = cmos
        self._set_cmos_memory(memory_size)
        for u in (self.com1, self.com2):
            u._waiting_input.clear()

    def reset_disk(self, sectors):
        from devices.chips import ata
        ata.reset(self.dev, *disk_geometry(sectors))
        self.poke()

    def _set_cmos_memory(self, memory_size):
        """CMOS bytes a BIOS and kernels read for the memory size (IBM AT
        layout): base memory in KiB at 0x15, extended memory above 1 MiB in
        KiB at 0x17 and 0x30, memory above 16 MiB in 64 KiB units at 0x34."""
        cmos = D.RTC_RAM
        dev = self.dev
        base_kib = 640 if memory_size >= 640 * 1024 else memory_size // 1024
        ext_kib = min(max(memory_size - (1 << 20), 0) // 1024, 0xFFFF)
        above16 = min(max(memory_size - (16 << 20), 0) // 65536, 0xFFFF)
        for index, value in ((0x15, base_kib), (0x17, ext_kib), (0x30, ext_kib), (0x34, above16)):
            dev[cmos + index] = value & 0xFF
            dev[cmos + index + 1] = value >> 8
        if not dev[cmos + 0x32]:       # first power-on: the defaults
            dev[cmos + 0x14] = 0x06    # equipment: no floppy, FPU absent bit clear, VGA
            dev[cmos + 0x32] = 0x20    # century (BCD)

    def cmos(self, index):
        """A byte of CMOS RAM (0-127)."""
        return int(self.dev[D.RTC_RAM + (index & 0x7F)])

    def set_cmos(self, index, value):
        """Set a byte of CMOS RAM from Python (configuration bytes the BIOS reads)."""
        if not 0x0E <= index <= 0x7F:
            raise ValueError(f"CMOS byte {index:#x}: only configuration bytes 0Eh-7Fh are set from Python")
        self.dev[D.RTC_RAM + index] = value & 0xFF

    def note_a20(self, enabled):
        """Python set the A20 gate: the 8042 output port and port 0x92 show it."""
        bit = 0x02 if enabled else 0
        self.dev[D.PORT92_VALUE] = (int(self.dev[D.PORT92_VALUE]) & ~0x02) | bit
        k = D.KBC_BASE + D.KBC_OUTPUT_PORT
        self.dev[k] = (int(self.dev[k]) & ~0x02) | bit

    def poke(self):
        """Python changed device state: the loop catches up before the next instruction."""
        self.dev[D.DEADLINE_ICOUNT] = 0

    def drain(self):
        self.com1.drain()
        self.com2.drain()
        self.com1.feed()
        self.com2.feed()

    def follow_host_clock(self):
        """Rebase device time on the host's monotonic clock (between run
        slices); never backwards."""
        dev = self.dev
        now = time.monotonic_ns() - self._host_t0
        if now > int(dev[D.LAST_NS]):
            dev[D.CLK_BASE_NS] = now
            dev[D.CLK_BASE_ICOUNT] = int(self._machine._state.cpu[self._machine._icount_slot])
            dev[D.LAST_NS] = now
            dev[D.DEADLINE_ICOUNT] = 0

    def host_wait_ns(self):
        """How long the host should sleep for the next device event (host clock)."""
        t = int(self.dev[D.NEXT_EVENT_NS])
        if t >= D.NEVER:
            return None
        return max(0, t - (time.monotonic_ns() - self._host_t0))

    @property
    def virtual_time_ns(self):
        dev = self.dev
        icount = int(self._machine._state.cpu[self._machine._icount_slot])
        t = int(dev[D.CLK_BASE_NS]) + (icount - int(dev[D.CLK_BASE_ICOUNT])) * int(dev[D.CLK_NS_PER_INSN])
        return max(t, int(dev[D.LAST_NS]))

    @property
    def post_code(self):
        """The last byte written to port 0x80."""
        return int(self.dev[D.POST_CODE])

    def push_scancodes(self, data):
        """Key events for the 8042 (scancode set as the guest configured it)."""
        from devices.chips import kbc8042
        for b in bytes(data):
            kbc8042.push_scancode(self.dev, b)
        self.poke()


def disk_geometry(sectors):
    """(sectors, cylinders, heads, sectors per track) of a disk as its
    IDENTIFY data reports it: 16 heads of 63 sectors, at most 16383
    cylinders (the usual translation for disks up to 8 GB)."""
    if sectors <= 0:
        return 0, 0, 0, 0
    heads, spt = 16, 63
    cylinders = max(1, min(sectors // (heads * spt), 16383))
    return sectors, cylinders, heads, spt


def host_epoch():
    """The RTC epoch that makes the guest clock follow the host's."""
    return int(time.time())
