"""Batch mode (emu.batch, emu/core/batch.py): one-instruction cases run
back to back inside the jitted loop must end exactly as the same cases
run one by one with Machine.step(), and a batch table the core cannot
trust must be refused without touching memory outside the guest."""

import numpy as np
import pytest

from emu import Machine
from emu.batch import new_cases, exit_name
from emu.core import layout as L
from emu.fuzz.campaign import generate, step_case, HOST_CLASSES
from emu.fuzz.native import DATA_BASE, WINDOW, REGS

CODE_AT = 0x1000


@pytest.fixture(scope="module")
def m():
    return Machine.flat32(memory_size=4 << 20)


def one(code, window=16, **regs):
    cases = new_cases(1, window)
    for name, v in regs.items():
        cases["regs"][0, REGS.index(name)] = v
    cases["code"][0, :len(code)] = list(code)
    cases["code_len"][0] = len(code)
    cases["eflags"][0] = 2
    return cases


def test_docstring_example(m):
    cases = new_cases(2, window=16)
    cases["regs"][:, 0] = [5, 0xFFFFFFFF]
    cases["regs"][:, 3] = 0x100000
    cases["code"][:, :2] = [0x03, 0x03]
    cases["code_len"] = 2
    cases["window"][:, 0] = 1
    out = m.run_cases(cases, code_at=0x1000, window_at=0x100000)
    assert list(out["regs"][:, 0]) == [6, 0]
    assert list(out["eflags"] & 0x40) == [0, 0x40]
    assert list(out["exit"]) == [0, 0] and list(out["eip"]) == [0x1002, 0x1002]


def test_batch_equals_stepping_one_by_one(m):
    """Random cases of every host class: registers, EFLAGS, the window and
    the exception are the same as Machine.step() from the same state."""
    triples = generate(HOST_CLASSES, 11, 0, 1500)
    cases = new_cases(len(triples), WINDOW)
    for i, (_, _, c) in enumerate(triples):
        cases["regs"][i] = [c.regs.get(r, 0) for r in REGS]
        cases["eflags"][i] = (c.eflags & 0x0CD5) | 2
        cases["code_len"][i] = len(c.code)
        cases["code"][i, :len(c.code)] = list(c.code)
        cases["window"][i] = np.frombuffer(c.mem.ljust(WINDOW, b"\0"), np.uint8)
    out = m.run_cases(cases, code_at=CODE_AT, window_at=DATA_BASE)
    single = Machine.flat32(memory_size=4 << 20)
    exceptions = 0
    for i, (_, _, c) in enumerate(triples):
        e = step_case(single, c)
        got = out[i]
        if e.kind == "exception":
            exceptions += 1
            assert exit_name(int(got["exit"])) == "exception" and got["vector"] == e.vector, c
            continue
        assert got["exit"] == L.EXIT_NONE, (c, e)
        assert [int(v) for v in got["regs"]] == [getattr(single.cpu, r) for r in REGS], c
        assert got["eflags"] == single.cpu.eflags and got["eip"] == single.cpu.eip, c
        assert got["window"].tobytes() == single.memory.read(DATA_BASE, WINDOW), c
    assert exceptions > 10          # DIV/IDIV #DE are among them


def test_exceptions_and_exits_are_recorded_and_the_batch_goes_on(m):
    cases = np.concatenate([
        one(b"\xf7\xf1", ecx=0),             # div ecx: #DE (SDM Vol. 2, DIV)
        one(b"\x0f\x0b"),                     # ud2: #UD
        one(b"\x8e\xd8", eax=0x1234),         # mov ds, ax: no LDT -> #GP(selector & ~RPL)
        one(b"\xec", edx=0x5555),             # in al, dx: nothing there reads FFh
        one(b"\xec", edx=0x5556),             # a Python device's port: an io exit, not served
        one(b"\xf4"),                         # hlt retires
        one(b"\x40", eax=41),                 # inc eax: the next case runs normally
    ])

    class Device:
        def read(self, port, size):
            raise AssertionError("a batch does not leave the loop to serve ports")

        def write(self, port, size, value):
            raise AssertionError("a batch does not leave the loop to serve ports")
    m.port_handlers[0x5556] = Device()
    try:
        out = m.run_cases(cases, code_at=CODE_AT, window_at=DATA_BASE)
    finally:
        del m.port_handlers[0x5556]
    kinds = [exit_name(int(k)) for k in out["exit"]]
    assert kinds == ["exception", "exception", "exception", "retired", "io", "retired", "retired"]
    assert list(out["vector"][:3]) == [L.VEC_DE, L.VEC_UD, L.VEC_GP]
    assert out["error"][2] == 0x1234 and out["error"][0] == -1
    assert out["eip"][0] == CODE_AT              # a fault leaves EIP at the instruction
    assert out["regs"][3, 0] & 0xFF == 0xFF and out["eip"][4] == CODE_AT
    assert out["regs"][6, 0] == 42


def test_a_rep_string_instruction_runs_to_its_end(m):
    """REP yields to the loop every 1024 elements; the case still ends only
    when ECX is 0 (SDM Vol. 2, REP: the count is decremented per element)."""
    out = m.run_cases(one(b"\xf3\xaa", ecx=3000, edi=0x200000, eax=0x5A), code_at=CODE_AT,
                      window_at=DATA_BASE)
    assert out["exit"][0] == 0 and out["regs"][0, 1] == 0 and out["regs"][0, 7] == 0x200000 + 3000
    assert m.memory.read(0x200000 + 2999, 2) == b"\x5a\0"


def test_an_endless_case_ends_with_a_budget_exit(m):
    out = m.run_cases(np.concatenate([one(b"\xf3\xaa", ecx=0xFFFFFFFF, edi=0x200000),
                                      one(b"\x40", eax=1)]), code_at=CODE_AT, window_at=DATA_BASE)
    assert exit_name(int(out["exit"][0])) == "budget"
    assert out["regs"][0, 1] == 0xFFFFFFFF - L.BATCH_MAX_STEPS * 1024
    assert out["exit"][1] == 0 and out["regs"][1, 0] == 2


def test_a_batch_larger_than_ram_runs_in_parts():
    small = Machine.flat32(memory_size=1 << 20)
    n = 3000                          # 3000 records of 80 bytes: more than the RAM above the window
    cases = new_cases(n, 16)
    cases["regs"][:, 0] = np.arange(n)
    cases["code"][:, 0] = 0x40
    cases["code_len"] = 1
    out = small.run_cases(cases, code_at=CODE_AT, window_at=0xF0000 - 16 * 1000)
    assert list(out["regs"][:, 0]) == list(range(1, n + 1))


def test_machine_settings_come_back(m):
    m.deliver_exceptions = True
    m.add_breakpoint(CODE_AT)
    try:
        out = m.run_cases(one(b"\xf7\xf1", ecx=0), code_at=CODE_AT, window_at=DATA_BASE)
        assert exit_name(int(out["exit"][0])) == "exception"
        assert m.deliver_exceptions and m._state.cpu[L.BP_COUNT] == 1
        assert m._state.cpu[L.BATCH_LEFT] == 0
    finally:
        m.deliver_exceptions = False
        m.remove_breakpoint(CODE_AT)


@pytest.mark.parametrize("bad, message", [
    (dict(code_len=0), "1 to 15 bytes"),
    (dict(code_len=16), "1 to 15 bytes"),
    (dict(code_at=(4 << 20) - 4), "do not fit"),
    (dict(window_at=-1), "do not fit"),
    (dict(code_at=DATA_BASE + 8), "overlaps"),
])
def test_bad_batches_are_refused_with_a_reason(m, bad, message):
    cases = one(b"\x90")
    if "code_len" in bad:
        cases["code_len"] = bad["code_len"]
    with pytest.raises(ValueError, match=message):
        m.run_cases(cases, code_at=bad.get("code_at", CODE_AT), window_at=bad.get("window_at", DATA_BASE))
    with pytest.raises(TypeError):
        m.run_cases(np.zeros(3, np.uint8), code_at=CODE_AT, window_at=DATA_BASE)
    with pytest.raises(ValueError):
        new_cases(0, 16)


@pytest.mark.parametrize("slot, value", [
    (L.BATCH_RECORD, (4 << 20) - 8),          # the record runs past the end of RAM
    (L.BATCH_RECORD, -64),
    (L.BATCH_WINDOW, 1 << 40),
    (L.BATCH_WINDOW_LEN, 1 << 30),
    (L.BATCH_CODE, (4 << 20) - 1),
    (L.BATCH_RECORD, DATA_BASE),              # the record would be overwritten by its own window
])
def test_the_core_refuses_a_table_it_cannot_trust(slot, value):
    """The jitted loop checks every address of the batch against the RAM
    array before it copies (numba does not bounds-check)."""
    from emu.core.run import run as core_run
    g = Machine.flat32(memory_size=4 << 20)
    before = g.memory.read(0, 4 << 20)
    cpu = g._state.cpu
    cpu[L.OPTIONS] |= L.OPT_STOP_ON_EXCEPTION
    for s, v in ((L.BATCH_LEFT, 3), (L.BATCH_RECORD, 0x200000), (L.BATCH_RECORD_SIZE, L.REC_HEADER + 16),
                 (L.BATCH_CODE, CODE_AT), (L.BATCH_EIP, CODE_AT), (L.BATCH_WINDOW, DATA_BASE),
                 (L.BATCH_WINDOW_LEN, 16), (L.BATCH_STEPS, -1)):
        cpu[s] = v
    cpu[slot] = value
    reason = core_run(g._state, 100, False)
    assert reason == L.EXIT_BATCH and cpu[L.EXIT_ARG] == -1 and cpu[L.BATCH_LEFT] == 0
    assert g.memory.read(0, 4 << 20) == before
