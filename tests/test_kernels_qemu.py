"""The multiboot test kernels in firmware/kernels/ (see its README.md).

Under QEMU each kernel prints exactly the bytes of its `<name>.expected` on
COM1 and exits with the status kernels.json gives; the committed `.elf`
files are byte for byte what the Makefile builds from the sources.  The
QEMU tests skip when qemu-system-i386 is not installed, the rebuild test
when nasm (or ld, make) is not.
"""
import json
import pathlib
import subprocess

import pytest

from tests.peers import needs, require

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNELS = ROOT / "firmware" / "kernels"
MANIFEST = json.loads((KERNELS / "kernels.json").read_text())
QEMU = "qemu-system-i386"
TIMEOUT = 30  # seconds; every kernel finishes in well under one

needs_qemu = needs(QEMU)


def qemu_command(kernel_path, extra_args=()):
    """The QEMU command line that runs one kernel (as in firmware/kernels/README.md).

    COM1 goes to stdout and nothing else does: `-display none` rather than
    `-nographic`, which would also hand the serial port to SeaBIOS's console
    (its banner and escape sequences end up in the output).  The kernel ends
    through isa-debug-exit: QEMU's exit status is (value << 1) | 1.  TCG, not
    KVM, is the reference.  Run it with stdin from /dev/null: bytes typed
    into stdin would arrive at the UART.
    """
    return [
        QEMU,
        "-accel", "tcg",
        "-m", "64",
        "-kernel", str(kernel_path),
        "-display", "none",
        "-serial", "stdio",
        "-monitor", "none",
        "-no-reboot",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        *extra_args,
    ]


def run_kernel(name):
    """Run kernel `name` from the manifest: (stdout bytes, exit status)."""
    cmd = qemu_command(KERNELS / f"{name}.elf", MANIFEST[name].get("args", []))
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:  # subprocess.run has killed QEMU
        pytest.fail(f"{name}: QEMU still running after {TIMEOUT} s; COM1 so far: {e.stdout!r}")
    return proc.stdout, proc.returncode, proc.stderr


def test_manifest_lists_every_kernel():
    sources = sorted(p.stem for p in KERNELS.glob("*.asm"))
    assert sorted(MANIFEST) == sources
    for name in sources:
        for suffix in (".elf", ".expected"):
            assert (KERNELS / f"{name}{suffix}").is_file(), f"{name}{suffix} is not committed"
        assert isinstance(MANIFEST[name]["status"], int)


@needs_qemu
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_kernel_output_and_status_under_qemu(name):
    out, status, err = run_kernel(name)
    expected = (KERNELS / f"{name}.expected").read_bytes()
    assert out == expected, (
        f"{name}: COM1 output differs\n--- got ---\n{out.decode(errors='replace')}"
        f"--- expected ---\n{expected.decode(errors='replace')}--- QEMU stderr ---\n"
        f"{err.decode(errors='replace')}")
    assert status == MANIFEST[name]["status"], (
        f"{name}: QEMU exit status {status}, expected {MANIFEST[name]['status']}")


def test_committed_kernels_are_what_the_makefile_builds(tmp_path):
    require("nasm", "make", "ld")
    subprocess.run(["make", "-s", "-C", str(KERNELS), f"O={tmp_path}"], check=True)
    for name in sorted(MANIFEST):
        built = (tmp_path / f"{name}.elf").read_bytes()
        committed = (KERNELS / f"{name}.elf").read_bytes()
        assert built == committed, f"firmware/kernels/{name}.elf is stale: run make -C firmware/kernels"
