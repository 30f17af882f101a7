"""The paged MMU beyond 32-bit 4 KiB pages (tests/test_paging.py): PAE with
4 KiB and 2 MiB pages, NX, reserved bits, global pages and the TLB's
architectural behaviour, and page walks or accesses outside RAM (SDM Vol. 3,
chapter 4)."""
import struct

import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from emu import Machine

P, RW, US, A, D, PS, G = 1, 2, 4, 0x20, 0x40, 0x80, 0x100
NX = 1 << 63
CR0_PG, CR0_WP = 1 << 31, 1 << 16
CR4_PSE, CR4_PAE, CR4_PGE = 1 << 4, 1 << 5, 1 << 7
PDPT, PD, PT = 0x20000, 0x21000, 0x22000
CODE = 0x1000


def q(m, addr, value):
    m.memory.write(addr, struct.pack("<Q", value))


def rq(m, addr):
    return struct.unpack("<Q", m.memory.read(addr, 8))[0]


WRMSR_EFER_NXE = bytes.fromhex("b9800000c0" "31d2" "b800080000" "0f30")   # EFER.NXE = 1


def pae_machine(code, extra_pte=None, big_pde=None, nxe=False, memory=4 << 20):
    """PAE: identity-map 0-2 MiB with 4 KiB pages; linear 0x40000000 through
    PDPTE 1 to ``extra_pte`` (4 KiB) or ``big_pde`` (2 MiB)."""
    m = Machine.flat32(memory_size=memory)
    q(m, PDPT, PD | P)
    q(m, PDPT + 8, (PD + 0x1000) | P)
    q(m, PD, PT | P | RW)
    for i in range(512):
        q(m, PT + 8 * i, (i << 12) | P | RW)
    if big_pde is not None:
        q(m, PD + 0x1000, big_pde)
    else:
        q(m, PD + 0x1000, (PT + 0x1000) | P | RW | US)
        q(m, PT + 0x1000, extra_pte if extra_pte is not None else 0)
    m.memory.write(CODE, (WRMSR_EFER_NXE if nxe else b"") + code)
    m.cpu.cr3 = PDPT
    m.cpu.cr4 = CR4_PAE
    m.cpu.cr0 = m.cpu.cr0 | CR0_PG
    m.cpu.eip = CODE
    m.cpu.esp = 0x8000
    return m


def test_pae_4k_translation_and_accessed_dirty_in_64_bit_entries():
    """PAE (SDM Vol. 3, 4.4): PDPTE -> PDE -> PTE, 8-byte entries; a write
    sets A and D in the PTE and A in the PDE."""
    m = pae_machine(b"\x89\x03\xf4", extra_pte=0x5000 | P | RW)
    m.cpu.ebx, m.cpu.eax = 0x40000010, 0xFEEDF00D
    assert m.run(max_instructions=5).kind == "halt"
    assert m.memory.read_u32(0x5010) == 0xFEEDF00D
    assert rq(m, PT + 0x1000) & (A | D) == A | D
    assert rq(m, PD + 0x1000) & A


def test_pae_2m_page():
    """A PDE with PS = 1 maps 2 MiB (SDM Vol. 3, table 4-9)."""
    m = pae_machine(b"\x8b\x03\xf4", big_pde=0x200000 | P | RW | PS)
    m.memory.write_u32(0x200000 + 0x12345, 0x600DCAFE)
    m.cpu.ebx = 0x40012345
    m.run(max_instructions=5)
    assert m.cpu.eax == 0x600DCAFE
    assert rq(m, PD + 0x1000) & (A | D) == A


def test_pae_reserved_bit_is_a_page_fault_with_rsvd():
    """A reserved bit set in a present entry: #PF with P = 1 and RSVD = 1
    (SDM Vol. 3, 4.7); bit 63 is reserved while EFER.NXE = 0."""
    m = pae_machine(b"\x8b\x03\xf4", extra_pte=0x5000 | P | RW | NX)
    m.cpu.ebx = 0x40000000
    e = m.run(max_instructions=5)
    assert (e.kind, e.vector, e.error_code) == ("exception", 14, 0b1001)
    assert m.cpu.cr2 == 0x40000000


def test_nx_page_refuses_instruction_fetch():
    """With EFER.NXE, XD = 1 forbids fetches: #PF with I/D = 1 (SDM Vol. 3,
    4.6 and 4.7); data reads of the same page are fine."""
    m = pae_machine(b"\xbb\x00\x00\x00\x40\x8b\x03\xff\xe3", extra_pte=0x5000 | P | RW | NX, nxe=True)
    e = m.run(max_instructions=10)              # mov ebx, 0x40000000 ; mov eax, [ebx] ; jmp ebx
    assert (e.kind, e.vector, e.error_code) == ("exception", 14, 0b10001)
    assert m.cpu.cr2 == 0x40000000 and m.cpu.eip == 0x40000000


def test_efer_accepts_only_nxe():
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(0, b"\x0f\x30")              # wrmsr
    m.cpu.ecx, m.cpu.edx, m.cpu.eax = 0xC0000080, 0, 1 << 8     # LME: no long mode here
    e = m.step()
    assert (e.kind, e.vector) == ("exception", 13)


def paged32(code):
    """32-bit paging: identity map 4 MiB, linear 0x400000 -> page table entry at PT + 0x1000."""
    m = Machine.flat32(memory_size=4 << 20)
    m.memory.write_u32(PD, PT | P | RW)
    for i in range(1024):
        m.memory.write_u32(PT + 4 * i, (i << 12) | P | RW)
    m.memory.write_u32(PD + 4, (PT + 0x1000) | P | RW)
    m.memory.write_u32(PT + 0x1000, 0x5000 | P | RW)
    m.memory.write(CODE, code)
    m.cpu.cr3 = PD
    m.cpu.cr0 = m.cpu.cr0 | CR0_PG
    m.cpu.eip = CODE
    return m


def test_tlb_keeps_a_stale_translation_until_invlpg():
    """The TLB caches translations: changing a PTE in memory has no effect
    until INVLPG (SDM Vol. 3, 4.10.4.2)."""
    code = bytes.fromhex(
        "8b03"              # mov eax, [ebx]         ; fills the TLB: 0x400000 -> 0x5000
        "c70501104200" "01600000"  # mov dword [PT+0x1000], 0x6001 ; remap to 0x6000
        "8b0b"              # mov ecx, [ebx]         ; still 0x5000 (stale)
        "0f013b"            # invlpg [ebx]
        "8b13"              # mov edx, [ebx]         ; now 0x6000
        "f4")
    code = code.replace(bytes.fromhex("01104200"), struct.pack("<I", PT + 0x1000))
    m = paged32(code)
    m.memory.write_u32(0x5000, 0x55555555)
    m.memory.write_u32(0x6000, 0x66666666)
    m.cpu.ebx = 0x400000
    assert m.run(max_instructions=10).kind == "halt"
    assert (m.cpu.eax, m.cpu.ecx, m.cpu.edx) == (0x55555555, 0x55555555, 0x66666666)


def test_global_page_survives_cr3_reload_but_not_cr4_pge_toggle():
    """With CR4.PGE, MOV CR3 keeps global translations (SDM Vol. 3,
    4.10.4.1); clearing PGE flushes them."""
    code = (bytes.fromhex("8b03")                                     # mov eax, [ebx]
            + bytes.fromhex("c705") + struct.pack("<II", PT + 0x1000, 0x6000 | P | RW | G)
            + bytes.fromhex("0f20d9" "0f22d9")                        # mov ecx, cr3 ; mov cr3, ecx
            + bytes.fromhex("8b33")                                   # mov esi, [ebx]
            + bytes.fromhex("0f20e1" "81e17fffffff" "0f22e1")         # cr4 &= ~PGE
            + bytes.fromhex("8b3b" "f4"))                             # mov edi, [ebx] ; hlt
    m = paged32(code)
    m.memory.write_u32(PT + 0x1000, 0x5000 | P | RW | G)
    m.memory.write_u32(0x5000, 0x55555555)
    m.memory.write_u32(0x6000, 0x66666666)
    m.cpu.cr4 = CR4_PGE
    m.cpu.ebx = 0x400000
    assert m.run(max_instructions=20).kind == "halt"
    assert (m.cpu.eax, m.cpu.esi, m.cpu.edi) == (0x55555555, 0x55555555, 0x66666666)


def test_write_through_a_clean_tlb_entry_sets_dirty():
    """A read fills the TLB; the first write through it must still set D in
    the PTE (hardware walks again for a clean entry)."""
    m = paged32(b"\x8b\x03\x89\x0b\xf4")        # mov eax, [ebx] ; mov [ebx], ecx
    m.cpu.ebx = 0x400000
    m.run(max_instructions=5)
    assert m.memory.read_u32(PT + 0x1000) & (A | D) == A | D


def test_page_tables_outside_ram_read_as_all_ones():
    """A page directory beyond RAM reads as all ones (an unassigned hole):
    P, R/W, U/S and PS are set, so with CR4.PSE the access maps a 4 MiB page
    at 0xFFC00000 — also outside RAM, so loads give all ones and stores are
    dropped; nothing outside the guest's array is touched."""
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(CODE, b"\x8b\x03\x89\x0b\xf4")     # mov eax, [ebx] ; mov [ebx], ecx ; hlt
    before = m.memory.read(0, 1 << 20)
    m.cpu.cr4 = CR4_PSE
    m.cpu.cr3 = 0xFFFFF000                            # far beyond 1 MiB of RAM
    # code must stay reachable: run it from a TLB-independent place by mapping nothing else
    m.cpu.cr0 = m.cpu.cr0 | CR0_PG
    m.cpu.eip = CODE
    e = m.run(max_instructions=5)
    # the fetch reads an all-ones PDE: present, PS, and reserved bits 13-21 set, so #PF
    # with P = 1 and RSVD = 1 (SDM Vol. 3, 4.7) -- never host memory
    assert (e.kind, e.vector, e.error_code) == ("exception", 14, 0b1001)
    assert m.memory.read(0, 1 << 20) == before


def test_stores_outside_ram_are_dropped_and_loads_read_all_ones():
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(CODE, b"\x89\x0b\x8b\x03\xf4")     # mov [ebx], ecx ; mov eax, [ebx] ; hlt
    m.cpu.ebx, m.cpu.ecx = 0x00FFFFFE, 0x12345678     # 15 MiB beyond the end of RAM
    m.cpu.eip = CODE
    before = m.memory.read(0, 1 << 20)
    assert m.run(max_instructions=5).kind == "halt"
    assert m.cpu.eax == 0xFFFFFFFF
    assert m.memory.read(0, 1 << 20) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(st.integers(0, 2**64 - 1), min_size=8, max_size=8),
       cr3=st.integers(0, 2**32 - 1), pae=st.booleans(),
       lin=st.integers(0, 2**32 - 4))
def test_random_page_tables_never_escape(entries, cr3, pae, lin):
    """Whatever the page tables hold, a load and a store stay in guest RAM
    or are an exception: the run always returns and RAM outside the tables
    and the target is unchanged."""
    m = Machine.flat32(memory_size=1 << 20)
    for i, v in enumerate(entries):
        m.memory.write(0x80000 + 8 * i, struct.pack("<Q", v))
    m.memory.write(CODE, b"\x8b\x03\x89\x0b\xf4")
    m.cpu.cr4 = CR4_PAE | CR4_PSE if pae else CR4_PSE
    m.cpu.cr3 = (0x80000 | (cr3 & 0x18)) if cr3 & 1 else cr3 & 0xFFFFF000
    m.cpu.cr0 = m.cpu.cr0 | CR0_PG
    m.cpu.eip = CODE
    m.cpu.ebx = lin
    e = m.run(max_instructions=5)
    assert e.kind in ("halt", "exception")
