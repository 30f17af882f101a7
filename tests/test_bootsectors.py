"""The boot-sector guests (firmware/bootsectors) print the same screen under
visor86 and under qemu-system-i386 with its own SeaBIOS.

Each guest's <name>.expected is the screen QEMU showed (recorded with
tests/bootsector_qemu.py); CI installs QEMU and checks the recording is still
what QEMU shows, and visor86 must show exactly that.  The E820 guest is the
exception the BIOSes are allowed: SeaBIOS reserves ACPI space at the top of
RAM and a 256 KiB ROM, visor86 a 64 KiB one; the entries every PC has must
agree."""
import pathlib
import subprocess

import pytest

from emu import Machine
from tests.bootsector_qemu import qemu_screen
from tests.peers import needs, require

ROOT = pathlib.Path(__file__).resolve().parents[1]
GUESTS_DIR = ROOT / "firmware" / "bootsectors"
GUESTS = ["hello", "lba", "chs", "keys", "timer", "pmode", "e820"]
TYPED = "hello\n"
# set-1 make and break codes for "hello" + Enter, as the 8042 delivers them
HELLO_SCANCODES = bytes(b for code in (0x23, 0x12, 0x26, 0x26, 0x18, 0x1C) for b in (code, code | 0x80))


def expected(name):
    return (GUESTS_DIR / f"{name}.expected").read_text().splitlines()


def visor86_screen(name, keys=None, serial=None):
    m = Machine.pc(GUESTS_DIR / f"{name}.img")
    for _ in range(100):
        m.run(max_instructions=500_000)
        rows = m.screen.text().splitlines()
        if "DONE" in rows:
            return rows
        if keys is not None and any(r.startswith("type a word") for r in rows):
            m.board.push_scancodes(keys)
            keys = None
        if serial is not None and any(r.startswith("type a word") for r in rows):
            m.com1.send(serial)
            serial = None
    raise AssertionError("the guest never printed DONE:\n" + m.screen.text())


def comparable(name, rows):
    """The rows two PC BIOSes must agree on (all of them but for E820)."""
    if name != "e820":
        return rows
    entries = [r for r in rows if len(r.split()) == 3]
    above_1m = [r.split()[2] for r in entries if r.startswith("0000000000100000")]
    return entries[:3] + [f"1 MiB: {above_1m}"] + [r for r in rows if len(r.split()) != 3]


@pytest.mark.parametrize("name", GUESTS)
def test_visor86_shows_what_qemu_showed(name):
    rows = visor86_screen(name, keys=HELLO_SCANCODES if name == "keys" else None)
    assert comparable(name, rows) == comparable(name, expected(name))


def test_keys_typed_on_the_serial_line_work_as_keyboard_keys():
    assert visor86_screen("keys", serial=b"hello\n") == expected("keys")


@needs("qemu-system-i386")
@pytest.mark.parametrize("name", GUESTS)
def test_qemu_with_seabios_still_shows_the_recording(name):
    require("qemu-system-i386")
    image = GUESTS_DIR / f"{name}.img"
    before = image.read_bytes()
    rows = qemu_screen(str(image), keys=TYPED if name == "keys" else "", prompt="type a word")
    assert rows == expected(name)
    assert image.read_bytes() == before, "QEMU must run on a copy of the image"


def test_images_are_reproducible_from_source(tmp_path):
    require("nasm", "make")
    subprocess.run(["make", "-s", "-C", str(GUESTS_DIR), f"O={tmp_path}"], check=True)
    for name in GUESTS:
        assert (tmp_path / f"{name}.img").read_bytes() == (GUESTS_DIR / f"{name}.img").read_bytes(), \
            f"firmware/bootsectors/{name}.img is stale: run make -C firmware/bootsectors"
