"""`emu run IMAGE` says what it found and refuses what it cannot boot,
with a message that says what was expected and status 2."""
import pytest

from emu.cli import main as cli_main, detect_image, UsageError
from tests.test_kernels_qemu import KERNELS


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
    assert detect_image(tmp_path / "floppy.img") == ("floppy", "a 1.44 MB floppy image")


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (bytes(1024), "not bootable"),
    (b"\x90" * 1000, "--flat"),
])
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
