"""Measure visor86 against its peers in one sitting and write RESULTS.md.

    python -m benchmarks [--iterations N] [--no-write] [--workloads a,b]
                         [--peers qemu,unicorn,native,bochs] [--no-cold] [--quick]

The guest workloads of benchmarks/workloads/ (multiboot ELFs built from C:
integer, memory, calls, paging, interrupts, serial I/O, self-modifying
code) run on visor86 and, in the same sitting, on qemu-system-i386 (TCG),
Unicorn (the workloads that need no devices), Bochs (reported missing: see
peers.py) and the same C code built for the host.  Work is counted in
visor86's retired instructions (the peers run the same image; see
workloads.py for how their larger sizes are counted).  Also: the demo
guest's boot to its prompt (visor86 and QEMU, both with visor86's BIOS),
the CPU-bound loop of the performance issue (mov ecx,N; l: add eax,ecx;
xor edx,eax; mov [ebx+4],edx; add esi,[ebx+4]; dec ecx; jnz l) on visor86
and Unicorn, the cold numba compile of the core (a fresh process with an
empty cache), the warm start (`emu run --kernel` of the empty workload),
Machine.step() cost, port-I/O exits to a device written in Python, and
snapshot restores.  Per workload the report gives the decode-cache hit rate
and the exits to Python (read from the core's counters; nothing in the core
changes), and an instruction mix sampled every 997 instructions.  Peers that
are not installed are reported as missing.
"""
import argparse
import shlex
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOOP_AT = 0x1000
DATA_AT = 0x8000


def loop_code(n):
    return (b"\xb9" + n.to_bytes(4, "little")     # mov ecx, n
            + b"\x01\xc8"                          # l: add eax, ecx
            + b"\x31\xc2"                          # xor edx, eax
            + b"\x89\x53\x04"                      # mov [ebx+4], edx
            + b"\x03\x73\x04"                      # add esi, [ebx+4]
            + b"\x49"                              # dec ecx
            + b"\x75\xf3"                          # jnz l
            + b"\xf4")                             # hlt


def bench_visor86(n):
    from emu import Machine
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(LOOP_AT, loop_code(n))
    m.cpu.eip, m.cpu.ebx = LOOP_AT, DATA_AT
    m.run(max_instructions=100)            # compile/warm
    m.memory.write(LOOP_AT, loop_code(n))
    m.cpu.eip = LOOP_AT
    m.cpu.eax = m.cpu.edx = m.cpu.esi = 0
    t = time.perf_counter()
    e = m.run()
    dt = time.perf_counter() - t
    assert e.kind == "halt", e
    return e.instructions, dt, m.cpu.esi


def bench_unicorn(n):
    try:
        import unicorn
        from unicorn import x86_const as X
    except ImportError:
        return None
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32)
    uc.mem_map(0, 1 << 20)
    code = loop_code(n)[:-1]
    uc.mem_write(LOOP_AT, code)
    uc.reg_write(X.UC_X86_REG_EBX, DATA_AT)
    for r in (X.UC_X86_REG_EAX, X.UC_X86_REG_EDX, X.UC_X86_REG_ESI):
        uc.reg_write(r, 0)
    t = time.perf_counter()
    uc.emu_start(LOOP_AT, LOOP_AT + len(code))
    dt = time.perf_counter() - t
    return 1 + 6 * n, dt, uc.reg_read(X.UC_X86_REG_ESI)


def timed_subprocess(code, cache_dir):
    env = dict(os.environ, VISOR86_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_CACHE_DIR", None)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - t


def bench_step(count=20000):
    from emu import Machine
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(LOOP_AT, b"\x90" * (count + 16))
    m.cpu.eip = LOOP_AT
    m.step()
    t = time.perf_counter()
    for _ in range(count):
        m.step()
    return (time.perf_counter() - t) / count


def bench_reset(seconds=2.0):
    """Fuzzing-style resets: restore a snapshot, run a guest that writes
    four pages and halts; resets (with the run) per second."""
    from emu import Machine
    m = Machine.flat32(memory_size=16 << 20)
    code = b"".join(b"\xa3" + (0x100000 + 0x1000 * i).to_bytes(4, "little") for i in range(4)) + b"\xf4"
    m.memory.write(LOOP_AT, code)     # mov [page i], eax (4 pages) ; hlt
    m.cpu.eip = LOOP_AT
    snap = m.snapshot()
    m.run(max_instructions=10)
    m.restore(snap)
    n = 0
    t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        m.run(max_instructions=10)
        m.restore(snap)
        n += 1
    return n / (time.perf_counter() - t)


def bench_cold():
    """Cold start: a new process with an empty numba cache compiles the core
    and runs three instructions."""
    code = ("from emu import Machine; m = Machine.flat32(1 << 20); "
            "m.memory.write(0x1000, b'\\x01\\xc8\\xf4'); m.cpu.eip = 0x1000; assert m.run().kind == 'halt'")
    with tempfile.TemporaryDirectory() as d:
        return timed_subprocess(code, d)


def bench_warm_start(repeat=3):
    """`emu run --kernel` of the empty workload to its debug exit, in a new
    process with the cache warm (the user's cache: the harness has used it)."""
    from benchmarks.workloads import EMPTY
    cmd = [sys.executable, "-m", "emu.cli", "run", "--kernel", str(EMPTY), "--serial", "none"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, stdin=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        if p.returncode != 1:
            raise RuntimeError(f"emu run --kernel empty.elf: status {p.returncode}: {p.stderr[-300:]!r}")
        best = dt if best is None else min(best, dt)
    return best


class NullDevice:
    """A device written in Python: reads 0, ignores writes."""
    writes = 0

    def read(self, port, size):
        return 0

    def write(self, port, size, value):
        self.writes += 1


def bench_port_io(count=200_000, port=0x510):
    """Port-I/O exits per second to a Python device: a guest loop of OUT to
    a port served by m.port_handlers (each OUT leaves the jitted loop)."""
    from emu import Machine
    m = Machine.flat32(memory_size=1 << 20)
    dev = NullDevice()
    m.port_handlers[port] = dev
    code = (b"\xb9" + count.to_bytes(4, "little")      # mov ecx, count
            + b"\x66\xba" + port.to_bytes(2, "little")  # mov dx, port
            + b"\xee"                                   # l: out dx, al
            + b"\x49"                                   # dec ecx
            + b"\x75\xfc"                               # jnz l
            + b"\xf4")                                  # hlt
    m.memory.write(LOOP_AT, code)
    m.cpu.eip = LOOP_AT
    t = time.perf_counter()
    e = m.run()
    dt = time.perf_counter() - t
    assert e.kind == "halt" and dev.writes == count, (e, dev.writes)
    return count / dt


DEMO = ROOT / "firmware" / "demo" / "demo86.img"
BIOS = ROOT / "firmware" / "bios" / "bios.bin"
PROMPT = b"Type help and press Enter.\r\n> "


def boot_visor86(chunk=2_000):
    """The demo guest with visor86's BIOS, from Machine.pc() to the prompt
    on COM1: (seconds, instructions)."""
    from emu import Machine
    t = time.perf_counter()
    m = Machine.pc(DEMO)
    out = b""
    while PROMPT not in out:
        e = m.run(max_instructions=chunk)
        out += m.com1.read()
        if e.kind != "budget" or m.instructions_retired > 500_000_000:
            raise RuntimeError(f"the demo guest did not reach its prompt: {e}, COM1 {out[-200:]!r}")
    return time.perf_counter() - t, m.instructions_retired


def boot_qemu(timeout=60):
    """The same disk and BIOS under QEMU (-bios firmware/bios/bios.bin), from
    the process start to the prompt on COM1 (the BIOS mirrors the screen
    there): seconds, or Missing."""
    from benchmarks.peers import qemu_version, QEMU
    qemu_version()
    cmd = [QEMU, "-accel", "tcg", "-m", "16", "-bios", str(BIOS),
           "-drive", f"file={DEMO},format=raw,if=ide,snapshot=on",
           "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = b""
    try:
        while PROMPT not in out:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk or time.perf_counter() - t > timeout:
                raise RuntimeError(f"QEMU did not reach the demo prompt: {out[-200:]!r}")
            out += chunk
        return time.perf_counter() - t
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


# --- the workload table -------------------------------------------------------------------

def fmt_mips(x):
    return "-" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.2f}")


def fmt_ratio(x):
    if x is None:
        return "-"
    return f"1/{1 / x:,.0f}" if x < 0.1 else f"{x:.2f}"


class WorkFit:
    """Instructions at size n: a + b*n through visor86's two runs."""

    def __init__(self, at_smoke, slope, smoke):
        self.at_smoke, self.slope, self.smoke = at_smoke, slope, smoke

    def __call__(self, n):
        return round(self.at_smoke + self.slope * (n - self.smoke))


def run_workloads(workloads, peer_names, log):
    """Every workload on visor86 (at its smoke size and its size n) and on
    the peers: a list of dicts, one per workload, and the peers' status."""
    from benchmarks import peers
    status = {}
    versions = {}
    checkers = {"qemu": peers.qemu_version, "unicorn": peers.unicorn_version,
                "native": peers.host_version, "bochs": peers.bochs_version}
    for name in peer_names:
        try:
            versions[name] = checkers[name]()
            status[name] = "ok"
        except peers.Missing as e:
            status[name] = f"missing: {e}"
    startup = None
    if status.get("qemu") == "ok":
        log("QEMU start-up (empty workload) ...")
        startup = peers.qemu_startup()
    hostdir = tempfile.mkdtemp(prefix="visor86-host-")
    if status.get("native") == "ok":
        peers.build_host(hostdir)
    # warm the core (the load of the cached machine code is not the workload's)
    from benchmarks.workloads import Workload, EMPTY
    peers.run_visor86(Workload("empty", "", 1, 1, 1, 1, 1, False), 1)
    rows = []
    for w in workloads:
        log(f"{w.name}: visor86 n={w.smoke} and n={w.n} ...")
        # the first run at n meets the workload's code first (it compiles its blocks)
        runs = [peers.run_visor86(w, w.n)]
        small = peers.run_visor86(w, w.smoke)
        runs += [peers.run_visor86(w, w.n) for _ in range(2)]
        big = min(runs, key=lambda r: r.seconds)
        slope = (big.instructions - small.instructions) / (w.n - w.smoke)
        row = {"w": w, "visor86": big, "smoke": small, "first": runs[0], "peers": {}, "checks": [],
               "work": WorkFit(small.instructions, slope, w.smoke)}
        if small.result != w.smoke_result:
            row["checks"].append(f"visor86 n={w.smoke}: result {small.result} != {w.smoke_result:#x}")
        results = {"visor86": big.result}
        if status.get("native") == "ok" and w.native:
            log(f"{w.name}: host build n={w.n}, n={w.peer_n} ...")
            results["native"] = peers.run_native(w, w.n, hostdir, repeat=1).result
            row["peers"]["native"] = peers.run_native(w, w.peer_n, hostdir)
        if status.get("qemu") == "ok":
            log(f"{w.name}: QEMU n={w.n}, n={w.peer_n} ...")
            results["qemu"] = peers.run_qemu(w, w.n, startup, repeat=1).result
            row["peers"]["qemu"] = peers.run_qemu(w, w.peer_n, startup)
        if status.get("unicorn") == "ok" and w.unicorn_n:
            log(f"{w.name}: Unicorn n={w.unicorn_n} ...")
            row["peers"]["unicorn"] = min((peers.run_unicorn(w, w.unicorn_n) for _ in range(3)),
                                          key=lambda r: r.seconds)
        # equal work: every machine's result at n agrees with visor86's, and
        # the peers agree with each other at their sizes
        for peer, r in results.items():
            if r != big.result:
                row["checks"].append(f"{peer} n={w.n}: result {r} != visor86's {big.result}")
        at = {}
        for peer, r in row["peers"].items():
            at.setdefault(r.n, {})[peer] = r.result
        for n, rs in at.items():
            if len(set(rs.values())) > 1:
                row["checks"].append(f"n={n}: results differ: {rs}")
        rows.append(row)
    return rows, status, versions, startup


def mips(instructions, seconds):
    return instructions / seconds / 1e6 if seconds and seconds > 0 else None


def workload_table(rows, peer_names):
    head = ["workload", "visor86 instructions", "visor86 MIPS"]
    for p in ("qemu", "unicorn", "native"):
        if p in peer_names:
            label = {"qemu": "QEMU TCG", "unicorn": "Unicorn", "native": "host (native)"}[p]
            head += [f"{label} MIPS", f"visor86/{label}"]
    head.append("equal work")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        w, v = row["w"], row["visor86"]
        vm = mips(v.instructions, v.seconds)
        cells = [f"`{w.name}` ({w.kind})", f"{v.instructions:,} (n={w.n})", fmt_mips(vm)]
        for p in ("qemu", "unicorn", "native"):
            if p not in peer_names:
                continue
            r = row["peers"].get(p)
            if r is None:
                cells += ["-", "-"]
                continue
            pm = mips(row["work"](r.n), r.seconds)
            cells += [fmt_mips(pm) + ("" if r.n == w.n else f" (n={r.n})"), fmt_ratio(vm / pm if pm else None)]
        cells.append("yes" if not row["checks"] else "NO: " + "; ".join(row["checks"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_table(rows):
    lines = ["| workload | decode-cache hit rate | decode-cache misses | fast tier | in compiled blocks | "
             "first run: MIPS, blocks compiled (seconds) | exits to Python | instructions per exit |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        v = row["visor86"]
        h, m = v.stats["icache_hits"], v.stats["icache_misses"]
        exits = v.stats["exits"]
        total = sum(exits.values())
        ex = ", ".join(f"{k} {c:,}" for k, c in sorted(exits.items(), key=lambda kv: -kv[1]))
        fast = v.stats.get("fast_retired", 0) / v.instructions if v.instructions else 0
        jit = v.stats.get("jit_retired", 0) / v.instructions if v.instructions else 0
        first = row.get("first") or v
        first_mips = first.instructions / first.seconds / 1e6 if first.seconds else 0
        lines.append(f"| `{row['w'].name}` | {100 * h / (h + m):.3f}% | {m:,} | {100 * fast:.1f}% | "
                     f"{100 * jit:.1f}% | {fmt_mips(first_mips)}, {first.stats.get('blocks_compiled', 0)} "
                     f"({first.stats.get('compile_seconds', 0):.2f} s) | "
                     f"{total:,} ({ex}) | "
                     f"{v.instructions / total:,.0f} |")
    return "\n".join(lines)


def machine_line():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


GENERATED_BEGIN = "<!-- generated by python -m benchmarks: everything up to the end marker is rewritten -->"
GENERATED_END = "<!-- end of the generated part; hand-written sections follow and are kept -->"


def write_results(text):
    out = ROOT / "benchmarks" / "RESULTS.md"
    old = out.read_text() if out.is_file() else ""
    if GENERATED_END in old:
        rest = old.split(GENERATED_END, 1)[1]
    else:                     # the first layout: a title and one table, then sections
        rest = old[old.find("\n## "):] if "\n## " in old else ""
    out.write_text(f"{GENERATED_BEGIN}\n{text.rstrip()}\n\n{GENERATED_END}\n\n{rest.lstrip()}")


def main(argv=None):
    from benchmarks.workloads import by_name
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--iterations", type=int, default=2_000_000,
                    help="CPU-bound loop iterations (default 2000000)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not rewrite RESULTS.md")
    ap.add_argument("--workloads", default="", help="comma-separated workloads (default: all)")
    ap.add_argument("--peers", default="qemu,unicorn,native,bochs",
                    help="comma-separated peers among qemu, unicorn, native, bochs (default: all)")
    ap.add_argument("--no-cold", action="store_true",
                    help="skip the cold compile (about a minute with an empty cache)")
    ap.add_argument("--quick", action="store_true",
                    help="the smoke sizes everywhere (checks the harness; the numbers mean little)")
    ap.add_argument("--mix", default="dhry", help="workload whose instruction mix is sampled ('' for none)")
    args = ap.parse_args(argv)
    peer_names = [p for p in args.peers.split(",") if p]
    for p in peer_names:
        if p not in ("qemu", "unicorn", "native", "bochs"):
            ap.error(f"unknown peer {p!r}")
    workloads = by_name([w for w in args.workloads.split(",") if w])
    if args.quick:
        from dataclasses import replace
        workloads = [replace(w, n=w.smoke * 2 + 1, peer_n=w.smoke * 4 + 1,
                             unicorn_n=w.smoke * 4 + 1 if w.unicorn_n else 0) for w in workloads]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    cold = None
    if not args.no_cold:
        log("cold start (empty numba cache; about a minute) ...")
        cold = bench_cold()
    rows, status, versions, startup = run_workloads(workloads, peer_names, log)
    log("demo guest to its prompt ...")
    boot_v = boot_visor86()
    try:
        if "qemu" not in peer_names:
            raise RuntimeError("not asked for (--peers)")
        boot_q = boot_qemu()
    except Exception as e:                 # Missing, not asked for, or QEMU failed: said in the table
        boot_q = e
    log("CPU-bound loop, start-up and API costs ...")
    vi, vt, vesi = bench_visor86(args.iterations)
    u = bench_unicorn(args.iterations) if "unicorn" in peer_names else None
    warm = bench_warm_start()
    step = bench_step()
    port_io = bench_port_io()
    resets = bench_reset()
    mix = None
    if args.mix:
        from benchmarks.peers import instruction_mix
        mw = by_name([args.mix])[0]
        log(f"instruction mix of {mw.name} ...")
        mix = (mw, instruction_mix(mw, mw.n if not args.quick else mw.smoke))
    load_after = os.getloadavg()

    import numba
    import numpy
    command = "python -m benchmarks" + (" " + " ".join(shlex.quote(a) for a in argv)
                                         if argv is not None else
                                         (" " + " ".join(shlex.quote(a) for a in sys.argv[1:])
                                          if sys.argv[1:] else ""))
    ver = [f"Python {platform.python_version()}", f"numba {numba.__version__}", f"numpy {numpy.__version__}"]
    for p in peer_names:
        ver.append(versions[p] if status[p] == "ok" else f"{p}: {status[p]}")
    out = [f"# Benchmark results\n",
           f"Produced by `{command}` on {time.strftime('%Y-%m-%d')}.\n",
           f"- machine: {machine_line()}; load average {load_before[0]:.2f} before, "
           f"{load_after[0]:.2f} after (the cores are shared with other work)",
           "- versions: " + "; ".join(ver),
           "- build: `make -C benchmarks/workloads` (the images are committed; the host build is "
           "`make -C benchmarks/workloads host O=DIR`)\n",
           "## Guest workloads\n",
           "MIPS = visor86's retired instructions for the same image and size / the peer's time. "
           "visor86 and Unicorn are timed around the run call (machine built and image loaded before), "
           "the host build around `bench(n)`, QEMU as the whole process minus its start-up with the empty "
           f"workload ({startup * 1000:.0f} ms here, the best of 5). " if startup else
           "MIPS = visor86's retired instructions for the same image and size / the peer's time. ",
           "The peers run larger sizes (the n in brackets) so that their time is not lost in start-up; "
           "their instruction count is a + b*n fitted from visor86's runs at the smoke size and at n "
           "(every workload repeats a fixed kernel n times). Best of 3 runs on every machine (the cores "
           "are shared: one run can be half as fast as the next). \"Equal work\": every machine printed the same result at "
           "visor86's n, and the peers agree at theirs.\n",
           workload_table(rows, peer_names), ""]
    missing = [f"{p}: {status[p][9:]}" for p in peer_names if status[p] != "ok"]
    if missing:
        out.append("Missing peers: " + "; ".join(missing) + ".\n")
    slow = [(r["w"].name, mips(r["visor86"].instructions, r["visor86"].seconds)
             / mips(r["work"](r["peers"]["qemu"].n), r["peers"]["qemu"].seconds))
            for r in rows if "qemu" in r["peers"] and r["peers"]["qemu"].seconds > 0]
    if slow:
        below = [f"`{n}` ({fmt_ratio(x)})" for n, x in sorted(slow, key=lambda t: t[1]) if x < 1 / 30]
        out.append("The issue's floor is 1/30 of QEMU TCG. "
                   + ("Below it: " + ", ".join(below) + "." if below else "No workload is below it.") + "\n")
    out += ["## Where visor86's time goes\n",
            "Read from the core's counters after each visor86 run at n (ICACHE_HITS/ICACHE_MISSES and "
            "FAST_RETIRED, JIT_RETIRED in the CPU slots; the fast tier is emu/core/fastpath.py, compiled "
            "blocks emu/blocks.py) and from the returns of the jitted loop to Python, by reason. "
            "The MIPS above are the best of 3 runs in one process: the first run meets the code "
            "first and compiles its hot blocks on the compile thread while the guest runs on "
            "interpreted (its speed, and the blocks and compile seconds of that thread during it, are "
            "in the table); the later ones reuse the machine code the process keeps.\n",
            profile_table(rows), ""]
    if mix:
        mw, counts = mix
        total = sum(counts.values())
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:15]
        out += [f"Instruction mix of `{mw.name}` (n={mw.n if not args.quick else mw.smoke}): the mnemonic "
                f"at EIP every 997 instructions, {total:,} samples (top 15):\n",
                "| mnemonic | share |", "|---|---|"]
        out += [f"| {k} | {100 * c / total:.1f}% |" for k, c in top]
        out.append("")
    rows2 = []
    bq = ("missing", str(boot_q)) if isinstance(boot_q, Exception) else (f"{boot_q:.2f} s", "")
    rows2.append(("demo guest to its prompt, visor86", f"{boot_v[0]:.2f} s",
                  f"{boot_v[1]:,} instructions ({mips(boot_v[1], boot_v[0]):.1f} MIPS) from Machine.pc() "
                  "to `> ` on COM1, visor86's BIOS"))
    rows2.append(("demo guest to its prompt, QEMU", bq[0],
                  bq[1] or "process start to `> ` on COM1, the same BIOS (`-bios firmware/bios/bios.bin`) "
                  f"and disk; ratio visor86/QEMU time = {boot_v[0] / boot_q:.1f}"))
    v_mips = vi / vt / 1e6
    rows2.append(("CPU-bound loop, visor86", f"{v_mips:.1f} MIPS", f"{vi} instructions in {vt:.2f} s "
                  f"(`--iterations {args.iterations}`)"))
    if u is None:
        rows2.append(("CPU-bound loop, Unicorn", "missing", "unicorn is not installed or not asked for"))
    else:
        ui, ut, uesi = u
        assert uesi == vesi, "visor86 and Unicorn disagree on the loop's result"
        rows2.append(("CPU-bound loop, Unicorn", f"{ui / ut / 1e6:.1f} MIPS",
                      f"ratio visor86/Unicorn = {fmt_ratio(v_mips / (ui / ut / 1e6))}"))
    rows2.append(("cold start (empty numba cache)", "not measured (--no-cold)" if cold is None else f"{cold:.1f} s",
                  "compile of the core + a 3-instruction run, new process"))
    rows2.append(("warm start (cache filled)", f"{warm:.2f} s",
                  "`emu run --kernel benchmarks/workloads/empty.elf` to its debug exit, new process, best of 3"))
    rows2.append(("Machine.step()", f"{step * 1e6:.1f} us", "per instruction, NOPs"))
    rows2.append(("port I/O to a Python device", f"{port_io:,.0f} exits/s",
                  "OUT to a port served by `m.port_handlers[port] = device`; each leaves the jitted loop"))
    rows2.append(("snapshot restore + run", f"{resets:,.0f} /s", "16 MiB guest writing 4 pages, "
                  "restore copies back the dirty pages"))
    out += ["## Start-up and API costs\n", "| what | result | notes |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows2]
    text = "\n".join(out) + "\n"
    print(text)
    bad = [r for r in rows if r["checks"]]
    if not args.no_write:
        write_results(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
