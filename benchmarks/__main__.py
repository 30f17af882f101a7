"""Measure visor86 against its peers in one sitting and write RESULTS.md.

    python -m benchmarks [--iterations N] [--no-write]

Workloads so far: the CPU-bound loop of the performance issue
(mov ecx,N; l: add eax,ecx; xor edx,eax; mov [ebx+4],edx; add esi,[ebx+4];
dec ecx; jnz l), run on visor86 (Machine.flat32) and on Unicorn; the cold
numba compile of the core (in a fresh process with an empty cache) and the
warm start (same, cache filled); and Machine.step() cost.  Peers that are
not installed are reported as missing.
"""
import argparse
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


def bench_start():
    code = ("from emu import Machine; m = Machine.flat32(1 << 20); "
            "m.memory.write(0x1000, b'\\x01\\xc8\\xf4'); m.cpu.eip = 0x1000; assert m.run().kind == 'halt'")
    with tempfile.TemporaryDirectory() as d:
        cold = timed_subprocess(code, d)
        warm = timed_subprocess(code, d)
    return cold, warm


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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--iterations", type=int, default=2_000_000, help="loop iterations (default 2000000)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not rewrite RESULTS.md")
    args = ap.parse_args(argv)
    rows = []
    print("cold/warm start ...", file=sys.stderr)
    cold, warm = bench_start()
    print("loop on visor86 ...", file=sys.stderr)
    vi, vt, vesi = bench_visor86(args.iterations)
    print("loop on unicorn ...", file=sys.stderr)
    u = bench_unicorn(args.iterations)
    step = bench_step()
    resets = bench_reset()
    v_mips = vi / vt / 1e6
    rows.append(("CPU-bound loop, visor86", f"{v_mips:.1f} MIPS", f"{vi} instructions in {vt:.2f} s"))
    if u is None:
        rows.append(("CPU-bound loop, Unicorn", "missing", "unicorn is not installed"))
    else:
        ui, ut, uesi = u
        assert uesi == vesi, "visor86 and Unicorn disagree on the loop's result"
        u_mips = ui / ut / 1e6
        rows.append(("CPU-bound loop, Unicorn", f"{u_mips:.1f} MIPS", f"ratio visor86/Unicorn = {v_mips / u_mips:.2f}"))
    rows.append(("QEMU TCG, native", "missing", "not yet in the harness (performance issue)"))
    rows.append(("cold start (empty numba cache)", f"{cold:.1f} s", "compile of the core + a 3-instruction run"))
    rows.append(("warm start (cache filled)", f"{warm:.2f} s", "new process, same run"))
    rows.append(("Machine.step()", f"{step * 1e6:.1f} us", "per instruction, NOPs"))
    rows.append(("snapshot restore + run", f"{resets:,.0f} /s", "16 MiB guest writing 4 pages, "
                 "restore copies back the dirty pages"))
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    text = (f"# Benchmark results\n\nProduced by `python -m benchmarks --iterations {args.iterations}` on "
            f"{platform.machine()} with {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d')}.\n\n| what | result | notes |\n|---|---|---|\n{table}\n")
    print(text)
    if not args.no_write:
        out = ROOT / "benchmarks" / "RESULTS.md"
        old = out.read_text() if out.is_file() else ""
        notes = old[old.find("\n## Notes"):] if "\n## Notes" in old else ""
        out.write_text(text + notes)     # hand-written notes after the table are kept
    return 0


if __name__ == "__main__":
    sys.exit(main())
