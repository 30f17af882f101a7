"""Hardware task switching (SDM Vol. 3, chapter 7) through the API: the
state saved in the old TSS and loaded from the new one, busy bits, the back
link and NT, and the checks that refuse a switch.  (The taskswitch kernel in
firmware/kernels checks the same against QEMU.)"""
import struct

from emu import Machine
from tests.test_isa_system import descriptor

GDT = 0x500
TSS_A, TSS_B = 0x3000, 0x3200
CODE = 0x1000
SEL_CODE, SEL_DATA, SEL_TSS_A, SEL_TSS_B, SEL_GATE_B = 0x08, 0x10, 0x18, 0x20, 0x28


def tss32(eip, esp, eflags=0x2, eax=0):
    t = bytearray(0x68)
    struct.pack_into("<I", t, 0x20, eip)
    struct.pack_into("<I", t, 0x24, eflags)
    struct.pack_into("<I", t, 0x28, eax)
    struct.pack_into("<I", t, 0x38, esp)
    for i, off in enumerate(range(0x48, 0x60, 4)):
        struct.pack_into("<I", t, off, SEL_CODE if i == 1 else SEL_DATA)
    struct.pack_into("<H", t, 0x66, 0x68)
    return bytes(t)


def task_gate(tss_selector, dpl=0):
    return struct.pack("<HHBBH", 0, tss_selector, 0, 0x85 | (dpl << 5), 0)


def machine(code, task_b_code, tss_b_limit=0x67, b_busy=False):
    m = Machine.flat32(memory_size=1 << 20)
    gdt = (bytes(8) + descriptor(0, 0xFFFFF, 0x9A) + descriptor(0, 0xFFFFF, 0x92)
           + descriptor(TSS_A, 0x67, 0x89, 0) + descriptor(TSS_B, tss_b_limit, 0x8B if b_busy else 0x89, 0)
           + task_gate(SEL_TSS_B))
    m.memory.write(GDT, gdt)
    m.cpu.gdtr = (GDT, len(gdt) - 1)
    m.memory.write(TSS_A, tss32(0, 0))
    m.memory.write(TSS_B, tss32(0x2000, 0x9000, eax=0xB0B))
    m.memory.write(0x2000, task_b_code)
    m.memory.write(CODE, b"\x66\xb8" + struct.pack("<H", SEL_TSS_A) + b"\x0f\x00\xd8" + code)  # ltr ax
    m.cpu.eip = CODE
    m.cpu.esp = 0x8000
    return m


def u32(m, a):
    return struct.unpack("<I", m.memory.read(a, 4))[0]


def busy(m, sel):
    return (m.memory.read(GDT + sel + 5, 1)[0] & 0xF) == 0xB


def test_jmp_to_a_tss_saves_the_old_task_and_swaps_busy_bits():
    """JMP to a TSS: the old task's EIP (after the JMP) and registers go to
    its TSS; its busy bit is cleared and the new one's set; NT stays clear
    and no back link is written; CR0.TS is set (SDM Vol. 3, 7.3, table 7-2)."""
    m = machine(b"\xb9\x44\x33\x22\x11" + b"\xea" + struct.pack("<IH", 0, SEL_TSS_B), b"\xf4")
    assert m.run(max_instructions=20).kind == "halt"
    assert m.cpu.eax == 0xB0B and m.cpu.eip == 0x2001 and m.cpu.esp == 0x9000
    assert m.cpu.tr == SEL_TSS_B
    assert u32(m, TSS_A + 0x2C) == 0x11223344                    # old ECX saved
    assert u32(m, TSS_A + 0x20) == CODE + 4 + 3 + 5 + 7          # EIP after the JMP (LTR, MOV, JMP)
    assert not busy(m, SEL_TSS_A) and busy(m, SEL_TSS_B)
    assert m.cpu.eflags & (1 << 14) == 0
    assert m.cpu.cr0 & 8
    assert struct.unpack("<H", m.memory.read(TSS_B, 2))[0] == 0


def test_call_through_a_task_gate_nests_and_iret_returns():
    """CALL through a task gate: NT set and the back link written in the new
    TSS, the old task stays busy; IRET with NT goes back and clears the
    callee's busy bit."""
    m = machine(b"\x9a" + struct.pack("<IH", 0, SEL_GATE_B) + b"\xbe\x01\x00\x00\x00\xf4",
                b"\xbf\x07\x00\x00\x00\xcf")            # mov edi, 7 ; iret
    assert m.run(max_instructions=30).kind == "halt"
    assert m.cpu.tr == SEL_TSS_A and m.cpu.esi == 1
    assert struct.unpack("<H", m.memory.read(TSS_B, 2))[0] == SEL_TSS_A
    assert u32(m, TSS_B + 0x44) == 7                     # the callee's EDI saved at IRET
    assert u32(m, TSS_B + 0x24) & (1 << 14) == 0          # NT cleared in its saved EFLAGS
    assert not busy(m, SEL_TSS_B) and busy(m, SEL_TSS_A)


def test_switch_to_a_busy_task_is_gp():
    m = machine(b"\xea" + struct.pack("<IH", 0, SEL_TSS_B), b"\xf4", b_busy=True)
    e = m.run(max_instructions=20)
    assert (e.kind, e.vector, e.error_code) == ("exception", 13, SEL_TSS_B)


def test_tss_limit_too_small_is_ts():
    """A 32-bit TSS needs a limit of at least 67H (SDM Vol. 3, 7.2.2)."""
    m = machine(b"\xea" + struct.pack("<IH", 0, SEL_TSS_B), b"\xf4", tss_b_limit=0x40)
    e = m.run(max_instructions=20)
    assert (e.kind, e.vector, e.error_code) == ("exception", 10, SEL_TSS_B)
    assert m.cpu.tr == SEL_TSS_A                         # nothing switched
