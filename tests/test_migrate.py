"""Live migration (emu/migrate.py, `emu migrate`): a guest moved mid-run to
another process continues exactly; its serial output loses and repeats no
byte; bad streams are refused without a half-built guest."""
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading

import pytest

from emu import Machine, migrate
from emu.core import layout as L
from tests.asm import assemble
from tests.test_kernels_qemu import KERNELS

ROOT = KERNELS.parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))

# writes 64 pages per round (dirtying them again and again), prints a letter per round on COM1
WRITER = """
bits 32
org 0x1000
    xor ebx, ebx                 ; round
round:
    mov edi, 0x100000
    mov ecx, 64
fill:
    mov [edi], ebx
    mov [edi + 2048], ecx
    add edi, 4096
    dec ecx
    jnz fill
    mov eax, ebx
    xor edx, edx
    mov esi, 26
    div esi
    lea eax, [edx + 'a']
    mov dx, 0x3f8
    out dx, al
    inc ebx
    cmp ebx, 3000
    jne round
    mov al, 0
    out 0xf4, al
    jmp $
"""


def writer_machine():
    m = Machine.flat32(memory_size=16 << 20)
    m.memory.write(0x1000, assemble(WRITER))
    m.cpu.eip = 0x1000
    return m


def state_of(m):
    cpu = m._state.cpu.copy()
    cpu[list(L.CACHE_STATISTICS)] = 0
    return cpu.tolist(), m._state.dev.tolist(), hashlib.sha256(m._state.mem).hexdigest()


def receive_in_thread():
    r = migrate.Receiver(0)
    got = {}

    def accept():
        try:
            got["machine"] = r.accept(timeout=60)[0]
        except Exception as e:          # noqa: BLE001 - handed to the test
            got["error"] = e
        finally:
            r.close()
    t = threading.Thread(target=accept)
    t.start()
    return r.port, t, got


def test_a_guest_writing_memory_migrates_with_precopy_rounds_and_continues_exactly():
    straight = writer_machine()
    e = straight.run(max_instructions=10_000_000)
    assert e.kind == "debug_exit"
    expected_out = straight.com1.read()

    port, t, got = receive_in_thread()
    src = writer_machine()
    src.run(max_instructions=200_000)
    report = migrate.send(src, "127.0.0.1", port, slice_instructions=20_000, threshold_pages=8, max_rounds=4)
    t.join()
    first = src.com1.read()
    dst = got["machine"]
    assert dst.run(max_instructions=10_000_000) == Exit_with(e, e.instructions - src.instructions_retired)
    assert first + dst.com1.read() == expected_out
    assert state_of(dst) == state_of(straight)
    assert report.rounds[0] >= 65 and len(report.rounds) >= 2       # the pre-copy ran with the guest
    assert report.instructions_during > 0 and report.downtime_s > 0
    assert "downtime" in str(report)


def Exit_with(e, instructions):
    from emu.machine import Exit
    return Exit(e.kind, instructions, status=e.status)


def test_emu_migrate_between_two_processes_keeps_the_serial_output_whole():
    receiver = subprocess.Popen([sys.executable, "-m", "emu.cli", "migrate", "--listen", "0", "--timeout", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        line = receiver.stderr.readline().decode()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        sender = subprocess.run([sys.executable, "-m", "emu.cli", "migrate", "--kernel", str(KERNELS / "timer.elf"),
                                 "--after", "250000", "--to", f"127.0.0.1:{port}"],
                                capture_output=True, env=ENV, timeout=300, stdin=subprocess.DEVNULL)
        out, err = receiver.communicate(timeout=300)
    finally:
        receiver.kill()
    assert sender.returncode == 0, sender.stderr.decode()
    assert b"downtime" in sender.stderr
    assert receiver.returncode == 1                      # the kernel's debug-exit status
    assert sender.stdout and out                         # each side printed part of it
    assert sender.stdout + out == (KERNELS / "timer.expected").read_bytes()


def test_bad_streams_are_refused_and_build_no_guest():
    for junk in (b"hello, world\n" * 4, b"H" + (1 << 40).to_bytes(8, "little"),
                 b"H" + (5).to_bytes(8, "little") + b"{bad}"):
        port, t, got = receive_in_thread()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            answer = s.recv(4096)
        t.join()
        assert "machine" not in got and isinstance(got["error"], migrate.MigrationError)
        assert answer.startswith(b"X")
    # a stream cut after the header: the machine is built but never handed out
    port, t, got = receive_in_thread()
    m = writer_machine()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"H" + _header(m))
        assert s.recv(1) == b"R"
    t.join()
    assert "machine" not in got and "closed the connection" in str(got["error"])


def _header(m):
    import json
    s = m._state
    blob = json.dumps({"protocol": migrate.PROTOCOL, "memory_size": m.memory_size, "cpu_slots": len(s.cpu),
                       "dev_slots": len(s.dev), "ns_per_instruction": 10, "rtc_epoch": 0, "clock": "virtual",
                       "deliver_exceptions": False, "firmware": False}).encode()
    return len(blob).to_bytes(8, "little") + blob


def test_sending_fails_with_a_clear_message():
    class Device:
        def read(self, port, size):
            return 0

        def write(self, port, size, value):
            pass
    m = writer_machine()
    m.port_handlers[0x300] = Device()
    with pytest.raises(migrate.MigrationError, match="devices written in Python \\(Device\\)"):
        migrate.send(m, "127.0.0.1", 9)
    del m.port_handlers[0x300]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(migrate.MigrationError, match=f"cannot connect to the receiver at 127.0.0.1:{free}"):
        migrate.send(m, "127.0.0.1", free)
