"""Property tests (hypothesis) of rules the SDM states, and of the
isolation promise: no guest bytes can crash the host."""
from hypothesis import given, settings, strategies as st, HealthCheck

from emu import Machine

u32 = st.integers(0, 0xFFFFFFFF)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flat(code, **regs):
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(0x1000, code)
    m.cpu.eip = 0x1000
    for k, v in regs.items():
        setattr(m.cpu, k, v)
    return m


@SETTINGS
@given(u32, st.integers(0, 255))
def test_shift_count_is_masked_to_five_bits(x, count):
    """SDM Vol. 2, SAL/SAR/SHL/SHR: "The count is masked to 5 bits"."""
    a = flat(b"\xd3\xe0", eax=x, ecx=count)          # shl eax, cl
    b = flat(b"\xd3\xe0", eax=x, ecx=count & 31)
    a.step()
    b.step()
    assert a.cpu.eax == b.cpu.eax and a.cpu.eflags == b.cpu.eflags


@SETTINGS
@given(u32, u32, st.integers(0, 0xFFFF))
def test_divide_error_changes_nothing(edx, eax, divisor):
    """SDM Vol. 3, 6.5: #DE is a fault, so the registers are as before the DIV."""
    m = flat(b"\x66\xf7\xf3", eax=eax, edx=edx, ebx=divisor)   # div bx
    before = m.cpu.registers()
    e = m.step()
    dividend = ((edx & 0xFFFF) << 16) | (eax & 0xFFFF)
    if divisor == 0 or dividend // divisor > 0xFFFF:
        assert (e.kind, e.vector) == ("exception", 0)
        assert m.cpu.registers() == before
    else:
        assert m.cpu.ax == dividend // divisor and m.cpu.dx == dividend % divisor


@SETTINGS
@given(st.integers(1, 64), st.integers(0, 63))
def test_rep_movs_restarts_after_a_fault(count, room):
    """A REP MOVS that faults part-way leaves rSI/rDI/rCX at the faulting
    element and EIP on the instruction; run again it finishes with the same
    result as an uninterrupted run (SDM Vol. 2, REP; Vol. 3, 6.6)."""
    src, dst = 0x4000, 0x8000
    pattern = bytes((i * 7 + 1) & 0xFF for i in range(count))
    m = flat(b"\xf3\xa4\xf4", esi=src, edi=dst, ecx=count)
    m.memory.write(src, pattern)
    m.cpu.set_segment("es", 0x10, 0, dst + room - 1, 0x4093)   # ES ends after `room` bytes
    e = m.run(max_instructions=5)
    if room >= count:
        assert e.kind == "halt"
    else:
        assert (e.kind, e.vector) == ("exception", 13)
        assert m.cpu.eip == 0x1000 and m.cpu.ecx == count - room and m.cpu.edi == dst + room
        m.cpu.set_segment("es", 0x10, 0, 0xFFFFFFFF, 0xC093)
        assert m.run(max_instructions=5).kind == "halt"
    assert m.memory.read(dst, count) == pattern and m.cpu.ecx == 0


@SETTINGS
@given(st.lists(st.sampled_from([b"\x01\xc8", b"\x29\xd8", b"\x11\xca", b"\x19\xf1", b"\xd1\xe0",
                                 b"\x0f\xaf\xc3", b"\x40", b"\x4b", b"\x31\xd0", b"\xf7\xd9"]),
                min_size=2, max_size=30), u32, u32, u32, st.integers(1, 29))
def test_snapshot_restore_continues_identically(program, a, b, c, cut):
    """Restoring a snapshot taken mid-run and running on gives the same
    state as the run that never stopped."""
    code = b"".join(program) + b"\xf4"
    m = flat(code, eax=a, ebx=b, ecx=c)
    m.run(max_instructions=min(cut, len(program)))
    s = m.snapshot()
    m.run()
    first = m.cpu.registers()
    m.restore(s)
    m.run()
    assert m.cpu.registers() == first


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=64), st.lists(u32, min_size=8, max_size=8),
       st.booleans(), st.booleans())
def test_random_bytes_never_escape_the_guest(code, regs, real_mode, deliver):
    """Isolation: whatever the bytes and registers, the run ends with an
    exit, never a host exception, and memory keeps its size."""
    m = Machine(memory_size=64 << 10) if real_mode else Machine.flat32(memory_size=64 << 10)
    m.deliver_exceptions = deliver
    if real_mode:
        m.cpu.cs = 0
        m.cpu.ip = 0x100
    else:
        m.cpu.eip = 0x100
    m.memory.write(0x100, code)
    for name, v in zip(("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"), regs):
        setattr(m.cpu, name, v)
    e = m.run(max_instructions=200)
    # every way a run can end is allowed (the guest may write the debug-exit port or
    # reset the machine through port 92h or the 8042); none of them may reach the host
    assert e.kind in ("budget", "halt", "exception", "shutdown", "io", "breakpoint", "debug_exit", "reset")
    assert m.memory.size == 64 << 10
