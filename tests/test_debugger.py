"""The console debugger (emu/debugger.py, `emu debug`): driven with
commands on the timer kernel; bad input gets a message and the session
goes on."""
import io
import os
import pathlib
import subprocess
import sys

from emu import Machine
from emu.debugger import Debugger, elf_symbols

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNEL = ROOT / "firmware" / "kernels" / "timer.elf"


def session(**options):
    m = Machine.from_multiboot(KERNEL, memory_size=8 << 20, **options)
    out = io.StringIO()
    return Debugger(m, elf_symbols(KERNEL), out, color=False), out, m


def run(dbg, out, *commands):
    out.seek(0)
    out.truncate()
    for c in commands:
        assert dbg.execute(c) is True
    return out.getvalue()


def test_symbols_come_from_the_elf():
    symbols = elf_symbols(KERNEL)
    assert symbols["_start"] == 0x100010 and symbols["irq0_handler"] == 0x100E8D
    assert elf_symbols(ROOT / "README.md") == {}


def test_break_at_a_symbol_continue_step_registers_and_memory():
    dbg, out, m = session()
    text = run(dbg, out, "b irq0_handler", "c")
    assert "breakpoint 0 at 0x00100e8d <irq0_handler>" in text
    assert m.cpu.eip == 0x100E8D
    text = run(dbg, out, "r")
    assert "eip=00100e8d" in text and "cs=0008" in text
    text = run(dbg, out, "s 2")
    assert "push eax" in text and "mov al, 0xb" in text and m.cpu.eip == 0x100E90
    text = run(dbg, out, "x irq0_handler 16")
    assert text.startswith("00100e8d  50 b0 0b e6 20")
    text = run(dbg, out, "u irq0_handler 2")
    assert "irq0_handler:" in text and "push eax" in text
    text = run(dbg, out, "c")
    assert "breakpoint 0 at 0x00100e8d <irq0_handler>" in text     # the next tick
    text = run(dbg, out, "bl", "d 0", "bl")
    assert "linear   0x00100e8d <irq0_handler>" in text and "no breakpoints or watchpoints" in text


def test_watchpoint_finish_and_tables():
    dbg, out, m = session()
    run(dbg, out, "b pic_remap", "c")
    assert m.cpu.eip == elf_symbols(KERNEL)["pic_remap"]
    text = run(dbg, out, "finish")
    assert "returned to" in text
    text = run(dbg, out, "d 0", "w 106890", "c")                      # the kernel's tick counter
    assert "watchpoint w0 on 0x00106890: 00000000 -> 01000000, written by 0x00100e" in text
    assert "<irq0_handler" in text
    text = run(dbg, out, "idt", "gdt", "pic", "pit", "uart", "pagewalk 100010", "screen", "tlb")
    assert "0008:00100e8d  irq0_handler" in text
    assert "code 32-bit" in text and "<Pic irr=" in text and "channel 0:" in text and "COM1 {" in text
    assert "paging off" in text


def test_read_access_and_port_watchpoints():
    """The core checks watches on every access (no single-stepping): the
    stop names the watch, the access and the instruction that made it."""
    dbg, out, m = session()
    text = run(dbg, out, "wp 20", "bl", "c")
    assert "w0  port     0x0020" in text
    assert "port watch w0: out port 0x0020 (1 bytes) by 0x" in text and "<pic_remap" in text
    text = run(dbg, out, "d w0", "rw 106890", "c")
    assert "deleted watchpoint w0" in text
    assert "watchpoint w0 on 0x00106890: read of 4 bytes at 0x00106890" in text
    ticks_read = m.instructions_retired
    text = run(dbg, out, "d w0", "aw 106890 1", "bl", "c")
    assert "w0  access   0x00106890" in text and "(1 bytes)" in text and "watchpoint w0 on 0x00106890:" in text
    assert m.instructions_retired > ticks_read
    text = run(dbg, out, "d w0", "bl")
    assert "no breakpoints or watchpoints" in text


def test_bad_input_gets_a_message_and_the_session_goes_on():
    dbg, out, m = session()
    text = run(dbg, out, "frobnicate", "b nowhere", "x 7fffffff 4", "d 3", "x", "s -1", "w 0 99999",
               "wp 123456", "b 'unclosed", "d w5", "wp 20 0", "rw 1000 0")
    for message in ("unknown command 'frobnicate'", "'nowhere' is not an address",
                    "outside guest memory", "there is no breakpoint 3", "wrong arguments for x",
                    "count must not be negative", "1 to 4096 bytes", "is not an I/O port",
                    "cannot read that command", "there is no watchpoint w5",
                    "at least one port"):
        assert message in text, message
    assert run(dbg, out, "s").strip().endswith("cli")                  # still working
    assert dbg.execute("q") is False


def test_emu_debug_reads_commands_from_a_pipe():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "emu.cli", "debug", str(KERNEL)],
                       input=b"b irq0_handler\nc\nr\nbogus\nq\n", capture_output=True, timeout=300, env=env)
    assert r.returncode == 0
    out = r.stdout.decode()
    assert "0x00100010 <_start>" in out and "breakpoint 0 at 0x00100e8d <irq0_handler>" in out
    assert "eip=00100e8d" in out and "unknown command 'bogus'" in out
