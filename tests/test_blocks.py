"""Compiled blocks (emu/blocks.py) against the interpreting fast tier.

A block must leave exactly the state the fast tier leaves: the same
registers, lazy flags record, EIP/NEXT_EIP/INSN_EIP/EA, counters, memory,
page-table bits and TLB, after any number of instructions, and leave
before an instruction the fast tier would hand to the generic path (TLB
miss, page cross, memory outside RAM, a write to code, a non-flat
segment).  The random programs of tests/test_fastpath.py run three times
over (the first pass compiles every leader: JIT_THRESHOLD = 1, the later
passes run the blocks), once with blocks and once without; every array
must match but for the block bookkeeping."""
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from emu import Machine, blocks
from emu.core import layout as L
from emu.core.blockcall import BLOCK_ENV_PAGING
from tests import test_fastpath as fastpath_tests
from tests.test_fastpath import twin_machines, program, run_chunks, CODE, DATA, MEMORY


@pytest.fixture(autouse=True, scope="module")
def compile_in_the_run():
    """Blocks compile while the run waits, so every test knows when they
    are in (test_background_compile_* covers the compile thread)."""
    blocks.BACKGROUND = False
    yield
    blocks.BACKGROUND = True


def assert_same_state(jit, plain, where):
    fastpath_tests.assert_same_state(jit, plain, where, ("blocks", "interpreted"), same_tier=True)


def run_passes(seed, paging, chunks, passes=3, policy="intel"):
    jit, plain = twin_machines(seed, paging)
    jit._state.cpu[L.JIT_THRESHOLD] = 1
    plain.fast_path = True          # twin_machines makes a fast and a generic one
    plain.jit = False
    jit.undefined_flags = plain.undefined_flags = policy
    code = program(seed, 60)
    for m in (jit, plain):
        m.memory.write(CODE, code)
    for p in range(passes):
        for m in (jit, plain):
            m.cpu.eip = CODE
        run_chunks(jit, plain, chunks, f"seed {seed} pass {p}", names=("blocks", "interpreted"),
                   same_tier=True)
    return jit


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), chunks=st.lists(st.integers(1, 60), min_size=1, max_size=5))
def test_random_programs_leave_the_same_state_with_blocks(seed, chunks):
    run_passes(seed, False, chunks)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), chunks=st.lists(st.integers(1, 60), min_size=1, max_size=5))
def test_random_programs_under_paging_leave_the_same_state_with_blocks(seed, chunks):
    run_passes(seed, True, chunks)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), paging=st.booleans(), policy=st.sampled_from(["amd", "zero"]))
def test_random_programs_leave_the_same_state_under_every_undefined_flags_policy(seed, paging, policy):
    """A block is made for the policy in force (SHL/SHR/SAR's undefined OF
    and AF, flags.pick_undefined)."""
    run_passes(seed, paging, [25, 7, 60], policy=policy)


def test_blocks_run_most_of_the_random_programs():
    """The comparison above is not vacuous: across seeds, the later passes
    run instructions in blocks."""
    retired = sum(int(run_passes(seed, paging, [200])._state.cpu[L.JIT_RETIRED])
                  for seed in range(20) for paging in (False, True))
    assert retired > 200


def loop_machine(jit, count=5000, at=CODE):
    """The issue's loop: ADD, XOR, MOV to memory, ADD from memory, DEC, JNZ."""
    code = bytes([0xB9]) + count.to_bytes(4, "little") + bytes(
        [0xBB, 0, 0x30, 0, 0, 0x01, 0xC8, 0x31, 0xC2, 0x89, 0x53, 0x04, 0x03, 0x73, 0x04, 0x49, 0x75,
         0xF3, 0xF4])
    m = Machine.flat32(memory_size=MEMORY)
    m.jit = jit
    m.memory.write(at, code)
    m.cpu.eip = at
    return m


def test_the_issues_loop_runs_as_one_compiled_block():
    jit, plain = loop_machine(True), loop_machine(False)
    for m in (jit, plain):
        e = m.run(max_instructions=100_000)
        assert e.kind == "halt" and e.instructions == 2 + 6 * 5000 + 1
        assert m.memory.read_u32(DATA + 4) == m.cpu.edx
    assert_same_state(jit, plain, "the loop")
    assert jit.exit_counts.get("compile") == 1
    # compiled once the loop's start was reached JIT_DEFAULT_THRESHOLD times
    assert int(jit._state.cpu[L.JIT_RETIRED]) >= 6 * (5000 - L.JIT_DEFAULT_THRESHOLD) - 6
    assert int(plain._state.cpu[L.JIT_RETIRED]) == 0


@pytest.mark.parametrize("budget", [1, 7, 600, 6001])
def test_a_block_that_loops_stops_at_the_budget(budget):
    """The block runs its loop again only while a whole pass fits the
    budget: run(max_instructions) stops at the same instruction."""
    jit, plain = loop_machine(True), loop_machine(False)
    jit._state.cpu[L.JIT_THRESHOLD] = 1
    for m in (jit, plain):
        m.run(max_instructions=50)
    for _ in range(3):
        assert jit.run(max_instructions=budget) == plain.run(max_instructions=budget)
        assert_same_state(jit, plain, f"budget {budget}")


def branchy_loop_machine(jit, count=3000):
    """A loop with a branch inside: ``l: test cl, 1; jz skip; add eax, ecx;
    skip: xor edx, eax; dec ecx; jnz l; hlt``, after ``mov ecx, count``."""
    code = bytes([0xB9]) + count.to_bytes(4, "little") + bytes(
        [0xF6, 0xC1, 0x01, 0x74, 0x02, 0x01, 0xC8, 0x31, 0xC2, 0x49, 0x75, 0xF4, 0xF4])
    m = Machine.flat32(memory_size=MEMORY)
    m.jit = jit
    m.memory.write(CODE + 0x80, code)
    m.cpu.eip = CODE + 0x80
    return m


@pytest.mark.parametrize("budget", [1, 5, 7, 600, 6001])
def test_a_block_with_branches_inside_runs_them_and_stops_at_the_budget(budget):
    """A block holds the instructions its leader reaches by direct jumps on
    its page (both ways of a Jcc; a jump back is taken inside the block only
    while a pass through all of it fits the budget)."""
    jit, plain = branchy_loop_machine(True), branchy_loop_machine(False)
    jit._state.cpu[L.JIT_THRESHOLD] = 1
    for m in (jit, plain):
        m.run(max_instructions=30)
    for i in range(4):
        e = jit.run(max_instructions=budget)
        assert e == plain.run(max_instructions=budget)
        assert_same_state(jit, plain, f"budget {budget}, run {i}")
    assert jit.run() == plain.run()
    assert_same_state(jit, plain, "the end")
    assert jit.cpu.ecx == 0
    # most of the loop ran in blocks: 3000 passes of 5.5 instructions
    assert int(jit._state.cpu[L.JIT_RETIRED]) > 15_000


RECURSION = """
bits 32
org 0x1000
    mov eax, 13
    call fib
    mov ebx, eax
    call skip_two           ; returns past the 2-byte instruction after the call
    inc bl
    inc ebx
    hlt
fib:                        ; eax = fib(eax), recursively
    cmp eax, 2
    jb .done
    push eax
    dec eax
    call fib
    pop ecx
    push eax
    lea eax, [ecx - 2]
    call fib
    pop ecx
    add eax, ecx
.done:
    ret
skip_two:                   ; a return that is no call site's
    pop ecx
    add ecx, 2
    push ecx
    ret
"""


def recursion_machine(jit):
    from tests.asm import assemble
    m = Machine.flat32(memory_size=MEMORY)
    m.jit = jit
    m.memory.write(CODE, assemble(RECURSION))
    m.cpu.eip, m.cpu.esp = CODE, 0x8000
    return m


@pytest.mark.parametrize("budget", [1, 6, 600, 6001])
def test_calls_and_returns_on_the_page_stay_in_the_block(budget):
    """A block follows a direct call into its callee and keeps the return
    site: a RET that pops a return site of the block goes on inside it
    (recursion runs in one block), any other address leaves it; the budget
    still stops the run where the interpreter stops (a call back to the
    leader is a jump back)."""
    jit, plain = recursion_machine(True), recursion_machine(False)
    jit._state.cpu[L.JIT_THRESHOLD] = 10
    while True:
        e = jit.run(max_instructions=budget)
        assert e == plain.run(max_instructions=budget)
        assert_same_state(jit, plain, f"budget {budget}")
        if e.kind != "budget":
            break
    assert e.kind == "halt" and jit.cpu.eax == 233 and jit.cpu.ebx == 234       # fib(13), INC BL skipped
    if budget >= 600:
        assert int(jit._state.cpu[L.JIT_RETIRED]) > 0.9 * int(jit._state.cpu[L.ICOUNT])


def test_a_write_to_the_code_drops_the_block():
    """Self-modifying code: a write to a page holding decoded code bumps its
    generation, so the block (in the leader's icache row) is not run."""
    jit, plain = loop_machine(True, 3000), loop_machine(False, 3000)
    for m in (jit, plain):
        m.run(max_instructions=2 + 6 * 2000)
        m.memory.write(CODE + 10, b"\x29")          # add eax, ecx -> sub eax, ecx
        assert m.run().kind == "halt"
    assert_same_state(jit, plain, "after the patch")
    assert jit.exit_counts.get("compile") == 2


@pytest.mark.parametrize("case", fastpath_tests.WALK_CASES)
def test_blocks_fill_tlb_misses_as_the_fast_tier_does(case):
    """A TLB miss inside a block calls memory.quiet_walk (a C function) and
    stays in the block; the page tables, TLB and decode cache end as the
    fast tier leaves them, and the walks it must not do leave the block."""
    jit, plain = (fastpath_tests.page_walk_machine(case, jit=j) for j in (True, False))
    jit._state.cpu[L.JIT_THRESHOLD] = 1
    run_chunks(jit, plain, [5, 37, 1000, 2000, 100_000], case, names=("blocks", "interpreted"),
               same_tier=True)
    share = int(jit._state.cpu[L.JIT_RETIRED]) / int(jit._state.cpu[L.ICOUNT])
    least = {"tables in code": 0.1, "not present": 0.5}.get(case, 0.95)   # each walk there drops the block
    assert share > least, f"{case}: {share:.1%} in blocks"


@pytest.mark.parametrize("name", ["crc32", "sieve", "sort", "dhry", "recurse", "paging", "timer", "smc"])
def test_workloads_run_the_same_with_blocks(name):
    """The benchmark kernels with a block at every leader (threshold 1)
    against the interpreting fast tier, at checkpoints."""
    from benchmarks.workloads import by_name
    w, = by_name([name])
    jit = Machine.from_multiboot(str(w.elf), memory_size=32 << 20, cmdline=f"n={w.smoke}")
    plain = Machine.from_multiboot(str(w.elf), memory_size=32 << 20, cmdline=f"n={w.smoke}")
    jit._state.cpu[L.JIT_THRESHOLD] = 1
    plain.jit = False
    for step in (1, 10, 1000, 20_000, 100_000, 300_000, 1_000_000):
        e1, e2 = jit.run(max_instructions=step), plain.run(max_instructions=step)
        assert e1 == e2
        assert_same_state(jit, plain, f"{name} after {step}")
        assert jit.com1.read() == plain.com1.read()
        if e1.kind != "budget":
            break
    assert int(jit._state.cpu[L.JIT_RETIRED]) > 0


def test_block_ir_checks_every_guest_index():
    """Guest isolation: every load or store through a guest-derived index
    in a block's IR comes after the checks the fast tier makes (the RAM
    bound before guest memory, the page map size before the page map)."""
    m = loop_machine(True)
    m._state.cpu[L.JIT_THRESHOLD] = 1
    m.run(max_instructions=50)
    idx = [i for i in range(L.IC_ENTRIES) if m._state.ic[i, L.D_BLOCK] != 0]
    assert idx
    key = int(m._state.ic[idx[0], L.D_BLOCK_KEY])
    env = key >> L.BLOCK_KEY_ENV
    insns = blocks.read_block(m._state.ic, m._state.pm, idx[0], key & 0xFFFFFFFF, env)
    for paging in (0, BLOCK_ENV_PAGING):
        body = blocks.block_ir(insns, env | paging).split("\n")
        body = "\n".join(line for line in body if "%s" not in line.split("=")[0])   # past the prologue
        body = body[body.index("br label %i0"):]
        # the memory operand's access follows its bound check; the page map's too
        assert "%mem_size" in body and body.index("%mem_size") < body.index("getelementptr i8, i8* %mem")
        assert body.index("%pm_size") < body.index("getelementptr i64, i64* %pm")
        if paging:
            # the TLB index is masked before the TLB is read
            assert body.index("%tlb_mask") < body.index("getelementptr i64, i64* %tlb")


def test_jit_switch_and_reset():
    m = Machine.flat32(memory_size=MEMORY)
    assert m.jit
    m.jit = False
    assert not m.jit
    m.reset()
    assert not m.jit, "the switch is a setting of the machine, kept by reset"
    m.jit = True
    assert int(m._state.cpu[L.JIT_THRESHOLD]) == L.JIT_DEFAULT_THRESHOLD


@pytest.mark.parametrize("segment", ["ds", "es", "ss"])
def test_a_block_made_while_a_segment_is_read_only_leaves_its_writes_to_the_generic_path(segment):
    """``l: mov eax, [ebx]; dec ecx; jnz l; mov [ebx], eax; hlt`` (through
    ``segment``), run once, then again with that segment flat but
    read-only: the loop runs in a block made for that, and the write after
    it is a #GP(0) (#SS(0) for SS; SDM Vol. 3, 5.5), as the generic path
    raises it."""
    prefix = {"ds": b"", "es": b"\x26", "ss": b"\x36"}[segment]
    code = b"\xb9\x00\x10\x00\x00\xbb\x00\x30\x00\x00" + prefix + b"\x8b\x03\x49\x75" \
        + bytes([0x100 - 5 - len(prefix)]) + prefix + b"\x89\x03\xf4"
    exits = []
    for jit in (True, False):
        m = Machine.flat32(memory_size=MEMORY)
        m.jit = jit
        m._state.cpu[L.JIT_THRESHOLD] = 50
        m.memory.write(CODE, code)
        m.cpu.esp = 0x8000
        m.cpu.eip, m.cpu.ecx = CODE + 5, 10          # a short run first: every instruction decoded
        assert m.run(max_instructions=100).kind == "halt"
        m.cpu.eip = CODE
        m.cpu.set_segment(segment, 0x18, 0, 0xFFFFFFFF, 0xC091)       # data, read-only
        exits.append(m.run(max_instructions=100_000))
        if jit:
            assert int(m._state.cpu[L.JIT_RETIRED]) > 1000
    assert exits[0] == exits[1]
    assert (exits[0].kind, exits[0].vector) == ("exception", 12 if segment == "ss" else 13)


def test_a_block_runs_only_under_the_conditions_it_was_made_for():
    """A block is compiled for the entry conditions (paging, CPL, WP,
    flat segments, the undefined-flags policy): under others the fast tier
    interprets, and once the row is hot again it gets a block for them."""
    jit, plain = loop_machine(True, 4000), loop_machine(False, 4000)
    jit._state.cpu[L.JIT_THRESHOLD] = 5
    for m in (jit, plain):
        m.run(max_instructions=600)
    made = jit.exit_counts.get("compile")
    assert made == 1
    for m in (jit, plain):
        m.undefined_flags = "amd"
        assert m.run(max_instructions=600).kind == "budget"
    assert_same_state(jit, plain, "after the policy changed")
    assert jit.exit_counts.get("compile") == made + 1
    leader = [i for i in range(L.IC_ENTRIES) if jit._state.ic[i, L.D_BLOCK] != 0]
    assert len(leader) == 1
    key = int(jit._state.ic[leader[0], L.D_BLOCK_KEY])
    assert key >> L.BLOCK_KEY_ENV & blocks.BLOCK_ENV_AMD


def test_background_compile_puts_blocks_in_while_the_guest_runs():
    """With BACKGROUND on (the default), a hot block compiles on the compile
    thread while the guest goes on interpreting, and is put in its row at a
    later stop of Machine.run; the guest's state is the interpreter's
    throughout."""
    blocks.BACKGROUND = True
    try:
        # an address no other test compiles at (compiled code is shared by EIP)
        jit, plain = loop_machine(True, 20_000, CODE + 0x340), loop_machine(False, 20_000, CODE + 0x340)
        jit._state.cpu[L.JIT_THRESHOLD] = 3
        waited = False
        for i in range(400):
            e1, e2 = jit.run(max_instructions=2_000), plain.run(max_instructions=2_000)
            assert e1 == e2, f"checkpoint {i}"
            if e1.kind != "budget":
                break
            if i % 50 == 0:
                assert_same_state(jit, plain, f"checkpoint {i}")
            if jit._blocks_pending and not waited:
                # the guest ran on while they compile; let them finish, so the
                # next run surely puts them in
                waited = True
                assert all(jit._state.ic[idx, L.D_HEAT] == L.BLOCK_PENDING
                           for idx, *_ in jit._blocks_pending)
                blocks.wait_for_compiles()
        assert waited, "some block compiled in the background"
        assert e1.kind == "halt"
        assert_same_state(jit, plain, "the end")
        assert int(jit._state.cpu[L.JIT_RETIRED]) > 0, "blocks went in and ran"
        assert not blocks.stats["errors"]
    finally:
        blocks.BACKGROUND = False
