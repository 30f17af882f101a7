"""Machine: one guest — its state arrays, the run loop, step/run/snapshot."""
from dataclasses import dataclass
import time

import pathlib

import numpy as np

from emu.core import layout as L
from emu.blocks import serve_request as _serve_request, install_ready as _install_ready, \
    INSTALL_SLICE as _INSTALL_SLICE, cpu_for_snapshot
from emu.core.memory import PM_CODE, PM_DIRTY, PM_GEN_ONE
from emu.cpu_view import CpuView
from emu.memory_view import MemoryView

MIN_MEMORY = 64 * 1024
BIOS_BASE = 0xF0000
BIOS_SIZE = 0x10000
HOST_CLOCK_SLICE = 200_000     # instructions between rebases on the host clock
MAX_MEMORY = 4 << 30
PAGE = 4096

# CPUID signature this core reports in EDX at reset and in CPUID leaf 1 EAX
RESET_EDX_SIGNATURE = 0x00000633   # = emu.core.isa.system.CPUID_SIGNATURE


# the BIOS shipped with visor86 (built from firmware/bios/bios.asm)
BUNDLED_BIOS = pathlib.Path(__file__).resolve().parent.parent / "firmware" / "bios" / "bios.bin"


def host_cpu_vendor(cpuinfo="/proc/cpuinfo"):
    """"intel" or "amd": the vendor of the CPU this process runs on."""
    try:
        text = open(cpuinfo, encoding="ascii", errors="replace").read()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("vendor_id"):
            vendor = line.split(":", 1)[1].strip()
            if vendor == "GenuineIntel":
                return "intel"
            if vendor == "AuthenticAMD":
                return "amd"
            raise ValueError(f"the host CPU is a {vendor}: visor86 models the undefined flags of "
                             "intel and amd processors only")
    raise ValueError(f"cannot tell the host CPU's vendor (no vendor_id in {cpuinfo})")


@dataclass(frozen=True, init=False)
class Exit:
    """Why a run stopped.

    kind: "budget" (max_instructions reached), "halt" (HLT with nothing
    that could wake the CPU), "exception" (a guest exception, when the
    machine stops on them), "shutdown" (triple fault), "io" (a port access
    that Python must serve), "breakpoint", "debug_exit" (the guest wrote the
    debug-exit port; ``status`` is the exit status, (value << 1) | 1, as
    QEMU's isa-debug-exit), "reset" (the guest reset the machine), "watch"
    (an instruction read or wrote a watched range, or used a watched port;
    it has retired: ``address`` (or ``port``) and ``size`` are the access,
    ``access`` is "read", "write", "in" or "out").
    """
    kind: str
    instructions: int = 0
    vector: int | None = None
    error_code: int | None = None
    port: int | None = None
    address: int | None = None
    status: int | None = None
    access: str | None = None
    size: int | None = None

    def __init__(self, kind, instructions=0, vector=None, error_code=None, port=None,
                 address=None, status=None, access=None, size=None):
        # a frozen dataclass's own __init__ pays object.__setattr__ for each field (1.3 us,
        # a fifth of a step()); the fields go straight into the instance dictionary
        self.__dict__.update(kind=kind, instructions=instructions, vector=vector,
                             error_code=error_code, port=port, address=address,
                             status=status, access=access, size=size)

    def __repr__(self):
        extra = ""
        if self.vector is not None:
            extra += f", vector={self.vector}"
            if self.error_code is not None:
                extra += f", error_code={self.error_code:#x}"
        if self.port is not None:
            extra += f", port={self.port:#x}"
        if self.address is not None:
            extra += f", address={self.address:#x}"
        if self.status is not None:
            extra += f", status={self.status}"
        if self.access is not None:
            extra += f", access={self.access!r}, size={self.size}"
        return f"Exit({self.kind!r}, instructions={self.instructions}{extra})"


# the run loop's constants, read once per exit instead of as module attributes
_ICOUNT, _EXIT_IO, _EXIT_BUDGET, _EXIT_NAMES = L.ICOUNT, L.EXIT_IO, L.EXIT_BUDGET, L.EXIT_NAMES
_EXIT_COMPILE, _JIT_ATTEMPTS = L.EXIT_COMPILE, L.JIT_ATTEMPTS
_run_entry_point = None


def _run_entry():
    """The compiled entry of ``emu.core.run.run``.  Calling it skips numba's
    dispatch on the argument types, which costs more than a single step
    (1.6 us of 2 us); all Guests have one numba type, so one entry serves
    every Machine.  The first call loads (or compiles) the core."""
    global _run_entry_point
    if _run_entry_point is None:
        from numba import types
        from emu.core.guest import guest_type
        from emu.core.run import run as core_run
        if not hasattr(core_run, "overloads"):
            _run_entry_point = core_run       # NUMBA_DISABLE_JIT: the plain Python function
            return core_run
        signature = (guest_type, types.int64, types.boolean)
        core_run.compile(signature)
        _run_entry_point = core_run.overloads[signature].entry_point
    return _run_entry_point


@dataclass(frozen=True)
class Snapshot:
    """An exact copy of a Machine's state; ``m.restore(s)`` returns to it
    as often as wanted."""
    cpu: np.ndarray
    mem: np.ndarray
    pm: np.ndarray
    dev: np.ndarray


def _check_memory_size(memory_size):
    if isinstance(memory_size, bool) or not isinstance(memory_size, int):
        raise TypeError(f"memory_size must be an int number of bytes, not {type(memory_size).__name__}")
    if memory_size < MIN_MEMORY or memory_size > MAX_MEMORY:
        raise ValueError(f"memory_size {memory_size:#x} is out of range: visor86 guests have "
                         f"{MIN_MEMORY // 1024} KiB to 4 GiB of RAM")
    if memory_size % PAGE:
        raise ValueError(f"memory_size {memory_size:#x} is not a multiple of 4 KiB (the page size); "
                         f"try {(memory_size + PAGE - 1) // PAGE * PAGE:#x}")


class PortHandlers(dict):
    """``m.port_handlers[port] = device``: a device written in Python on a
    free port (it needs ``read(port, size)`` and ``write(port, size, value)``)."""

    def __init__(self, board):
        super().__init__()
        self._board = board

    def __setitem__(self, port, device):
        if port in self:
            self._board.detach(port)
        self._board.attach(device, [port])
        super().__setitem__(port, device)

    def __delitem__(self, port):
        self._board.detach(port)
        super().__delitem__(port)


class Machine:
    """An x86 PC-class machine: CPU, RAM and the PC devices (8259A PICs,
    8254 PIT, 16550A UARTs on COM1/COM2, MC146818 RTC/CMOS, 8042, port 0x92,
    port 0x80 and a debug-exit port at 0xF4).

    ``Machine(memory_size)`` starts in the power-on reset state: real mode,
    CS:IP = F000:FFF0.  ``Machine.flat32(...)`` starts in 32-bit flat
    protected mode at CPL 0 with paging off and no firmware.

    Devices run on virtual time: ``ns_per_instruction`` nanoseconds per
    retired instruction (time jumps ahead while the CPU halts), so the same
    image and inputs give the same run.  ``rtc_epoch`` is the RTC's time at
    the start, in seconds since 1970 (fixed by default).  ``clock="host"``
    makes device time follow the host's clock instead (a halted CPU then
    sleeps until the next timer event, and the RTC starts at the host's time).
    """

    _icount_slot = L.ICOUNT

    def __init__(self, memory_size=1 << 20, *, deliver_exceptions=True, ns_per_instruction=None,
                 rtc_epoch=None, clock="virtual"):
        _check_memory_size(memory_size)
        from emu.core.layout import Guest
        from devices.board import Board, DEFAULT_NS_PER_INSTRUCTION, DEFAULT_RTC_EPOCH
        pages = memory_size // PAGE
        if clock not in ("virtual", "host"):
            raise ValueError(f"clock must be 'virtual' (deterministic) or 'host', not {clock!r}")
        from devices.board import host_epoch
        if rtc_epoch is None:
            rtc_epoch = host_epoch() if clock == "host" else DEFAULT_RTC_EPOCH
        self.memory_size = memory_size
        self.board = Board(self, ns_per_instruction=ns_per_instruction or DEFAULT_NS_PER_INSTRUCTION,
                           rtc_epoch=rtc_epoch)
        self.board.host_clock = clock == "host"
        from emu import guestmem
        self._state = Guest(
            cpu=np.zeros(L.CPU_SLOTS, np.int64),
            # RAM and the decoded-instruction cache cost host memory only
            # where written (emu/guestmem.py); RAM can be cloned copy-on-write
            mem=guestmem.anonymous(memory_size),
            pm=guestmem.anonymous(pages * 8, dtype=np.int64),
            ic=guestmem.anonymous((L.IC_ENTRIES + 1) * L.D_FIELDS * 8, dtype=np.int64,
                                  shape=(L.IC_ENTRIES + 1, L.D_FIELDS)),
            dev=self.board.dev,
            ports=self.board.ports,
            tlb=np.zeros((L.TLB_ENTRIES, 2), np.int64),
            disk=np.zeros(0, np.uint8),
        )
        self.disk_path = None
        self.firmware = None
        self.floppy = None                # devices.host.firmware_disk.FirmwareDisk once a floppy is in
        # called with no arguments whenever a run sleeps through HLT on the
        # host clock: where a front end feeds host input (keys) to the guest
        self.idle_hook = None
        self.cpu = CpuView(self)
        self.memory = MemoryView(self)
        self.port_handlers = PortHandlers(self.board)
        # metering (emu.hypervisor): exits of the loop by reason, Python-served
        # port I/O bytes by device
        self.exit_counts = {}
        self.io_bytes = {}
        self.com1 = self.board.com1
        self.com2 = self.board.com2
        from devices.host.screen import TextScreen
        self.screen = TextScreen(self)
        self._state.cpu[L.JIT_THRESHOLD] = L.JIT_DEFAULT_THRESHOLD
        self._blocks_pending = []      # blocks compiling for this guest (emu/blocks.py)
        self.reset()
        self.deliver_exceptions = deliver_exceptions

    # --- construction ---------------------------------------------------------

    @classmethod
    def flat32(cls, memory_size=16 << 20, *, deliver_exceptions=False, **board_options):
        """32-bit flat protected mode, CPL 0, paging off, no firmware: CS, DS,
        ES, FS, GS, SS cover 4 GiB from base 0 (their descriptors live only in
        the hidden caches).  Guest exceptions end the run with an
        ``exception`` exit unless ``deliver_exceptions`` is set."""
        m = cls(memory_size, deliver_exceptions=deliver_exceptions, **board_options)
        c = m._state.cpu
        c[L.CR0] = L.CR0_PE | L.CR0_ET
        for seg in range(6):
            s = L.SEG_SLOTS + seg * L.SEG_STRIDE
            code = seg == L.CS
            c[s + L.SEG_SEL] = 0x08 if code else 0x10
            c[s + L.SEG_BASE] = 0
            c[s + L.SEG_LIMIT] = 0xFFFFFFFF
            c[s + L.SEG_ATTR] = (0x9B if code else 0x93) | L.ATTR_DB | L.ATTR_G
        c[L.EIP] = 0
        c[L.ESP] = memory_size & 0xFFFFFFF0 if memory_size < (1 << 32) else 0xFFFFFFF0
        c[L.EDX] = 0
        m._invalidate_decoded()
        return m

    @classmethod
    def from_multiboot(cls, kernel, memory_size=64 << 20, *, cmdline="", modules=(), **options):
        """A machine with a Multiboot (v1) ELF32 kernel loaded as a Multiboot
        boot loader leaves it (Multiboot spec 3.2): 32-bit protected mode,
        flat CS/DS/ES/FS/GS/SS, paging off, IF = 0, A20 on, EAX = 0x2BADB002,
        EBX = the multiboot information structure.  ``modules`` holds
        (path, string) pairs.  A bad kernel raises emu.loaders.ImageError,
        naming the problem; nothing is loaded then."""
        from emu.loaders import plan_multiboot
        plan = plan_multiboot(kernel, memory_size, cmdline=cmdline, modules=modules)
        m = cls.flat32(memory_size, deliver_exceptions=True, **options)
        for address, data in plan.chunks:
            m.memory.write(address, data)
        c = m._state.cpu
        c[L.EAX] = plan.eax
        c[L.EBX] = plan.ebx
        c[L.EIP] = plan.entry
        c[L.ESP] = 0
        c[L.EFLAGS] = L.FLAG_RESERVED1
        m.multiboot = plan
        return m

    @classmethod
    def pc(cls, hda=None, *, floppy=None, memory_size=16 << 20, boot=None, writable=False,
           bios=None, **options):
        """A PC powered on with visor86's BIOS (firmware/bios/bios.bin): the
        CPU at the reset vector, ``hda`` (a raw disk image) as the ATA
        primary master, ``floppy`` as drive A:.  ``boot`` is the order the
        BIOS tries ("ac": floppy then disk, the default; "ca"; "a"; "c").
        Disk writes stay in a private copy unless ``writable``.  Run it and
        the BIOS boots the first bootable drive::

            m = Machine.pc("disk.img")
            m.run(max_instructions=50_000_000)
            print(m.screen.text())
        """
        m = cls(memory_size=memory_size, **options)
        m.load_firmware(BUNDLED_BIOS if bios is None else bios)
        if hda is not None:
            m.attach_disk(hda, writable=writable)
        if floppy is not None:
            m.attach_floppy(floppy, writable=writable)
        if boot is not None:
            m.set_boot_order(boot)
        m.reset()
        return m

    def load_firmware(self, image):
        """A 64 KiB system BIOS (bytes, or the path of the image) at physical
        F0000-FFFFF, read-only as a ROM, and visible again at FFFF0000 so the
        reset vector (F000:FFF0 = FFFFFFF0) reaches it.  Needs at least
        1 MiB of RAM."""
        import os
        if isinstance(image, (str, os.PathLike)):
            p = os.fspath(image)
            if not os.path.isfile(p):
                raise FileNotFoundError(f"{p}: no such firmware image")
            data = open(p, "rb").read()
            where = p
        else:
            data = bytes(image)
            where = "the firmware image"
        if len(data) != BIOS_SIZE:
            raise ValueError(f"{where}: {len(data)} bytes; a BIOS image is exactly {BIOS_SIZE} bytes "
                             f"(64 KiB, mapped at F0000-FFFFF)")
        if len(self._state.mem) < BIOS_BASE + BIOS_SIZE:
            raise ValueError(f"a BIOS needs at least 1 MiB of guest RAM, this machine has "
                             f"{len(self._state.mem) // 1024} KiB")
        from devices.chips.layout import ROM_LOCKED
        self.board.dev[ROM_LOCKED] = 0
        self.memory.write(BIOS_BASE, data)
        self.board.dev[ROM_LOCKED] = 1
        self.firmware = data

    def attach_disk(self, path, *, writable=False):
        """A raw disk image as the ATA primary master (ports 0x1F0-0x1F7,
        IRQ 14).  Guest writes go to a private copy-on-write map: the file
        is never changed unless ``writable`` is set.  The controller starts
        from its reset state; the CPU is not touched."""
        import os
        p = os.fspath(path)
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: no such disk image")
        size = os.path.getsize(p)
        if size == 0 or size % 512:
            raise ValueError(f"{p}: {size} bytes is not a whole number of 512-byte sectors "
                             f"(expected a raw disk image)")
        data = np.memmap(p, dtype=np.uint8, mode="r+" if writable else "c")
        self._state = self._state._replace(disk=np.asarray(data))
        self._disk_map = data
        self.disk_path = p
        self.board.reset_disk(len(data) // 512)

    def attach_floppy(self, path, *, writable=False):
        """A floppy image (160 KB to 2.88 MB) as drive A:, served to the BIOS
        through the firmware disk port (devices/host/firmware_disk.py).
        Writes go to a private copy-on-write map unless ``writable``.  The
        CMOS floppy type and equipment bytes say the drive is there."""
        from devices.host.firmware_disk import FirmwareDisk, PORTS
        if self.floppy is None:
            device = FirmwareDisk(self)
            device.insert(0, path, writable=writable)      # checks the image before wiring anything
            self.board.attach(device, PORTS)
            self.floppy = device
        else:
            self.floppy.insert(0, path, writable=writable)
        cmos_type = self.floppy.geometry(0)[3]
        self.board.set_cmos(0x10, cmos_type << 4)            # drive A: type in the high nibble
        self.board.set_cmos(0x14, self.board.cmos(0x14) | 0x01)

    def set_boot_order(self, order):
        """Which drives the BIOS tries, in order: a string of "a" (floppy)
        and "c" (hard disk), as QEMU's -boot takes it.  Kept in CMOS 3Dh."""
        codes = {"a": 1, "c": 2}
        order = str(order).lower()
        if not 1 <= len(order) <= 2 or any(ch not in codes for ch in order) or len(set(order)) != len(order):
            raise ValueError(f"boot order {order!r}: expected 'a', 'c', 'ac' or 'ca' "
                             f"(a = floppy, c = hard disk)")
        value = 0
        for i, ch in enumerate(order):
            value |= codes[ch] << (4 * i)
        self.board.set_cmos(0x3D, value)

    def trace(self, max_instructions=1000, *, start=None, end=None, cpl=None, first=None, last=None):
        """Run up to ``max_instructions`` one at a time and return what
        happened as emu.trace.TraceRecord objects (print them for a trace):
        each instruction with its address, bytes, disassembly and the
        registers and flags it changed, and the interrupts, exceptions and
        port I/O around them.  Filters: linear address range [start, end),
        privilege level ``cpl``, the ``first`` or ``last`` N instructions."""
        from emu.trace import Tracer
        return Tracer(self).run(max_instructions, start=start, end=end, cpl=cpl, first=first, last=last)

    def page_walk(self, linear, access="read", user=None):
        """Explain how the MMU translates ``linear`` now: each paging level's
        entry and the bits that decide, then the physical address or the
        #PF it would raise (emu.debug.PageWalk; prints as text, shows as HTML
        in a notebook).  Reads only: no A/D bits are set."""
        from emu.debug import page_walk
        return page_walk(self, linear, access, user)

    def disassemble(self, linear=None, count=10, bits=None):
        """``count`` instructions from a linear address (default CS:EIP)."""
        from emu.debug import disassemble
        if linear is None:
            c = self._state.cpu
            linear = int(c[L.SEG_SLOTS + L.CS * L.SEG_STRIDE + L.SEG_BASE]) + int(c[L.EIP])
        return disassemble(self, linear, count, bits)

    @property
    def instructions_retired(self):
        """Instructions retired since power-on."""
        return int(self._state.cpu[L.ICOUNT])

    def reset(self):
        """Power-on reset (SDM Vol. 3, 9.1.1, table 9-1): real mode,
        CS = F000 with base FFFF0000, EIP = FFF0, EDX = processor signature."""
        c = self._state.cpu
        policy = int(c[L.UNDEFINED_FLAGS])          # a property of the processor: kept
        threshold = int(c[L.JIT_THRESHOLD])           # a setting of the machine: kept
        c[:] = 0
        c[L.UNDEFINED_FLAGS] = policy
        c[L.JIT_THRESHOLD] = threshold
        for seg in range(8):
            s = L.SEG_SLOTS + seg * L.SEG_STRIDE
            c[s + L.SEG_LIMIT] = 0xFFFF
            c[s + L.SEG_ATTR] = L.ATTR_REAL_DATA
        cs = L.SEG_SLOTS + L.CS * L.SEG_STRIDE
        c[cs + L.SEG_SEL] = 0xF000
        c[cs + L.SEG_BASE] = 0xFFFF0000
        c[cs + L.SEG_ATTR] = L.ATTR_REAL_CODE
        c[L.SEG_SLOTS + L.LDTR * L.SEG_STRIDE + L.SEG_ATTR] = 0x82
        c[L.SEG_SLOTS + L.TR * L.SEG_STRIDE + L.SEG_ATTR] = 0x8B
        c[L.EIP] = 0xFFF0
        c[L.EFLAGS] = L.FLAG_RESERVED1
        c[L.EDX] = RESET_EDX_SIGNATURE
        c[L.CR0] = L.CR0_ET | L.CR0_CD | L.CR0_NW
        c[L.IDTR_LIMIT] = 0x3FF
        c[L.GDTR_LIMIT] = 0xFFFF
        c[L.A20_MASK] = 0xFFFFFFFF
        c[L.RAM_SIZE] = len(self._state.mem)
        c[L.FAULT] = -1
        c[L.FAULT_ERR] = -1
        c[L.DELIVERING] = -1
        self.board.reset(len(self._state.mem), len(self._state.disk) // 512)
        self._invalidate_decoded()

    # --- options ------------------------------------------------------------------

    @property
    def undefined_flags(self):
        """How the flags the SDM leaves undefined are set (after MUL, DIV,
        BSF, shifts by more than 1 ...): "intel" (the default, matching the
        GenuineIntel CPUID), "amd", or "zero".  Setting "host" picks the
        host CPU's vendor."""
        return L.UNDEF_NAMES[int(self._state.cpu[L.UNDEFINED_FLAGS])]

    @undefined_flags.setter
    def undefined_flags(self, policy):
        if policy == "host":
            policy = host_cpu_vendor()
        if policy not in L.UNDEF_NAMES:
            raise ValueError(f"undefined_flags must be one of host, {', '.join(L.UNDEF_NAMES)}; not {policy!r}")
        self._state.cpu[L.UNDEFINED_FLAGS] = L.UNDEF_NAMES.index(policy)

    @property
    def deliver_exceptions(self):
        """True: guest exceptions go through the IVT/IDT as on hardware.
        False: the run stops with an ``exception`` exit, nothing delivered."""
        return not self._option(L.OPT_STOP_ON_EXCEPTION)

    @deliver_exceptions.setter
    def deliver_exceptions(self, value):
        self._set_option(L.OPT_STOP_ON_EXCEPTION, not value)

    def _option(self, bit):
        return bool(int(self._state.cpu[L.OPTIONS]) & bit)

    def _set_option(self, bit, on):
        c = self._state.cpu
        c[L.OPTIONS] = (int(c[L.OPTIONS]) | bit) if on else (int(c[L.OPTIONS]) & ~bit)

    @property
    def fast_path(self):
        """True (the default): runs of common instructions (MOV, ALU, Jcc,
        CALL/RET, PUSH/POP ...) skip the generic operand machinery
        (emu/core/fastpath.py).  False: every instruction takes the generic
        path; the state after any run is the same either way, only slower."""
        return not self._option(L.OPT_NO_FAST_PATH)

    @fast_path.setter
    def fast_path(self, value):
        self._set_option(L.OPT_NO_FAST_PATH, not value)

    @property
    def jit(self):
        """True (the default): runs of fast-tier instructions that got hot
        are compiled to machine code (emu/blocks.py) and called instead of
        interpreted.  False: the fast tier interprets them.  The state after
        any run is the same either way; only the decode-cache counters may
        differ."""
        return int(self._state.cpu[L.JIT_THRESHOLD]) > 0

    @jit.setter
    def jit(self, value):
        self._state.cpu[L.JIT_THRESHOLD] = L.JIT_DEFAULT_THRESHOLD if value else 0

    @property
    def a20(self):
        """The A20 gate: when closed (False), physical address bit 20 is
        forced to 0, as on a PC (the 8042 and port 92h drive it later)."""
        return int(self._state.cpu[L.A20_MASK]) & (1 << 20) != 0

    @a20.setter
    def a20(self, enabled):
        self._state.cpu[L.A20_MASK] = 0xFFFFFFFF if enabled else 0xFFEFFFFF
        self.board.note_a20(enabled)
        self._invalidate_decoded()

    # --- running --------------------------------------------------------------------

    def run_cases(self, cases, *, code_at, window_at, eip=None):
        """Run a batch of one-instruction cases inside the jitted loop, each
        from its own registers, flags, code and data window; the outcomes.
        See emu.batch (``new_cases`` makes the array of cases)."""
        from emu.batch import run_cases
        return run_cases(self, cases, code_at, window_at, eip)

    def step(self):
        """Execute exactly one instruction (a whole REP instruction is one)."""
        return self.run(max_instructions=1)

    def run(self, max_instructions=None):
        """Run until an exit: ``max_instructions`` reached ("budget"), HLT,
        a stopped exception, shutdown, an unserved port, or a breakpoint."""
        if max_instructions is not None and type(max_instructions) is not int:
            if isinstance(max_instructions, bool) or not isinstance(max_instructions, int):
                raise ValueError(f"max_instructions must be a non-negative int, not {max_instructions!r}")
            max_instructions = int(max_instructions)
        if max_instructions is not None and max_instructions < 0:
            raise ValueError(f"max_instructions must be a non-negative int, not {max_instructions!r}")
        core_run = _run_entry()
        state = self._state
        c = state.cpu
        start = c.item(_ICOUNT)
        remaining = max_instructions
        first = True
        board = self.board
        host = board.host_clock
        counts = self.exit_counts
        while True:
            chunk = (1 << 62) if remaining is None else remaining
            if chunk == 0:
                return Exit("budget", c.item(_ICOUNT) - start)
            if host:
                chunk = min(chunk, HOST_CLOCK_SLICE)
                board.follow_host_clock()
            pending = self._blocks_pending
            if pending:
                # blocks compile in the background: stop now and then to put them in
                chunk = min(chunk, _INSTALL_SLICE)
            before = c.item(_ICOUNT)
            reason = core_run(state, chunk, first)
            first = False
            board.drain()
            if pending:
                _install_ready(state, pending)
            retired = c.item(_ICOUNT) - before
            if remaining is not None:
                # count attempts like the loop does: retired instructions bound it below.  An
                # instruction that left for a port access has not retired: it runs again once
                # the port is served and still belongs to this budget (one step = one IN/OUT)
                if reason == _EXIT_COMPILE:
                    used = c.item(_JIT_ATTEMPTS)           # the loop's attempts, as it counts its budget
                else:
                    used = retired if reason == _EXIT_IO else max(1, retired)
                remaining = max(0, remaining - used)
            name = _EXIT_NAMES[reason]
            counts[name] = counts.get(name, 0) + 1
            if reason == _EXIT_COMPILE:
                _serve_request(state, self._blocks_pending)   # a block got hot (emu/blocks.py)
                c[L.EXIT_REASON] = _EXIT_BUDGET     # as the loop leaves it when the budget ends here
                continue
            if reason == _EXIT_BUDGET:
                if remaining is None or remaining:      # None: a slice of an endless run
                    continue
                return Exit(name, c.item(_ICOUNT) - start)
            if reason == _EXIT_IO and self._serve_io():
                first = True      # the resumed instruction is not stopped again by its breakpoint
                continue
            if reason == L.EXIT_SERIAL:
                continue          # host input refilled by board.drain(); keep going
            if reason == L.EXIT_MMIO:
                self._serve_mmio()
                continue
            if host and reason == L.EXIT_HALT and c[L.EFLAGS] & L.FLAG_IF:
                wait = board.host_wait_ns()
                if wait is not None:
                    # halted on the host clock: sleep until the next device event
                    time.sleep(min(wait, 50_000_000) / 1e9)
                    if self.idle_hook is not None:
                        self.idle_hook()
                    continue
            done = c.item(_ICOUNT) - start
            kind = name
            if reason == L.EXIT_EXCEPTION:
                err = int(c[L.EXIT_ERROR])
                return Exit(kind, done, vector=int(c[L.EXIT_VECTOR]), error_code=None if err < 0 else err)
            if reason == L.EXIT_IO:
                return Exit(kind, done, port=int(c[L.IO_PORT]))
            if reason == L.EXIT_BREAKPOINT:
                return Exit(kind, done, address=int(c[L.EXIT_ARG]))
            if reason == L.EXIT_DEBUG_EXIT:
                return Exit(kind, done, status=int(c[L.EXIT_ARG]))
            if reason == L.EXIT_WATCH:
                hit, where, size = int(c[L.WATCH_HIT_KIND]), int(c[L.WATCH_HIT_ADDR]), int(c[L.WATCH_HIT_SIZE])
                if hit & L.WATCH_PORT:
                    return Exit(kind, done, port=where, size=size,
                                access="out" if hit & L.WATCH_WRITE else "in")
                return Exit(kind, done, address=where, size=size,
                            access="write" if hit & L.WATCH_WRITE else "read")
            return Exit(kind, done)

    def _serve_mmio(self):
        """Serve an access to a Python device's MMIO range; the instruction
        runs again and finds the result."""
        c = self._state.cpu
        address, size = int(c[L.MMIO_ADDR]), int(c[L.MMIO_SIZE])
        device = self.board.mmio_device(address)
        if int(c[L.MMIO_DIR]):
            if device is not None:
                device.write(address, size, int(c[L.MMIO_DATA]))
            c[L.MMIO_WRITE_DONE] = address + 1
        else:
            value = device.read(address, size) if device is not None else (1 << (8 * size)) - 1
            c[L.MMIO_READ_VALUE] = int(value) & ((1 << (8 * size)) - 1)
            c[L.MMIO_READ_READY] = address + 1
        c[L.MMIO_SERVED] = 1

    def _serve_io(self):
        """Serve a port access from Python: a registered handler, else the
        port is unassigned (reads all ones, writes ignored)."""
        c = self._state.cpu
        if c[L.IO_RETRY]:
            # a chip's transmit ring was full: it has been drained, run the instruction again
            c[L.IO_RETRY] = 0
            self.board.drain()
            return True
        port, size, is_out = int(c[L.IO_PORT]), int(c[L.IO_SIZE]), int(c[L.IO_DIR])
        handler = self.board.python_devices.get(port)
        if handler is not None:
            key = type(handler).__name__
            self.io_bytes[key] = self.io_bytes.get(key, 0) + size
        if is_out:
            if handler is not None:
                handler.write(port, size, int(c[L.IO_DATA]))
        else:
            value = handler.read(port, size) if handler is not None else (1 << (8 * size)) - 1
            c[L.IO_DATA] = value & ((1 << (8 * size)) - 1)
        c[L.IO_PENDING] = 1
        return True

    def nmi(self):
        """Raise the NMI line: the CPU takes interrupt 2 at the next
        instruction boundary (unless an NMI handler is still running, or
        port 0x70 bit 7 masks NMI)."""
        self._state.cpu[L.NMI_PENDING] = 1

    @property
    def virtual_time_ns(self):
        """Virtual time since power-on, in nanoseconds."""
        return self.board.virtual_time_ns

    # --- breakpoints --------------------------------------------------------------------

    def add_breakpoint(self, linear_address):
        c = self._state.cpu
        n = int(c[L.BP_COUNT])
        if n >= L.BP_MAX:
            raise ValueError(f"at most {L.BP_MAX} breakpoints at once")
        c[L.BP_FIRST + n] = linear_address & 0xFFFFFFFF
        c[L.BP_COUNT] = n + 1

    def remove_breakpoint(self, linear_address):
        c = self._state.cpu
        bps = [int(c[L.BP_FIRST + i]) for i in range(int(c[L.BP_COUNT]))]
        if linear_address not in bps:
            raise ValueError(f"no breakpoint at {linear_address:#x}")
        bps.remove(linear_address)
        for i, a in enumerate(bps):
            c[L.BP_FIRST + i] = a
        c[L.BP_COUNT] = len(bps)

    _WATCH_KINDS = {"read": L.WATCH_READ, "write": L.WATCH_WRITE, "access": L.WATCH_READ | L.WATCH_WRITE,
                    "port": L.WATCH_PORT}

    @property
    def watchpoints(self):
        """The watchpoints set: [(address or port, length, "read"|"write"|"access"|"port")]."""
        c = self._state.cpu
        names = {v: k for k, v in self._WATCH_KINDS.items()}
        out = []
        for i in range(int(c[L.WATCH_COUNT])):
            w = L.WATCH_FIRST + L.WATCH_STRIDE * i
            out.append((int(c[w]), int(c[w + 1] - c[w]), names[int(c[w + 2])]))
        return out

    def add_watchpoint(self, address, length=1, access="write"):
        """Stop the run (an Exit of kind "watch") after an instruction that
        reads ("read"), writes ("write") or does either ("access") any byte
        of the linear range [address, address + length), or that uses one
        of the I/O ports [address, address + length) with IN, OUT, INS or
        OUTS ("port").  The core checks every data access, so a watched run
        keeps its speed; instruction fetches do not count.  At most
        WATCH_MAX (8) at once."""
        if access not in self._WATCH_KINDS:
            raise ValueError(f"access must be 'read', 'write', 'access' or 'port', not {access!r}")
        top = 0xFFFF if access == "port" else 0xFFFFFFFF
        what = "an I/O port is 0 to 0xFFFF" if access == "port" else "a linear address is 0 to 0xFFFFFFFF"
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= top:
            raise ValueError(f"{what}, not {address!r}")
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 1 << 20:
            raise ValueError(f"a watchpoint covers 1 to {1 << 20} bytes or ports, not {length!r}")
        current = self.watchpoints
        if len(current) >= L.WATCH_MAX:
            raise ValueError(f"at most {L.WATCH_MAX} watchpoints at once")
        self._set_watchpoints(current + [(address, length, access)])

    def remove_watchpoint(self, address, length=None, access=None):
        """Remove the watchpoint(s) at ``address`` (matching ``length`` and
        ``access`` when given)."""
        current = self.watchpoints
        keep = [w for w in current if not (w[0] == address and length in (None, w[1])
                                            and access in (None, w[2]))]
        if len(keep) == len(current):
            raise ValueError(f"no watchpoint at {address:#x}")
        self._set_watchpoints(keep)

    def _set_watchpoints(self, watches):
        c = self._state.cpu
        for i, (address, length, access) in enumerate(watches):
            w = L.WATCH_FIRST + L.WATCH_STRIDE * i
            c[w], c[w + 1], c[w + 2] = address, address + length, self._WATCH_KINDS[access]
        c[L.WATCH_COUNT] = len(watches)

    # --- snapshots ------------------------------------------------------------------------

    def snapshot(self):
        """An exact copy of the machine's state.  The dirty-page log starts
        again from here, so ``restore`` of this snapshot copies back only the
        pages written since (fast resets for fuzzing)."""
        s = self._state
        self.board.drain()
        snap = Snapshot(cpu_for_snapshot(s.cpu), s.mem.copy(), s.pm.copy(), s.dev.copy())
        s.pm[:] &= ~PM_DIRTY
        self._dirty_base = snap
        return snap

    def clone(self, count=None):
        """A new Machine in exactly this one's state whose RAM is shared
        copy-on-write (emu/clone.py): it costs the host memory only for the
        pages it writes, and its writes and this machine's are invisible to
        each other.  ``count``: a list of that many clones.  Call it while
        the machine is stopped.  Devices written in Python and disk images
        are not cloned (refused with emu.clone.CloneError)."""
        from emu.clone import clone
        return clone(self, count)

    def save(self, path):
        """Save the whole machine to a file (versioned, checksummed; only
        pages that are not all zero are stored).  Returns the number of
        pages written.  Python devices and disk contents are not included."""
        from emu.snapshot import save
        return save(self, path)

    @classmethod
    def load(cls, path):
        """A Machine in the state ``save`` wrote to ``path``; a corrupt,
        truncated or foreign file raises emu.snapshot.SnapshotError and
        nothing is built."""
        from emu.snapshot import load
        return load(path, cls)

    def restore(self, snapshot):
        if not isinstance(snapshot, Snapshot):
            raise TypeError(f"restore() takes a Snapshot, not {type(snapshot).__name__}")
        s = self._state
        if snapshot.mem.shape != s.mem.shape:
            raise ValueError(f"snapshot has {len(snapshot.mem)} bytes of RAM, this machine "
                             f"{len(s.mem)}: restore it into a Machine of the same size")
        if getattr(self, "_dirty_base", None) is snapshot:
            # only the pages written since this snapshot (or its last restore)
            # differ: copy those back, and give them new generations so that
            # instructions decoded from their later contents are not reused
            dirty = np.flatnonzero(s.pm & PM_DIRTY)
            if len(dirty):
                s.mem.reshape(-1, PAGE)[dirty] = snapshot.mem.reshape(-1, PAGE)[dirty]
                s.pm[dirty] = (s.pm[dirty] + PM_GEN_ONE) & ~(PM_CODE | PM_DIRTY)
            s.tlb[:, 0] = 0
        else:
            s.mem[:] = snapshot.mem
            s.pm[:] = snapshot.pm & ~PM_DIRTY
            self._invalidate_decoded()
            self._dirty_base = snapshot
        s.cpu[:] = snapshot.cpu
        s.dev[:] = snapshot.dev

    # --- internals ------------------------------------------------------------------------

    def _invalidate_decoded(self):
        """Drop decoded instructions and cached translations (Python changed
        state behind the CPU's back: registers, memory, a snapshot)."""
        from emu import guestmem
        if not guestmem.discard(self._state.ic):    # an empty cache is all zeros: give its pages back
            self._state.ic[:, L.D_TAG] = 0
        self._state.tlb[:, 0] = 0

    def _note_python_write(self, address, length):
        self._state.tlb[:, 0] = 0     # page tables may have changed under the TLB
        pm = self._state.pm
        first, last = address // PAGE, (address + max(length, 1) - 1) // PAGE
        code = (pm[first:last + 1] & 1) != 0
        pm[first:last + 1] = np.where(code, (pm[first:last + 1] + 256) & ~1, pm[first:last + 1]) | 2

    def __repr__(self):
        mode = "protected" if int(self._state.cpu[L.CR0]) & 1 else "real"
        return f"<Machine {len(self._state.mem) // 1024} KiB, {mode} mode, {self.cpu.cs:#06x}:{self.cpu.eip:#x}>"
