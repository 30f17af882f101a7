"""The benchmark workloads in benchmarks/workloads/ (see its README.md).

Every workload is a multiboot ELF built from C (or C with inline assembly)
by ``make -C benchmarks/workloads``.  The size parameter n reaches the guest
on the multiboot command line ("n=123"); the guest prints
``<name> n=<n> result=0x<hex>`` on COM1 and leaves through the debug-exit
port with value 0 (status 1).

Sizes: ``n`` is what visor86 runs in the harness; ``peer_n`` is what QEMU and
the host build run (they are 100-1000 times faster, so the same n would be
lost in their start-up), ``unicorn_n`` what Unicorn runs.  Every workload's
instruction count is a + b*n (n repetitions of a fixed kernel), so the
harness fits a and b from visor86's runs at ``smoke`` and ``n`` and uses
a + b*peer_n as the peers' work (exact for a workload that repeats the same
instructions; sort's data and timer's interrupts vary a little with n;
tests/test_benchmarks.py checks the exact case).  ``smoke`` is the size of the
smoke test, with the result every machine must print (from QEMU and the
host build, which agree).
"""
import pathlib
import re
from dataclasses import dataclass

DIR = pathlib.Path(__file__).resolve().parent / "workloads"


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str            # what it stresses
    n: int               # visor86's size in the harness
    peer_n: int          # QEMU's, Bochs's and the host build's
    unicorn_n: int       # Unicorn's (0: not run there, it needs devices)
    smoke: int           # the smoke test's size
    smoke_result: int    # the result at the smoke size
    native: bool         # built for the host too (no ports, paging or code writes)
    note: str = ""

    @property
    def elf(self):
        return DIR / f"{self.name}.elf"

    @property
    def source(self):
        return DIR / f"{self.name}.c"


WORKLOADS = [
    Workload("crc32", "integer: table-driven CRC-32 over 4 KiB", 600, 72000, 6000, 2, 0x5a01c0b2, True),
    Workload("sieve", "integer: sieve of Eratosthenes to 65536", 25, 3000, 250, 1, 0x0001197f, True),
    Workload("sort", "integer: quicksort of 2048 words", 80, 9600, 800, 1, 0x38d8e18c, True),
    Workload("dhry", "integer: Dhrystone-like mix (records, strings, switch)", 30000, 3600000, 300000, 50,
             0x000005d0, True),
    Workload("memory", "memory: REP STOSD/MOVSD/MOVSB and a loop copy, 64 KiB", 250, 10000, 2500, 3,
             0x09090c12, True),
    Workload("recurse", "calls: fib(20) and Ackermann A(2, m)", 120, 14400, 1200, 1, 0x00001a70, True),
    Workload("paging", "paging: 8192 pages touched per pass, CR3 reload", 150, 1500, 1500, 1,
             0x01fff000, False),
    Workload("serial", "I/O: 64-byte lines to COM1, polling LSR", 10000, 20000, 0, 20, 0x5b77e54a, False,
             "QEMU's COM1 goes to a file"),
    Workload("timer", "interrupts: PIT at 10 kHz through the 8259A during a computation", 800, 96000, 0, 2,
             0x0fef569d, False, "ticks depend on each machine's clock"),
    Workload("smc", "self-modifying code: patch and call, 1024 per n", 1500, 150, 300, 2, 0x460db559, False),
]

EMPTY = DIR / "empty.elf"
RESULT = re.compile(rb"(\w+) n=(\d+) result=0x([0-9a-f]{8})\n")


def by_name(names=None):
    if not names:
        return list(WORKLOADS)
    known = {w.name: w for w in WORKLOADS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]


def parse_result(output, name, n):
    """The result the guest printed on COM1 for (name, n), or None."""
    for m in RESULT.finditer(output):
        if m.group(1).decode() == name and int(m.group(2)) == n:
            return int(m.group(3), 16)
    return None
