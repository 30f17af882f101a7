"""The ``emu`` command line.

    emu demo                                   boot the bundled demo guest
    emu run IMAGE                              a disk, floppy, boot sector or kernel (detected)
    emu run --flat PROGRAM                     a raw real-mode program at 0000:7C00, no firmware
    emu run --kernel kernel.elf [options]      a Multiboot (v1) ELF32 kernel, as
                                               qemu-system-i386 -kernel does

Exit status: what the guest wrote to the debug-exit port (0xF4) as
(value << 1) | 1, like QEMU's isa-debug-exit; 0 when the guest halts for
good, shuts down (triple fault) or resets; 1 when the BIOS finds nothing to
boot; 124 when --max-instructions ran out; 2 for bad input (a missing or
malformed image, a bad option).
"""
import argparse
import os
import pathlib
import re
import select
import socket
import sys
import time

from devices.host.firmware_disk import floppy_geometry

DEMO_IMAGE = pathlib.Path(__file__).resolve().parent.parent / "firmware" / "demo" / "demo86.img"
DEBUG_CONSOLE_PORT = 0xE9      # Bochs/QEMU-style debug console: OUT writes a character
BOOT_ADDRESS = 0x7C00
CHUNK = 1_000_000              # instructions between looks at host input
EXIT_BUDGET = 124
EXIT_NO_BOOT = 1               # the BIOS found no bootable drive


class UsageError(Exception):
    pass


# --- serial back ends ------------------------------------------------------------------

class Serial:
    """Where COM1 goes: ``write`` takes guest output, ``poll`` returns host
    input waiting now (b"" if none, None once the input has ended)."""

    def write(self, data):
        pass

    def poll(self):
        return None

    def wait(self, timeout):
        """Block until input may be waiting (or timeout); False if input ended."""
        return False

    def close(self):
        pass


class StreamSerial(Serial):
    """Output to a binary stream; input from a file descriptor (stdin)."""

    def __init__(self, out, in_fd=None):
        self.out = out
        self.in_fd = in_fd
        self._saved_tty = None
        if in_fd is not None and os.isatty(in_fd):
            import termios
            import tty
            self._saved_tty = termios.tcgetattr(in_fd)
            tty.setcbreak(in_fd)

    def write(self, data):
        self.out.write(data)
        self.out.flush()

    def _readable(self, timeout):
        try:
            r, _, _ = select.select([self.in_fd], [], [], timeout)
        except (OSError, ValueError):
            self.in_fd = None
            return False
        return bool(r)

    def poll(self):
        if self.in_fd is None:
            return None
        if not self._readable(0):
            return b""
        data = os.read(self.in_fd, 4096)
        if not data:
            self.in_fd = None
            return None
        return data

    def wait(self, timeout):
        if self.in_fd is None:
            return False
        self._readable(timeout)
        return self.in_fd is not None

    def close(self):
        if self._saved_tty is not None:
            import termios
            termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved_tty)


class TcpSerial(Serial):
    """COM1 over a TCP connection to HOST:PORT (we connect as the client)."""

    def __init__(self, host, port):
        try:
            self.sock = socket.create_connection((host, port), timeout=10)
        except OSError as e:
            raise UsageError(f"--serial tcp:{host}:{port}: cannot connect ({e})")
        self.sock.setblocking(False)
        self.open = True

    def write(self, data):
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        except OSError:
            pass
        self.sock.setblocking(False)

    def poll(self):
        if not self.open:
            return None
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.open = False
            return None
        return data

    def wait(self, timeout):
        if self.open:
            select.select([self.sock], [], [], timeout)
        return self.open

    def close(self):
        self.sock.close()


def open_serial(spec, stdout):
    if spec == "stdio":
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            fd = None
        return StreamSerial(stdout, fd)
    if spec == "none":
        return Serial()
    if spec.startswith("file:"):
        path = spec[5:]
        try:
            return StreamSerial(open(path, "wb"))
        except OSError as e:
            raise UsageError(f"--serial {spec}: cannot open {path} for writing ({e.strerror})")
    if spec.startswith("tcp:"):
        m = re.fullmatch(r"tcp:(.*):(\d+)", spec)
        if not m:
            raise UsageError(f"--serial {spec}: expected tcp:HOST:PORT")
        return TcpSerial(m.group(1) or "127.0.0.1", int(m.group(2)))
    raise UsageError(f"--serial {spec}: expected stdio, none, file:PATH or tcp:HOST:PORT")


class ConsolePort:
    """Port 0xE9: bytes the guest writes go where the serial console goes."""

    def __init__(self, sink):
        self.sink = sink

    def write(self, port, size, value):
        self.sink(value.to_bytes(size, "little"))

    def read(self, port, size):
        return 0xE9 if size == 1 else (1 << (8 * size)) - 1


# --- images ---------------------------------------------------------------------------------

def parse_memory(text):
    """'64M', '1G', '65536K', '64' (MiB) -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KkMmGg]?)[iI]?[bB]?\s*", str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size (examples: 64M, 1G, 512K)")
    n = int(m.group(1))
    unit = {"": 1 << 20, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return n * unit


BIOS_IMAGE = pathlib.Path(__file__).resolve().parent.parent / "firmware" / "bios" / "bios.bin"
# raw floppy images, by size (160 KiB to 2.88 MB)
BOOT_SIGNATURE = b"\x55\xaa"
ELF_MAGIC = b"\x7fELF"


def detect_image(path):
    """What a file given to `emu run` is: ("kernel", why), ("floppy", why) or
    ("disk", why); anything else is refused with what was expected."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such file (expected a disk image, a floppy image, a boot sector "
                         f"or a Multiboot kernel)")
    size = p.stat().st_size
    if size == 0:
        raise UsageError(f"{p}: the file is empty (expected a disk image, a floppy image, a boot sector "
                         f"or a Multiboot kernel)")
    with open(p, "rb") as f:
        head = f.read(512)
    if head.startswith(ELF_MAGIC):
        return "kernel", "an ELF file: booting it as a Multiboot kernel"
    if floppy_geometry(size) is not None:
        return "floppy", f"a {size // 1024} KiB floppy image"
    if size % 512 == 0 and head[510:512] == BOOT_SIGNATURE:
        if size == 512:
            return "disk", "a boot sector (one 512-byte sector with the 55AA signature), as a hard disk"
        return "disk", f"a hard disk image ({size // 512} sectors, bootable)"
    if size % 512 == 0:
        raise UsageError(f"{p}: a {size}-byte image whose first sector has no boot signature "
                         f"(55AA at offset 510): it is not bootable")
    raise UsageError(f"{p}: {size} bytes is not a boot sector, a disk image (whole 512-byte "
                     f"sectors), a floppy image or a Multiboot kernel; for a raw real-mode program "
                     f"loaded at 0000:7C00 use --flat")


def load_boot_image(path):
    """A flat real-mode program of at most 64 KiB, run from 0000:7C00."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such file (expected a flat real-mode image, e.g. a boot sector)")
    data = p.read_bytes()
    if not data:
        raise UsageError(f"{p}: the file is empty (expected a flat real-mode image, e.g. a boot sector)")
    if len(data) > 0x10000:
        raise UsageError(f"{p}: {len(data)} bytes is too big for a flat real-mode image at 0000:7C00 "
                         f"(at most 64 KiB); for a kernel use --kernel")
    return data


def flat_machine(data, memory_size, clock="virtual"):
    from emu import Machine
    m = Machine(memory_size=memory_size, clock=clock)
    m.memory.write(BOOT_ADDRESS, data)
    m.cpu.cs = 0
    m.cpu.ip = BOOT_ADDRESS
    m.cpu.ds = m.cpu.es = m.cpu.ss = 0
    m.cpu.sp = BOOT_ADDRESS
    m.cpu.dl = 0x80
    return m


def firmware_machine(hda, floppy, memory_size, clock, writable, boot):
    """Power on a PC with the bundled BIOS and the given disks."""
    from emu import Machine
    if not BIOS_IMAGE.is_file():
        raise UsageError(f"booting disks needs the BIOS image {BIOS_IMAGE}, which is missing from "
                         f"this installation")
    if boot:
        boot = {"a": "ac", "c": "ca"}.get(boot, boot)          # the named drive first, then the other
    try:
        return Machine.pc(hda, floppy=floppy, memory_size=max(memory_size, 1 << 20), boot=boot,
                          writable=writable, clock=clock, bios=BIOS_IMAGE)
    except (OSError, ValueError) as e:
        raise UsageError(str(e))


def kernel_machine(args, memory_size):
    from emu import Machine
    from emu.loaders import ImageError, qemu_style_cmdline
    # module strings and the command line as qemu-system-i386 -kernel passes them
    modules = [(path, path) for path in (args.module or [])]
    try:
        return Machine.from_multiboot(args.kernel, memory_size=memory_size,
                                      cmdline=qemu_style_cmdline(args.kernel, args.append or ""),
                                      modules=modules, clock=args.clock)
    except ImageError as e:
        raise UsageError(str(e))


# --- running -----------------------------------------------------------------------------------

def run_guest(m, serial, max_instructions, reboot=False, gdb=None):
    """Run until the guest ends, feeding host input to COM1 between chunks
    (and, on the host clock, while the guest sleeps in HLT).  With
    ``reboot``, a guest that resets the machine starts again from the BIOS.
    With ``gdb`` (an emu.gdbstub.GdbStub), a debugger that connects takes
    over until it detaches."""
    left = max_instructions

    def feed():
        data = serial.poll()
        if data:
            m.com1.send(data)
    m.idle_hook = feed
    while True:
        if gdb is not None and not gdb.detached and (gdb.conn is not None or gdb.accept(timeout=0)):
            print("[visor86] gdb connected", file=sys.stderr)
            e = gdb.serve()
            if e is not None:
                return e
            print("[visor86] gdb detached; the guest runs on", file=sys.stderr)
        chunk = CHUNK if left is None else min(CHUNK, left)
        e = m.run(max_instructions=chunk)
        feed()
        if left is not None:
            left -= e.instructions
        if e.kind == "budget":
            if left is not None and left <= 0:
                return e
            continue
        if e.kind == "reset" and reboot:
            print("\n[visor86] the guest reset the machine: rebooting", file=sys.stderr)
            m.reset()
            continue
        if e.kind == "halt" and m.cpu.eflags & (1 << 9):
            # waiting for an interrupt that only host input can bring
            if m.com1.input_waiting:
                continue
            if serial.wait(0.5):
                continue
        return e


def report(e, seconds, instructions):
    mips = instructions / seconds / 1e6 if seconds > 0 else 0.0
    what = {"halt": "halted", "shutdown": "shut down (triple fault)", "reset": "reset the machine",
            "debug_exit": f"wrote the debug-exit port (status {e.status})",
            "budget": "ran out of --max-instructions", "exception": f"stopped on exception {e.vector}",
            "breakpoint": "stopped at a breakpoint", "io": "stopped on an unserved port"}.get(e.kind, e.kind)
    print(f"\n[visor86] guest {what} after {instructions} instructions "
          f"({seconds:.2f} s, {mips:.1f} MIPS)", file=sys.stderr)


def exit_status(e):
    if e.kind == "debug_exit":
        return e.status & 0xFF
    if e.kind == "budget":
        return EXIT_BUDGET
    if e.kind == "exception":
        return 1
    return 0


def build_machine(args):
    """The machine `emu run` and `emu debug` boot: what IMAGE is decides."""
    if args.kernel and args.image:
        raise UsageError("give either an IMAGE or --kernel, not both")
    hda = getattr(args, "hda", None)
    floppy = getattr(args, "floppy", None)
    if not args.kernel and not args.image and not hda and not floppy:
        raise UsageError("nothing to run: give an IMAGE, --kernel FILE, --hda DISK or --floppy IMAGE")
    memory_size = args.memory
    clock = getattr(args, "clock", "virtual")
    if args.image and not getattr(args, "flat", False):
        kind, why = detect_image(args.image)
        print(f"[visor86] {args.image}: {why}", file=sys.stderr)
        if kind == "kernel":
            args.kernel = args.image
        elif kind == "floppy":
            floppy = args.image
        else:
            hda = args.image
    if not args.kernel and (args.append or args.module):
        raise UsageError("--append, --initrd and --module go with --kernel")
    if args.kernel:
        return kernel_machine(args, memory_size)
    if hda or floppy:
        return firmware_machine(hda, floppy, memory_size, clock, getattr(args, "writable", False),
                                getattr(args, "boot", None))
    return flat_machine(load_boot_image(args.image), memory_size, clock)


def cmd_debug(args, stream=None):
    """emu debug IMAGE: the console debugger, commands from stdin."""
    from emu.debugger import Debugger, elf_symbols
    m = build_machine(args)
    out = stream if stream is not None else sys.stdout
    m.com1.sink = lambda data: out.write(data.decode("latin-1"))
    symbols = elf_symbols(args.kernel) if args.kernel else {}
    dbg = Debugger(m, symbols, out)
    print(f"[visor86] debugging {args.image or args.kernel}: type help for the commands"
          + (f" ({len(symbols)} symbols)" if symbols else ""), file=sys.stderr)
    dbg.repl(sys.stdin)
    return 0


def cmd_run(args, stream=None):
    out = stream if stream is not None else sys.stdout
    binary_out = getattr(out, "buffer", None)
    if binary_out is None:
        class TextBridge:
            def write(self, data):
                out.write(data.decode("latin-1"))

            def flush(self):
                out.flush()
        binary_out = TextBridge()
    m = build_machine(args)
    screen = getattr(args, "screen", None)
    if screen and screen != "-" and not pathlib.Path(screen).resolve().parent.is_dir():
        raise UsageError(f"--screen {screen}: the directory {pathlib.Path(screen).parent} does not exist")
    serial = open_serial(args.serial, binary_out)
    m.com1.sink = serial.write
    m.port_handlers[DEBUG_CONSOLE_PORT] = ConsolePort(serial.write)
    with_bios = m.firmware is not None
    gdb = None
    if getattr(args, "gdb", None):
        from emu.gdbstub import GdbStub
        try:
            gdb = GdbStub(m, args.gdb)
        except OSError as e:
            raise UsageError(f"--gdb {args.gdb}: cannot listen ({e.strerror})")
        print(f"[visor86] gdb stub on port {gdb.port}: in gdb, `target remote :{gdb.port}`", file=sys.stderr)
        if args.wait_gdb:
            print("[visor86] waiting for gdb before the first instruction", file=sys.stderr)
            gdb.accept()              # run_guest serves it before anything runs
    elif getattr(args, "wait_gdb", False):
        raise UsageError("--wait-gdb goes with --gdb tcp::PORT")
    t = time.perf_counter()
    start = m.instructions_retired
    try:
        if getattr(args, "trace", None):
            e = trace_guest(m, serial, args)
        else:
            e = run_guest(m, serial, args.max_instructions, reboot=with_bios, gdb=gdb)
    except KeyboardInterrupt:
        print("\n[visor86] interrupted", file=sys.stderr)
        return 130
    finally:
        serial.close()
        if gdb is not None:
            gdb.shutdown()
        if screen:
            save_screen(m, screen, out)
    report(e, time.perf_counter() - t, m.instructions_retired - start)
    if with_bios and e.kind == "halt" and m.cpu.cs == 0xF000:
        # halted inside the BIOS: INT 18h, nothing could be booted (it said why on the console)
        print("[visor86] the BIOS found nothing it could boot", file=sys.stderr)
        return EXIT_NO_BOOT
    return exit_status(e)


def trace_guest(m, serial, args):
    """--trace: run one instruction at a time, writing a line for each (and
    for interrupts, exceptions and port I/O) to the trace file or stderr (-)."""
    from emu.trace import Tracer
    start = end = None
    if args.trace_range:
        try:
            lo, hi = args.trace_range.split(":")
            start, end = int(lo, 16), int(hi, 16)
        except ValueError:
            raise UsageError(f"--trace-range {args.trace_range}: expected START:END in hex, e.g. 100000:101000")
    out = sys.stderr if args.trace == "-" else None
    try:
        if out is None:
            out = open(args.trace, "w", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--trace {args.trace}: cannot write ({e.strerror})")
    tracer = Tracer(m)
    lines = []
    try:
        for i, record in enumerate(tracer.records(args.max_instructions, start, end, args.trace_cpl,
                                                  args.trace_first)):
            if args.trace_last is not None:
                lines.append(str(record))
                continue
            out.write(str(record) + "\n")
            if i % 10_000 == 0:
                data = serial.poll()
                if data:
                    m.com1.send(data)
        if args.trace_last is not None:
            starts = [i for i, line in enumerate(lines) if not line.startswith(" " * 9)]
            keep = lines[starts[-args.trace_last]:] if len(starts) > args.trace_last else lines
            out.write("\n".join(keep) + ("\n" if keep else ""))
    finally:
        if out is not sys.stderr:
            out.close()
    e = tracer.exit
    if e is None or (e.kind == "budget" and args.max_instructions is None):
        from emu.machine import Exit
        e = Exit("budget", 0)
    return e


def save_screen(m, where, out):
    """--screen: the text screen at exit, as a PNG picture, a text file, or on stdout (-)."""
    if where == "-":
        out.write("\n" + m.screen.text() + "\n")
        out.flush()
        return
    p = pathlib.Path(where)
    try:
        if p.suffix.lower() == ".png":
            m.screen.save_png(p)
        else:
            p.write_text(m.screen.text() + "\n", encoding="utf-8")
    except OSError as e:
        print(f"emu: --screen {where}: cannot write the screen ({e.strerror})", file=sys.stderr)
        return
    print(f"[visor86] screen saved to {p}", file=sys.stderr)


def cmd_demo(args, stream=None):
    if not DEMO_IMAGE.is_file():
        raise UsageError(f"the demo image {DEMO_IMAGE} is missing from this installation")
    print("[visor86] booting the demo guest (the first run compiles the CPU core; later runs start "
          "from the cache). Type at the prompt; 'halt' ends it.", file=sys.stderr)
    args.image = None
    args.hda = str(DEMO_IMAGE)
    args.floppy = None
    args.kernel = None
    args.append = None
    args.module = None
    args.serial = "stdio"
    args.flat = False
    args.writable = False
    args.boot = None
    status = cmd_run(args, stream)
    # the guest's `halt` command leaves through the debug-exit port with 0,
    # which reads as status 1: for the demo that is the normal end
    return 0 if status == 1 else status


def cmd_fuzz(args, stream=None):
    """emu fuzz: a differential campaign against the host CPU or Unicorn, --replay CASE, or --decode."""
    from emu.fuzz.campaign import (campaign, write_cases, replay_case, FuzzError, ORACLES, oracle_classes,
                                   check_classes, check_modes, make_oracle)
    if args.decode or args.host is not None:
        return cmd_fuzz_decode(args, stream)
    out = stream if stream is not None else sys.stdout
    try:
        if args.replay:
            status = 0
            for path in args.replay:
                r = replay_case(path)
                if r.diffs:
                    status = 1
                    print(f"{path}: still diverges from {r.title}: " + "; ".join(r.diffs), file=out)
                elif r.deviation:
                    print(f"{path}: not compared: {r.title} departs from the SDM here ({r.deviation})", file=out)
                elif r.skipped:
                    print(f"{path}: not compared: {r.skipped}", file=out)
                else:
                    print(f"{path}: visor86 and {r.title} agree", file=out)
            return status
        oracle = args.oracle or "host"
        if oracle not in ORACLES:
            raise UsageError(f"--oracle is one of {', '.join(ORACLES)}, not {oracle!r}")
        modes = {None: None, "16": (16,), "32": (32,), "both": (16, 32)}
        if args.mode not in modes:
            raise UsageError(f"--mode is 16, 32 or both, not {args.mode!r}")
        if args.cases < 1:
            raise UsageError("--cases must be at least 1")
        if args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        classes = tuple(c for c in args.classes.split(",") if c) if args.classes is not None \
            else oracle_classes(oracle)
        classes = check_classes(classes, oracle)
        modes = check_modes(modes[args.mode], oracle)
        reference = make_oracle(oracle).short
        tty = sys.stderr.isatty()

        shown = [-1]

        def progress(report):
            done = report.cases
            if not tty:
                # a log gets a line per tenth of the campaign, a terminal a live bar
                tenth = 10 * done // args.cases
                if tenth == shown[0]:
                    return
                shown[0] = tenth
            mine, theirs = report.rates()
            if report.batch_seconds:
                mine = report.cases / report.batch_seconds      # inside the jitted batch loop
            bar = "#" * (30 * done // args.cases)
            line = (f"[{bar:<30}] {done}/{args.cases} cases, {len(report.divergences)} divergences, "
                    f"visor86 {mine:,.0f} cases/s, {reference} {theirs:,.0f} cases/s")
            print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
        report, minimised = campaign(classes, args.cases, args.seed, args.jobs,
                                     progress=None if args.quiet else progress, oracle=oracle, modes=modes,
                                     undefined_flags=args.undefined_flags)
        if tty and not args.quiet:
            print(file=sys.stderr)
        print(report.text([small for small, _ in minimised]), file=out)
        if minimised:
            paths = write_cases(minimised, args.out)
            print(f"\n{len(paths)} minimised cases written to {args.out}/ "
                  f"(emu fuzz --replay {paths[0]})", file=out)
        return 1 if report.divergences else 0
    except FuzzError as e:
        raise UsageError(str(e))


def cmd_fuzz_decode(args, stream=None):
    """emu fuzz --decode: random byte strings decoded by visor86 and capstone."""
    from emu.fuzz.decode import campaign, DecodeFuzzError
    out = stream if stream is not None else sys.stdout
    if not args.decode:
        raise UsageError("--host goes with --decode")
    if args.mode not in (None, "16", "32"):
        raise UsageError(f"--decode takes --mode 16 or 32, not {args.mode!r}")
    if args.oracle is not None:
        raise UsageError("--decode compares with capstone (and the host CPU): it takes no --oracle")
    if args.replay or args.classes or args.jobs != 1:
        raise UsageError("--decode takes --cases, --seed, --mode, --host and --quiet "
                         "(not --replay, --classes or --jobs)")
    tty = sys.stderr.isatty()
    shown = [-1]

    def progress(report, total):
        done = report.strings
        if not tty:
            tenth = 10 * done // total
            if tenth == shown[0]:
                return
            shown[0] = tenth
        bar = "#" * (30 * done // total)
        line = (f"[{bar:<30}] {done}/{total} strings, {len(report.bug_candidates)} bug candidates, "
                f"visor86 {done / max(report.visor86_seconds, 1e-9):,.0f} strings/s")
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
    try:
        report = campaign(args.cases, args.seed, int(args.mode or 32), progress=None if args.quiet else progress,
                          host_cases=args.host)
    except DecodeFuzzError as e:
        raise UsageError(str(e))
    if tty and not args.quiet:
        print(file=sys.stderr)
    print(report.text(), file=out)
    return 1 if report.failed else 0


def cmd_host(args, stream=None):
    """emu host CONFIG.toml: several guests in one hypervisor, a live table."""
    import json
    from emu.hypervisor import Hypervisor, HypervisorError, load_config, format_table
    out = stream if stream is not None else sys.stdout
    files = []
    try:
        threads, slice_, guests = load_config(args.config)
        hv = Hypervisor(threads=args.threads or threads, slice_instructions=slice_)
        for g in guests:
            g = dict(g)
            name = g["name"]
            serial = g.pop("serial", "none")
            if serial == "none":
                sink = lambda data: None                       # noqa: E731
            elif serial == "stdio":
                sink = (lambda n: lambda data: out.write(
                    "".join(f"[{n}] {line}\n" for line in data.decode("latin-1").splitlines())))(name)
            elif serial.startswith("file:"):
                try:
                    f = open(pathlib.Path(args.config).parent / serial[5:], "wb")
                except OSError as e:
                    raise HypervisorError(f"guest {name}: serial {serial}: {e.strerror}")
                files.append(f)
                sink = f.write
            else:
                raise HypervisorError(f"guest {name}: serial is none, stdio or file:PATH, not {serial!r}")
            schedule = {k: g.pop(k) for k in ("weight", "cap", "share", "max_instructions") if k in g}
            g.pop("name")
            hv.create(name, **g, **schedule, serial=sink)
    except HypervisorError as e:
        for f in files:
            f.close()
        raise UsageError(str(e))
    status_path = pathlib.Path(args.status) if args.status else None
    show = args.top or (args.top is None and sys.stderr.isatty())

    def publish(running):
        metrics = hv.metrics()
        if status_path is not None:
            tmp = status_path.with_suffix(status_path.suffix + ".tmp")
            tmp.write_text(json.dumps({"time": time.time(), "running": running, "guests": metrics}, indent=1))
            tmp.replace(status_path)
        return metrics
    t0 = time.monotonic()
    hv.start()
    try:
        while True:
            done = hv.wait(timeout=args.interval)
            if args.seconds is not None and time.monotonic() - t0 >= args.seconds and not done:
                hv.shutdown()
                done = True
            metrics = publish(not done)
            if show and not done:
                sys.stderr.write("\x1b[H\x1b[2J" + format_table(metrics, f"emu host {args.config}: "
                                 f"{time.monotonic() - t0:.0f} s") + "\n")
                sys.stderr.flush()
            if done:
                break
    except KeyboardInterrupt:
        hv.shutdown()
        metrics = publish(False)
    finally:
        for f in files:
            f.close()
    print(format_table(metrics, f"emu host {args.config}: {time.monotonic() - t0:.1f} s"), file=out)
    return 0


def cmd_top(args, stream=None):
    """emu top STATUS.json: the live table of an `emu host --status` file."""
    import json
    from emu.hypervisor import format_table
    out = stream if stream is not None else sys.stdout
    path = pathlib.Path(args.status)
    while True:
        try:
            data = json.loads(path.read_text())
            metrics = data["guests"]
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror} (start `emu host CONFIG --status {path}`)")
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{path} is not an `emu host --status` file")
        table = format_table(metrics, f"{path}: {'running' if data.get('running') else 'finished'}, "
                                      f"{time.strftime('%H:%M:%S', time.localtime(data.get('time', 0)))}")
        if args.once or not data.get("running"):
            print(table, file=out)
            return 0
        if out.isatty():
            out.write("\x1b[H\x1b[2J")
        print(table, file=out, flush=True)
        time.sleep(args.interval)


def build_parser():
    p = argparse.ArgumentParser(prog="emu", description="visor86: an x86 software hypervisor",
                                epilog="exit status: the guest's debug-exit status ((value << 1) | 1 "
                                       "written to port 0xF4), 0 when it halts, shuts down or resets, "
                                       "1 when the BIOS finds nothing to boot, "
                                       "124 when --max-instructions runs out, 2 for bad input")
    from emu import __version__
    p.add_argument("--version", action="version", version=f"visor86 {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="boot the bundled demo guest",
                          description="Boot the demo guest (firmware/demo/demo86.asm) with the BIOS: a "
                                      "banner, an uptime counter and a prompt. COM1 is the console: "
                                      "type help, ticks, mem, time, reboot or halt.")
    demo.add_argument("--clock", choices=("virtual", "host"), default="host",
                      help="device time: 'host' follows the wall clock (the default here, so the "
                           "uptime is real); 'virtual' follows retired instructions")
    run = sub.add_parser("run", help="boot a flat real-mode image (at 0000:7C00) or a multiboot kernel",
                         description="Boot a flat real-mode image loaded at 0000:7C00, or with --kernel a "
                                     "Multiboot v1 ELF32 kernel as qemu-system-i386 -kernel does. COM1 is "
                                     "the console; port 0xF4 ends the run with an exit status.")
    run.add_argument("image", nargs="?", help="what to boot: a disk image, a floppy image, a boot "
                                             "sector or a Multiboot kernel (detected)")
    run.add_argument("--hda", metavar="DISK", help="a raw hard disk image (ATA primary master)")
    run.add_argument("--floppy", metavar="IMAGE", help="a raw floppy image")
    run.add_argument("--boot", choices=("a", "c"), help="boot from the floppy (a) or the hard disk (c)")
    run.add_argument("--writable", action="store_true",
                     help="let guest writes reach the disk image file (default: a private overlay)")
    run.add_argument("--flat", action="store_true",
                     help="IMAGE is a raw real-mode program: load it at 0000:7C00 and run it without firmware")
    run.add_argument("--kernel", metavar="FILE", help="a Multiboot (v1) ELF32 kernel")
    run.add_argument("--append", metavar="CMDLINE", help="the kernel command line")
    run.add_argument("--initrd", "--module", dest="module", action="append", metavar="FILE",
                     help="a multiboot module (repeat for several)")
    run.add_argument("--clock", choices=("virtual", "host"), default="virtual",
                     help="device time: 'virtual' follows retired instructions (deterministic, the "
                          "default); 'host' follows the wall clock")
    run.add_argument("--serial", default="stdio", metavar="stdio|none|file:PATH|tcp:HOST:PORT",
                     help="where COM1 goes (default stdio; input comes from stdin)")
    run.add_argument("--trace", metavar="FILE",
                     help="write a line per instruction (address, bytes, disassembly, what changed; "
                          "interrupts, exceptions, port I/O) to FILE, or to stderr with -")
    run.add_argument("--trace-range", metavar="START:END", help="trace only linear addresses in [START, END) (hex)")
    run.add_argument("--trace-cpl", type=int, choices=(0, 1, 2, 3), help="trace only at this privilege level")
    run.add_argument("--trace-first", type=int, metavar="N", help="stop after tracing N instructions")
    run.add_argument("--trace-last", type=int, metavar="N", help="keep only the last N traced instructions")
    run.add_argument("--gdb", metavar="tcp::PORT",
                     help="serve a GDB remote stub on this TCP port (gdb: target remote :PORT)")
    run.add_argument("--wait-gdb", action="store_true",
                     help="with --gdb: wait for gdb to connect before the first instruction")
    for s in (demo, run):
        s.add_argument("--screen", metavar="PATH.png|PATH.txt|-",
                       help="at exit, save the 80x25 text screen as a PNG picture or a text file, "
                            "or print it (-)")
        s.add_argument("--memory", type=parse_memory, default=None, metavar="SIZE",
                       help="guest RAM, e.g. 64M or 1G (default 16M; 64M with --kernel)")
        s.add_argument("--max-instructions", type=int, default=None, metavar="N",
                       help="stop after N instructions (default: no limit)")
    debug = sub.add_parser("debug", help="a console debugger for a guest (type help inside)",
                           description="Boot IMAGE (a kernel, disk, floppy or boot sector, detected) "
                                       "stopped at its first instruction and read debugger commands "
                                       "from stdin: step, next, continue, finish, breakpoints, "
                                       "watchpoints, registers, memory, disassembly, pagewalk, "
                                       "GDT/IDT/TSS/TLB and device state.")
    debug.add_argument("image", help="what to debug (a Multiboot kernel's ELF symbols are loaded)")
    debug.add_argument("--memory", type=parse_memory, default=None, metavar="SIZE", help="guest RAM")
    debug.add_argument("--flat", action="store_true", help="IMAGE is a raw real-mode program at 0000:7C00")
    debug.set_defaults(func=cmd_debug, kernel=None, append=None, module=None, max_instructions=None,
                       clock="virtual")
    fuzz = sub.add_parser("fuzz", help="differential fuzzing of instruction semantics against the host CPU "
                                       "or Unicorn",
                          description="Random single-instruction cases from the opcode table (all forms, "
                                      "register and memory operands, the operand-size prefix, edge and "
                                      "random values, flags and DF) run in visor86 and in an oracle: the "
                                      "host CPU (natively, in a forked worker, so a faulting case only ends "
                                      "that worker; 32-bit cases of alu, bits, flagctl, move, muldiv, shift) "
                                      "or Unicorn (16-bit real mode and 32-bit; also bcd, stack, control and "
                                      "string). Results, memory, exceptions and the flags the SDM defines "
                                      "are compared; undefined flags are reported as agreement per class; "
                                      "where Unicorn departs from the SDM the case is counted apart as a "
                                      "Unicorn deviation. Divergences are minimised and written as JSON "
                                      "cases. Exit status 1 when something diverged, 2 for bad input. "
                                      "With --decode, the decoder alone: random byte strings, length and "
                                      "validity against capstone.")
    fuzz.add_argument("--oracle", metavar="host|unicorn",
                      help="the reference: the host CPU (default) or Unicorn")
    fuzz.add_argument("--mode", metavar="16|32|both",
                      help="code size of the cases: 16 (real mode), 32 or both (default: both for Unicorn; "
                           "the host runs 32 only; --decode takes 16 or 32, default 32)")
    fuzz.add_argument("--cases", type=int, default=10_000, metavar="N", help="how many cases (default 10000)")
    fuzz.add_argument("--seed", type=int, default=0, help="the campaign's seed: the same seed, the same cases")
    fuzz.add_argument("--classes", metavar="A,B", help="instruction classes to draw from (default all the "
                                                       "oracle runs: host alu, bits, flagctl, move, muldiv, "
                                                       "shift; unicorn also bcd, control, stack, string)")
    fuzz.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    fuzz.add_argument("--out", default="fuzz-cases", metavar="DIR",
                      help="where minimised divergences go as JSON (default ./fuzz-cases)")
    fuzz.add_argument("--replay", nargs="+", metavar="CASE.json",
                      help="run saved cases again in visor86 and in the oracle each file names, and say "
                           "whether they still differ")
    fuzz.add_argument("--undefined-flags", choices=("host", "intel", "amd", "zero"), default="host",
                      help="how visor86 sets the flags the SDM leaves undefined: as the host CPU's "
                           "vendor does (the default), as intel or amd processors do, or zero; the "
                           "report measures the agreement with the host")
    fuzz.add_argument("--quiet", action="store_true", help="no progress lines")
    fuzz.add_argument("--decode", action="store_true",
                      help="decoder mode: random byte strings; instruction length and validity compared "
                           "with capstone and, for strings built as one instruction of the host-safe set "
                           "with a prefix mix, with the host CPU (random bytes never run natively). Exit "
                           "status 1 on a disagreement about an instruction visor86 implements")
    fuzz.add_argument("--host", type=int, metavar="N",
                      help="with --decode in 32-bit mode: run at most N host-safe strings on the host CPU "
                           "(default: all, about one string in fifty; 0 for none, which also skips compiling "
                           "the CPU core)")
    fuzz.set_defaults(func=cmd_fuzz, memory=0, max_instructions=None)
    host = sub.add_parser("host", help="run several guests in one hypervisor from a TOML file",
                          description="Run the guests a TOML file lists ([[guest]] tables with name, "
                                      "kernel|image|snapshot, memory, weight, cap, share, max_instructions, "
                                      "serial = none|stdio|file:PATH; top-level threads and slice) on host "
                                      "threads, fairly by weight, and show them in a live table.")
    host.add_argument("config", metavar="CONFIG.toml")
    host.add_argument("--threads", type=int, help="host threads (default: the file's, else one per core)")
    host.add_argument("--status", metavar="PATH", help="keep a JSON status file for `emu top PATH`")
    host.add_argument("--top", action="store_true", default=None,
                      help="show the live table (the default on a terminal)")
    host.add_argument("--seconds", type=float, help="stop every guest after this many seconds")
    host.add_argument("--interval", type=float, default=1.0, help="seconds between updates (default 1)")
    host.set_defaults(func=cmd_host, memory=0, max_instructions=None)
    top = sub.add_parser("top", help="the live table of guests of an `emu host --status` file")
    top.add_argument("status", metavar="STATUS.json")
    top.add_argument("--once", action="store_true", help="print the table once")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between updates (default 1)")
    top.set_defaults(func=cmd_top, memory=0, max_instructions=None)
    demo.set_defaults(func=cmd_demo)
    run.set_defaults(func=cmd_run)
    from emu.cli_guests import add_commands      # snapshot, restore, clone, migrate
    add_commands(sub)
    return p


class _RefuseScipy:
    """An import finder that refuses scipy.linalg (see _skip_numba_blas_probe)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "scipy.linalg" or name.startswith("scipy.linalg."):
            raise ImportError(f"{name}: not loaded by the emu command")
        return None


def _skip_numba_blas_probe():
    """Start faster where scipy is installed.  Loading the cached core makes
    numba import ``numba.np.arraymath``, which imports scipy.linalg (a
    quarter of a second, a fifth of a warm ``emu run``) only to learn
    whether np.convolve/np.correlate may call BLAS.  The core uses neither,
    and the emu command runs no other numba code, so it imports that module
    once with scipy.linalg refused; it imports normally afterwards."""
    if "scipy.linalg" in sys.modules or "numba.np.arraymath" in sys.modules:
        return
    sys.meta_path.insert(0, _RefuseScipy)
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        sys.meta_path.remove(_RefuseScipy)


def main(argv=None):
    _skip_numba_blas_probe()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.memory is None:
        args.memory = (64 << 20) if getattr(args, "kernel", None) else (16 << 20)
    if args.max_instructions is not None and args.max_instructions < 0:
        print("emu: --max-instructions must not be negative", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except UsageError as e:
        print(f"emu: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"emu: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
