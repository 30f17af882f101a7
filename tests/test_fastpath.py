"""The fast tier (emu/core/fastpath.py) against the generic path.

The fast tier must leave exactly the state the generic path leaves: the
same registers, lazy flags record, EIP/NEXT_EIP/INSN_EIP/EA, counters,
memory, page-table bits, TLB and decode cache, after any number of
instructions.  Random programs mixing the instructions it takes with ones
it does not (so the lazy flags record crosses between the two paths), with
memory operands that may leave RAM, cross pages, hit code pages or fault,
run twice: with ``Machine.fast_path`` on and off; every array must match.
The benchmark workloads are compared the same way at checkpoints."""
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from emu import Machine
from emu.core import layout as L

CODE = 0x1000
DATA = 0x3000
MEMORY = 1 << 20
EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI = range(8)


def modrm(mod, reg, rm):
    return bytes([(mod << 6) | (reg << 3) | rm])


def rm_operand(rnd, reg_field):
    """A ModRM r/m operand: a register, or memory through EBX/ESI (which
    point at the data page, unless the program changed them), an absolute
    address, or base + index * scale."""
    form = rnd.randrange(7)
    if form <= 1:
        return modrm(3, reg_field, rnd.choice([EAX, ECX, EDX, EBX, EBP, ESI, EDI]))
    if form == 2:
        return modrm(1, reg_field, rnd.choice([EBX, ESI])) + bytes([rnd.randrange(256)])
    if form == 3:
        return modrm(2, reg_field, EBX) + rnd.choice(
            [0x10, 0xFFC, 0xFFE, 0x1000, 0x2FFF0, -0x3000 & 0xFFFFFFFF, 0xFFFFFFF0]).to_bytes(4, "little")
    if form == 4:
        return modrm(0, reg_field, 5) + rnd.choice(
            [DATA + 8, DATA + 0xFFD, CODE + 0x20, MEMORY - 2, MEMORY + 0x40, 0xF0010]).to_bytes(4, "little")
    if form == 5:    # SIB: [EBX + ESI * 2^s + disp8]
        return modrm(1, reg_field, 4) + bytes([(rnd.randrange(4) << 6) | (ESI << 3) | EBX,
                                               rnd.randrange(256)])
    return modrm(0, reg_field, 4) + bytes([(rnd.randrange(4) << 6) | (EDI << 3) | EBX])


def dest_reg(rnd):
    return rnd.choice([EAX, ECX, EDX, EBX, EBP, ESI, EDI])


def fast_instruction(rnd):
    """One of the forms the fast tier takes (it may still hand a given
    execution to the generic path)."""
    kind = rnd.randrange(16)
    if kind == 0:      # ALU/MOV/TEST r/m, r
        op = rnd.choice([0x00, 0x01, 0x08, 0x09, 0x20, 0x21, 0x28, 0x29, 0x30, 0x31, 0x38, 0x39,
                         0x84, 0x85, 0x88, 0x89])
        return bytes([op]) + rm_operand(rnd, rnd.randrange(8))
    if kind == 1:      # ALU/MOV r, r/m
        op = rnd.choice([0x02, 0x03, 0x0A, 0x0B, 0x22, 0x23, 0x2A, 0x2B, 0x32, 0x33, 0x3A, 0x3B,
                         0x8A, 0x8B])
        return bytes([op]) + rm_operand(rnd, dest_reg(rnd))
    if kind == 2:      # group 1 with an immediate (ADC/SBB among them: generic path)
        op = rnd.choice([0x80, 0x81, 0x83])
        imm = rnd.randrange(1 << 32).to_bytes(4, "little") if op == 0x81 else bytes([rnd.randrange(256)])
        return bytes([op]) + rm_operand(rnd, rnd.randrange(8)) + imm
    if kind == 3:      # MOV immediates
        choice = rnd.randrange(4)
        if choice == 0:
            return bytes([0xB8 + dest_reg(rnd)]) + rnd.randrange(1 << 32).to_bytes(4, "little")
        if choice == 1:
            return bytes([0xB0 + rnd.randrange(8), rnd.randrange(256)])
        if choice == 2:
            return b"\xc7" + rm_operand(rnd, 0) + rnd.randrange(1 << 32).to_bytes(4, "little")
        return b"\xc6" + rm_operand(rnd, 0) + bytes([rnd.randrange(256)])
    if kind == 4:      # INC/DEC
        choice = rnd.randrange(3)
        if choice == 0:
            return bytes([rnd.choice([0x40, 0x48]) + dest_reg(rnd)])
        return bytes([rnd.choice([0xFE, 0xFF])]) + rm_operand(rnd, rnd.randrange(2))
    if kind == 5:      # MOVZX/MOVSX
        return bytes([0x0F, rnd.choice([0xB6, 0xB7, 0xBE, 0xBF])]) + rm_operand(rnd, dest_reg(rnd))
    if kind == 6:      # LEA (a register form is #UD: the generic path)
        return b"\x8d" + rm_operand(rnd, dest_reg(rnd))
    if kind == 7:      # TEST/CMP with the accumulator
        op = rnd.choice([0xA8, 0xA9, 0x3C, 0x3D, 0x04, 0x05, 0x2C, 0x2D, 0x24, 0x25, 0x34, 0x35])
        return bytes([op]) + (rnd.randrange(1 << 32).to_bytes(4, "little") if op & 1
                              else bytes([rnd.randrange(256)]))
    if kind == 8:      # Jcc rel8, mostly forward
        return bytes([0x70 + rnd.randrange(16), rnd.choice([0, 1, 2, 5, 9, 0xFE, 0xF0])])
    if kind == 9:      # Jcc rel32, JMP
        choice = rnd.randrange(3)
        if choice == 0:
            return bytes([0x0F, 0x80 + rnd.randrange(16)]) + rnd.choice([0, 3, 7]).to_bytes(4, "little")
        if choice == 1:
            return bytes([0xEB, rnd.choice([0, 1, 4])])
        return b"\xe9" + rnd.choice([0, 2, 6]).to_bytes(4, "little")
    if kind == 10:     # CALL rel32 (forward), RET
        if rnd.randrange(2):
            return b"\xe8" + rnd.choice([0, 1, 5]).to_bytes(4, "little")
        return b"\xc3"
    if kind == 11:     # PUSH
        choice = rnd.randrange(3)
        if choice == 0:
            return bytes([0x50 + rnd.randrange(8)])
        if choice == 1:
            return b"\x68" + rnd.randrange(1 << 32).to_bytes(4, "little")
        return bytes([0x6A, rnd.randrange(256)])
    if kind == 12:     # POP (not ESP: the stack would leave RAM for good)
        return bytes([0x58 + dest_reg(rnd)])
    if kind == 13:     # NOP, or MOV between the accumulator and a direct offset (moffs)
        if rnd.randrange(2):
            return b"\x90"
        return bytes([rnd.choice([0xA0, 0xA1, 0xA2, 0xA3])]) + \
            rnd.choice([DATA + rnd.randrange(0x1000), CODE + 0x10, 0xFFFFFFFE, MEMORY - 2]).to_bytes(4, "little")
    if kind == 14:     # a segment override, a 16-bit operand, or one of the later forms
        if rnd.randrange(2):
            return later_instruction(rnd)
        return bytes([rnd.choice([0x26, 0x36, 0x64, 0x66])]) + fast_instruction(rnd)
    return bytes([0x67]) + bytes([0x8B]) + modrm(1, dest_reg(rnd), 7) + bytes([rnd.randrange(256)])


def later_instruction(rnd):
    """Shifts and rotates (by 1, CL, imm8), IMUL r, r/m [, imm], SETcc,
    CMOVcc, MUL, CALL and JMP through a register or memory."""
    kind = rnd.randrange(5)
    if kind == 0:
        op = rnd.choice([0xC0, 0xC1, 0xD0, 0xD1, 0xD2, 0xD3])
        imm = bytes([rnd.choice([0, 1, 3, 8, 31, 33, rnd.randrange(256)])]) if op in (0xC0, 0xC1) else b""
        return bytes([op]) + rm_operand(rnd, rnd.choice([0, 1, 2, 3, 4, 5, 7])) + imm
    if kind == 1:
        choice = rnd.randrange(3)
        if choice == 0:
            return b"\x0f\xaf" + rm_operand(rnd, dest_reg(rnd))
        if choice == 1:
            return b"\x69" + rm_operand(rnd, dest_reg(rnd)) + rnd.randrange(1 << 32).to_bytes(4, "little")
        return b"\x6b" + rm_operand(rnd, dest_reg(rnd)) + bytes([rnd.randrange(256)])
    if kind == 2:
        choice = rnd.randrange(4)
        if choice == 0:
            return bytes([0x0F, 0x90 + rnd.randrange(16)]) + rm_operand(rnd, 0)
        if choice == 1:
            return bytes([0x0F, 0x40 + rnd.randrange(16)]) + rm_operand(rnd, dest_reg(rnd))
        return bytes([rnd.choice([0xF6, 0xF7])]) + rm_operand(rnd, choice + 2)    # MUL, IMUL
    # an indirect CALL or JMP: through EDI set to a nearby instruction boundary, or anywhere
    setup = b"\xbf" + (CODE + rnd.randrange(0, 0x200)).to_bytes(4, "little")
    return setup + bytes([0xFF]) + (modrm(3, rnd.choice([2, 4]), EDI) if rnd.randrange(3)
                                    else rm_operand(rnd, rnd.choice([2, 4])))


GENERIC = [b"\x0f\xbc\xc1", b"\x0f\xa4\xc2\x03", b"\x0f\xc8", b"\x86\xc4", b"\xf7\xd2",b"\xf8", b"\xf9", b"\xf5", b"\x9c", b"\x9d", b"\x0f\xaf\xc1", b"\xd1\xe0", b"\xd1\xf9",
           b"\x87\xca", b"\x11\xc8", b"\x19\xd0", b"\xf3\x90", b"\x0f\xc1\xc8", b"\x0f\xbd\xc1",
           b"\x99", b"\x98", b"\xf7\xd8", b"\x13\x03", b"\xc1\xe2\x05", b"\x0f\xa3\xc8"]


def program(seed, length):
    rnd = random.Random(seed)
    code = b""
    for _ in range(length):
        code += rnd.choice(GENERIC) if rnd.randrange(6) == 0 else fast_instruction(rnd)
    return code + b"\xf4"


def twin_machines(seed, paging=False):
    rnd = random.Random(seed ^ 0x5EED)
    machines = []
    regs = [rnd.randrange(1 << 32) for _ in range(8)]
    regs[EBX] = DATA + rnd.randrange(0, 0x1000, 4)
    regs[ESI] = rnd.randrange(0, 0x400)
    regs[ESP] = rnd.choice([MEMORY - 0x100, DATA + 0x802, 0x2004])
    flags = rnd.randrange(1 << 12) & (L.FLAG_CF | L.FLAG_PF | L.FLAG_AF | L.FLAG_ZF | L.FLAG_SF | L.FLAG_OF)
    data = bytes(rnd.randrange(256) for _ in range(0x2000))
    pte_flags = [rnd.choice([0x7, 0x7, 0x27, 0x67, 0x5, 0x65, 0x3, 0x0]) for _ in range(256)]
    wp, cpl = rnd.randrange(2), rnd.choice([0, 0, 3])
    for fast in (True, False):
        m = Machine.flat32(memory_size=MEMORY)
        m.fast_path = fast
        m.memory.write(DATA, data)
        for r, name in enumerate(("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")):
            setattr(m.cpu, name, regs[r])
        m.cpu.eflags = flags | 2
        m.cpu.eip = CODE
        if paging:
            # identity map the first MiB with varied rights: read-only, clean,
            # not present, supervisor-only pages (the code pages stay mapped)
            pd, pt = 0x80000, 0x81000
            m.memory.write_u32(pd, pt | 0x7)
            for i in range(256):
                f = 0x7 if i in (1, 2, 0x80, 0x81) else pte_flags[i]
                m.memory.write_u32(pt + 4 * i, (i << 12) | f)
            m.cpu.cr3 = pd
            m.cpu.cr0 = m.cpu.cr0 | 0x80000000 | (0x10000 if wp else 0)
            if cpl == 3:
                m.cpu.cpl = 3
        machines.append(m)
    return machines


# compiled blocks (emu/blocks.py, tests/test_blocks.py): their statistics, and
# the icache columns the fast tier keeps for them (the generic path keeps none)
JIT_SLOTS = (L.JIT_REQUEST, L.JIT_THRESHOLD, L.JIT_RETIRED, L.JIT_ATTEMPTS, L.JIT_REQUEST_ENV)
BLOCK_COLUMNS = (L.D_BLOCK, L.D_BLOCK_KEY, L.D_HEAT)


def assert_same_state(fast, slow, where, names=("fast", "generic"), same_tier=False):
    """Every array of the two machines equal but for the compiled blocks'
    bookkeeping, and (unless ``same_tier``: both run the fast tier) the
    fast tier's counter and switch."""
    a, b = fast._state, slow._state
    for name in ("cpu", "mem", "pm", "tlb", "ic", "dev"):
        x, y = getattr(a, name), getattr(b, name)
        if name == "ic":
            x, y = x.copy(), y.copy()
            x[:, list(BLOCK_COLUMNS)] = y[:, list(BLOCK_COLUMNS)] = 0
        if name == "cpu":
            x, y = x.copy(), y.copy()
            x[list(JIT_SLOTS)] = y[list(JIT_SLOTS)] = 0
            if not same_tier:
                # the counters that tell them apart
                x[[L.FAST_RETIRED, L.STRING_PAGED]] = y[[L.FAST_RETIRED, L.STRING_PAGED]] = 0
                x[L.OPTIONS] &= ~L.OPT_NO_FAST_PATH            # and the switch itself
                y[L.OPTIONS] &= ~L.OPT_NO_FAST_PATH
        if not np.array_equal(x, y):
            diff = np.flatnonzero((x != y).reshape(-1))[:8]
            raise AssertionError(f"{where}: {name} differs at {diff.tolist()}: {names[0]} "
                                 f"{x.reshape(-1)[diff].tolist()} {names[1]} {y.reshape(-1)[diff].tolist()}")


def run_chunks(a, b, chunks, where, **compare):
    """Run both machines by the budgets of ``chunks`` until one stops
    otherwise; the same exit and state after each."""
    for i, budget in enumerate(chunks):
        e1, e2 = a.run(max_instructions=budget), b.run(max_instructions=budget)
        assert e1 == e2, f"{where} chunk {i}: {e1} vs {e2}"
        assert_same_state(a, b, f"{where} chunk {i}", **compare)
        if e1.kind != "budget":
            break


def run_both(seed, paging, chunks):
    fast, slow = twin_machines(seed, paging)
    code = program(seed, 60)
    for m in (fast, slow):
        m.memory.write(CODE, code)
    run_chunks(fast, slow, chunks, f"seed {seed}")
    return fast


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), chunks=st.lists(st.integers(1, 40), min_size=1, max_size=6))
def test_random_programs_leave_the_same_state_both_ways(seed, chunks):
    run_both(seed, False, chunks)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), chunks=st.lists(st.integers(1, 40), min_size=1, max_size=6))
def test_random_programs_under_paging_leave_the_same_state_both_ways(seed, chunks):
    run_both(seed, True, chunks)


def test_the_fast_tier_takes_the_issues_loop():
    """The issue's loop (ADD, XOR, MOV to memory, ADD from memory, DEC, JNZ)
    runs in the fast tier but for its first instructions and its HLT, and
    computes what the generic path computes."""
    code = bytes([0xB9]) + (5000).to_bytes(4, "little") + bytes(
        [0xBB, 0, 0x30, 0, 0, 0x01, 0xC8, 0x31, 0xC2, 0x89, 0x53, 0x04, 0x03, 0x73, 0x04, 0x49, 0x75,
         0xF3, 0xF4])
    machines = []
    for fast in (True, False):
        m = Machine.flat32(memory_size=MEMORY)
        m.fast_path = fast
        m.memory.write(CODE, code)
        m.cpu.eip = CODE
        e = m.run(max_instructions=100_000)
        assert e.kind == "halt" and e.instructions == 2 + 6 * 5000 + 1
        assert m.memory.read_u32(DATA + 4) == m.cpu.edx
        machines.append(m)
    fast, slow = machines
    assert_same_state(fast, slow, "the loop")
    assert int(slow._state.cpu[L.FAST_RETIRED]) == 0
    assert int(fast._state.cpu[L.FAST_RETIRED]) >= 6 * 5000 - 10


# --- TLB misses the fast tier fills itself (memory.quiet_walk) ----------------------------

WALK_MEMORY = 16 << 20
PAGE_DIR = 0x80000
PAGE_TABLES = 0x81000       # four tables: 16 MiB identity-mapped


def page_walk_loop(start, pages):
    """``mov ecx, pages; mov ebx, start; l: mov eax, [ebx]; add [ebx+4], eax;
    add ebx, 0x1008; dec ecx; jnz l; hlt``: a read and a read-modify-write
    on every page, at offsets that creep up to the end of the page (the last
    ones cross it)."""
    return (b"\xb9" + pages.to_bytes(4, "little") + b"\xbb" + start.to_bytes(4, "little")
            + b"\x8b\x03\x01\x43\x04\x81\xc3\x08\x10\x00\x00\x49\x75\xf2\xf4")


def page_walk_machine(case, fast=True, jit=False):
    """A machine running page_walk_loop over 16 MiB mapped with clean,
    accessed and dirty entries, read-only ones (CR0.WP off, so the
    supervisor writes them), for ``case``: "4k" pages; "pse" (4 MiB pages
    above 4 MiB); "code slot" (one data page shares the TLB slot of the
    code page: left to the generic path); "tables in code" (the table of
    4-8 MiB is the code page itself: its A and D bits are self-modifying
    code); "not present" (a page on the way faults)."""
    m = Machine.flat32(memory_size=WALK_MEMORY)
    m.fast_path = fast
    m.jit = jit
    flags = (0x3, 0x23, 0x63, 0x1, 0x21, 0x61)
    tables = [PAGE_TABLES + 0x1000 * t for t in range(4)]
    if case == "tables in code":
        tables[1] = CODE
    for t, table in enumerate(tables):
        m.memory.write_u32(PAGE_DIR + 4 * t, table | (0x63 if t % 2 else 0x3))
        for i in range(1024):
            page = t * 1024 + i
            if table == CODE and i < 16:
                continue                # the program's bytes
            m.memory.write_u32(table + 4 * i, (page << 12) | (0x63 if page < 0x100 else flags[page % 6]))
    start, pages = 0x400000 + 16 * 0x1000, 700
    if case == "pse":
        for t in range(1, 4):
            m.memory.write_u32(PAGE_DIR + 4 * t, (t << 22) | (0x83, 0xA3, 0xE3)[t - 1])
        m.cpu.cr4 = m.cpu.cr4 | 0x10
    if case == "code slot":
        start = (CODE + (L.TLB_ENTRIES << 12)) - 300 * 0x1008
    if case == "not present":
        m.memory.write_u32(tables[1] + 4 * 0x200, 0x600000)
    m.memory.write(CODE, page_walk_loop(start, pages))
    m.cpu.cr3 = PAGE_DIR
    m.cpu.cr0 = m.cpu.cr0 | 0x80000000
    m.cpu.eip = CODE
    return m


WALK_CASES = ["4k", "pse", "code slot", "tables in code", "not present"]


@pytest.mark.parametrize("case", WALK_CASES)
def test_tlb_misses_are_filled_in_the_fast_tier_as_the_generic_path_fills_them(case):
    """SDM Vol. 3, 4.8: the walk sets A in the entries it uses and D in the
    last one on a write; the fast tier's fill (memory.quiet_walk) leaves the
    same page tables, TLB and decode cache as the generic path's, and leaves
    to it the walks it must not do (the code page's TLB slot, tables on a
    code page, a fault)."""
    fast, slow = page_walk_machine(case), page_walk_machine(case, fast=False)
    run_chunks(fast, slow, [5, 37, 1000, 2000, 100_000], case)
    e = fast.run(max_instructions=1)
    if case == "not present":         # #PF on the read of [ebx], P = 0 (SDM Vol. 3, 4.7)
        assert (e.kind, e.vector, e.error_code, fast.cpu.cr2 >> 12) == ("exception", 14, 0, 0x600), e
    else:
        assert e.kind == "halt", e
    retired = int(fast._state.cpu[L.FAST_RETIRED]) / int(fast._state.cpu[L.ICOUNT])
    least = {"tables in code": 0.5, "not present": 0.5}.get(case, 0.95)   # walks left to the generic path
    assert retired > least, f"{case}: {retired:.1%} in the fast tier"


@pytest.mark.parametrize("name", ["crc32", "sort", "dhry", "recurse", "paging", "timer", "smc", "serial"])
def test_workloads_run_the_same_both_ways(name):
    """The benchmark kernels (C compiled by gcc: the code the fast tier is
    for), compared at checkpoints across their start, their loops and the
    timer interrupts."""
    from benchmarks.workloads import by_name
    w, = by_name([name])
    fast = Machine.from_multiboot(str(w.elf), memory_size=32 << 20, cmdline=f"n={w.smoke}")
    slow = Machine.from_multiboot(str(w.elf), memory_size=32 << 20, cmdline=f"n={w.smoke}")
    slow.fast_path = False
    for step in (1, 10, 1000, 20_000, 100_000, 300_000):
        e1, e2 = fast.run(max_instructions=step), slow.run(max_instructions=step)
        assert e1 == e2
        assert_same_state(fast, slow, f"{name} after {step}")
        assert fast.com1.read() == slow.com1.read()
        if e1.kind != "budget":
            break
