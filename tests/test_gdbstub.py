"""The GDB remote stub (emu/gdbstub.py): GNU gdb in batch mode drives
`emu run --gdb` on a test kernel; malformed packets get clear replies and
the session goes on."""
import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import threading

from emu import Machine
from emu.gdbstub import GdbStub, checksum
from tests.peers import needs, require

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNEL = ROOT / "firmware" / "kernels" / "timer.elf"


@needs("gdb")
def test_gdb_breaks_at_a_symbol_reads_registers_and_memory_and_steps():
    require("gdb")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    guest = subprocess.Popen([sys.executable, "-m", "emu.cli", "run", str(KERNEL), "--gdb", "tcp::0",
                              "--wait-gdb"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = guest.stderr.readline()                          # wait until the stub listens
    while b"gdb stub on port" not in line:
        assert line, guest.stderr.read()
        line = guest.stderr.readline()
    port = int(line.split(b"gdb stub on port ")[1].split(b":")[0])      # tcp::0 picked a free port
    try:
        gdb = subprocess.run(
            ["gdb", "-batch", "-nx", "-ex", f"target remote :{port}", "-ex", "break irq0_handler",
             "-ex", "continue", "-ex", "info registers eip", "-ex", "x/2xb irq0_handler",
             "-ex", "stepi", "-ex", "info registers eip esp", "-ex", "delete",
             "-ex", "rwatch *(int*)0x106890", "-ex", "continue", "-ex", "delete",      # the tick counter
             "-ex", "detach", str(KERNEL)],
            capture_output=True, text=True, timeout=120)
        out, err = guest.communicate(timeout=120)
    finally:
        guest.kill()
    text = gdb.stdout
    assert "Breakpoint 1, 0x00100e8d in irq0_handler ()" in text, text + gdb.stderr
    assert "eip            0x100e8d" in text
    elf = KERNEL.read_bytes()
    assert "0x100e8d <irq0_handler>:\t0x50\t0xb0" in text            # push eax; mov al, ...
    assert elf.find(bytes([0x50, 0xB0, 0x0B])) >= 0
    assert "eip            0x100e8e" in text                           # one instruction later
    assert text.count("Hardware read watchpoint 2: *(int*)0x106890") == 2, text   # set, then hit
    assert "Value = " in text
    assert "[Inferior 1 (Remote target) detached]" in text
    assert guest.returncode == 1                                       # the kernel ran on to its end
    assert out == (KERNEL.with_suffix(".expected")).read_bytes()


def packet(text):
    data = text.encode()
    return b"$" + data + b"#" + f"{checksum(data):02x}".encode()


def talk(sock, raw):
    sock.sendall(raw)
    data = b""
    while True:
        data += sock.recv(4096)
        if data.startswith(b"-"):
            return data
        if b"#" in data and len(data) >= data.index(b"#") + 3:
            return data


@contextlib.contextmanager
def stub_session(timeout):
    """The timer kernel behind a stub serving on a free port, and a socket to it."""
    m = Machine.from_multiboot(KERNEL, memory_size=8 << 20)
    stub = GdbStub(m, "tcp::0")
    t = threading.Thread(target=lambda: (stub.accept(), stub.serve()), daemon=True)
    t.start()
    sock = socket.create_connection(("127.0.0.1", stub.port), timeout=timeout)
    try:
        yield m, sock
    finally:
        sock.close()
        t.join(10)


def test_malformed_packets_get_clear_replies_and_the_session_goes_on():
    with stub_session(timeout=10) as (m, sock):
        assert talk(sock, b"$?#00") == b"-"                            # bad checksum: NAK
        assert talk(sock, packet("?")) == b"+" + packet("S05")
        assert talk(sock, packet("vBogus")) == b"+$#00"               # unknown: empty reply
        assert talk(sock, packet("mzz,4")) == b"+" + packet("E01")     # malformed address
        assert talk(sock, packet("m7fffff00,4")) == b"+" + packet("E14")   # outside RAM
        assert talk(sock, packet("M100000,2:41")) == b"+" + packet("E01")  # length mismatch
        reply = talk(sock, packet("m100010,2"))                        # _start, still fine
        assert reply == b"+" + packet(m.memory.read(0x100010, 2).hex())
        regs = talk(sock, packet("g"))
        eip = int.from_bytes(bytes.fromhex(regs[2:-3].decode()[64:72]), "little")
        assert eip == m.cpu.eip
        assert talk(sock, packet("s")).startswith(b"+$T05")
        assert talk(sock, packet("D")) == b"+" + packet("OK")


def test_write_read_and_access_watchpoints():
    """Z2/Z3/Z4: the core checks every data access, so continuing keeps its
    speed; the stop reply says watch/rwatch/awatch and the watched address."""
    with stub_session(timeout=60) as (m, sock):
        assert talk(sock, packet("Z2,106890,4")) == b"+" + packet("OK")     # the kernel's tick counter
        assert talk(sock, packet("c")) == b"+" + packet("T05watch:106890;")
        assert m.cpu.eip == 0x100025 and m.cpu.ecx > 0       # in the REP STOSD that clears the BSS
        assert talk(sock, packet("c")) == b"+" + packet("T05watch:106890;")
        assert m.memory.read_u32(0x106890) == 1               # the first tick
        assert talk(sock, packet("z2,106890,4")) == b"+" + packet("OK")
        assert talk(sock, packet("Z3,106890,4")) == b"+" + packet("OK")
        assert talk(sock, packet("c")) == b"+" + packet("T05rwatch:106890;")
        assert talk(sock, packet("z3,106890,4")) == b"+" + packet("OK")
        assert talk(sock, packet("Z4,106892,1")) == b"+" + packet("OK")
        assert talk(sock, packet("c")) == b"+" + packet("T05awatch:106892;")
        for i in range(8):                                                   # the machine has 8
            talk(sock, packet(f"Z2,{0x200000 + 16 * i:x},4"))
        assert talk(sock, packet("Z2,300000,4")) == b"+" + packet("E0e")
        assert talk(sock, packet("D")) == b"+" + packet("OK")
        assert m.watchpoints == []                                           # detach removes them
