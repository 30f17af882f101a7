"""Fuzz a packet parser running inside a guest, resetting the guest to a
snapshot before every input.

The guest is firmware/fuzz/parser.bin (source: parser.asm, with one planted
bug: a NAME record's length is checked against 40 instead of the 16-byte
buffer, so a longer name overwrites the function pointer behind it).  For
each input the fuzzer restores the snapshot taken just before the parser
starts (``m.restore(snap)`` copies back only the pages the last run
dirtied), writes the input into guest memory and runs until the guest
writes the debug-exit port.  An input that makes the guest fault or hang
instead is a crash; the first one is minimised a little and written out.

    python examples/fuzz_parser.py --seed 1 --iterations 100000 --out crash.bin

Exit status: 0 when a crash was found, 1 when not.
"""
import argparse
import pathlib
import random
import struct
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emu import Machine  # noqa: E402

IMAGE = ROOT / "firmware" / "fuzz" / "parser.bin"
ENTRY = 0x100
INPUT_LEN = 0x8000
INPUT = 0x8004
MAX_INPUT = 4092
BUDGET = 20_000                         # instructions; a parse takes a few hundred
ACCEPT, REJECT = 1, 3                   # debug-exit statuses: (value << 1) | 1

SEEDS = [
    b"VZ\x01\x02" + b"\x01\x04" + struct.pack("<I", 5) + b"\x02\x05hello",
    b"VZ\x01\x03" + b"\x01\x04" + struct.pack("<I", 7) + b"\x01\x04" + struct.pack("<I", 9)
    + b"\x03\x04" + struct.pack("<I", 16),
    b"VZ\x01\x01" + b"\x02\x03abc",
]
INTERESTING = [0, 1, 2, 3, 4, 8, 15, 16, 17, 20, 32, 40, 41, 0x7F, 0x80, 0xFF]


class GuestParser:
    """The parser guest, ready at its first instruction; ``parse(data)``
    resets it to that snapshot and runs it on ``data``."""

    def __init__(self, memory_size=1 << 20):
        self.m = Machine.flat32(memory_size=memory_size)
        self.m.memory.write(0, IMAGE.read_bytes())
        self.m.cpu.eip = ENTRY
        self.snap = self.m.snapshot()
        self.runs = 0

    def parse(self, data):
        """("accept" | "reject" | "crash", the Exit)."""
        m = self.m
        m.restore(self.snap)
        data = bytes(data[:MAX_INPUT])
        m.memory.write(INPUT_LEN, struct.pack("<I", len(data)) + data)
        e = m.run(max_instructions=BUDGET)
        self.runs += 1
        if e.kind == "debug_exit" and e.status == ACCEPT:
            return "accept", e
        if e.kind == "debug_exit" and e.status == REJECT:
            return "reject", e
        return "crash", e


def mutate(rng, data):
    """A few random edits: bit flips, interesting bytes, random bytes,
    inserted, deleted, duplicated or appended chunks."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if not data:
            op = 5
        at = rng.randrange(len(data)) if data else 0
        if op == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[at] = rng.choice(INTERESTING)
        elif op == 2:
            data[at] = rng.randrange(256)
        elif op == 3:
            n = rng.randint(1, 8)
            del data[at:at + n]
        elif op == 4:
            n = rng.randint(1, 16)
            chunk = data[at:at + n]
            data[at:at] = chunk
        elif op == 5:
            data[at:at] = rng.randbytes(rng.randint(1, 32))
        else:
            data += rng.randbytes(rng.randint(1, 48))
    return bytes(data[:MAX_INPUT])


def minimise(parser, data):
    """Drop trailing bytes while the input still crashes."""
    while len(data) > 4 and parser.parse(data[:-1])[0] == "crash":
        data = data[:-1]
    return data


def fuzz(iterations, seed=0, parser=None):
    """Fuzz until a crash or ``iterations`` inputs: a dict with the crash
    (or None), the inputs tried and the resets per second."""
    parser = parser or GuestParser()
    rng = random.Random(seed)
    corpus = list(SEEDS)
    for s in SEEDS:
        verdict, e = parser.parse(s)
        if verdict != "accept":
            raise RuntimeError(f"the parser guest does not accept its seed {s!r}: {verdict} ({e})")
    seen = set()
    start = time.perf_counter()
    crash = None
    tried = 0
    for tried in range(1, iterations + 1):
        data = mutate(rng, rng.choice(corpus))
        verdict, e = parser.parse(data)
        if verdict == "crash":
            crash = (data, e)
            break
        if verdict == "accept" and data not in seen and len(corpus) < 256:
            seen.add(data)                # accepted inputs reach deeper: mutate them too
            corpus.append(data)
    seconds = time.perf_counter() - start
    result = {"tried": tried, "seconds": seconds, "resets_per_second": tried / seconds if seconds else 0.0,
              "crash": None, "exit": None}
    if crash is not None:
        result["crash"] = minimise(parser, crash[0])
        result["exit"] = parser.parse(result["crash"])[1]
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0, help="the campaign's seed (same seed, same inputs)")
    p.add_argument("--iterations", type=int, default=200_000, help="inputs to try at most")
    p.add_argument("--out", metavar="FILE", help="write the crashing input here")
    args = p.parse_args(argv)
    r = fuzz(args.iterations, args.seed)
    print(f"{r['tried']} inputs in {r['seconds']:.2f} s: {r['resets_per_second']:,.0f} resets/s")
    if r["crash"] is None:
        print("no crash found")
        return 1
    print(f"crash: {r['crash'].hex()} ({len(r['crash'])} bytes) -> {r['exit']}")
    if args.out:
        pathlib.Path(args.out).write_bytes(r["crash"])
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
