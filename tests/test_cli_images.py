"""`emu run IMAGE` says what it found and refuses what it cannot boot,
with a message that says what was expected and status 2; disks and
floppies boot through the BIOS and their files are left unchanged."""
import hashlib

import pytest

from emu.cli import main as cli_main, detect_image, UsageError
from tests.test_kernels_qemu import KERNELS
from tests.test_bios import boot_sector


def test_an_elf_image_boots_as_a_multiboot_kernel(capsysbinary):
    status = cli_main(["run", str(KERNELS / "timer.elf")])
    out = capsysbinary.readouterr()
    assert status == 1
    assert out.out == (KERNELS / "timer.expected").read_bytes()
    assert b"Multiboot kernel" in out.err


def test_detects_disks_floppies_and_boot_sectors(tmp_path):
    sector = bytes(510) + b"\x55\xaa"
    (tmp_path / "boot.img").write_bytes(sector)
    (tmp_path / "disk.img").write_bytes(sector + bytes(512 * 99))
    (tmp_path / "floppy.img").write_bytes(sector + bytes(1474560 - 512))
    assert detect_image(tmp_path / "boot.img")[0] == "disk"
    assert detect_image(tmp_path / "disk.img")[0] == "disk"
    assert detect_image(tmp_path / "floppy.img") == ("floppy", "a 1440 KiB floppy image")


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (bytes(1024), "not bootable"),
    (b"\x90" * 1000, "--flat"),
], ids=["empty", "no-signature", "odd-size"])
def test_refuses_what_it_cannot_boot(tmp_path, capsys, content, words):
    path = tmp_path / "thing.img"
    path.write_bytes(content)
    assert cli_main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and words in err


def test_missing_image(tmp_path, capsys):
    with pytest.raises(UsageError, match="no such file"):
        detect_image(tmp_path / "nothing.img")
    assert cli_main(["run", str(tmp_path / "nothing.img")]) == 2


# a boot sector that prints through INT 10h, overwrites sector 1 of its own
# disk with INT 13h, and leaves through the debug-exit port with status 5
WRITER = """
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov si, msg
next:
    lodsb
    test al, al
    jz write
    mov ah, 0Eh
    int 10h
    jmp next
write:
    mov ax, 0301h
    mov cx, 0002h
    xor dh, dh
    mov bx, 7C00h
    int 13h
    mov al, 2
    out 0F4h, al
msg: db 'hello from the disk', 13, 10, 0
"""


def test_boots_a_disk_image_and_leaves_the_file_unchanged(tmp_path, capsysbinary):
    disk = tmp_path / "disk.img"
    disk.write_bytes(boot_sector(WRITER) + bytes(512 * 63))
    before = hashlib.sha256(disk.read_bytes()).hexdigest()
    status = cli_main(["run", str(disk), "--screen", str(tmp_path / "screen.txt")])
    out = capsysbinary.readouterr()
    assert status == 5
    assert out.out == b"visor86 BIOS\r\nBooting from Hard Disk...\r\nhello from the disk\r\n"
    assert b"hard disk image (64 sectors, bootable)" in out.err
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == before      # the write went to the overlay
    assert (tmp_path / "screen.txt").read_text().splitlines()[2] == "hello from the disk"


def test_writable_lets_the_guest_change_the_disk(tmp_path, capsysbinary):
    disk = tmp_path / "disk.img"
    disk.write_bytes(boot_sector(WRITER) + bytes(512 * 63))
    assert cli_main(["run", "--hda", str(disk), "--writable"]) == 5
    data = disk.read_bytes()
    assert data[512:1024] == data[:512]                  # the guest copied its boot sector to sector 1


def test_boots_a_floppy_image(tmp_path, capsysbinary):
    floppy = tmp_path / "floppy.img"
    reader = WRITER.replace("mov ax, 0301h", "mov ax, 0201h").replace("mov bx, 7C00h", "mov bx, 8000h")
    floppy.write_bytes(boot_sector(reader).ljust(1474560, b"\0"))
    assert cli_main(["run", str(floppy)]) == 5
    out = capsysbinary.readouterr()
    assert out.out == b"visor86 BIOS\r\nBooting from Floppy...\r\nhello from the disk\r\n"


def test_a_disk_that_is_not_bootable_says_so_and_fails(tmp_path, capsysbinary):
    disk = tmp_path / "data.img"
    disk.write_bytes(b"just data".ljust(512 * 64, b"\0"))
    assert cli_main(["run", "--hda", str(disk)]) == 1
    out = capsysbinary.readouterr()
    assert b"not a bootable disk (no 55AA signature)" in out.out and b"No bootable device." in out.out
    assert b"nothing it could boot" in out.err


@pytest.mark.parametrize("option, size, words", [
    ("--hda", 1000, "not a whole number of 512-byte sectors"),
    ("--floppy", 512 * 100, "not the size of a PC floppy disk"),
])
def test_truncated_or_odd_sized_images_are_refused(tmp_path, capsys, option, size, words):
    path = tmp_path / "bad.img"
    path.write_bytes(bytes(size))
    assert cli_main(["run", option, str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and words in err


def test_missing_disk_option_file(tmp_path, capsys):
    assert cli_main(["run", "--hda", str(tmp_path / "none.img")]) == 2
    assert "no such disk image" in capsys.readouterr().err
