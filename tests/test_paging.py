"""32-bit paging as far as the CPU core needs it (the MMU issue adds the
TLB, PAE and more): translation, accessed/dirty bits, #PF error codes and
CR2 (SDM Vol. 3, 4.3 and 4.7)."""
import pytest

from emu import Machine

PD, PT = 0x10000, 0x11000
P, RW, US, A, D, PS = 1, 2, 4, 0x20, 0x40, 0x80


def paged(pte_flags=P | RW | US, pde_flags=P | RW | US):
    m = Machine.flat32(memory_size=1 << 22)
    # identity map the first 4 MiB with one page table; linear 0x400000 -> physical 0x5000
    m.memory.write_u32(PD, PT | pde_flags)
    for i in range(1024):
        m.memory.write_u32(PT + 4 * i, (i << 12) | P | RW | US)
    m.memory.write_u32(PD + 4, (PT + 0x1000) | pde_flags)
    m.memory.write_u32(PT + 0x1000, 0x5000 | pte_flags)
    m.cpu.cr3 = PD
    m.cpu.cr0 = m.cpu.cr0 | 0x80000000
    m.cpu.eip = 0x1000
    return m


def test_translation_and_accessed_dirty_bits():
    m = paged()
    m.memory.write(0x1000, b"\x89\x03\xf4")        # mov [ebx], eax ; hlt
    m.cpu.ebx, m.cpu.eax = 0x400010, 0xCAFEBABE
    assert m.run(max_instructions=5).kind == "halt"
    assert m.memory.read_u32(0x5010) == 0xCAFEBABE
    assert m.memory.read_u32(PT + 0x1000) & (A | D) == A | D
    assert m.memory.read_u32(PD + 4) & A


def test_read_sets_accessed_not_dirty():
    m = paged()
    m.memory.write(0x1000, b"\x8b\x03\xf4")        # mov eax, [ebx]
    m.cpu.ebx = 0x400000
    m.run(max_instructions=5)
    assert m.memory.read_u32(PT + 0x1000) & (A | D) == A


@pytest.mark.parametrize("pte, cpl, write, err", [
    (0, 0, False, 0b000),                 # not present, read, supervisor
    (0, 0, True, 0b010),                  # not present, write
    (P | US, 0, True, 0b000 | 0b010),     # read-only page, supervisor write, CR0.WP = 0: allowed
    (P | RW, 3, False, 0b101),            # supervisor page, user read: protection violation
    (P | US, 3, True, 0b111),             # read-only, user write
])
def test_page_fault_error_code_and_cr2(pte, cpl, write, err):
    m = paged(pte_flags=pte)
    m.cpu.cpl = cpl
    m.memory.write(0x1000, (b"\x89\x03" if write else b"\x8b\x03") + b"\xf4")
    m.cpu.ebx = 0x400123
    e = m.run(max_instructions=5)
    if pte == P | US and cpl == 0:
        assert e.kind == "halt"                # SDM 4.6: supervisor writes ignore R/W when CR0.WP = 0
        return
    assert (e.kind, e.vector, e.error_code) == ("exception", 14, err)
    assert m.cpu.cr2 == 0x400123


def test_cr0_wp_makes_read_only_pages_read_only_for_the_supervisor():
    m = paged(pte_flags=P | US)
    m.cpu.cr0 = m.cpu.cr0 | (1 << 16)
    m.memory.write(0x1000, b"\x89\x03\xf4")
    m.cpu.ebx = 0x400000
    e = m.run(max_instructions=5)
    assert (e.vector, e.error_code) == (14, 0b011)


def test_4mib_page_with_pse():
    m = paged()
    m.memory.write_u32(PD + 8, 0x000000 | P | RW | PS)   # linear 8 MiB -> physical 0 (4 MiB page)
    m.cpu.cr4 = 0x10
    m.memory.write(0x1000, b"\x8b\x03\xf4")
    m.cpu.ebx = 0x800000 + 0x2000
    m.memory.write_u32(0x2000, 0x1234)
    assert m.run(max_instructions=5).kind == "halt" and m.cpu.eax == 0x1234


def test_page_tables_outside_ram_are_safe():
    """A page directory pointing outside RAM reads all ones: the walk sees
    entries that map beyond RAM, and the access reads the unassigned hole."""
    m = paged()
    m.memory.write_u32(PD + 12, 0xFFFFF000 | P | RW)
    m.memory.write(0x1000, b"\x8b\x03\xf4")
    m.cpu.ebx = 0xC00000
    e = m.run(max_instructions=5)
    assert e.kind == "halt" and m.cpu.eax == 0xFFFFFFFF
