"""Reader for MOO files, the chunked binary format of the SingleStepTests
CPU test vectors (format description: repository dbalsom/moo, file
doc/moo_format_v1.md).  Written here from that description.

A file is a ``MOO `` header chunk followed by ``META`` and ``TEST`` chunks;
each chunk is a four-character tag, a little-endian u32 payload length and
the payload.  Unknown chunks are skipped by their length.
"""
import gzip
import json
import pathlib
import struct
from dataclasses import dataclass, field

REGISTER_ORDER = ("ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di", "ip",
                  "flags")


@dataclass
class MooTest:
    index: int
    name: str = ""
    code: bytes = b""
    initial_regs: dict = field(default_factory=dict)
    initial_ram: list = field(default_factory=list)     # [(address, byte)]
    final_regs: dict = field(default_factory=dict)      # only registers that changed
    final_ram: list = field(default_factory=list)
    exception: tuple | None = None                       # (vector, address of pushed FLAGS)
    hash: str = ""


@dataclass
class MooFile:
    path: str
    version: tuple
    cpu_name: str
    tests: list


class MooFormatError(ValueError):
    pass


def _chunks(data, start, end, path):
    at = start
    while at < end:
        if at + 8 > end:
            raise MooFormatError(f"{path}: truncated chunk header at byte {at} "
                                 f"(expected a 4-character tag and a 32-bit length)")
        tag = data[at:at + 4].decode("latin-1")
        (length,) = struct.unpack_from("<I", data, at + 4)
        payload = at + 8
        if payload + length > end:
            raise MooFormatError(f"{path}: chunk {tag!r} at byte {at} says {length} bytes, "
                                 f"but only {end - payload} remain: the file is truncated")
        yield tag, payload, length
        at = payload + length


def _regs(data, at, path):
    (mask,) = struct.unpack_from("<H", data, at)
    regs = {}
    pos = at + 2
    for bit, name in enumerate(REGISTER_ORDER):
        if mask & (1 << bit):
            (regs[name],) = struct.unpack_from("<H", data, pos)
            pos += 2
    return regs


def _ram(data, at):
    (count,) = struct.unpack_from("<I", data, at)
    return [struct.unpack_from("<IB", data, at + 4 + 5 * i) for i in range(count)]


def _state(data, start, length, path):
    regs, ram = {}, []
    for tag, at, n in _chunks(data, start, start + length, path):
        if tag == "REGS":
            regs = _regs(data, at, path)
        elif tag == "RAM ":
            ram = _ram(data, at)
    return regs, ram


def _test(data, start, length, path):
    (index,) = struct.unpack_from("<I", data, start)
    t = MooTest(index)
    for tag, at, n in _chunks(data, start + 4, start + length, path):
        if tag == "NAME":
            (k,) = struct.unpack_from("<I", data, at)
            t.name = data[at + 4:at + 4 + k].decode("latin-1")
        elif tag == "BYTS":
            (k,) = struct.unpack_from("<I", data, at)
            t.code = bytes(data[at + 4:at + 4 + k])
        elif tag == "INIT":
            t.initial_regs, t.initial_ram = _state(data, at, n, path)
        elif tag == "FINA":
            t.final_regs, t.final_ram = _state(data, at, n, path)
        elif tag == "EXCP":
            vector, flag_addr = struct.unpack_from("<BI", data, at)
            t.exception = (vector, flag_addr)
        elif tag == "HASH":
            t.hash = bytes(data[at:at + 20]).hex()
    return t


def parse_moo(data, path="<bytes>"):
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:4] != b"MOO ":
        raise MooFormatError(f"{path}: not a MOO file (expected the tag 'MOO ' at byte 0, "
                             f"found {bytes(data[:4])!r})")
    tests = []
    version, cpu, count = (0, 0), "", None
    for tag, at, n in _chunks(data, 0, len(data), path):
        if tag == "MOO ":
            major, minor = data[at], data[at + 1]
            (count,) = struct.unpack_from("<I", data, at + 4)
            version, cpu = (major, minor), data[at + 8:at + 12].decode("latin-1").strip()
        elif tag == "TEST":
            tests.append(_test(data, at, n, path))
    if count is not None and count != len(tests):
        raise MooFormatError(f"{path}: header announces {count} tests, the file holds {len(tests)}")
    return MooFile(str(path), version, cpu, tests)


def load_moo(path):
    """Parse a .MOO or .MOO.gz file."""
    p = pathlib.Path(path)
    try:
        raw = p.read_bytes()
        return parse_moo(raw, p)
    except (EOFError, gzip.BadGzipFile, struct.error) as e:
        raise MooFormatError(f"{p}: unreadable MOO data ({e})") from None


def load_metadata(directory):
    """{opcode file stem: FLAGS mask of defined flags} from metadata.json:
    keys like "01" or, for ModRM groups, "F6.6"."""
    meta = json.loads((pathlib.Path(directory) / "metadata.json").read_text())
    masks = {}
    for op, info in meta["opcodes"].items():
        if "reg" in info:
            for reg, sub in info["reg"].items():
                masks[f"{op}.{reg}"] = sub.get("flags-mask", 0xFFFF)
        masks[op] = info.get("flags-mask", 0xFFFF)
    return masks


def load_revoked(path):
    p = pathlib.Path(path)
    if not p.exists():
        return set()
    return {line.strip().lower() for line in p.read_text().splitlines()
            if line.strip() and not line.startswith("#")}
