"""Cases per second of each side of a differential fuzzer, in one run, on
the same cases (the host classes of `emu fuzz`: alu, bits, flagctl, move,
muldiv, shift, 32-bit):

    python -m benchmarks.fuzz_throughput [--cases N] [--seed S]

- visor86 in batch mode (Machine.run_cases), inside the jitted loop and
  with Python's marshalling of the case table;
- visor86 one case per Machine.step() (what a fuzzer without batch mode pays);
- Unicorn: one emu_start per case, after writing the case's code, window
  and registers; the code changes every case, so Unicorn's translated
  blocks of the code page must be dropped (ctl_remove_cache) each time;
  also emu_start alone on an instruction already translated.  Cases with
  a LOCK prefix are left out on this side: Unicorn 2.1.4 aborts the whole
  process on LOCK before a register operand (e.g. f0 66 0f b3 d9) instead
  of raising #UD;
- the host CPU: emu.fuzz.native's forked worker.
"""
import argparse
import platform
import time

from emu.fuzz.campaign import Visor86Side, generate, step_case, HOST_CLASSES, CODE_AT
from emu.fuzz.native import NativeExecutor, DATA_BASE, WINDOW, REGS


def unicorn_rates(cases):
    """(cases/s with a fresh translation per case, emu_start alone in microseconds)."""
    import unicorn
    from unicorn import x86_const as X
    regs = {r: getattr(X, f"UC_X86_REG_{r.upper()}") for r in REGS}
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32)
    uc.mem_map(0, 2 << 20)
    stopped = []
    uc.hook_add(unicorn.UC_HOOK_INTR, lambda uc, intno, data: (stopped.append(intno), uc.emu_stop()))
    clean = uc.context_save()
    t = time.perf_counter()
    for c in cases:
        uc.mem_write(CODE_AT, c.code + b"\x90" * 16)
        uc.ctl_remove_cache(CODE_AT, CODE_AT + 0x20)
        uc.mem_write(DATA_BASE, c.mem.ljust(WINDOW, b"\0"))
        for r in REGS:
            uc.reg_write(regs[r], c.regs.get(r, 0))
        uc.reg_write(X.UC_X86_REG_EFLAGS, (c.eflags & 0x0CD5) | 2)
        stopped.clear()
        try:
            uc.emu_start(CODE_AT, CODE_AT + 0x1000, count=1)
        except unicorn.UcError:
            stopped.append(-1)
        for r in REGS:
            uc.reg_read(regs[r])
        uc.reg_read(X.UC_X86_REG_EFLAGS)
        uc.mem_read(DATA_BASE, WINDOW)
        if stopped:
            uc.context_restore(clean)
    fresh = len(cases) / (time.perf_counter() - t)
    uc.mem_write(CODE_AT, b"\x01\xc8" + b"\x90" * 16)
    uc.ctl_remove_cache(CODE_AT, CODE_AT + 0x20)
    n = 20_000
    t = time.perf_counter()
    for _ in range(n):
        uc.emu_start(CODE_AT, CODE_AT + 0x1000, count=1)
    return fresh, (time.perf_counter() - t) / n * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.fuzz_throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    cases = [c for _, _, c in generate(HOST_CLASSES, args.seed, 0, args.cases)]
    side = Visor86Side("host")
    t = time.perf_counter()
    for k in range(0, len(cases), 1000):
        side.run_many(cases[k:k + 1000])
    marshalled = len(cases) / (time.perf_counter() - t)
    in_loop = len(cases) / side.batch_seconds
    m = side.m
    t = time.perf_counter()
    for c in cases:
        step_case(m, c)
    stepped = len(cases) / (time.perf_counter() - t)
    try:
        uc_fresh, uc_start_us = unicorn_rates([c for c in cases if 0xF0 not in c.code[:4]])
    except ImportError:
        uc_fresh = uc_start_us = None
    with NativeExecutor() as native:
        t = time.perf_counter()
        for k in range(0, len(cases), 1000):
            native.run(cases[k:k + 1000])
        host = len(cases) / (time.perf_counter() - t)
    rows = [("visor86, batch mode, inside the jitted loop", f"{in_loop:,.0f} cases/s"),
            ("visor86, batch mode, with Python's marshalling", f"{marshalled:,.0f} cases/s"),
            ("visor86, one Machine.step() per case", f"{stepped:,.0f} cases/s"),
            ("Unicorn, one emu_start per case (code changes: ctl_remove_cache each case)",
             "missing" if uc_fresh is None else f"{uc_fresh:,.0f} cases/s"),
            ("Unicorn, emu_start alone on an already translated instruction",
             "missing" if uc_start_us is None else f"{uc_start_us:.1f} us"),
            ("host CPU, forked worker (emu.fuzz.native)", f"{host:,.0f} cases/s")]
    print(f"{len(cases):,} cases (seed {args.seed}) on {platform.machine()}, Python {platform.python_version()}")
    print("| side | rate |\n|---|---|")
    for what, rate in rows:
        print(f"| {what} | {rate} |")


if __name__ == "__main__":
    main()
