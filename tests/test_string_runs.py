"""REP MOVS and REP STOS a page at a time (emu/core/isa/string.py
``string_run``) against the element loop.

With ``Machine.fast_path`` off every element goes through read_mem and
write_mem (segment checks, translation, the dirty log and the decode cache
for self-modifying code); with it on, the elements that stay on a page of
plain RAM are copied directly.  SDM Vol. 2, MOVS/STOS and REP: elements go
one at a time, forwards or backwards by DF, rSI/rDI/rCX by the address
size, and a fault stops at the element that faults with the registers
pointing at it.  Random runs of both, with overlapping copies, 16-bit
addressing, segment limits, paging with clean, read-only and missing
pages, and stores over the code, must leave every array equal."""
from hypothesis import given, settings, strategies as st, HealthCheck

from emu import Machine
from emu.core import layout as L
from tests.test_fastpath import run_chunks, assert_same_state, CODE, MEMORY

OPS = {"movsb": b"\xa4", "movsw": b"\x66\xa5", "movsd": b"\xa5",
       "stosb": b"\xaa", "stosw": b"\x66\xab", "stosd": b"\xab"}
PAGE_DIR, PAGE_TABLE = 0x80000, 0x81000


def string_machines(op, backwards, addr16, count, esi, edi, es_limit, paging, pte_flags, fill):
    code = (b"\xfd" if backwards else b"\xfc") + (b"\x67" if addr16 else b"") + b"\xf3" + OPS[op] \
        + b"\xf4"
    machines = []
    for fast in (True, False):
        m = Machine.flat32(memory_size=MEMORY)
        m.fast_path = fast
        m.memory.write(0x10000, bytes((i * 131 + 7) & 0xFF for i in range(0x30000)))
        m.memory.write(CODE, code)
        m.cpu.eip = CODE
        m.cpu.ecx, m.cpu.esi, m.cpu.edi, m.cpu.eax = count, esi, edi, fill
        if es_limit is not None:
            m.cpu.set_segment("es", 0x10, 0, es_limit, 0x4093)
        if paging:
            # the first MiB identity-mapped with the drawn rights (the code
            # and the tables themselves stay mapped)
            m.memory.write_u32(PAGE_DIR, PAGE_TABLE | 0x7)
            for i in range(256):
                f = 0x7 if i in (CODE >> 12, 0x80, 0x81) else pte_flags[i % len(pte_flags)]
                m.memory.write_u32(PAGE_TABLE + 4 * i, (i << 12) | f)
            m.cpu.cr3 = PAGE_DIR
            m.cpu.cr0 = m.cpu.cr0 | 0x80000000 | 0x10000       # WP: read-only pages refuse the supervisor
        machines.append(m)
    return machines


near_page_ends = st.integers(0x10, 0x3F).flatmap(
    lambda page: st.integers(-40, 40).map(lambda d: (page << 12) + d))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(sorted(OPS)), backwards=st.booleans(), addr16=st.booleans(),
       count=st.integers(0, 9000), esi=near_page_ends, delta=st.sampled_from([-5, -4, -1, 1, 2, 3, 4, 0x1000, 0x3001]),
       es_limit=st.one_of(st.none(), st.integers(0x10000, 0x40000)), paging=st.booleans(),
       pte_flags=st.lists(st.sampled_from([0x7, 0x27, 0x67, 0x5, 0x0]), min_size=1, max_size=40),
       fill=st.integers(0, 0xFFFFFFFF), chunks=st.lists(st.integers(1, 30), min_size=1, max_size=4))
def test_string_runs_by_page_leave_what_the_element_loop_leaves(op, backwards, addr16, count, esi, delta,
                                                               es_limit, paging, pte_flags, fill, chunks):
    edi = esi + delta
    if addr16:
        esi, edi = esi & 0xFFFF, edi & 0xFFFF
    fast, slow = string_machines(op, backwards, addr16, count, esi, edi, es_limit, paging, pte_flags, fill)
    run_chunks(fast, slow, chunks + [100_000], f"{op} df={int(backwards)} a16={int(addr16)} n={count}")


def test_a_string_store_over_its_own_code_is_seen_by_the_next_instruction():
    """REP STOSB over the HLTs after it (decoded ahead by the fast tier's
    lookups or not): NOPs replace them, and the run halts on the HLT after
    the ones it overwrote."""
    for fast in (True, False):
        m = Machine.flat32(memory_size=MEMORY)
        m.fast_path = fast
        m.memory.write(CODE, b"\xfc\xf3\xaa" + b"\xf4" * 40)
        m.cpu.eip, m.cpu.edi, m.cpu.ecx, m.cpu.eax = CODE, CODE + 3, 30, 0x90
        e = m.run(max_instructions=100)
        assert e.kind == "halt" and m.cpu.eip == CODE + 3 + 30 + 1, (fast, e, hex(m.cpu.eip))
        assert int(m._state.cpu[L.STRING_PAGED]) == (29 if fast else 0)


def test_long_copies_go_by_page():
    """A 64 KiB REP MOVSD: the first element of every 1024 (the run loop's
    slices) the element loop's way, the rest a page at a time, and the copy
    and its dirty log as the element loop leaves them."""
    states = []
    for fast in (True, False):
        m = Machine.flat32(memory_size=MEMORY)
        m.fast_path = fast
        m.memory.write(0x20000, bytes(range(256)) * 256)
        m.memory.write(CODE, b"\xfc\xf3\xa5\xf4")
        m.cpu.eip, m.cpu.esi, m.cpu.edi, m.cpu.ecx = CODE, 0x20000, 0x40000, 0x4000
        assert m.run(max_instructions=1000).kind == "halt"
        assert m.memory.read(0x40000, 0x10000) == bytes(range(256)) * 256
        assert m.cpu.ecx == 0 and m.cpu.edi == 0x50000 and m.cpu.esi == 0x30000
        assert int(m._state.cpu[L.STRING_PAGED]) == (0x4000 - 16 if fast else 0)
        states.append(m)
    assert_same_state(*states, "64 KiB copy")
