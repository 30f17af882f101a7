"""Snapshots in files (emu/snapshot.py): a restored machine continues
exactly as one that never stopped; bad files are refused whole."""
import pytest

from emu import Machine
from emu.core import layout as L
from emu.snapshot import SnapshotError
from tests.test_kernels_qemu import KERNELS


def boot_timer_kernel():
    return Machine.from_multiboot(KERNELS / "timer.elf", memory_size=8 << 20)


def test_restored_machine_continues_identically(tmp_path):
    """Stop the timer kernel half way, save, load into a new Machine: it
    prints the same rest and ends in the same state as the original."""
    a = boot_timer_kernel()
    a.run(max_instructions=300_000)
    before = a.com1.read()
    path = tmp_path / "timer.snap"
    pages = a.save(path)
    assert 0 < pages < (8 << 20) // 4096          # only the touched pages
    b = Machine.load(path)
    ea = a.run(max_instructions=5_000_000)
    eb = b.run(max_instructions=5_000_000)
    assert ea == eb and ea.kind == "debug_exit"
    rest = a.com1.read()
    assert b.com1.read() == rest
    assert before + rest == (KERNELS / "timer.expected").read_bytes()
    ca, cb = a.snapshot().cpu.tolist(), b.snapshot().cpu.tolist()
    for stat in (L.ICACHE_HITS, L.ICACHE_MISSES):     # cache statistics, not machine state
        ca[stat] = cb[stat] = 0
    assert ca == cb
    assert a.snapshot().dev.tolist() == b.snapshot().dev.tolist()
    assert a.memory.read(0, 8 << 20) == b.memory.read(0, 8 << 20)


def test_bad_snapshot_files_are_refused(tmp_path):
    m = boot_timer_kernel()
    m.run(max_instructions=1000)
    good = tmp_path / "good.snap"
    m.save(good)
    data = good.read_bytes()
    cases = {
        "truncated.snap": (data[:-100], "checksum"),
        "corrupt.snap": (data[:500] + bytes([data[500] ^ 1]) + data[501:], "checksum"),
        "foreign.snap": (data[:8] + b"\x07" + data[9:], "version 7"),
        "other.snap": (b"hello world" * 10, "not a visor86 snapshot"),
    }
    for name, (content, words) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(SnapshotError, match=words):
            Machine.load(p)
    with pytest.raises(SnapshotError, match="cannot read"):
        Machine.load(tmp_path / "missing.snap")


def test_fast_restore_copies_back_only_dirty_pages_and_forgets_modified_code():
    """restore() of the latest snapshot copies back the pages written since
    (the dirty log); a code page the guest rewrote runs its original bytes
    again, not a stale decoded copy."""
    m = Machine.flat32(memory_size=1 << 20)
    # at 0x1000: inc eax ; mov byte [0x1000], 0x48 (dec eax) ; mov [0x20000], eax ; hlt
    m.memory.write(0x1000, b"\x40" + b"\xc6\x05\x00\x10\x00\x00\x48" + b"\xa3\x00\x00\x02\x00" + b"\xf4")
    m.cpu.eip = 0x1000
    snap = m.snapshot()
    whole = m.memory.read(0, 1 << 20)
    for _ in range(3):
        assert m.run(max_instructions=10).kind == "halt"
        assert m.cpu.eax == 1 and m.memory.read(0x1000, 1) == b"\x48"
        m.restore(snap)
        assert m.memory.read(0, 1 << 20) == whole
        assert m.cpu.eax == 0 and m.cpu.eip == 0x1000
    # a snapshot that is not the latest: a whole copy, still exact
    m.run(max_instructions=10)
    other = m.snapshot()
    m.restore(snap)
    assert m.memory.read(0, 1 << 20) == whole
    m.restore(other)
    assert m.memory.read(0x1000, 1) == b"\x48" and m.cpu.eax == 1
