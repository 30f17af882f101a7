"""Lesson 3: an interrupt's journey, from the PIT through the PIC and the
IDT to IRET.

The test kernel firmware/kernels/timer.elf programs the 8254 PIT for 100
Hz, remaps and unmasks the 8259A PIC, and waits for ticks with HLT.  We
trace it (at 1 us of virtual time per instruction, so a tick comes every
10 000 instructions) and follow the first tick: the port writes that set
it up, the PIC's request (IRR), the delivery through IDT vector 0x20, the
handler with its EOI to the PIC, and the IRET back to where the CPU was.

    python examples/lesson3_interrupt_journey.py
"""
import pathlib

from emu import Machine
from emu.trace import Tracer

ROOT = pathlib.Path(__file__).resolve().parents[1]
SETUP_PORTS = {0x20: "PIC master command", 0x21: "PIC master data (ICW2-4, IMR)",
               0xA0: "PIC slave command", 0xA1: "PIC slave data", 0x43: "PIT mode/command",
               0x40: "PIT channel 0 count"}


def main():
    m = Machine.from_multiboot(ROOT / "firmware" / "kernels" / "timer.elf", memory_size=8 << 20,
                               ns_per_instruction=1000)
    print("1. the kernel sets up the PIT and the PIC (port writes):")
    before_irq = True
    in_handler = False
    last = None
    for r in Tracer(m).records(max_instructions=60_000):
        if r.kind == "io" and before_irq and r.text.startswith("port out"):
            port = int(r.text.split()[2], 16)
            if port in SETUP_PORTS:
                print(f"   {r.text.strip():<28} {SETUP_PORTS[port]}")
        if r.kind == "interrupt" and r.vector == 0x20:
            before_irq = False
            in_handler = True
            print()
            print(f"2. the PIT's output raised IRQ 0; the PIC requested vector 0x20 and the CPU, with")
            print(f"   IF = 1, took it after the instruction at {last.cs:04x}:{last.eip:08x} ({last.text}):")
            print(f"   {r}")
            print()
            print("3. the handler, from the IDT entry for 0x20:")
            continue
        if in_handler and r.kind in ("insn", "io"):
            print(f"   {r}")
            if r.kind == "io" and r.text.startswith("port out 0x0020 <- 0x20"):
                print("   ^ end of interrupt (EOI, 20h) to the PIC: the next IRQ 0 can be delivered")
            if r.kind == "insn" and r.text.startswith("iret"):
                print()
                print(f"4. IRET returned to {m.cpu.cs:04x}:{m.cpu.eip:08x}, with the flags as they were")
                break
        if r.kind == "insn":
            last = r


if __name__ == "__main__":
    main()
