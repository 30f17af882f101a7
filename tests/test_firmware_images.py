"""Every committed image is the output of its source (README: Firmware and
guest images).  Rebuilt with nasm when it is installed (.ci/run installs it)."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# flat binaries; the multiboot kernels in firmware/kernels are ELF files built
# by their Makefile and checked by tests/test_kernels_qemu.py
SOURCES = sorted(p for p in (ROOT / "firmware").rglob("*.asm")
                 if "kernels" not in p.relative_to(ROOT).parts)


@pytest.mark.parametrize("source", SOURCES, ids=[str(s.relative_to(ROOT)) for s in SOURCES])
def test_committed_image_matches_its_source(source, tmp_path):
    images = [source.with_suffix(ext) for ext in (".bin", ".img") if source.with_suffix(ext).is_file()]
    assert images, f"{source.relative_to(ROOT)}: no .bin or .img image is committed beside it"
    image = images[0]
    nasm = shutil.which("nasm")
    if nasm is None:
        pytest.fail("nasm is not installed: run .ci/run or `apt-get install nasm` to check the images")
    out = tmp_path / image.name
    subprocess.run([nasm, "-f", "bin", "-o", str(out), str(source)], check=True, cwd=ROOT)
    assert out.read_bytes() == image.read_bytes(), f"{image.relative_to(ROOT)} is stale: rebuild it"
