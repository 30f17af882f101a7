"""The ``emu`` command line."""
import argparse
import pathlib
import sys
import time

DEMO_IMAGE = pathlib.Path(__file__).resolve().parent.parent / "firmware" / "demo" / "hello.bin"
DEBUG_CONSOLE_PORT = 0xE9      # Bochs/QEMU-style debug console: OUT writes a character
BOOT_ADDRESS = 0x7C00


class ConsolePort:
    """Port 0xE9: bytes the guest writes go to the host's stdout."""

    def __init__(self, stream):
        self.stream = stream
        self.written = bytearray()

    def write(self, port, size, value):
        data = value.to_bytes(size, "little")
        self.written += data
        self.stream.write(data.decode("latin-1"))
        self.stream.flush()

    def read(self, port, size):
        return 0xE9 if size == 1 else (1 << (8 * size)) - 1


class UsageError(Exception):
    pass


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
                         f"(at most 64 KiB); disk images and kernels come with the firmware work")
    return data


def boot_flat(data, memory_size, max_instructions, stream):
    from emu import Machine
    m = Machine(memory_size=memory_size)
    m.memory.write(BOOT_ADDRESS, data)
    m.cpu.cs = 0
    m.cpu.ip = BOOT_ADDRESS
    m.cpu.ds = m.cpu.es = m.cpu.ss = 0
    m.cpu.sp = BOOT_ADDRESS
    m.cpu.dl = 0x80
    console = ConsolePort(stream)
    m.port_handlers[DEBUG_CONSOLE_PORT] = console
    exit_ = m.run(max_instructions=max_instructions)
    return m, exit_


def cmd_run(args, stream=None):
    stream = stream or sys.stdout
    data = load_boot_image(args.image)
    t = time.perf_counter()
    m, exit_ = boot_flat(data, args.memory << 20, args.max_instructions, stream)
    dt = time.perf_counter() - t
    print(f"\n[visor86] {exit_.kind} after {exit_.instructions} instructions ({dt:.2f} s)"
          + (f", vector {exit_.vector}" if exit_.vector is not None else ""), file=sys.stderr)
    return 0 if exit_.kind in ("halt", "budget") else 1


def cmd_demo(args, stream=None):
    if not DEMO_IMAGE.is_file():
        raise UsageError(f"the demo image {DEMO_IMAGE} is missing from this installation")
    print("[visor86] booting the demo guest (the first run compiles the CPU core; later runs start "
          "from the cache)", file=sys.stderr)
    args.image = str(DEMO_IMAGE)
    return cmd_run(args, stream)


def build_parser():
    p = argparse.ArgumentParser(prog="emu", description="visor86: an x86 software hypervisor")
    from emu import __version__
    p.add_argument("--version", action="version", version=f"visor86 {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="boot the bundled demo guest")
    run = sub.add_parser("run", help="boot a flat real-mode image (loaded at 0000:7C00)")
    run.add_argument("image", help="path of the image")
    for s in (demo, run):
        s.add_argument("--memory", type=int, default=16, metavar="MiB", help="guest RAM in MiB (default 16)")
        s.add_argument("--max-instructions", type=int, default=100_000_000, metavar="N",
                       help="stop after N instructions (default 100000000)")
    demo.set_defaults(func=cmd_demo)
    run.set_defaults(func=cmd_run)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
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
