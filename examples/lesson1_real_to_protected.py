"""Lesson 1: from real mode to protected mode and back.

The boot sector firmware/bootsectors/pmode.asm loads a GDT, sets CR0.PE,
far-jumps into a 16-bit protected-mode code segment, writes above 1 MiB
through a flat 32-bit data segment, clears PE and far-jumps back.  We run
the BIOS to the boot sector, then trace it and print the instructions
that change the mode, with CR0 and the hidden part of CS and DS: in
protected mode a segment register is a selector, and its base and limit
come from the GDT.

    python examples/lesson1_real_to_protected.py
"""
import pathlib

from emu import Machine
from emu.trace import Tracer

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    m = Machine.pc(ROOT / "firmware" / "bootsectors" / "pmode.img")
    m.add_breakpoint(0x7C00)                        # the boot sector's first instruction
    m.run(max_instructions=1_000_000)
    m.remove_breakpoint(0x7C00)
    print(f"at the boot sector: CR0 = {m.cpu.cr0:#x}, CS = {m.cpu.segment('cs')}")
    # the records come one step at a time, so the machine is just after each instruction
    for r in Tracer(m).records(max_instructions=50_000, start=0x7C00, end=0x7E00):
        if r.kind != "insn":
            continue
        if r.text.startswith(("lgdt", "ljmp")) or "cr0" in r.changes:
            print(r)
        if r.text.startswith("lgdt"):
            base, limit = m.cpu.gdtr
            print(f"           GDTR: base {base:#x}, limit {limit:#x}: the table the selectors index")
        if "cr0" in r.changes:
            pe = m.cpu.cr0 & 1
            print(f"           CR0.PE = {pe}: {'protected' if pe else 'real'} mode from the next far jump on")
        if r.text.startswith("ljmp"):
            print(f"           CS is now {m.cpu.segment('cs')}")
        if r.text.startswith("mov dword ptr [0x101000]"):
            print(r)
            print("           a write above 1 MiB through the flat 32-bit DS")
        if r.text == "hlt":
            break
    print(f"the value at 1 MiB + 4 KiB, written from protected mode: {m.memory.read_u32(0x101000):#x}")
    print(f"at the end: CR0 = {m.cpu.cr0:#x}, CS = {m.cpu.segment('cs')}")
    print("the screen:")
    print(m.screen.text())


if __name__ == "__main__":
    main()
