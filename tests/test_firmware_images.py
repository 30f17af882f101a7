"""Every committed image is the output of its source (README: Firmware and
guest images).  Rebuilt with nasm when it is installed (.ci/run installs it).

A folder with a Makefile is built with `make O=<tmp>` and every file the
build makes must equal the committed one; a lone .asm is assembled with
`nasm -f bin` and compared with the .bin or .img beside it.  The multiboot
kernels (firmware/kernels, linked with ld) are checked by
tests/test_kernels_qemu.py."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
MAKE_DIRS = sorted(p.parent for p in FIRMWARE.rglob("Makefile") if p.parent.name != "kernels")
SOURCES = sorted(p for p in FIRMWARE.rglob("*.asm")
                 if not (p.parent / "Makefile").exists())


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run .ci/run or `apt-get install {name}` to check the images")
    return path


@pytest.mark.parametrize("folder", MAKE_DIRS, ids=[str(d.relative_to(ROOT)) for d in MAKE_DIRS])
def test_make_rebuilds_the_committed_images(folder, tmp_path):
    tool("nasm")
    subprocess.run([tool("make"), "-s", "-C", str(folder), f"O={tmp_path}"], check=True)
    built = sorted(tmp_path.iterdir())
    assert built, f"make -C {folder.relative_to(ROOT)} built nothing"
    for out in built:
        committed = folder / out.name
        assert committed.is_file(), f"{committed.relative_to(ROOT)} is not committed beside its source"
        assert out.read_bytes() == committed.read_bytes(), \
            f"{committed.relative_to(ROOT)} is stale: run make -C {folder.relative_to(ROOT)}"


@pytest.mark.parametrize("source", SOURCES, ids=[str(s.relative_to(ROOT)) for s in SOURCES])
def test_committed_image_matches_its_source(source, tmp_path):
    images = [source.with_suffix(ext) for ext in (".bin", ".img") if source.with_suffix(ext).is_file()]
    assert images, f"{source.relative_to(ROOT)}: no .bin or .img image is committed beside it"
    image = images[0]
    out = tmp_path / image.name
    subprocess.run([tool("nasm"), "-f", "bin", "-o", str(out), str(source)], check=True, cwd=source.parent)
    assert out.read_bytes() == image.read_bytes(), f"{image.relative_to(ROOT)} is stale: rebuild it"
