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
    for stat in L.CACHE_STATISTICS:     # cache statistics, not machine state
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


def rewrite_header(data, change):
    """The file with its JSON header changed by ``change`` and the checksum made right again."""
    import hashlib
    import json
    import struct
    version, hlen = struct.unpack_from("<II", data, 8)
    header = json.loads(data[16:16 + hlen])
    change(header)
    blob = json.dumps(header).encode()
    body = data[:8] + struct.pack("<II", version, len(blob)) + blob + data[16 + hlen:-32]
    return body + hashlib.sha256(body).digest()


def test_a_well_checksummed_file_with_a_bad_header_is_refused(tmp_path):
    """Another tool or a hand edit can write a right checksum over a wrong
    header: each field is checked before anything is built."""
    m = boot_timer_kernel()
    m.run(max_instructions=1000)
    good = tmp_path / "good.snap"
    m.save(good)
    data = good.read_bytes()
    cases = {
        "size": (lambda h: h.update(memory_size=12345), "memory size is unusable"),
        "huge": (lambda h: h.update(memory_size=1 << 40), "memory size is unusable"),
        "clock": (lambda h: h.update(clock="sundial"), "clock 'sundial'"),
        "nspi": (lambda h: h.update(ns_per_instruction=0), "not positive"),
        "pages": (lambda h: h.update(pages=["zero"]), "page list"),
        "twice": (lambda h: h.update(pages=h["pages"][:1] * 2 + h["pages"][2:]), "names a page twice"),
        "outside": (lambda h: h["pages"].__setitem__(0, 1 << 30), "outside the snapshot's memory"),
        "serial": (lambda h: h.update(serial_pending={"com1": "xx"}), "pending serial bytes"),
        "flags": (lambda h: h.pop("deliver_exceptions"), "'deliver_exceptions' is missing"),
        "notdict": (lambda h: h.clear() or h.update(memory_size=[]), "'memory_size' is missing"),
    }
    for name, (change, words) in cases.items():
        p = tmp_path / f"{name}.snap"
        p.write_bytes(rewrite_header(data, change))
        with pytest.raises(SnapshotError, match=words):
            Machine.load(p)


def test_restore_is_exact_at_any_point_of_an_interrupt_driven_kernel(tmp_path):
    """serial_irq runs its UART on interrupts (THRE and RDA with the FIFOs,
    loopback): saved at several points, each restored machine prints the
    same rest and ends in the same state as the straight run."""
    straight = Machine.from_multiboot(KERNELS / "serial_irq.elf", memory_size=8 << 20)
    end = straight.run(max_instructions=20_000_000)
    total = end.instructions
    expected = straight.com1.read()
    assert expected == (KERNELS / "serial_irq.expected").read_bytes()
    ref = straight.snapshot()
    for cut in (1, total // 7, total // 3, total // 2, total - 5):
        a = Machine.from_multiboot(KERNELS / "serial_irq.elf", memory_size=8 << 20)
        a.run(max_instructions=cut)
        before = a.com1.read()
        path = tmp_path / f"cut{cut}.snap"
        a.save(path)
        b = Machine.load(path)
        e = b.run(max_instructions=20_000_000)
        assert (e.kind, e.status, e.instructions) == (end.kind, end.status, total - cut)
        assert before + b.com1.read() == expected, cut
        got = b.snapshot()
        cpu, want = got.cpu.copy(), ref.cpu.copy()
        for stat in (L.ICACHE_HITS, L.ICACHE_MISSES):
            cpu[stat] = want[stat] = 0
        assert cpu.tolist() == want.tolist(), cut
        assert got.dev.tolist() == ref.dev.tolist(), cut
        assert (got.mem == ref.mem).all(), cut
