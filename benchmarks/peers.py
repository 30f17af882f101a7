"""Run one workload on visor86 or on a peer, and time it.

Each runner returns a Run (or raises Missing when the peer is not on this
machine).  Times are wall-clock seconds of the work alone where the peer
lets us separate it: visor86 and Unicorn are timed around the run call
(the machine is built and the code loaded before), the host build times
bench() itself, QEMU and Bochs are whole processes minus the start-up of
the same process running the empty workload.
"""
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from benchmarks.workloads import DIR, EMPTY, parse_result

MEMORY = 64 << 20
QEMU = "qemu-system-i386"


class Missing(Exception):
    """The peer is not installed here (the message says what is missing)."""


@dataclass
class Run:
    n: int
    seconds: float
    result: int | None
    output: bytes = b""
    instructions: int | None = None       # counted by visor86 (its runs only)
    stats: dict = field(default_factory=dict)


# --- visor86 -----------------------------------------------------------------------------

def visor86_machine(elf, n):
    from emu import Machine
    return Machine.from_multiboot(str(elf), memory_size=MEMORY, cmdline=f"n={n}")


def run_visor86(workload, n, max_instructions=20_000_000_000):
    from emu.core import layout as L
    from emu import blocks
    m = visor86_machine(workload.elf, n)
    c = m._state.cpu           # read-only: the decode-cache counters the core keeps
    blocks.wait_for_compiles()      # an earlier run's blocks: compiled before the clock starts
    compiled, compile_seconds = blocks.stats["compiled"], blocks.stats["seconds"]
    t = time.perf_counter()
    e = m.run(max_instructions=max_instructions)
    dt = time.perf_counter() - t
    compiled, compile_seconds = blocks.stats["compiled"] - compiled, blocks.stats["seconds"] - compile_seconds
    out = m.com1.read()
    if e.kind != "debug_exit" or e.status != 1:
        raise RuntimeError(f"{workload.name} n={n} on visor86 ended with {e}; COM1: {out[-300:]!r}")
    hits, misses = int(c[L.ICACHE_HITS]), int(c[L.ICACHE_MISSES])
    fast = int(c[L.FAST_RETIRED])
    return Run(n, dt, parse_result(out, workload.name, n), out, e.instructions,
               {"icache_hits": hits, "icache_misses": misses, "fast_retired": fast,
         # compiled blocks (emu/blocks.py): instructions they ran, blocks compiled during this
         # run (on the compile thread; the process keeps compiled code: a later run of the
         # same code compiles nothing)
         "jit_retired": int(c[L.JIT_RETIRED]), "blocks_compiled": compiled,
         "compile_seconds": compile_seconds,
                # the returns of the jitted loop to Python, by reason (Machine keeps them)
                "exits": dict(m.exit_counts)})


def instruction_mix(workload, n, every=997, limit=None):
    """Sample the mnemonic at EIP every `every` instructions (a prime, so the
    samples do not lock onto a loop's period): {mnemonic: samples}.  Costs
    one exit per sample, nothing in the core."""
    import capstone
    m = visor86_machine(workload.elf, n)
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    mix = {}
    while True:
        e = m.run(max_instructions=every)
        if e.kind != "budget":
            break
        lin = m.cpu.segment("cs").base + m.cpu.eip
        code = m.memory.read(lin, 15)       # identity-mapped: linear = physical here
        insn = next(md.disasm_lite(bytes(code), lin, 1), None)
        key = insn[2] if insn else "?"
        mix[key] = mix.get(key, 0) + 1
        if limit and sum(mix.values()) >= limit:
            break
    return mix


# --- QEMU ----------------------------------------------------------------------------------

def qemu_version():
    exe = shutil.which(QEMU)
    if exe is None:
        raise Missing(f"{QEMU} is not installed (Debian: qemu-system-x86)")
    return subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def qemu_command(elf, n, serial_path):
    return [QEMU, "-accel", "tcg", "-m", str(MEMORY >> 20), "-kernel", str(elf), "-append", f"n={n}",
            "-display", "none", "-serial", f"file:{serial_path}", "-monitor", "none", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]


def _qemu_once(elf, n):
    with tempfile.TemporaryDirectory() as d:
        serial = os.path.join(d, "com1")
        t = time.perf_counter()
        p = subprocess.run(qemu_command(elf, n, serial), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=600)
        dt = time.perf_counter() - t
        out = open(serial, "rb").read() if os.path.exists(serial) else b""
    if p.returncode != 1:
        raise RuntimeError(f"{elf.name} n={n} under QEMU: status {p.returncode}, "
                           f"stderr {p.stderr.decode(errors='replace')[-300:]!r}, COM1 {out[-200:]!r}")
    return dt, out


def qemu_startup(repeat=5):
    qemu_version()
    return min(_qemu_once(EMPTY, 1)[0] for _ in range(repeat))


def run_qemu(workload, n, startup, repeat=3):
    qemu_version()
    best, out = None, b""
    for _ in range(repeat):
        dt, out = _qemu_once(workload.elf, n)
        best = dt if best is None else min(best, dt)
    return Run(n, best - startup, parse_result(out, workload.name, n), out,
               stats={"whole": best, "startup": startup})


# --- Unicorn -------------------------------------------------------------------------------

def unicorn_version():
    try:
        import unicorn
    except ImportError:
        raise Missing("unicorn (Python) is not installed")
    return f"Unicorn {unicorn.__version__}"


def run_unicorn(workload, n):
    """The multiboot image loaded as visor86's loader lays it out (the
    same chunks, entry and registers); IN/OUT served by hooks: LSR always
    ready, COM1 bytes collected, port 0xF4 ends the run."""
    unicorn_version()
    import unicorn
    from unicorn import x86_const as X
    from emu.loaders import plan_multiboot
    plan = plan_multiboot(str(workload.elf), MEMORY, cmdline=f"n={n}")
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32)
    uc.mem_map(0, MEMORY)
    for address, data in plan.chunks:
        uc.mem_write(address, bytes(data))
    uc.reg_write(X.UC_X86_REG_EAX, plan.eax)
    uc.reg_write(X.UC_X86_REG_EBX, plan.ebx)
    uc.reg_write(X.UC_X86_REG_ESP, 0x7000)
    out = bytearray()
    status = []
    lcr = [0]

    def hook_in(uc, port, size, user):
        return 0x60 if port == 0x3FD else 0xFF

    def hook_out(uc, port, size, value, user):
        if port == 0x3FB:
            lcr[0] = value
        elif port == 0x3F8 and not lcr[0] & 0x80:      # THR (not the divisor latch)
            out.append(value & 0xFF)
        elif port == 0xF4:
            status.append((value << 1) | 1)
            uc.emu_stop()

    uc.hook_add(unicorn.UC_HOOK_INSN, hook_in, None, 1, 0, X.UC_X86_INS_IN)
    uc.hook_add(unicorn.UC_HOOK_INSN, hook_out, None, 1, 0, X.UC_X86_INS_OUT)
    t = time.perf_counter()
    uc.emu_start(plan.entry, 0xFFFFFFFF)
    dt = time.perf_counter() - t
    if status != [1]:
        raise RuntimeError(f"{workload.name} n={n} on Unicorn: exit {status}, COM1 {bytes(out)[-200:]!r}")
    return Run(n, dt, parse_result(bytes(out), workload.name, n), bytes(out))


# --- the host CPU --------------------------------------------------------------------------

def host_version():
    exe = shutil.which(os.environ.get("CC", "gcc"))
    if exe is None or shutil.which("make") is None:
        raise Missing("gcc or make is not installed")
    return subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def build_host(outdir):
    host_version()
    subprocess.run(["make", "-s", "-C", str(DIR), "host", f"O={outdir}"], check=True)


def run_native(workload, n, outdir, repeat=3):
    best, res = None, None
    for _ in range(repeat):
        p = subprocess.run([os.path.join(outdir, f"host-{workload.name}"), str(n)],
                           capture_output=True, check=True)
        line = p.stdout + b"\n"
        sec = float(line.split(b"seconds=")[1].split()[0])
        best = sec if best is None else min(best, sec)
        res = parse_result(line.split(b" seconds=")[0] + b"\n", workload.name, n)
    return Run(n, best, res)


# --- Bochs ---------------------------------------------------------------------------------

def bochs_version():
    if shutil.which("bochs") is None:
        raise Missing("bochs is not installed (Debian: bochs, bochsbios)")
    raise Missing("bochs is installed, but the harness cannot run it yet: Bochs has no "
                  "multiboot loader (-kernel) and no isa-debug-exit device")
