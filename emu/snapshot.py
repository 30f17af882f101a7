"""Snapshots in files: ``m.save(path)`` and ``Machine.load(path)``.

The format (version 1), little-endian:

    magic    8 bytes  b"VISOR86S"
    version  u32      1
    length   u32      bytes of the JSON header that follows
    header   JSON     memory size, slot counts of this build, board settings,
                      pending serial bytes, the list of saved pages
    cpu      int64[cpu_slots]
    dev      int64[dev_slots]
    pages    4096 bytes for each page listed in the header (pages that are
             all zero are not stored: they come back as zero)
    digest   32 bytes SHA-256 of everything before it

Loading reads and checks the whole file before it builds anything, so a
corrupt, truncated or foreign file is refused with a message and no guest
is half restored.  Devices written in Python (port handlers, MMIO devices)
and attached disk images are not part of a snapshot.
"""
import hashlib
import json
import os
import struct

import numpy as np

MAGIC = b"VISOR86S"
VERSION = 1
PAGE = 4096
DIGEST = 32


class SnapshotError(ValueError):
    """A snapshot file that cannot be loaded; the message says why."""


def save(machine, path):
    """Write ``machine`` to ``path`` (atomically: a temporary file renamed)."""
    if machine.disk_path is not None:
        raise SnapshotError(f"{path}: this machine has a disk image attached ({machine.disk_path}); "
                            f"snapshots to files do not hold disk contents yet")
    if machine.floppy is not None:
        raise SnapshotError(f"{path}: this machine has a floppy image attached "
                            f"({machine.floppy.paths.get(0)}); snapshots to files do not hold disk "
                            f"contents yet")
    machine.board.drain()
    s = machine._state
    mem = s.mem
    pages = mem.reshape(-1, PAGE)
    used = np.flatnonzero(pages.any(axis=1))
    board = machine.board
    header = {
        "memory_size": int(len(mem)),
        "cpu_slots": int(len(s.cpu)),
        "dev_slots": int(len(s.dev)),
        "ns_per_instruction": board.ns_per_instruction,
        "rtc_epoch": board.rtc_epoch,
        "clock": "host" if board.host_clock else "virtual",
        "deliver_exceptions": machine.deliver_exceptions,
        "serial_pending": {u.name: [bytes(u._received).hex(), bytes(u._waiting_input).hex()]
                           for u in (board.com1, board.com2)},
        "firmware": machine.firmware is not None,
        "pages": [int(p) for p in used],
    }
    blob = json.dumps(header, sort_keys=True).encode()
    from emu.blocks import cpu_for_snapshot
    cpu = cpu_for_snapshot(s.cpu)
    h = hashlib.sha256()
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as f:
        for part in (MAGIC, struct.pack("<II", VERSION, len(blob)), blob, cpu.tobytes(),
                     s.dev.tobytes(), pages[used].tobytes()):
            h.update(part)
            f.write(part)
        f.write(h.digest())
    os.replace(tmp, path)
    return len(used)


def read(path):
    """Read and check a snapshot file: (header, cpu, dev, pages) or SnapshotError."""
    p = os.fspath(path)
    try:
        data = open(p, "rb").read()
    except OSError as e:
        raise SnapshotError(f"{p}: cannot read the snapshot ({e.strerror})")
    if len(data) < len(MAGIC) + 8 + DIGEST or not data.startswith(MAGIC):
        raise SnapshotError(f"{p}: not a visor86 snapshot (expected the magic {MAGIC!r} at the start)")
    version, hlen = struct.unpack_from("<II", data, len(MAGIC))
    if version != VERSION:
        raise SnapshotError(f"{p}: snapshot format version {version}; this visor86 reads version {VERSION}")
    if hashlib.sha256(data[:-DIGEST]).digest() != data[-DIGEST:]:
        raise SnapshotError(f"{p}: the checksum does not match: the file is truncated or corrupt")
    at = len(MAGIC) + 8
    try:
        header = json.loads(data[at:at + hlen])
    except ValueError:
        raise SnapshotError(f"{p}: the header is not valid JSON")
    at += hlen
    _check_header(p, header)
    from emu.core.layout import CPU_SLOTS
    from devices.chips.layout import DEV_SLOTS
    if header.get("cpu_slots") != CPU_SLOTS or header.get("dev_slots") != DEV_SLOTS:
        raise SnapshotError(f"{p}: made by a visor86 with another state layout "
                            f"({header.get('cpu_slots')} CPU / {header.get('dev_slots')} device slots; "
                            f"this one has {CPU_SLOTS} / {DEV_SLOTS})")
    n_pages = len(header["pages"])
    need = at + 8 * CPU_SLOTS + 8 * DEV_SLOTS + PAGE * n_pages + DIGEST
    if need != len(data):
        raise SnapshotError(f"{p}: {len(data)} bytes, but its header describes {need}")
    cpu = np.frombuffer(data, np.int64, CPU_SLOTS, at).copy()
    at += 8 * CPU_SLOTS
    dev = np.frombuffer(data, np.int64, DEV_SLOTS, at).copy()
    at += 8 * DEV_SLOTS
    pages = np.frombuffer(data, np.uint8, PAGE * n_pages, at).reshape(n_pages, PAGE)
    limit = header["memory_size"] // PAGE
    if any(not 0 <= q < limit for q in header["pages"]):
        raise SnapshotError(f"{p}: a saved page lies outside the snapshot's memory")
    return header, cpu, dev, pages


def _check_header(p, header):
    """Every field a loader uses, with its type: a file whose checksum is
    right but whose header is not (another tool, a hand edit) is refused
    here, before anything is built."""
    def bad(what):
        raise SnapshotError(f"{p}: the header's {what}")
    if not isinstance(header, dict):
        bad("top level is not an object")
    ints = ("memory_size", "cpu_slots", "dev_slots", "ns_per_instruction", "rtc_epoch")
    for key in ints:
        if isinstance(header.get(key), bool) or not isinstance(header.get(key), int):
            bad(f"{key!r} is missing or not an integer")
    from emu.machine import _check_memory_size
    try:
        _check_memory_size(header["memory_size"])
    except ValueError as e:
        bad(f"memory size is unusable: {e}")
    if header["ns_per_instruction"] < 1:
        bad("'ns_per_instruction' is not positive")
    if header.get("clock") not in ("virtual", "host"):
        bad(f"clock {header.get('clock')!r} is neither 'virtual' nor 'host'")
    for key in ("deliver_exceptions", "firmware"):
        if not isinstance(header.get(key), bool):
            bad(f"{key!r} is missing or not true/false")
    pages = header.get("pages")
    if not isinstance(pages, list) or any(isinstance(q, bool) or not isinstance(q, int) for q in pages):
        bad("page list is missing or holds something other than page numbers")
    if len(set(pages)) != len(pages):
        bad("page list names a page twice")
    serial = header.get("serial_pending")
    try:
        for name in ("com1", "com2"):
            received, waiting = serial[name]
            bytes.fromhex(received)
            bytes.fromhex(waiting)
    except (TypeError, KeyError, ValueError):
        bad("pending serial bytes are not two hex strings for each of com1 and com2")


def load(path, machine_class):
    """A new Machine in the state saved in ``path``."""
    header, cpu, dev, pages = read(path)
    m = machine_class(header["memory_size"], deliver_exceptions=header["deliver_exceptions"],
                      ns_per_instruction=header["ns_per_instruction"], rtc_epoch=header["rtc_epoch"],
                      clock=header["clock"])
    s = m._state
    s.cpu[:] = cpu
    s.dev[:] = dev
    mem = s.mem.reshape(-1, PAGE)
    if len(header["pages"]):
        mem[np.array(header["pages"], dtype=np.int64)] = pages
    s.pm[:] = 0
    m.board._write_mmio_table()
    for u in (m.board.com1, m.board.com2):
        received, waiting = header["serial_pending"][u.name]
        u._received = bytearray(bytes.fromhex(received))
        u._waiting_input = bytearray(bytes.fromhex(waiting))
    if header["firmware"]:
        m.firmware = bytes(s.mem[0xF0000:0x100000])
    m._invalidate_decoded()
    return m
