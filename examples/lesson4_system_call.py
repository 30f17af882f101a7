"""Lesson 4: a system call from ring 3.

The test kernel firmware/kernels/usermode.elf drops to ring 3 with IRET and
calls the kernel with INT 0x80 through a DPL-3 trap gate.  The CPU switches
to the ring-0 stack named in the TSS (SS0:ESP0), pushes the user's SS, ESP,
EFLAGS, CS and EIP there, and the kernel returns with IRET.  We trace the
first system call and show the privilege level, the stack and the frame.

    python examples/lesson4_system_call.py
"""
import pathlib

from emu import Machine
from emu.trace import Tracer

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    m = Machine.from_multiboot(ROOT / "firmware" / "kernels" / "usermode.elf", memory_size=8 << 20)
    tracer = Tracer(m)
    state = "kernel"
    for r in tracer.records(max_instructions=200_000):
        if r.kind != "insn" and r.kind != "interrupt":
            continue
        if state == "kernel" and r.kind == "insn" and r.text == "iretd" and m.cpu.cpl == 3:
            print(f"the kernel enters ring 3 with IRET: {r}")
            print(f"   now CPL = {m.cpu.cpl}, CS = {m.cpu.cs:#06x}, SS = {m.cpu.ss:#06x}, ESP = {m.cpu.esp:#010x}")
            state = "user"
        elif state == "user" and r.kind == "insn" and r.text == "int 0x80":
            print(f"ring 3 asks the kernel: {r}")
            user_esp = r.changes.get("esp", (m.cpu.esp, m.cpu.esp))[0]
        elif state == "user" and r.kind == "interrupt" and r.vector == 0x80:
            print(f"   {r}")
            esp = m.cpu.esp
            frame = [m.memory.read_u32(esp + 4 * i) for i in range(5)]
            print(f"   CPL = {m.cpu.cpl}, on the TSS's ring-0 stack: SS = {m.cpu.ss:#06x}, ESP = {esp:#010x}")
            print(f"   the frame the CPU pushed: EIP {frame[0]:#010x}, CS {frame[1]:#06x} (RPL {frame[1] & 3}), "
                  f"EFLAGS {frame[2]:#010x}, ESP {frame[3]:#010x}, SS {frame[4]:#06x}")
            state = "syscall"
        elif state == "syscall" and r.kind == "insn" and r.text == "iretd":
            print(f"the kernel returns: {r}")
            print(f"   back in ring {m.cpu.cpl} at {m.cpu.cs:04x}:{m.cpu.eip:08x}, ESP = {m.cpu.esp:#010x}")
            break


if __name__ == "__main__":
    main()
