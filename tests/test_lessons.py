"""Each lesson in examples/ runs and says what it is meant to teach."""
import pathlib
import runpy

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

EXPECTED = {
    "lesson1_real_to_protected.py": [
        "lgdt [0x7de8]", "CR0.PE = 1: protected mode", "ljmp 8:0x7ca1",
        "CS is now SegmentState(selector=0x0008", "CR0.PE = 0: real mode",
        "written from protected mode: 0xcafef00d", "written in protected mode"],
    "lesson2_paging.py": [
        "paging is on after", "mov cr0, eax", "PDE    at 0x000108000", "-> physical 0x000100000",
        "-> #PF, error code 0x0: the PDE is not present"],
    "lesson3_interrupt_journey.py": [
        "port out 0x0043 <- 0x34      PIT mode/command", "port out 0x0021 <- 0xfe",
        "---- interrupt vector 0x20 -> 0008:00100e8d", "end of interrupt (EOI, 20h)", "iretd",
        "4. IRET returned to 0008:00100e3e"],
    "lesson4_system_call.py": [
        "now CPL = 3, CS = 0x001b", "int 0x80", "---- interrupt vector 0x80",
        "CPL = 0, on the TSS's ring-0 stack", "CS 0x001b (RPL 3)", "back in ring 3 at 001b:00102040"],
}


@pytest.mark.parametrize("lesson", sorted(EXPECTED))
def test_lesson_runs_and_shows_its_point(lesson, capsys):
    runpy.run_path(str(ROOT / "examples" / lesson), run_name="__main__")
    out = capsys.readouterr().out
    for words in EXPECTED[lesson]:
        assert words in out, f"{lesson}: {words!r} missing from:\n{out}"


def test_every_lesson_is_tested():
    lessons = {p.name for p in (ROOT / "examples").glob("lesson*.py")}
    assert lessons == set(EXPECTED)
