"""`emu snapshot`, `emu restore`, `emu clone`, `emu migrate`: guest state
to files, copies and other processes, from the command line.

    emu snapshot KERNEL --max-instructions N -o guest.snap   boot, run N instructions, save
    emu restore guest.snap [--max-instructions N] [-o next.snap]   continue a saved guest
    emu clone guest.snap --count K [--max-instructions N]    K copy-on-write clones, run side by side
    emu migrate --listen PORT                                receive a guest, then run it
    emu migrate KERNEL --after N --to HOST:PORT              run N instructions, then move the guest

COM1 goes to stdout as with `emu run`.
"""
import hashlib
import re
import sys
import time

from emu.cli import (ConsolePort, DEBUG_CONSOLE_PORT, UsageError, build_machine, exit_status, open_serial,
                     parse_memory, report, run_guest)


def add_commands(sub):
    """Register the subcommands on `emu`'s subparsers."""
    snap = sub.add_parser("snapshot", help="boot a guest, run it N instructions and save it to a file",
                          description="Boot IMAGE (or --kernel) as `emu run` does, run --max-instructions "
                                      "N instructions with COM1 on stdout, then save the whole machine "
                                      "to -o FILE (versioned, checksummed; only pages with data). "
                                      "`emu restore FILE` continues it.")
    _boot_arguments(snap)
    snap.add_argument("--max-instructions", type=int, required=True, metavar="N",
                      help="instructions to run before saving (0: save the freshly booted machine)")
    snap.add_argument("-o", "--output", required=True, metavar="FILE", help="the snapshot file to write")
    snap.set_defaults(func=cmd_snapshot)

    restore = sub.add_parser("restore", help="continue a guest saved with `emu snapshot`",
                             description="Load a snapshot file into a new machine and run it on from "
                                         "where it was saved, COM1 on stdout. A corrupt, truncated or "
                                         "foreign file is refused with a message.")
    restore.add_argument("snapshot", metavar="FILE", help="a snapshot file")
    restore.add_argument("--max-instructions", type=int, default=None, metavar="N",
                         help="stop after N instructions (default: no limit)")
    restore.add_argument("-o", "--save-snapshot", metavar="FILE", help="save the machine again when the run stops")
    restore.add_argument("--serial", default="stdio", metavar="stdio|none|file:PATH|tcp:HOST:PORT",
                         help="where COM1 goes (default stdio)")
    restore.set_defaults(func=cmd_restore, memory=0)

    clone = sub.add_parser("clone", help="run K copy-on-write clones of a saved guest side by side",
                           description="Load a snapshot file, make --count clones of it that share its "
                                       "memory copy-on-write (each costs the host only the pages it "
                                       "writes), run each for --max-instructions, and report what each "
                                       "did and what the host paid.")
    clone.add_argument("snapshot", metavar="FILE", help="a snapshot file")
    clone.add_argument("--count", type=int, required=True, metavar="K", help="how many clones")
    clone.add_argument("--max-instructions", type=int, default=1_000_000, metavar="N",
                       help="instructions each clone runs at most (default 1000000)")
    clone.add_argument("--show", type=int, metavar="I", help="print clone I's COM1 output on stdout")
    clone.set_defaults(func=cmd_clone, memory=0)

    mig = sub.add_parser("migrate", help="live-migrate a guest between two visor86 processes over TCP",
                         description="Receiver: `emu migrate --listen [HOST:]PORT` waits for one guest, "
                                     "then runs it (COM1 on stdout). Sender: `emu migrate IMAGE --after N "
                                     "--to HOST:PORT` boots IMAGE (or --kernel, or --snapshot FILE), runs "
                                     "N instructions with COM1 on stdout, then moves the running guest: "
                                     "pre-copy rounds of dirty pages while it runs on, a short stop, and "
                                     "the receiver continues it. The downtime is reported on stderr.")
    _boot_arguments(mig)
    mig.add_argument("--listen", metavar="[HOST:]PORT", help="receive a guest on this port (HOST default 127.0.0.1)")
    mig.add_argument("--to", metavar="HOST:PORT", help="send the guest to this receiver")
    mig.add_argument("--after", type=int, default=0, metavar="N", help="instructions to run before migrating")
    mig.add_argument("--snapshot", metavar="FILE", help="send the guest saved in FILE instead of booting one")
    mig.add_argument("--max-instructions", type=int, default=None, metavar="N",
                     help="receiver: stop after N instructions (default: no limit)")
    mig.add_argument("--serial", default="stdio", metavar="stdio|none|file:PATH|tcp:HOST:PORT",
                     help="where COM1 goes (default stdio)")
    mig.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="receiver: give up when no sender comes within this time")
    mig.set_defaults(func=cmd_migrate)


def _boot_arguments(p):
    p.add_argument("image", nargs="?",
                   help="what to boot: a Multiboot kernel, a boot sector or a disk image (detected)")
    p.add_argument("--kernel", metavar="FILE", help="a Multiboot (v1) ELF32 kernel")
    p.add_argument("--append", metavar="CMDLINE", help="the kernel command line")
    p.add_argument("--module", action="append", metavar="FILE", help="a multiboot module")
    p.add_argument("--flat", action="store_true", help="IMAGE is a raw real-mode program at 0000:7C00")
    p.add_argument("--memory", type=parse_memory, default=None, metavar="SIZE",
                   help="guest RAM, e.g. 64M (default 16M; 64M for a kernel)")
    p.add_argument("--clock", choices=("virtual", "host"), default="virtual",
                   help="device time (default virtual: deterministic)")


class _Stdout:
    """Binary stdout that the serial sink writes to."""

    def __init__(self, stream=None):
        self.out = stream if stream is not None else sys.stdout
        self.binary = getattr(self.out, "buffer", None)

    def write(self, data):
        if self.binary is not None:
            self.binary.write(data)
            self.binary.flush()
        else:
            self.out.write(data.decode("latin-1"))
            self.out.flush()

    def flush(self):
        (self.binary or self.out).flush()


def _boot(args):
    if not args.image and not args.kernel:
        raise UsageError("nothing to boot: give an IMAGE or --kernel FILE")
    return build_machine(args)


def _run(m, args, stream=None):
    """Run with COM1 (and the 0xE9 console) on stdout; the ConsolePort is
    removed again afterwards (state files and migrations cannot hold it)."""
    serial = open_serial(getattr(args, "serial", "stdio"), _Stdout(stream))
    m.com1.sink = serial.write
    m.port_handlers[DEBUG_CONSOLE_PORT] = ConsolePort(serial.write)
    t = time.perf_counter()
    start = m.instructions_retired
    try:
        e = run_guest(m, serial, args.max_instructions)
    finally:
        serial.close()
        del m.port_handlers[DEBUG_CONSOLE_PORT]
        m.com1.sink = None
    report(e, time.perf_counter() - t, m.instructions_retired - start)
    return e


def cmd_snapshot(args, stream=None):
    if args.max_instructions < 0:
        raise UsageError("--max-instructions must not be negative")
    m = _boot(args)
    if args.max_instructions:
        _run(m, args, stream)
    pages = m.save(args.output)
    print(f"[visor86] saved to {args.output}: {pages} pages with data, "
          f"{m.instructions_retired} instructions retired", file=sys.stderr)
    return 0


def _load(path):
    from emu import Machine
    return Machine.load(path)


def cmd_restore(args, stream=None):
    m = _load(args.snapshot)
    print(f"[visor86] restored {args.snapshot}: {m.memory_size >> 20} MiB, "
          f"{m.instructions_retired} instructions retired before", file=sys.stderr)
    e = _run(m, args, stream)
    if args.save_snapshot:
        pages = m.save(args.save_snapshot)
        print(f"[visor86] saved to {args.save_snapshot}: {pages} pages with data", file=sys.stderr)
    return exit_status(e)


def cmd_clone(args, stream=None):
    from emu import guestmem
    from emu.overcommit import host_memory, identical_pages
    if args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.max_instructions is not None and args.max_instructions < 0:
        raise UsageError("--max-instructions must not be negative")
    if args.show is not None and not 0 <= args.show < args.count:
        raise UsageError(f"--show {args.show}: there are clones 0 to {args.count - 1}")
    out = _Stdout(stream)
    parent = _load(args.snapshot)
    t = time.perf_counter()
    clones = parent.clone(count=args.count)
    made = time.perf_counter() - t
    image = guestmem.image_of(parent._state.mem)
    print(f"[visor86] {args.count} clones of {args.snapshot} ({parent.memory_size >> 20} MiB each) in "
          f"{made * 1e3:.2f} ms ({made / args.count * 1e6:.0f} us each); shared image "
          f"{image.stored_bytes() / 2**20:.2f} MiB", file=sys.stderr)
    del parent
    outputs, exits = [], []
    before = None
    for i, c in enumerate(clones):
        e = c.run(max_instructions=args.max_instructions)
        data = c.com1.read()
        outputs.append(data)
        exits.append(e)
        if args.show == i:
            out.write(data)
        if i == 0:       # the first run loads the compiled core: measure the clones after it
            before = guestmem.process_memory().get("anonymous")
    after = guestmem.process_memory().get("anonymous")
    print(f"{'clone':>5}  {'exit':<14} {'instructions':>12}  {'COM1 bytes':>10}  {'COM1 sha256':<16}  "
          f"{'own pages':>9}", file=sys.stderr)
    for i, (c, e, data) in enumerate(zip(clones, exits, outputs)):
        hm = host_memory(c)
        print(f"{i:>5}  {e.kind:<14} {e.instructions:>12}  {len(data):>10}  "
              f"{hashlib.sha256(data).hexdigest()[:16]:<16}  {hm.private if hm else '?':>9}", file=sys.stderr)
    sharing = identical_pages(clones)
    print(f"[visor86] identical output in all clones: {'yes' if len(set(outputs)) == 1 else 'no'}; "
          f"{sharing}", file=sys.stderr)
    if before is not None and after is not None and args.count > 1:
        grown = (after - before) / (args.count - 1)
        print(f"[visor86] host memory per running clone (process private memory over clones 1 to "
              f"{args.count - 1}): {grown / 2**10:.0f} KiB for {clones[0].memory_size >> 20} MiB of guest RAM",
              file=sys.stderr)
    return 0


def _address(text, what, default_host="127.0.0.1"):
    m = re.fullmatch(r"(?:(.*):)?(\d+)", text or "")
    if not m or int(m.group(2)) > 65535:
        raise UsageError(f"{what} {text!r}: expected [HOST:]PORT")
    return m.group(1) or default_host, int(m.group(2))


def cmd_migrate(args, stream=None):
    from emu import migrate
    if bool(args.listen) == bool(args.to):
        raise UsageError("give either --listen [HOST:]PORT (receive) or --to HOST:PORT (send)")
    if args.listen:
        if args.image or args.kernel or args.snapshot:
            raise UsageError("--listen receives its guest: give no IMAGE, --kernel or --snapshot")
        host, port = _address(args.listen, "--listen")
        r = migrate.Receiver(port, host)
        print(f"[visor86] waiting for a guest on {r.host}:{r.port}", file=sys.stderr, flush=True)
        try:
            m, seconds = r.accept(timeout=args.timeout)
        finally:
            r.close()
        print(f"[visor86] received a {m.memory_size >> 20} MiB guest in {seconds * 1e3:.1f} ms "
              f"({m.instructions_retired} instructions retired before)", file=sys.stderr, flush=True)
        return exit_status(_run(m, args, stream))
    host, port = _address(args.to, "--to", default_host=None)
    if host is None:
        raise UsageError(f"--to {args.to}: expected HOST:PORT")
    if args.after < 0:
        raise UsageError("--after must not be negative")
    if args.snapshot:
        if args.image or args.kernel:
            raise UsageError("give either --snapshot FILE or an IMAGE to boot, not both")
        m = _load(args.snapshot)
    else:
        if not args.image and not args.kernel:
            raise UsageError("nothing to send: give an IMAGE, --kernel FILE or --snapshot FILE")
        m = _boot(args)
    if args.after:
        args.max_instructions = args.after
        e = _run(m, args, stream)
        if e.kind != "budget":
            print(f"[visor86] the guest ended ({e.kind}) before --after {args.after}: nothing to migrate",
                  file=sys.stderr)
            return 1
    serial = _Stdout(stream)
    m.com1.sink = serial.write          # output of the pre-copy rounds is still this side's
    try:
        rep = migrate.send(m, host, port)
    finally:
        m.com1.sink = None
    print(f"[visor86] {rep}", file=sys.stderr)
    return 0
