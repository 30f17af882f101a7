"""Guest memory benchmarks: clones, overcommit, resets, migration, and
QEMU's savevm/loadvm as a reference.

    python -m benchmarks.guest_memory [--guests 1000] [--no-qemu]

Prints a Markdown table (the numbers in RESULTS.md's "Guest memory"
section come from it).  Memory figures come from /proc/self/smaps_rollup
("Anonymous": private pages, each counted once) and from the memfd images'
allocated blocks; times from time.perf_counter.
"""
import argparse
import gc
import os
import pathlib
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNELS = ROOT / "firmware" / "kernels"
MiB = 1 << 20


def page_writer(first, count):
    """flat32: write a dword into each of ``count`` pages from ``first``; HLT."""
    return (b"\xbf" + struct.pack("<I", first) + b"\xb9" + struct.pack("<I", count)
            + b"\x89\x0f" + b"\x81\xc7\x00\x10\x00\x00" + b"\x49\x75\xf5" + b"\xf4")


def anonymous():
    from emu import guestmem
    gc.collect()
    return guestmem.process_memory().get("anonymous", 0)


def warm():
    from emu import Machine
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(0, b"\xf4")
    m.run(max_instructions=1)


def bench_clone(rows):
    from emu import Machine, guestmem
    # a 64 MiB guest that has touched 4 MiB
    parent = Machine.flat32(memory_size=64 * MiB)
    parent.memory.write(0x1000, page_writer(0x400000, 1024))
    parent.cpu.eip = 0x1000
    parent.run(max_instructions=100_000)
    t = time.perf_counter()
    first = parent.clone()
    t_first = time.perf_counter() - t
    times = []
    clones = [first]
    for _ in range(200):
        t = time.perf_counter()
        clones.append(parent.clone())
        times.append(time.perf_counter() - t)
    rows.append(("clone of a 64 MiB guest that touched 4 MiB, first", f"{t_first * 1e3:.2f} ms",
                 "freezes the parent: its 1025 touched pages copied into a memfd image, parent remapped "
                 "MAP_PRIVATE in place"))
    rows.append(("clone, next ones (parent unchanged)", f"{statistics.median(times) * 1e3:.2f} ms",
                 f"median of 200 (max {max(times) * 1e3:.2f} ms): a new Machine + one MAP_PRIVATE mmap"))
    # a running kernel: the parent runs on between clones, so each clone freezes again
    k = Machine.from_multiboot(KERNELS / "timer.elf", memory_size=64 * MiB)
    ts = []
    for _ in range(20):
        k.run(max_instructions=20_000)
        t = time.perf_counter()
        c = k.clone()
        ts.append(time.perf_counter() - t)
        del c
    rows.append(("clone of the running timer kernel (64 MiB)", f"{statistics.median(ts) * 1e3:.2f} ms",
                 f"median of 20, the kernel running 20k instructions between clones (max {max(ts) * 1e3:.2f} ms)"))
    # host memory per clone
    del clones
    before = anonymous()
    idle = parent.clone(count=100)
    grown_idle = (anonymous() - before) / 100
    before = anonymous()
    for c in idle:
        c.memory.write(0x1000, page_writer(0x2000000, 256))      # each clone writes 1 MiB
        c.cpu.eip = 0x1000
        c.run(max_instructions=10_000)
    grown_run = (anonymous() - before) / 100
    image = guestmem.image_of(parent._state.mem)
    rows.append(("host memory per clone, not yet run", f"{grown_idle / 1024:.0f} KiB",
                 "process private memory / 100 clones (RAM shared with the parent's image: "
                 f"{image.stored_bytes() / MiB:.1f} MiB, paid once)"))
    rows.append(("host memory per clone that wrote 1 MiB", f"{grown_run / 1024:.0f} KiB more",
                 "256 pages of its own + the code page + icache/TLB/page-log pages it touched"))


def bench_resets(rows):
    from emu import Machine
    sys.path.insert(0, str(ROOT / "examples"))
    import fuzz_parser
    parser = fuzz_parser.GuestParser()
    seed = fuzz_parser.SEEDS[1]
    for _ in range(100):
        parser.parse(seed)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < 2.0:
        parser.parse(seed)
        n += 1
    rate = n / (time.perf_counter() - t)
    rows.append(("resets/s, parser guest (1 MiB), restore + write input + run", f"{rate:,.0f} /s",
                 "examples/fuzz_parser.py: a few hundred instructions, 2-3 dirty pages per input"))
    m = Machine.flat32(memory_size=64 * MiB)
    code = b"".join(b"\xa3" + (0x100000 + 0x1000 * i).to_bytes(4, "little") for i in range(4)) + b"\xf4"
    m.memory.write(0x1000, code)
    m.cpu.eip = 0x1000
    snap = m.snapshot()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < 2.0:
        m.run(max_instructions=10)
        m.restore(snap)
        n += 1
    rate = n / (time.perf_counter() - t)
    rows.append(("resets/s, 64 MiB guest writing 4 pages, run + restore", f"{rate:,.0f} /s",
                 "restore copies back the dirty pages (the dirty log scan is over 16384 pages)"))


def bench_overcommit(rows, guests):
    from emu import Machine, guestmem
    from emu.overcommit import enable_merging, identical_pages
    before = anonymous()
    idle = [Machine.flat32(memory_size=64 * MiB) for _ in range(200)]
    per_idle = (anonymous() - before) / 200
    rows.append(("host memory per idle 64 MiB guest", f"{per_idle / 1024:.0f} KiB",
                 "200 Machine.flat32(64 MiB): RAM, 4 MiB icache and page log lazily mapped; what is "
                 "paid is the device state (92 KiB), port map (64 KiB), TLB (32 KiB), objects"))
    del idle
    before = anonymous()
    t = time.perf_counter()
    ms = []
    for i in range(guests):
        m = Machine.flat32(memory_size=64 * MiB)
        m.memory.write(0x1000, page_writer(0x100000, 255))     # 255 pages + the code page = 1 MiB
        m.cpu.eip = 0x1000
        m.cpu.eax = i
        e = m.run(max_instructions=10_000)
        assert e.kind == "halt", e
        ms.append(m)
    seconds = time.perf_counter() - t
    grown = anonymous() - before
    rows.append((f"{guests} guests x 64 MiB configured, each touching 1 MiB",
                 f"{grown / MiB:,.0f} MiB total", f"{grown / guests / 1024:.0f} KiB per guest "
                 f"({guests * 64 / 1024:.1f} GiB configured); built and run in {seconds:.1f} s in one process"))
    t = time.perf_counter()
    sharing = identical_pages(ms)
    scan = time.perf_counter() - t
    accepted, ksm = enable_merging(ms)
    rows.append(("identical pages across those guests", f"{sharing.saving_bytes / MiB:,.0f} MiB mergeable",
                 f"{sharing.pages} pages held, {sharing.distinct} distinct (scan {scan:.1f} s); KSM on this "
                 f"host: {ksm} (madvise MERGEABLE accepted for {accepted} guests)"))


def bench_migration(rows, runs=5):
    from emu import Machine, migrate
    from tests.asm import assemble
    from tests.test_migrate import WRITER
    code = assemble(WRITER)
    downs, totals, rounds = [], [], []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for _ in range(runs):
        rx = subprocess.Popen([sys.executable, "-m", "emu.cli", "migrate", "--listen", "0", "--serial", "none"],
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
        port = int(re.search(r":(\d+)", rx.stderr.readline()).group(1))
        m = Machine.flat32(memory_size=64 * MiB)
        m.memory.write(0x1000, code)
        m.cpu.eip = 0x1000
        m.run(max_instructions=300_000)
        rep = migrate.send(m, "127.0.0.1", port, slice_instructions=50_000)
        rx.wait(timeout=300)
        downs.append(rep.downtime_s)
        totals.append(rep.total_s)
        rounds.append(rep)
    r = rounds[len(rounds) // 2]
    rows.append(("live migration downtime (loopback, 64 MiB guest rewriting 64 pages)",
                 f"{statistics.median(downs) * 1e3:.2f} ms",
                 f"median of {runs} (min {min(downs) * 1e3:.2f}, max {max(downs) * 1e3:.2f}); stop -> "
                 f"receiver's ack; e.g. rounds {r.rounds} pages then {r.final_pages} stopped, total "
                 f"{statistics.median(totals) * 1e3:.0f} ms"))


def hmp(proc, command, timeout=120):
    """Send an HMP command on QEMU's stdio monitor and wait for the next prompt."""
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    t = time.perf_counter()
    out = ""
    while not out.rstrip().endswith("(qemu)"):
        ch = proc.stdout.read(1)
        if not ch:
            raise RuntimeError(f"QEMU went away during {command!r}: {out}")
        out += ch
        if time.perf_counter() - t > timeout:
            raise RuntimeError(f"QEMU did not answer {command!r}")
    return time.perf_counter() - t, out


def bench_qemu(rows):
    qemu, img = shutil.which("qemu-system-i386"), shutil.which("qemu-img")
    if not qemu or not img:
        rows.append(("QEMU savevm / loadvm", "missing", "qemu-system-i386 or qemu-img not installed"))
        return
    with tempfile.TemporaryDirectory() as d:
        disk = pathlib.Path(d) / "state.qcow2"
        subprocess.run([img, "create", "-f", "qcow2", str(disk), "64M"], check=True, capture_output=True)
        proc = subprocess.Popen([qemu, "-m", "64", "-kernel", str(KERNELS / "timer.elf"), "-S",
                                 "-drive", f"file={disk},if=ide,format=qcow2", "-display", "none",
                                 "-serial", "none", "-monitor", "stdio", "-accel", "tcg"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        try:
            hmp(proc, "")
            saves, loads = [], []
            for i in range(5):
                saves.append(hmp(proc, f"savevm s{i}")[0])
                loads.append(hmp(proc, f"loadvm s{i}")[0])
        finally:
            proc.kill()
    rows.append(("QEMU savevm (HMP, 64 MiB, TCG, paused at start)", f"{statistics.median(saves) * 1e3:.0f} ms",
                 f"median of 5, qcow2 internal snapshot on tmpfs/disk; measured here, qemu-system-i386 "
                 f"{qemu_version(qemu)}"))
    rows.append(("QEMU loadvm (HMP, same)", f"{statistics.median(loads) * 1e3:.0f} ms", "median of 5"))


def qemu_version(qemu):
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "?"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.guest_memory")
    ap.add_argument("--guests", type=int, default=1000, help="guests in the overcommit run (default 1000)")
    ap.add_argument("--no-qemu", action="store_true", help="skip the QEMU savevm/loadvm reference")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    warm()
    rows = []
    # overcommit first: a fresh heap, so freed memory of other benchmarks does not hide growth
    for name, fn in (("overcommit", lambda r: bench_overcommit(r, args.guests)),
                     ("clones", bench_clone), ("resets", bench_resets), ("migration", bench_migration)):
        print(f"{name} ...", file=sys.stderr, flush=True)
        fn(rows)
        gc.collect()
    if not args.no_qemu:
        print("qemu ...", file=sys.stderr, flush=True)
        try:
            bench_qemu(rows)
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            rows.append(("QEMU savevm / loadvm", "failed", str(e)[:200]))
    print("| what | result | notes |\n|---|---|---|")
    for a, b, c in rows:
        print(f"| {a} | {b} | {c} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
