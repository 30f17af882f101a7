"""Clones with copy-on-write RAM (emu/clone.py, emu/guestmem.py): a clone
continues exactly as its parent would, neither sees the other's writes
(isolation is a security boundary), and a clone costs the host only the
pages it writes."""
import hashlib
import struct

import pytest

from emu import Machine, guestmem
from emu.clone import CloneError
from emu.core import layout as L
from tests.test_kernels_qemu import KERNELS

PAGE = 4096


def page_writer(first, count, value_reg="ecx"):
    """flat32 code: write a dword to each of ``count`` pages from ``first``, then HLT."""
    return (b"\xbf" + struct.pack("<I", first)          # mov edi, first
            + b"\xb9" + struct.pack("<I", count)        # mov ecx, count
            + b"\x89\x0f"                               # mov [edi], ecx
            + b"\x81\xc7\x00\x10\x00\x00"               # add edi, 4096
            + b"\x49\x75\xf5"                           # dec ecx ; jnz back
            + b"\xf4")                                  # hlt


def state_of(m):
    cpu = m._state.cpu.copy()
    cpu[list(L.CACHE_STATISTICS)] = 0     # cache statistics, not machine state
    return cpu.tolist(), m._state.dev.tolist(), hashlib.sha256(m._state.mem).hexdigest()


def test_clone_of_a_running_kernel_continues_identically():
    a = Machine.from_multiboot(KERNELS / "timer.elf", memory_size=64 << 20)
    a.run(max_instructions=300_000)
    before = a.com1.read()
    b = a.clone()
    assert b.memory_size == 64 << 20 and state_of(a) == state_of(b)
    ea = a.run(max_instructions=5_000_000)
    eb = b.run(max_instructions=5_000_000)
    assert ea == eb and ea.kind == "debug_exit"
    rest = a.com1.read()
    assert b.com1.read() == rest
    assert before + rest == (KERNELS / "timer.expected").read_bytes()
    assert state_of(a) == state_of(b)


def test_writes_of_parent_and_clone_are_invisible_to_each_other():
    parent = Machine.flat32(memory_size=4 << 20)
    parent.memory.write(0x1000, page_writer(0x100000, 16))
    parent.memory.write(0x200000, b"parent data")
    parent.cpu.eip = 0x1000
    whole = parent.memory.read(0, 4 << 20)
    child = parent.clone()
    assert child.memory.read(0, 4 << 20) == whole
    # the child's guest writes 16 pages, Python writes one more: the parent sees none of it
    assert child.run(max_instructions=1000).kind == "halt"
    child.memory.write(0x200000, b"CHILD")
    assert parent.memory.read(0, 4 << 20) == whole
    # the parent writes elsewhere and over the same place: the child sees none of it
    parent.memory.write(0x300000, b"later")
    parent.memory.write(0x200000, b"PARENT")
    assert child.memory.read(0x300000, 5) == b"\0" * 5
    assert child.memory.read(0x200000, 11) == b"CHILDt data"
    assert parent.memory.read(0x200000, 11) == b"PARENT data"
    assert child.memory.read(0x100000, 4) == struct.pack("<I", 16)
    assert parent.memory.read(0x100000, 4) == b"\0" * 4
    # a clone of the clone, and a second clone of the parent, each see their source's state
    grandchild = child.clone()
    assert grandchild.memory.read(0x200000, 11) == b"CHILDt data"
    sibling = parent.clone()
    assert sibling.memory.read(0x200000, 11) == b"PARENT data"
    assert sibling.memory.read(0x300000, 5) == b"later"
    grandchild.memory.write(0x300000, b"gc")
    assert child.memory.read(0x300000, 2) == b"\0\0" and sibling.memory.read(0x300000, 5) == b"later"


def test_a_clone_costs_only_the_pages_it_writes():
    parent = Machine.flat32(memory_size=64 << 20)
    parent.memory.write(0x1000, page_writer(0x400000, 256))     # the parent touches 1 MiB
    parent.cpu.eip = 0x1000
    assert parent.run(max_instructions=10_000).kind == "halt"
    child = parent.clone()
    private, shared = guestmem.resident_pages(child._state.mem)
    assert private == 0                                          # nothing of its own yet
    image = guestmem.image_of(parent._state.mem)
    assert image is guestmem.image_of(child._state.mem)
    assert image.stored_bytes() <= 258 * PAGE                   # the touched pages, not 64 MiB
    before = guestmem.process_memory().get("anonymous")
    child.memory.write(0x1000, page_writer(0x2000000, 1024))    # the clone writes 4 MiB elsewhere
    child.cpu.eip = 0x1000
    assert child.run(max_instructions=100_000).kind == "halt"
    private, shared = guestmem.resident_pages(child._state.mem)
    assert 1024 <= private <= 1024 + 2                           # its pages (+ the code page it wrote)
    assert guestmem.resident_pages(parent._state.mem)[0] == 0   # the parent did not grow
    after = guestmem.process_memory().get("anonymous")
    if before is not None:
        grown = after - before
        assert 4 << 20 <= grown <= (4 << 20) + (2 << 20)


def test_many_clones_share_one_image():
    parent = Machine.flat32(memory_size=8 << 20)
    parent.memory.write(0x1000, page_writer(0x100000, 8))
    parent.cpu.eip = 0x1000
    clones = parent.clone(count=3)
    assert len(clones) == 3
    images = {id(guestmem.image_of(c._state.mem)) for c in clones + [parent]}
    assert len(images) == 1
    for i, c in enumerate(clones):
        c.cpu.ecx = 0
        assert c.run(max_instructions=1000).kind == "halt"
        c.memory.write(0x500000, bytes([i + 1]))
    assert [c.memory.read(0x500000, 1)[0] for c in clones] == [1, 2, 3]
    assert parent.memory.read(0x500000, 1) == b"\0"
    assert parent.cpu.eip == 0x1000 and all(c.cpu.eip != 0x1000 for c in clones)


def test_clone_refuses_what_it_cannot_copy():
    class Device:
        def read(self, port, size):
            return 0

        def write(self, port, size, value):
            pass
    m = Machine.flat32(memory_size=1 << 20)
    m.port_handlers[0x300] = Device()
    with pytest.raises(CloneError, match="devices written in Python \\(Device\\)"):
        m.clone()
    del m.port_handlers[0x300]
    assert m.clone().memory_size == 1 << 20
    with pytest.raises(ValueError, match="count"):
        m.clone(count=-1)
