"""The multiboot test kernels of firmware/kernels under visor86, through
the CLI exactly as a user runs them (`emu run --kernel K.elf`): the same
COM1 bytes and exit status as qemu-system-i386 (TCG), both live when QEMU
is installed (.ci/run installs it) and as committed in K.expected."""
import pytest

from emu.cli import main as cli_main
from tests.test_kernels_qemu import KERNELS, MANIFEST, needs_qemu, run_kernel


def run_visor86(name, capsysbinary, *extra):
    status = cli_main(["run", "--kernel", str(KERNELS / f"{name}.elf"), "--memory", "64M",
                       "--max-instructions", "50000000", *extra])
    return capsysbinary.readouterr().out, status


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_kernel_matches_its_expected_output(name, capsysbinary):
    out, status = run_visor86(name, capsysbinary)
    expected = (KERNELS / f"{name}.expected").read_bytes()
    assert out.decode(errors="replace") == expected.decode(errors="replace")
    assert status == MANIFEST[name]["status"]


@needs_qemu
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_kernel_output_and_status_equal_qemu(name, capsysbinary):
    qemu_out, qemu_status, _ = run_kernel(name)
    out, status = run_visor86(name, capsysbinary)
    assert (out, status) == (qemu_out, qemu_status)


def test_serial_to_a_file(tmp_path, capsysbinary):
    path = tmp_path / "com1.txt"
    out, status = run_visor86("timer", capsysbinary, "--serial", f"file:{path}")
    assert out == b""
    assert path.read_bytes() == (KERNELS / "timer.expected").read_bytes()
    assert status == 1


def test_runs_out_of_instructions_with_status_124(capsysbinary):
    status = cli_main(["run", "--kernel", str(KERNELS / "timer.elf"), "--max-instructions", "1000"])
    assert status == 124


def corrupt(tmp_path, name, edit):
    data = bytearray((KERNELS / "timer.elf").read_bytes())
    edit(data)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def elf_program_header(data, i):
    import struct
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, = struct.unpack_from("<H", data, 42)
    return phoff + i * phentsize


@pytest.mark.parametrize("name, edit, words", [
    ("truncated.elf", lambda d: d.__delitem__(slice(4200, None)), ["truncated"]),
    ("x86_64.elf", lambda d: d.__setitem__(slice(18, 20), (62).to_bytes(2, "little")), ["x86-64"]),
    ("nomagic.elf", lambda d: d.__setitem__(slice(d.find(b"\x02\xb0\xad\x1b"), d.find(b"\x02\xb0\xad\x1b") + 4),
                                            b"\0\0\0\0"), ["multiboot header"]),
    ("far.elf", lambda d: d.__setitem__(slice(elf_program_header(d, 0) + 12, elf_program_header(d, 0) + 16),
                                        (0x7FF00000).to_bytes(4, "little")), ["RAM"]),
])
def test_malformed_kernels_are_refused_with_status_2(tmp_path, capsys, name, edit, words):
    """A truncated kernel, one for another machine, one without a multiboot
    header, one whose segment lies outside RAM: exit status 2 and a message
    that names the file and the problem; the guest never runs."""
    path = corrupt(tmp_path, name, edit)
    status = cli_main(["run", "--kernel", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    assert str(path) in err or path.name in err
    for w in words:
        assert w.lower() in err.lower(), err
    assert "[visor86] guest" not in err


def test_missing_kernel_file(tmp_path, capsys):
    assert cli_main(["run", "--kernel", str(tmp_path / "nope.elf")]) == 2
    assert "nope.elf" in capsys.readouterr().err


ECHO_GUEST = """
bits 16
org 0x7C00
    mov dx, 0x3FD
.wait:
    in al, dx
    test al, 1
    jz .wait
    mov dx, 0x3F8
    in al, dx
    cmp al, 10
    je .done
    sub al, 0x20          ; upper-case the echo
    out dx, al
    mov dx, 0x3FD
    jmp .wait
.done:
    mov dx, 0xF4
    mov eax, 3
    out dx, eax
"""


def test_serial_input_comes_from_stdin(tmp_path):
    """`emu run` feeds stdin to COM1: a guest that echoes upper-cased bytes
    until a newline, then exits with status (3 << 1) | 1."""
    import subprocess
    import sys
    from tests.asm import assemble
    image = tmp_path / "echo.bin"
    image.write_bytes(assemble(ECHO_GUEST))
    r = subprocess.run([sys.executable, "-m", "emu.cli", "run", "--flat", str(image)], input=b"hello\n",
                       capture_output=True, timeout=300)
    assert r.stdout == b"HELLO"
    assert r.returncode == 7


def test_serial_over_tcp(tmp_path):
    """--serial tcp:HOST:PORT connects to a listening peer: output is sent
    there, and what the peer sends is the guest's input."""
    import socket
    import subprocess
    import sys
    import threading
    from tests.asm import assemble
    image = tmp_path / "echo.bin"
    image.write_bytes(assemble(ECHO_GUEST))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    got = bytearray()

    def peer():
        conn, _ = server.accept()
        conn.sendall(b"tcp\n")
        conn.settimeout(120)
        while len(got) < 3:
            data = conn.recv(100)
            if not data:
                break
            got.extend(data)
        conn.close()

    t = threading.Thread(target=peer)
    t.start()
    port = server.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "emu.cli", "run", "--flat", str(image), "--serial",
                        f"tcp:127.0.0.1:{port}"], capture_output=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    t.join(timeout=10)
    server.close()
    assert bytes(got) == b"TCP"
    assert r.returncode == 7
