"""Overcommitment (emu/overcommit.py): many 64 MiB guests in one process
cost the host about what they touch; identical pages across guests are
counted exactly; idle guests are cheap."""
import gc
import struct

from emu import Machine, guestmem
from emu.overcommit import enable_merging, host_memory, identical_pages
from tests.test_clone import page_writer

PAGE = 4096
MiB = 1 << 20


def touching_guest(pages, salt=None):
    """A 64 MiB guest that writes ``pages`` pages (a dword in each) and halts;
    with ``salt`` it also writes one page of its own."""
    m = Machine.flat32(memory_size=64 * MiB)
    code = page_writer(0x100000, pages)
    if salt is not None:
        code = code[:-1] + b"\xb8" + struct.pack("<I", salt) + b"\xa3" + struct.pack("<I", 0x3000000) + b"\xf4"
    m.memory.write(0x1000, code)
    m.cpu.eip = 0x1000
    return m


def warm_up():
    """Load the compiled core before measuring (a one-time cost of the process)."""
    m = touching_guest(1)
    m.run(max_instructions=100)
    gc.collect()


def test_fifty_64_mib_guests_cost_what_they_touch():
    warm_up()
    before = guestmem.process_memory().get("anonymous")
    guests = [touching_guest(256, salt=0x1000 + i) for i in range(50)]   # 50 x 64 MiB configured
    for m in guests:
        assert m.run(max_instructions=10_000).kind == "halt"
    for i, m in enumerate(guests):
        assert m.memory.read(0x100000, 4) == struct.pack("<I", 256)
        assert m.memory.read(0x3000000, 4) == struct.pack("<I", 0x1000 + i)
        hm = host_memory(m)
        assert 257 <= hm.private <= 259 and hm.shared == 0         # 256 pages + its own + the code page
    after = guestmem.process_memory().get("anonymous")
    if before is not None:
        per_guest = (after - before) / 50
        assert MiB <= per_guest <= 2 * MiB, per_guest               # not 64 MiB each
    # the 256 pages each guest wrote with the loop are the same in every guest; the salted
    # page and the code page differ (the code holds the salt)
    sharing = identical_pages(guests)
    assert sharing.pages == sum(host_memory(m).private for m in guests)
    assert sharing.distinct == 256 + 50 + 50
    assert sharing.mergeable == sharing.pages - 356
    assert "merging identical pages would save" in str(sharing)
    accepted, ksm = enable_merging(guests)
    assert ksm in ("running", "stopped", "unavailable")
    assert accepted in (0, 50)


def test_clones_are_counted_through_their_image_once():
    parent = touching_guest(16)
    parent.run(max_instructions=1000)
    clones = parent.clone(count=4)
    for c in clones[:2]:
        c.memory.write(0x2000000, b"same in two clones")
    sharing = identical_pages([parent] + clones)
    # the image's 17 pages once, two private pages with equal contents
    assert sharing.pages == 17 + 2 and sharing.mergeable == 1


def test_idle_guests_are_cheap():
    warm_up()
    before = guestmem.process_memory().get("anonymous")
    idle = [Machine.flat32(memory_size=64 * MiB) for _ in range(50)]
    after = guestmem.process_memory().get("anonymous")
    if before is not None:
        assert (after - before) / len(idle) < 1 * MiB          # RAM, icache, TLB: lazily backed
    for m in idle:
        hm = host_memory(m)
        assert hm.private == 0 and hm.shared == 0
        assert guestmem.resident_pages(m._state.ic)[0] == 0   # the 4 MiB icache untouched
