"""System and segment instructions (SDM Vol. 2 pages; Vol. 3 chapters 2-5)."""
import struct

import pytest

from emu import Machine
from emu.core.isa.system import CPUID_FEATURES, CPUID_SIGNATURE

GDT_AT = 0x500
CODE = 0x1000


def descriptor(base, limit, access, flags=0xC):
    return struct.pack("<HHBBBB", limit & 0xFFFF, base & 0xFFFF, (base >> 16) & 0xFF, access,
                       (flags << 4) | ((limit >> 16) & 0xF), base >> 24)


def machine(code, cpl=0, **regs):
    """flat32 with a GDT: 08 code0, 10 data0, 18 code3, 20 data3, 28 data DPL 2,
    30 read-only data, 38 execute-only code, 40 LDT, 48 TSS."""
    m = Machine.flat32(memory_size=1 << 20)
    gdt = (bytes(8) + descriptor(0, 0xFFFFF, 0x9A) + descriptor(0, 0xFFFFF, 0x92)
           + descriptor(0, 0xFFFFF, 0xFA) + descriptor(0, 0xFFFFF, 0xF2)
           + descriptor(0x2000, 0xFF, 0xD2, 0x4) + descriptor(0, 0xFFFFF, 0x90)
           + descriptor(0, 0xFFFFF, 0x98) + descriptor(0x3000, 0x1F, 0x82, 0)
           + descriptor(0x3100, 0x67, 0x89, 0))
    m.memory.write(GDT_AT, gdt)
    m.cpu.gdtr = (GDT_AT, len(gdt) - 1)
    m.memory.write(CODE, code)
    m.cpu.eip = CODE
    m.cpu.esp = 0x9000
    if cpl:
        m.cpu.set_segment("cs", 0x18 | cpl, 0, 0xFFFFFFFF, 0xC0FB)
        m.cpu.set_segment("ss", 0x20 | cpl, 0, 0xFFFFFFFF, 0xC0F3)
        m.cpu.cpl = cpl
    for k, v in regs.items():
        setattr(m.cpu, k, v)
    return m


def test_cpuid_reports_what_is_implemented():
    """CPUID leaf 0: max leaf and vendor; leaf 1: signature and exactly the
    features implemented (TSC MSR PAE CX8 SEP PGE CMOV PSE; no FPU, no APIC);
    leaf 80000001H: NX."""
    m = machine(b"\x0f\xa2\x0f\xa2", eax=0)
    m.step()
    vendor = struct.pack("<III", m.cpu.ebx, m.cpu.edx, m.cpu.ecx)
    assert m.cpu.eax == 1 and vendor == b"GenuineIntel"
    m.cpu.eax = 1
    m.step()
    assert m.cpu.eax == CPUID_SIGNATURE and m.cpu.edx == CPUID_FEATURES
    assert m.cpu.edx & 1 == 0 and m.cpu.edx & (1 << 6) and m.cpu.edx & (1 << 9) == 0
    assert m.cpu.edx & (1 << 13)
    m.cpu.eax = 0x80000000
    m.cpu.eip = CODE
    m.step()
    assert m.cpu.eax == 0x80000001
    m.cpu.eax = 0x80000001
    m.step()
    assert m.cpu.edx == 1 << 20
    assert CPUID_SIGNATURE == Machine(1 << 20).cpu.edx      # EDX at reset holds the signature


def test_rdtsc_counts_retired_instructions():
    """The TSC is virtual and deterministic: two runs read the same values."""
    code = b"\x90" * 5 + b"\x0f\x31"
    a, b = machine(code), machine(code)
    a.run(max_instructions=6)
    b.run(max_instructions=6)
    assert a.cpu.eax == b.cpu.eax == 5


def test_wrmsr_tsc_and_sysenter_msrs():
    m = machine(b"\x0f\x30" * 2 + b"\x0f\x32", ecx=0x174, eax=0x08, edx=0)
    m.step()
    m.cpu.ecx, m.cpu.eax = 0x10, 1000
    m.step()
    m.cpu.ecx = 0x174
    m.step()
    assert m.cpu.eax == 0x08


def test_unknown_msr_is_gp():
    m = machine(b"\x0f\x32", ecx=0x1234)
    e = m.step()
    assert (e.vector, e.error_code) == (13, 0)


@pytest.mark.parametrize("code", [b"\xf4", b"\x0f\x01\x15\x00\x20\x00\x00", b"\x0f\x22\xc0", b"\x0f\x06",
                                  b"\x0f\x32", b"\x0f\x09", b"\x0f\x00\xd8", b"\xfa"])
def test_privileged_instructions_at_cpl3_are_gp(code):
    """HLT LGDT MOV CR0 CLTS RDMSR WBINVD LTR (and CLI with IOPL 0) need CPL 0."""
    m = machine(code, cpl=3)
    e = m.step()
    assert (e.kind, e.vector, e.error_code) == ("exception", 13, 0)


@pytest.mark.parametrize("value", [0x80000000, 0x20000011, 0x00000100 | 0x11])
def test_mov_cr0_rejects_bad_combinations(value):
    """PG without PE, NW without CD, reserved bits: #GP(0)."""
    m = machine(b"\x0f\x22\xc0", eax=value)
    assert m.step().vector == 13


def test_mov_cr1_is_ud():
    assert machine(b"\x0f\x20\xc8").step().vector == 6


def test_lmsw_sets_but_never_clears_pe():
    m = machine(b"\x0f\x01\xf0", eax=0)
    m.step()
    assert m.cpu.cr0 & 1


def test_sgdt_stores_limit_and_base():
    m = machine(b"\x0f\x01\x05\x00\x20\x00\x00")
    m.step()
    limit, base = struct.unpack("<HI", m.memory.read(0x2000, 6))
    assert (base, limit) == m.cpu.gdtr


def test_lar_lsl_verr_verw():
    """LAR/LSL load rights and limit of a visible descriptor; VERR/VERW check
    readability/writability; an invisible one clears ZF (SDM Vol. 2)."""
    m = machine(b"\x0f\x02\xc3" b"\x0f\x03\xcb" b"\x0f\x00\xe3" b"\x0f\x00\xeb", ebx=0x28)
    m.step()
    assert m.cpu.zf and m.cpu.eax == 0x0040D200
    m.step()
    assert m.cpu.zf and m.cpu.ecx == 0xFF
    m.step()
    assert m.cpu.zf                    # readable data
    m.step()
    assert m.cpu.zf                    # writable data
    m = machine(b"\x0f\x00\xeb" b"\x0f\x00\xe3", ebx=0x38)
    m.step()
    assert not m.cpu.zf                # code is never writable
    m.step()
    assert not m.cpu.zf                # execute-only code is not readable
    m = machine(b"\x0f\x02\xc3", ebx=0x28, cpl=3, eax=0x1234)
    m.step()
    assert not m.cpu.zf and m.cpu.eax == 0x1234   # DPL 2 < CPL 3: invisible


def test_arpl_raises_rpl():
    m = machine(b"\x63\xd8", eax=0x10, ebx=0x23)      # arpl ax, bx
    m.step()
    assert m.cpu.ax == 0x13 and m.cpu.zf
    r = Machine(1 << 20, deliver_exceptions=False)
    r.cpu.cs, r.cpu.ip = 0, 0x1000
    r.memory.write(0x1000, b"\x63\xd8")
    assert r.step().vector == 6


def test_segment_loads_check_the_descriptor():
    """MOV to DS: a read-only data segment loads; a code execute-only
    segment is #GP(selector); SS needs writable data at CPL (SDM Vol. 2, MOV)."""
    m = machine(b"\x8e\xd8", eax=0x30)
    assert m.step().kind == "budget" and m.cpu.ds == 0x30
    m = machine(b"\x8e\xd8", eax=0x38)
    e = m.step()
    assert (e.vector, e.error_code) == (13, 0x38)
    m = machine(b"\x8e\xd0", eax=0x30)
    e = m.step()
    assert (e.vector, e.error_code) == (13, 0x30)
    m = machine(b"\x8e\xc8", eax=0x08)                 # mov cs, ax
    assert m.step().vector == 6


def test_null_selector_makes_ds_unusable():
    m = machine(b"\x8e\xd8\x8b\x03", eax=0, ebx=0x2000)
    m.step()
    e = m.step()
    assert (e.vector, e.error_code) == (13, 0)


def test_lds_loads_segment_and_offset():
    m = machine(b"\xc5\x03", ebx=0x2000)                # lds eax, [ebx]
    m.memory.write(0x2000, struct.pack("<IH", 0xCAFE, 0x30))
    m.step()
    assert m.cpu.eax == 0xCAFE and m.cpu.ds == 0x30 and m.cpu.segment("ds").attributes & 0xFF == 0x91


def test_lldt_and_ltr():
    m = machine(b"\x0f\x00\xd0\x0f\x00\xd9", eax=0x40, ecx=0x48)
    m.step()
    m.step()
    assert m.cpu.segment("ldtr").base == 0x3000 and m.cpu.tr == 0x48
    assert m.memory.read_u8(GDT_AT + 0x48 + 5) & 0xF == 0xB           # busy


def test_sysenter_and_sysexit():
    """SYSENTER: flat ring 0 from the MSRs; SYSEXIT: flat ring 3, ESP = ECX,
    EIP = EDX (SDM Vol. 2, SYSENTER/SYSEXIT)."""
    m = machine(b"\x0f\x30" * 3 + b"\x0f\x34")
    for msr, v in ((0x174, 0x08), (0x175, 0x7000), (0x176, 0x3000)):
        m.cpu.ecx, m.cpu.eax, m.cpu.edx = msr, v, 0
        m.step()
    m.memory.write(0x3000, b"\x0f\x35")
    m.cpu.ecx, m.cpu.edx = 0x6000, 0x1008
    m.step()
    assert (m.cpu.cs, m.cpu.eip, m.cpu.esp, m.cpu.cpl) == (0x08, 0x3000, 0x7000, 0)
    m.step()
    assert (m.cpu.cs, m.cpu.ss, m.cpu.eip, m.cpu.esp, m.cpu.cpl) == (0x1B, 0x23, 0x1008, 0x6000, 3)


def test_x87_escape_without_fpu():
    """No FPU: ESC is #NM with CR0.EM (so an OS can emulate it), else #UD."""
    m = machine(b"\xd9\xc0")
    assert m.step().vector == 6
    m = machine(b"\xd9\xc0")
    m.cpu.cr0 = m.cpu.cr0 | 4
    assert m.step().vector == 7


def test_16_bit_protected_mode_code_segment():
    """A code segment with D = 0 runs 16-bit code in protected mode."""
    m = machine(b"\x01\xc8\x66\x01\xc8", eax=0x1FFFF, ecx=1)
    m.cpu.set_segment("cs", 0x08, 0, 0xFFFF, 0x009B)
    m.step()
    assert m.cpu.eax == 0x10000          # 16-bit add: AX wrapped, upper half kept
    m.step()
    assert m.cpu.eax == 0x10001          # 66h: a 32-bit add in 16-bit code


def test_a20_gate_masks_address_bit_20():
    """With the A20 gate closed, address bit 20 is forced to 0 (the PC's
    8086 wrap-around): FFFF:0010 reaches physical 0."""
    m = Machine(memory_size=2 << 20)
    m.a20 = False
    m.memory.write(0, b"\x42")
    m.memory.write(0x1000, b"\xa0\x10\x00")             # mov al, [0x0010] with DS = FFFF
    m.cpu.cs, m.cpu.ip, m.cpu.ds = 0, 0x1000, 0xFFFF
    m.step()
    assert m.cpu.al == 0x42
    m.a20 = True
    m.cpu.ip = 0x1000
    m.step()
    assert m.cpu.al == 0 and m.a20


def test_call_gate_copies_up_to_31_parameters_to_the_inner_stack():
    """A call gate's parameter count is 5 bits: 31 parameters are copied, in
    order, from the caller's stack to the inner stack from the TSS (SDM
    Vol. 3, 5.8.5, figure 5-13)."""
    pushes = b"".join(b"\x6a" + bytes([i]) for i in range(30, -1, -1))   # push 30 ... push 0
    m = machine(pushes + b"\x9a\x00\x00\x00\x00\x53\x00", cpl=3)         # call 0x53:0
    m.memory.write(GDT_AT + 0x50, struct.pack("<HHBBH", 0x2000, 0x08, 31, 0xEC, 0))
    m.cpu.gdtr = (GDT_AT, 0x57)
    m.memory.write(0x3100 + 4, struct.pack("<II", 0x7000, 0x10))          # ESP0, SS0
    m.cpu.set_segment("tr", 0x48, 0x3100, 0x67, 0x8B)
    m.memory.write(0x2000, b"\xf4")
    e = m.run(max_instructions=40)
    assert e.kind == "halt" and m.cpu.cpl == 0 and m.cpu.cs == 0x08
    esp = m.cpu.esp
    assert esp == 0x7000 - 35 * 4
    frame = struct.unpack("<35I", m.memory.read(esp, 35 * 4))
    assert frame[0] == CODE + len(pushes) + 7 and frame[1] == 0x1B       # return EIP, CS
    assert list(frame[2:33]) == list(range(31))                          # the parameters, in order
    assert frame[33] == 0x9000 - 31 * 4 and frame[34] == 0x23            # old ESP, old SS
