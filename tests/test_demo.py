"""`emu demo` boots the demo guest (firmware/demo/demo86.asm) with the BIOS
and is driven through stdin, as a user at a terminal or a script would."""
import os
import pathlib
import subprocess
import sys

from emu import Machine

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO = ROOT / "firmware" / "demo" / "demo86.img"


def emu_demo(keys, *options):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "emu.cli", "demo", *options], input=keys,
                       capture_output=True, timeout=600, env=env, cwd=ROOT)
    return r.returncode, r.stdout.decode("latin-1"), r.stderr.decode("latin-1")


def test_emu_demo_shows_banner_and_prompt_and_answers_commands():
    status, out, err = emu_demo(b"help\nmem\nbogus\nhalt\n")
    assert status == 0, err
    lines = out.replace("\r", "").splitlines()
    assert lines[:5] == ["visor86 BIOS", "Booting from Hard Disk...", "visor86 demo guest",
                         "A tiny real-mode OS: BIOS screen and keys, a timer hook counting uptime.",
                         "Type help and press Enter."]
    assert "> help" in lines
    assert "  halt    stop the machine" in lines
    assert "> mem" in lines and "base memory: 639 KiB, extended memory: 15360 KiB" in lines
    assert "unknown command: bogus (type help)" in lines
    assert lines[-2:] == ["> halt", "halted."]


def test_emu_demo_reboots_through_the_keyboard_controller():
    # what was typed before the reset is gone with the UART's state, as on a
    # PC: the run ends on the instruction budget at the second prompt
    status, out, err = emu_demo(b"reboot\n", "--clock", "virtual", "--max-instructions", "3000000")
    assert status == 124, err
    assert out.count("visor86 demo guest") == 2          # booted twice
    assert "rebooting..." in out and "rebooting" in err
    assert out.replace("\r", "").endswith("Type help and press Enter.\n> ")


def test_demo_guest_counts_uptime_on_the_screen_and_edits_lines():
    m = Machine.pc(DEMO, rtc_epoch=1_700_000_000)
    uptimes = []
    for _ in range(2):
        m.run(max_instructions=3_000_000)                # idle at the prompt: the timer runs
        corner = m.screen.lines()[0][70:]
        assert corner.startswith("up ") and corner.endswith(" s")
        uptimes.append(int(corner[3:8]))
        ticks = m.memory.read_u32(0x46C)                 # the BIOS's count since the boot
        assert abs(uptimes[-1] - ticks * 10 // 182) <= 1
    assert 0 < uptimes[0] < uptimes[1]
    m.com1.send(b"tim\x7f\x7fime\nticks\n")              # DEL erases
    m.run(max_instructions=3_000_000)
    text = m.screen.text()
    assert "RTC: 2023-11-14 22:" in text
    ticks_line = [l for l in text.splitlines() if l.startswith("BIOS ticks: ")][0]
    bios, hook = ticks_line[len("BIOS ticks: "):].split(", timer hook calls: ")
    assert int(bios) > 0 and int(hook) > 0
