"""Batch mode: thousands of one-instruction cases per call of the jitted
loop, each from its own registers, flags, code and data window, with no
Python between cases (the loop's side is emu/core/batch.py).

    import numpy as np
    from emu import Machine
    from emu.batch import new_cases

    m = Machine.flat32(memory_size=4 << 20)
    cases = new_cases(2, window=16)
    cases["regs"][:, 0] = [5, 0xFFFFFFFF]           # EAX
    cases["regs"][:, 3] = 0x100000                  # EBX -> the window
    cases["code"][:, :2] = [0x03, 0x03]             # add eax, [ebx]
    cases["code_len"] = 2
    cases["window"][:, 0] = 1                       # [ebx] = 1
    out = m.run_cases(cases, code_at=0x1000, window_at=0x100000)
    out["regs"][:, 0]                                # -> [6, 0]
    out["eflags"] & 0x40                             # ZF: [0, 0x40]

A case's outcome: ``regs`` (EAX..EDI), ``eflags``, ``eip`` and the
``window`` after the instruction, ``exit`` (an EXIT_* name index: 0 when
it retired, see ``exit_name``), and ``vector``/``error`` of an exception
(-1 when there was none).  Segment and control registers are not reset
between cases: a batch is for instructions that change only the general
registers, the flags and memory (the fuzzer runs the rest one by one).
"""
import numpy as np

from emu.core import layout as L

MAX_WINDOW = 1 << 16
PAGE = 4096


def case_dtype(window):
    """The record of one case in guest RAM (layout.REC_*)."""
    return np.dtype({"names": ["regs", "eflags", "code_len", "code", "window"],
                     "formats": [("<u4", 8), "<u4", "u1", ("u1", 15), ("u1", window)],
                     "offsets": [L.REC_REGS, L.REC_EFLAGS, L.REC_CODE_LEN, L.REC_CODE, L.REC_HEADER],
                     "itemsize": L.REC_HEADER + window})


def outcome_dtype(window):
    """The same record once the case has run."""
    return np.dtype({"names": ["regs", "eflags", "eip", "exit", "vector", "error", "window"],
                     "formats": [("<u4", 8), "<u4", "<u4", "<i4", "<i4", "<i4", ("u1", window)],
                     "offsets": [L.REC_REGS, L.REC_EFLAGS, L.REC_EIP, L.REC_EXIT, L.REC_VECTOR,
                                 L.REC_ERROR, L.REC_HEADER],
                     "itemsize": L.REC_HEADER + window})


def new_cases(n, window):
    """``n`` zeroed case records with a data window of ``window`` bytes."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"a batch needs at least one case, not {n!r}")
    _check_window(window)
    return np.zeros(n, case_dtype(window))


def exit_name(code):
    """"retired" for 0, else the exit's name ("exception", "io", "budget" ...)."""
    return "retired" if code == L.EXIT_NONE else L.EXIT_NAMES[code]


def _check_window(window):
    if not isinstance(window, int) or not 0 <= window <= MAX_WINDOW:
        raise ValueError(f"the data window is 0 to {MAX_WINDOW} bytes, not {window!r}")


def run_cases(machine, cases, code_at, window_at, eip=None):
    """Run every case of ``cases`` (from ``new_cases``) in ``machine``; the
    outcomes, as an array of ``outcome_dtype``.  The code goes to physical
    ``code_at`` and runs from EIP ``eip`` (default: ``code_at``, right for
    flat segments), the window to physical ``window_at``; the table of
    records uses the RAM above both."""
    from emu.core.run import run as core_run
    if not isinstance(cases, np.ndarray) or cases.dtype.names is None or "code_len" not in cases.dtype.names:
        raise TypeError("cases must be an array from emu.batch.new_cases()")
    window = cases.dtype["window"].shape[0] if cases.dtype["window"].shape else 1
    if cases.dtype != case_dtype(window):
        if cases.dtype.names != case_dtype(window).names:
            raise TypeError("cases must be an array from emu.batch.new_cases()")
        cases = cases.astype(case_dtype(window))      # e.g. np.concatenate packed the fields
    lengths = cases["code_len"]
    if len(cases) and (lengths.min() < 1 or lengths.max() > 15):
        bad = int(np.argmax((lengths < 1) | (lengths > 15)))
        raise ValueError(f"case {bad}: an instruction is 1 to 15 bytes, code_len is {int(lengths[bad])}")
    ram = machine.memory_size
    for name, at, n in (("code_at", code_at, 15), ("window_at", window_at, window)):
        if not isinstance(at, int) or at < 0 or at + n > ram:
            raise ValueError(f"{name}={at!r}: {n} bytes there do not fit in the guest's {ram} bytes of RAM")
    if code_at < window_at + window and window_at < code_at + 15:
        raise ValueError(f"the code at {code_at:#x} overlaps the window at {window_at:#x}")
    size = cases.dtype.itemsize
    table = (max(code_at + 15, window_at + window) + PAGE - 1) // PAGE * PAGE
    per_call = (ram - table) // size
    if per_call < 1:
        raise ValueError(f"no room in RAM above the code and the window for a {size}-byte case record "
                         f"(the guest has {ram} bytes)")
    st = machine._state
    cpu = st.cpu
    saved_options, saved_bps = int(cpu[L.OPTIONS]), int(cpu[L.BP_COUNT])
    cpu[L.OPTIONS] = saved_options | L.OPT_STOP_ON_EXCEPTION
    cpu[L.BP_COUNT] = 0
    out = np.empty(len(cases), outcome_dtype(window))
    raw = cases.view(np.uint8).reshape(len(cases), size)
    try:
        for first in range(0, len(cases), per_call):
            n = min(per_call, len(cases) - first)
            st.mem[table:table + n * size] = raw[first:first + n].reshape(-1)
            cpu[L.BATCH_LEFT] = n
            cpu[L.BATCH_RECORD] = table
            cpu[L.BATCH_RECORD_SIZE] = size
            cpu[L.BATCH_CODE] = code_at
            cpu[L.BATCH_EIP] = code_at if eip is None else eip
            cpu[L.BATCH_WINDOW] = window_at
            cpu[L.BATCH_WINDOW_LEN] = window
            cpu[L.BATCH_STEPS] = -1
            while True:
                reason = int(core_run(st, n * L.BATCH_MAX_STEPS + 16, False))
                if reason == L.EXIT_BATCH:
                    break
                if reason == L.EXIT_COMPILE:
                    cpu[L.JIT_REQUEST] = 0        # left by an earlier run (a batch asks for no blocks)
                    continue
                if reason != L.EXIT_BUDGET:
                    raise RuntimeError(f"the batch stopped with a {L.EXIT_NAMES[reason]} exit")
            if int(cpu[L.EXIT_ARG]) < 0:
                raise RuntimeError("the core refused the batch table")
            out[first:first + n] = st.mem[table:table + n * size].view(out.dtype)
    finally:
        cpu[L.BATCH_LEFT] = 0
        cpu[L.OPTIONS] = saved_options
        cpu[L.BP_COUNT] = saved_bps
    return out
