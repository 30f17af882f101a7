"""Assemble test guests with nasm (installed by .ci/run)."""
import subprocess
import tempfile
import pathlib

from tests.peers import require


def assemble(source, fmt="bin"):
    require("nasm")
    with tempfile.TemporaryDirectory() as d:
        src = pathlib.Path(d) / "guest.asm"
        out = pathlib.Path(d) / "guest.bin"
        src.write_text(source)
        r = subprocess.run(["nasm", "-f", fmt, "-o", str(out), str(src)], capture_output=True, text=True)
        if r.returncode:
            raise AssertionError(f"nasm failed:\n{r.stderr}\n--- source ---\n{source}")
        return out.read_bytes()
