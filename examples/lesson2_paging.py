"""Lesson 2: paging, step by step.

The test kernel firmware/kernels/paging.elf builds page tables and turns
paging on (CR0.PG).  We stop it once paging is on and ask the MMU, level by
level, how a few linear addresses translate: CR3 -> page directory entry
-> page table entry -> physical address, with the bits that decide, or
the #PF error code an access would raise.

    python examples/lesson2_paging.py
"""
import pathlib

from emu import Machine

ROOT = pathlib.Path(__file__).resolve().parents[1]
CR0_PG = 1 << 31


def main():
    m = Machine.from_multiboot(ROOT / "firmware" / "kernels" / "paging.elf", memory_size=16 << 20)
    steps = 0
    while not m.cpu.cr0 & CR0_PG:                   # run until the kernel turns paging on
        e = m.run(max_instructions=1)
        steps += 1
        assert e.kind == "budget", e
    print(f"paging is on after {steps} instructions: CR0 = {m.cpu.cr0:#010x}, CR3 = {m.cpu.cr3:#010x}")
    print(f"the instruction that did it: {m.disassemble(m.cpu.segment('cs').base + m.cpu.eip - 3, 1)}")
    print()
    for linear, access in ((m.cpu.eip, "fetch"), (0x00100000, "write"), (0xC0000000, "read")):
        print(f"--- {access} at {linear:#010x}")
        print(m.page_walk(linear, access))
        print()


if __name__ == "__main__":
    main()
