"""Exception delivery through the IDT, #DF and triple fault (SDM Vol. 3,
chapter 6), driven through the public API."""
import struct

from emu import Machine

GDT_AT, IDT_AT, HANDLER_AT, CODE_AT, STACK_TOP = 0x500, 0x800, 0x3000, 0x1000, 0x9000
HLT = b"\xf4"


def descriptor(base, limit, access, flags=0xC):
    return struct.pack("<HHBBBB", limit & 0xFFFF, base & 0xFFFF, (base >> 16) & 0xFF, access,
                       (flags << 4) | ((limit >> 16) & 0xF), base >> 24)


def gate(offset, selector, type_attr):
    return struct.pack("<HHBBH", offset & 0xFFFF, selector, 0, type_attr, offset >> 16)


def protected_machine():
    """flat32 with a real GDT (null, code 0x08, data 0x10) and an empty IDT."""
    m = Machine.flat32(memory_size=1 << 20, deliver_exceptions=True)
    gdt = bytes(8) + descriptor(0, 0xFFFFF, 0x9B) + descriptor(0, 0xFFFFF, 0x93)
    m.memory.write(GDT_AT, gdt)
    m.cpu.gdtr = (GDT_AT, len(gdt) - 1)
    m.cpu.idtr = (IDT_AT, 32 * 8 - 1)
    m.cpu.esp = STACK_TOP
    m.cpu.eip = CODE_AT
    return m


def set_gate(m, vector, offset, type_attr=0x8E):
    m.memory.write(IDT_AT + vector * 8, gate(offset, 0x08, type_attr))


def test_ud_through_interrupt_gate_pushes_eflags_cs_eip_and_clears_if():
    """An interrupt gate (type 0xE) at the same privilege pushes EFLAGS, CS,
    EIP of the faulting instruction, clears IF and TF (SDM Vol. 3, 6.12.1)."""
    m = protected_machine()
    set_gate(m, 6, HANDLER_AT)
    m.memory.write(HANDLER_AT, HLT)
    m.memory.write(CODE_AT, b"\x0f\x0b")          # ud2
    m.cpu.eflags = 0x202                         # IF set
    e = m.run(max_instructions=10)
    assert e.kind == "halt" and m.cpu.eip == HANDLER_AT + 1
    eip, cs, eflags = struct.unpack("<III", m.memory.read(STACK_TOP - 12, 12))
    assert (eip, cs, eflags & 0x202) == (CODE_AT, 0x08, 0x202)
    assert m.cpu.esp == STACK_TOP - 12
    assert m.cpu.eflags & 0x200 == 0


def test_trap_gate_keeps_if():
    m = protected_machine()
    set_gate(m, 6, HANDLER_AT, type_attr=0x8F)
    m.memory.write(HANDLER_AT, HLT)
    m.memory.write(CODE_AT, b"\x0f\x0b")
    m.cpu.eflags = 0x202
    m.run(max_instructions=10)
    assert m.cpu.eflags & 0x200


def test_gp_pushes_error_code():
    """#GP pushes an error code after EIP (SDM Vol. 3, 6.13): a 16-byte
    instruction is #GP(0)."""
    m = protected_machine()
    set_gate(m, 13, HANDLER_AT)
    m.memory.write(HANDLER_AT, HLT)
    m.memory.write(CODE_AT, b"\x66" * 15 + b"\x90")
    m.run(max_instructions=10)
    err, eip = struct.unpack("<II", m.memory.read(STACK_TOP - 16, 8))
    assert (err, eip) == (0, CODE_AT) and m.cpu.esp == STACK_TOP - 16


def test_not_present_gate_gives_np_with_idt_error_code():
    """A not-present gate is #NP with error code vector*8+2+EXT (SDM Vol. 3,
    6.13, figure 6-7); here #UD -> #NP(6*8+2+1) delivered through gate 11."""
    m = protected_machine()
    m.memory.write(IDT_AT + 6 * 8, gate(HANDLER_AT, 0x08, 0x0E))   # P = 0
    set_gate(m, 11, HANDLER_AT)
    m.memory.write(HANDLER_AT, HLT)
    m.memory.write(CODE_AT, b"\x0f\x0b")
    assert m.run(max_instructions=10).kind == "halt"
    assert m.memory.read_u32(STACK_TOP - 16) == 6 * 8 + 2 + 1


def test_contributory_during_contributory_is_double_fault():
    """#GP while delivering #GP (its gate's code selector is null) becomes
    #DF with error code 0 (SDM Vol. 3, table 6-5)."""
    m = protected_machine()
    m.memory.write(IDT_AT + 13 * 8, gate(HANDLER_AT, 0x00, 0x8E))  # null selector -> #GP
    set_gate(m, 8, HANDLER_AT + 0x10)
    m.memory.write(HANDLER_AT + 0x10, HLT)
    m.memory.write(CODE_AT, b"\x66" * 15 + b"\x90")
    assert m.run(max_instructions=10).kind == "halt"
    assert m.cpu.eip == HANDLER_AT + 0x11
    assert m.memory.read_u32(STACK_TOP - 16) == 0


def test_triple_fault_is_a_shutdown_exit():
    """A fault while delivering #DF shuts the processor down (SDM Vol. 3,
    6.15, interrupt 8): the run ends with a "shutdown" exit."""
    m = protected_machine()
    m.cpu.idtr = (IDT_AT, 0)          # every vector is beyond the IDT limit
    m.memory.write(CODE_AT, b"\x0f\x0b")
    e = m.run(max_instructions=10)
    assert e.kind == "shutdown"


def test_real_mode_triple_fault_when_ivt_is_unreachable():
    m = Machine(memory_size=1 << 20)
    m.cpu.idtr = (0, 3)               # only vector 0 fits
    m.cpu.cs, m.cpu.ip = 0, 0x1000
    m.memory.write(0x1000, b"\x0f\x0b")
    assert m.run(max_instructions=10).kind == "shutdown"


def test_flat32_stops_on_exceptions_without_delivering():
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(0x1000, b"\x0f\x0b")
    m.cpu.eip, m.cpu.esp = 0x1000, STACK_TOP
    e = m.run(max_instructions=10)
    assert (e.kind, e.vector, e.error_code) == ("exception", 6, None)
    assert m.cpu.esp == STACK_TOP and m.cpu.eip == 0x1000


def test_segment_limit_violation_is_gp_and_ss_violation_is_ss():
    """Limit checks on every access (SDM Vol. 3, 5.3): a data access past DS
    limit is #GP(0); past SS limit #SS(0)."""
    m = Machine.flat32(memory_size=1 << 20)
    m.cpu.set_segment("ds", 0x10, 0, 0xFFF, 0x4093)
    m.memory.write(0x1000, b"\x8b\x05\xfe\x0f\x00\x00")   # mov eax, [0xffe]
    m.cpu.eip = 0x1000
    e = m.step()
    assert (e.kind, e.vector, e.error_code) == ("exception", 13, 0)
    m.cpu.set_segment("ss", 0x10, 0, 0xFFF, 0x4093)
    m.memory.write(0x1000, b"\x8b\x45\x00")               # mov eax, [ebp]
    m.cpu.ebp = 0x1000
    m.cpu.eip = 0x1000
    e = m.step()
    assert (e.kind, e.vector) == ("exception", 12)


def test_write_to_read_only_data_segment_is_gp():
    m = Machine.flat32(memory_size=1 << 20)
    m.cpu.set_segment("ds", 0x10, 0, 0xFFFFF, 0x4091)     # read-only data
    m.memory.write(0x1000, b"\x89\x03")                   # mov [ebx], eax
    m.cpu.eip, m.cpu.ebx = 0x1000, 0x2000
    e = m.step()
    assert (e.kind, e.vector, e.error_code) == ("exception", 13, 0)
