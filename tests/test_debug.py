"""The page-walk explainer and the disassembler view (emu/debug.py).  The
explainer is checked against the MMU itself: for random page tables it must
predict exactly the physical address a load reaches, or the #PF it raises."""
import struct

from hypothesis import given, settings, strategies as st, HealthCheck

from emu import Machine

P, RW, US, PS = 1, 2, 4, 0x80
CODE = 0x1000


def test_explains_a_4k_walk_level_by_level():
    m = Machine.flat32(memory_size=4 << 20)
    m.memory.write_u32(0x10000, 0x11000 | P | RW)
    m.memory.write_u32(0x11000 + 4 * 0x23, 0x55000 | P | RW)
    m.cpu.cr3 = 0x10000
    m.cpu.cr0 |= 0x80000000
    w = m.page_walk(0x00023ABC)
    assert w.physical == 0x55ABC
    assert [lv.name for lv in w.levels] == ["PDE", "PTE"]
    text = str(w)
    assert "PTE" in text and "0x000055abc" in text and "4 KiB page" in text
    assert "<table>" in w._repr_html_()
    w = m.page_walk(0x00023ABC, user=True)
    assert w.fault == 0b101 and "supervisor" in w.reason


def test_paging_off_and_bad_access_kind():
    m = Machine.flat32(memory_size=1 << 20)
    assert m.page_walk(0x1234).physical == 0x1234
    import pytest
    with pytest.raises(ValueError, match="access must be"):
        m.page_walk(0, access="execute")


def test_disassemble_at_eip():
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(0, b"\x01\xc8\xf4")
    d = m.disassemble(count=2)
    assert [t for _, _, t in d.lines] == ["add eax, ecx", "hlt"]
    assert "add eax, ecx" in str(d)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pde=st.integers(0, 2**32 - 1), pte=st.integers(0, 2**32 - 1), pae=st.booleans(),
       hi=st.integers(0, 2**32 - 1), offset=st.integers(0, 0xFFC), cpl3=st.booleans(),
       wp=st.booleans(), pse=st.booleans())
def test_explainer_agrees_with_the_mmu(pde, pte, pae, hi, offset, cpl3, wp, pse):
    """For a random PDE/PTE pair, the explainer's answer is what a load at
    that address does on the CPU: the same physical address, or the same #PF."""
    m = Machine.flat32(memory_size=2 << 20)
    lin = 0x40000000 | offset if pae else 0x00400000 | offset
    if pae:
        m.memory.write(0x30000, struct.pack("<QQ", 0x31000 | P, 0x32000 | P))
        m.memory.write(0x31000, struct.pack("<Q", 0x33000 | P | RW | US))        # identity 0-2 MiB
        for i in range(512):
            m.memory.write(0x33000 + 8 * i, struct.pack("<Q", (i << 12) | P | RW | US))
        m.memory.write(0x32000, struct.pack("<Q", (pde & ~0xFF000) | (0x34000 if not pde & PS else 0)
                                           | ((hi & 0x8000000F) << 32)))
        m.memory.write(0x34000, struct.pack("<Q", pte | ((hi & 0x8000000F) << 32)))
        m.cpu.cr4 = 0x20
        m.cpu.cr3 = 0x30000
    else:
        m.memory.write_u32(0x30000, 0x33000 | P | RW | US)
        for i in range(1024):
            m.memory.write_u32(0x33000 + 4 * i, (i << 12) | P | RW | US)
        m.memory.write_u32(0x30004, pde if pde & PS else (pde & 0xFFF) | 0x34000)
        m.memory.write_u32(0x34000, pte)
        m.cpu.cr4 = 0x10 if pse else 0
        m.cpu.cr3 = 0x30000
    m.cpu.cr0 = m.cpu.cr0 | 0x80000000 | (0x10000 if wp else 0)
    m.memory.write(CODE, b"\x8b\x03\xeb\xfe")               # mov eax, [ebx] ; jmp $ (HLT is CPL 0 only)
    m.cpu.eip = CODE
    m.cpu.ebx = lin
    if cpl3:
        m.cpu.set_segment("cs", 0x1B, 0, 0xFFFFFFFF, 0xC0FB)
        m.cpu.set_segment("ss", 0x23, 0, 0xFFFFFFFF, 0xC0F3)
        m.cpu.set_segment("ds", 0x23, 0, 0xFFFFFFFF, 0xC0F3)
        m.cpu.cpl = 3
    w = m.page_walk(lin)
    expected = 0xFFFFFFFF                                   # outside RAM: all ones
    if w.fault is None and w.physical < (2 << 20) - 4:
        if CODE - 4 < w.physical < CODE + 4 or 0x30000 - 4 < w.physical < 0x35000:
            expected = m.memory.read_u32(w.physical)        # code or tables: read as they are
        else:
            m.memory.write_u32(w.physical, 0xA5A5A5A5)
            expected = 0xA5A5A5A5
    e = m.run(max_instructions=2)
    if w.fault is not None:
        assert (e.kind, e.vector, e.error_code) == ("exception", 14, w.fault), str(w)
        assert m.cpu.cr2 == lin
    else:
        assert e.kind == "budget", str(w)
        assert m.cpu.eax == expected, str(w)
