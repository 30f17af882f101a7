"""Whole programs through the API: the real-mode demo guest and a
protected-mode guest that walks the privilege rings (sources and images in
firmware/)."""
import io
import pathlib

from emu import Machine
from emu.cli import main as cli_main

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOT = 0x7C00


class Console:
    def __init__(self):
        self.out = bytearray()

    def write(self, port, size, value):
        self.out += value.to_bytes(size, "little")

    def read(self, port, size):
        return 0xFF


def boot(image, budget=1_000_000):
    m = Machine(memory_size=1 << 20)
    m.memory.write(BOOT, (ROOT / image).read_bytes())
    m.cpu.cs, m.cpu.ip = 0, BOOT
    console = Console()
    m.port_handlers[0xE9] = console
    e = m.run(max_instructions=budget)
    return m, e, console.out.decode("latin-1")


def test_real_mode_demo_guest():
    """Real mode: segment loads, an IVT service called with INT and left with
    IRET, REP STOSB, MUL/DIV, CALL/RET, LOOP, port output, HLT."""
    m, e, out = boot("firmware/demo/hello.bin")
    assert e.kind == "halt"
    assert "primes below 100: 2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71 73 79 83 89 97" in out
    assert out.rstrip().endswith("bye.")
    assert m.cpu.cr0 & 1 == 0


def test_protected_mode_guest_walks_the_rings():
    """GDT, far jump into 32-bit code, LTR, call gates (same level and into
    ring 0 with a parameter copied), IRET to ring 3, a system call through a
    DPL-3 trap gate with the TSS stack switch, #GP from HLT at ring 3 handled
    and returned from, and a final HLT at ring 0 (SDM Vol. 3, 5.8, 6.12)."""
    m, e, out = boot("firmware/guests/pmode.bin")
    assert out == "PM gate sys gate3 ok #GP done"
    assert e.kind == "halt"
    assert m.cpu.cpl == 0 and m.cpu.cs == 0x08 and m.cpu.cr0 & 1
    assert m.cpu.tr == 0x28
    # the TSS descriptor was marked busy by LTR (type 0xB)
    gdt_base, _ = m.cpu.gdtr
    assert (m.memory.read_u8(gdt_base + 0x28 + 5) & 0xF) == 0xB


def test_cli_run_refuses_what_is_not_an_image(tmp_path):
    missing = tmp_path / "nothing.img"
    assert cli_main(["run", str(missing)]) == 2
    empty = tmp_path / "empty.img"
    empty.write_bytes(b"")
    assert cli_main(["run", str(empty)]) == 2
