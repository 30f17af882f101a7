"""Data watchpoints (issue 8): the core checks every data access against
the watched linear ranges and ends the run once the instruction that made
the access has retired, like the debug registers' data breakpoints, which
are traps (SDM Vol. 3, 17.3.1.2 and 17.2.4 R/W bits)."""
import pytest

from tests.test_api import flat      # a flat 32-bit machine with code at 0x1000

CODE = 0x1000
DATA = 0x2000


MOV_TO_DATA = b"\xa3" + DATA.to_bytes(4, "little")            # mov [DATA], eax
MOV_FROM_DATA_3 = b"\xa1" + (DATA + 3).to_bytes(4, "little")  # mov eax, [DATA+3]
HLT = b"\xf4"


def test_write_watch_traps_after_the_write():
    m = flat(b"\x90" + MOV_TO_DATA + HLT, eax=0x11223344)
    m.add_watchpoint(DATA, 4, "write")
    e = m.run()
    assert (e.kind, e.address, e.size, e.access) == ("watch", DATA, 4, "write")
    assert e.instructions == 2                       # NOP, then the MOV retired
    assert m.cpu.eip == CODE + 1 + len(MOV_TO_DATA)  # trap: EIP is past the access
    assert m.memory.read(DATA, 4) == bytes.fromhex("44332211")
    assert m.run().kind == "halt"


def test_a_read_watch_ignores_writes_and_sees_an_overlapping_read():
    m = flat(MOV_TO_DATA + MOV_FROM_DATA_3 + HLT)
    m.add_watchpoint(DATA, 4, "read")
    e = m.run()
    assert (e.kind, e.access, e.address, e.size) == ("watch", "read", DATA + 3, 4)
    assert e.instructions == 2


def test_an_access_watch_sees_reads_and_writes():
    m = flat(MOV_TO_DATA + MOV_FROM_DATA_3 + HLT)
    m.add_watchpoint(DATA + 6, 1, "access")          # only the read's last byte
    e = m.run()
    assert (e.kind, e.access, e.instructions) == ("watch", "read", 2)
    m = flat(MOV_TO_DATA + HLT)
    m.add_watchpoint(DATA + 3, 1, "access")
    assert m.run().access == "write"


def test_instruction_fetches_are_not_data_accesses():
    m = flat(b"\x90" * 8 + HLT)
    m.add_watchpoint(CODE, 16, "access")
    assert m.run().kind == "halt"


def test_read_modify_write_reports_its_read_first():
    m = flat(b"\x01\x05" + DATA.to_bytes(4, "little") + HLT, eax=1)   # add [DATA], eax
    m.add_watchpoint(DATA, 4, "access")
    e = m.run()
    assert (e.kind, e.access, e.instructions) == ("watch", "read", 1)
    assert m.memory.read(DATA, 4) == b"\x01\x00\x00\x00"


def test_stack_pushes_are_watched_like_any_write():
    m = flat(b"\x50" + HLT, esp=0x3000)              # push eax
    m.add_watchpoint(0x2FFC, 4, "write")
    e = m.run()
    assert (e.kind, e.address) == ("watch", 0x2FFC)


def test_rep_movs_stops_after_the_element_that_hits():
    """A REP string instruction is interruptible between iterations (SDM
    Vol. 2B, REP): the run stops with ECX counting the rest and EIP still
    at the instruction, which completes when the run continues."""
    m = flat(b"\xf3\xa5" + HLT, esi=0x4000, edi=DATA, ecx=16)       # rep movsd
    m.memory.write(0x4000, bytes(range(64)))
    m.add_watchpoint(DATA + 8, 4, "write")
    e = m.run()
    assert (e.kind, e.address) == ("watch", DATA + 8)
    assert (m.cpu.ecx, m.cpu.eip) == (13, CODE)
    m.remove_watchpoint(DATA + 8)
    assert m.run().kind == "halt"
    assert m.cpu.ecx == 0 and m.memory.read(DATA, 64) == bytes(range(64))


def test_a_faulting_instruction_does_not_report_its_access():
    """MOVSD reads the watched source, then its write faults (#GP: the
    doubleword passes the 4 GiB limit): the instruction did not retire, so
    the exit is the exception, not the watch."""
    m = flat(b"\xa5" + HLT, esi=DATA, edi=0xFFFFFFFE)
    m.deliver_exceptions = False
    m.add_watchpoint(DATA, 4, "read")
    e = m.run()
    assert (e.kind, e.vector) == ("exception", 13)


def test_watchpoints_are_listed_and_removed():
    m = flat(MOV_TO_DATA + HLT)
    m.add_watchpoint(DATA, 4, "write")
    m.add_watchpoint(0x5000, 2, "read")
    assert m.watchpoints == [(DATA, 4, "write"), (0x5000, 2, "read")]
    m.remove_watchpoint(DATA)
    assert m.watchpoints == [(0x5000, 2, "read")]
    assert m.run().kind == "halt"


@pytest.mark.parametrize("args, message", [
    ((DATA, 4, "execute"), "access must be"),
    ((DATA, 0), "covers 1 to"),
    ((-1,), "linear address"),
    ((1 << 32,), "linear address"),
    ((0x10000, 1, "port"), "I/O port"),
])
def test_bad_watchpoints_are_refused_with_a_reason(args, message):
    m = flat(HLT)
    with pytest.raises(ValueError, match=message):
        m.add_watchpoint(*args)
    assert m.watchpoints == []


def test_too_many_watchpoints_and_removing_one_not_set():
    m = flat(HLT)
    for i in range(8):
        m.add_watchpoint(DATA + 16 * i)
    with pytest.raises(ValueError, match="at most 8"):
        m.add_watchpoint(0x9000)
    with pytest.raises(ValueError, match="no watchpoint"):
        m.remove_watchpoint(0x9000)


def test_watched_run_matches_an_unwatched_run():
    """A watch that never hits changes nothing: same instructions, same state."""
    code = b"\xb9\x00\x01\x00\x00" + b"\x01\x05" + DATA.to_bytes(4, "little") + b"\xe2\xf8" + HLT
    a, b = flat(code, eax=3), flat(code, eax=3)
    b.add_watchpoint(0x8000, 16, "access")
    ea, eb = a.run(), b.run()
    assert ea == eb and a.memory.read(DATA, 4) == b.memory.read(DATA, 4) == (768).to_bytes(4, "little")


def test_port_watch_traps_after_in_and_out():
    """I/O breakpoints (debug registers R/W = 10b, SDM Vol. 3, 17.2.4) trap
    after the instruction: here OUT to the PIT and IN from the PIC mask."""
    code = b"\xb0\x34\xe6\x43" + b"\xe4\x21" + HLT      # mov al,34h; out 43h,al; in al,21h
    m = flat(code)
    m.add_watchpoint(0x40, 4, "port")
    e = m.run()
    assert (e.kind, e.port, e.size, e.access, e.instructions) == ("watch", 0x43, 1, "out", 2)
    assert m.cpu.eip == CODE + 4
    m.add_watchpoint(0x21, 1, "port")
    e = m.run()
    assert (e.kind, e.port, e.access) == ("watch", 0x21, "in")
    assert m.run().kind == "halt"


def test_port_watch_on_a_python_device_sees_the_completed_access():
    """A port served from Python exits first (EXIT_IO); the watch reports
    the access once it has completed, with the served value in AL."""
    class Answer:
        def read(self, port, size):
            return 0x5A

        def write(self, port, size, value):
            pass
    m = flat(b"\xe4\x99" + HLT)                       # in al, 99h
    m.port_handlers[0x99] = Answer()
    m.add_watchpoint(0x99, 1, "port")
    e = m.run()
    assert (e.kind, e.port, e.access) == ("watch", 0x99, "in") and m.cpu.al == 0x5A


def test_rep_outsb_stops_at_the_watched_port_element():
    m = flat(b"\xf3\x6e" + HLT, esi=DATA, ecx=3, edx=0x80)     # rep outsb to port 80h
    m.add_watchpoint(0x80, 1, "port")
    e = m.run()
    assert (e.kind, e.port, e.access) == ("watch", 0x80, "out")
    assert m.cpu.ecx == 2 and m.cpu.eip == CODE
