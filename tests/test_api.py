"""The scripting API is a contract (issue: CPU core, item 5)."""
import pytest

from emu import Machine, Exit, Snapshot
from emu.memory_view import GuestMemoryError

ADD_EAX_ECX = b"\x01\xc8"
HLT = b"\xf4"


def flat(code, at=0x1000, **regs):
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(at, code)
    m.cpu.eip = at
    for k, v in regs.items():
        setattr(m.cpu, k, v)
    return m


def test_power_on_reset_state():
    """SDM Vol. 3, table 9-1: CS = F000 (base FFFF0000), EIP = FFF0, EFLAGS = 2, real mode."""
    m = Machine(memory_size=1 << 20)
    assert (m.cpu.cs, m.cpu.eip, m.cpu.eflags) == (0xF000, 0xFFF0, 2)
    assert m.cpu.segment("cs").base == 0xFFFF0000
    assert m.cpu.cr0 & 1 == 0


def test_flat32_state():
    m = Machine.flat32(memory_size=16 << 20)
    assert m.cpu.cr0 & 1 == 1 and m.cpu.cpl == 0
    for s in ("cs", "ds", "es", "ss", "fs", "gs"):
        seg = m.cpu.segment(s)
        assert seg.base == 0 and seg.limit == 0xFFFFFFFF


def test_step_executes_exactly_one_instruction():
    m = flat(ADD_EAX_ECX * 2 + HLT, eax=5, ecx=7)
    e = m.step()
    assert e == Exit("budget", 1) and m.cpu.eax == 12 and m.cpu.eip == 0x1002
    e = m.run()
    assert e.kind == "halt" and e.instructions == 2 and m.cpu.eax == 19


def test_run_budget():
    m = flat(b"\x75\xfe")          # jnz $ (ZF is clear)
    e = m.run(max_instructions=1000)
    assert e.kind == "budget" and e.instructions == 1000


def test_register_views_alias():
    m = Machine.flat32(1 << 20)
    m.cpu.eax = 0x12345678
    assert (m.cpu.ax, m.cpu.al, m.cpu.ah) == (0x5678, 0x78, 0x56)
    m.cpu.ah = 0xAB
    assert m.cpu.eax == 0x1234AB78
    m.cpu.eax = -1
    assert m.cpu.eax == 0xFFFFFFFF


def test_real_mode_segment_write_loads_base():
    m = Machine(1 << 20)
    m.cpu.ds = 0x1234
    assert m.cpu.segment("ds").base == 0x12340


def test_bad_register_name_is_named():
    m = Machine(1 << 20)
    with pytest.raises(AttributeError, match="'eaxx'"):
        m.cpu.eaxx
    with pytest.raises(AttributeError, match="'rax'"):
        m.cpu.rax = 1


def test_register_value_out_of_range():
    m = Machine(1 << 20)
    with pytest.raises(ValueError, match="ax is 16 bits"):
        m.cpu.ax = 0x10000
    with pytest.raises(TypeError):
        m.cpu.eax = "5"


@pytest.mark.parametrize("size", [1000, 0x10001, 1 << 33, 0])
def test_odd_memory_size_is_refused(size):
    with pytest.raises(ValueError, match="memory_size"):
        Machine(memory_size=size)


def test_memory_outside_guest_is_named():
    m = Machine(memory_size=1 << 20)
    with pytest.raises(GuestMemoryError, match="0xffffe"):
        m.memory.write(0xFFFFE, b"abcd")
    with pytest.raises(GuestMemoryError, match="0x100000"):
        m.memory.read(0x100000, 1)
    with pytest.raises(GuestMemoryError):
        m.memory.read(-1, 1)


def test_undefined_opcode_is_ud_in_the_guest():
    """An undefined opcode is #UD (vector 6) in the guest, never a host
    exception; EIP stays on the faulting instruction (SDM Vol. 3, 6.15)."""
    for code in (b"\x0f\x0b", b"\x0f\xff\xc0", b"\x0f\x04", b"\x8f\xc8", b"\xf0\x01\xc8", b"\x8d\xc0"):
        m = flat(code)
        e = m.step()
        assert (e.kind, e.vector, m.cpu.eip) == ("exception", 6, 0x1000), code.hex()


def test_ud_delivered_through_ivt_in_real_mode():
    """Real mode: #UD pushes FLAGS, CS, IP (of the faulting instruction) and
    jumps through IVT entry 6 (SDM Vol. 3, 20.1.4)."""
    m = Machine(1 << 20)
    m.memory.write(6 * 4, (0x2000).to_bytes(2, "little") + (0).to_bytes(2, "little"))
    m.memory.write(0x2000, HLT)
    m.memory.write(0x1000, b"\x0f\x0b")
    m.cpu.cs, m.cpu.ip, m.cpu.ss, m.cpu.sp = 0, 0x1000, 0, 0x8000
    e = m.run(max_instructions=10)
    assert e.kind == "halt" and m.cpu.ip == 0x2001
    assert m.memory.read_u16(0x7FFA) == 0x1000     # IP pushed
    assert m.cpu.sp == 0x7FFA


def test_instruction_longer_than_15_bytes_is_gp():
    m = flat(b"\x66" * 14 + b"\x01\xc8")
    e = m.step()
    assert (e.kind, e.vector, e.error_code) == ("exception", 13, 0)


def test_memory_operand_beyond_ram_reads_all_ones():
    """Physical addresses outside RAM are an unassigned hole: reads give
    all ones, writes vanish; the host is never touched."""
    m = flat(b"\x8b\x03\x89\x03" + HLT, ebx=0xFFFFFFFC)   # mov eax,[ebx]; mov [ebx],eax
    assert m.run().kind == "halt"
    assert m.cpu.eax == 0xFFFFFFFF


def test_snapshot_restore_is_exact_and_repeatable():
    m = flat(ADD_EAX_ECX + b"\x89\x03" + HLT, eax=1, ecx=2, ebx=0x3000)
    s = m.snapshot()
    assert isinstance(s, Snapshot)
    m.run()
    first = (m.cpu.registers(), m.memory.read(0x3000, 4))
    for _ in range(3):
        m.restore(s)
        assert m.cpu.eax == 1 and m.memory.read(0x3000, 4) == bytes(4)
        m.run()
        assert (m.cpu.registers(), m.memory.read(0x3000, 4)) == first


def test_self_modifying_code_is_redecoded():
    """A write to a page holding decoded instructions invalidates them: the
    next execution sees the new bytes (SDM Vol. 3, 11.6)."""
    prog = (b"\x41"                              # 1000: inc ecx   (patched to inc eax)
            b"\xc6\x05\x00\x10\x00\x00\x40"    # 1001: mov byte [0x1000], 0x40
            b"\x4a"                              # 1008: dec edx
            b"\x75\xf5"                          # 1009: jnz 0x1000
            b"\xf4")                             # 100b: hlt
    m = flat(prog, eax=0, ecx=0, edx=2)
    assert m.run(max_instructions=100).kind == "halt"
    assert (m.cpu.ecx, m.cpu.eax) == (1, 1)


def test_python_write_to_code_is_seen():
    m = flat(b"\x41" + HLT, ecx=0)
    m.run()
    m.memory.write(0x1000, b"\x40")
    m.cpu.eip = 0x1000
    m.run()
    assert (m.cpu.ecx, m.cpu.eax) == (1, 1)


def test_step_over_a_port_served_by_python_completes_the_instruction():
    """An IN from a Python device leaves the loop to be served; step() still
    executes exactly that one instruction, and the device is read once."""
    reads = []

    class Device:
        def read(self, port, size):
            reads.append(port)
            return 0x42

        def write(self, port, size, value):
            pass
    m = flat(b"\xec\x40", edx=0x5556)          # in al, dx; inc eax
    m.port_handlers[0x5556] = Device()
    e = m.step()
    assert e.kind == "budget" and e.instructions == 1
    assert m.cpu.eip == 0x1001 and m.cpu.al == 0x42 and reads == [0x5556]
    m.add_breakpoint(0x1000)
    m.cpu.eip = 0x1000
    e = m.run(max_instructions=1)               # a breakpoint at the IN does not stop it twice
    assert m.cpu.eip == 0x1001 and reads == [0x5556, 0x5556]
