"""Instruction traces (emu/trace.py): m.trace() records and `emu run --trace`."""
import pathlib

from emu import Machine
from emu.cli import main as cli_main
from tests.asm import assemble

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNEL = ROOT / "firmware" / "kernels" / "timer.elf"

PROGRAM = """
org 7C00h
bits 16
    mov ax, 5
    add ax, 0FFFBh          ; = 0: ZF and CF set
    out 80h, al
    int 21h
    ud2
    hlt
int21: iret
ud:    add word [esp], 2    ; skip the UD2
       iret
"""


def real_mode_machine():
    code = assemble(PROGRAM)
    m = Machine(memory_size=1 << 20)
    m.memory.write(0x7C00, code)
    int21 = 0x7C00 + code.index(b"\xcf")                      # the first IRET
    ud = int21 + 1
    m.memory.write_u16(0x21 * 4, int21)
    m.memory.write_u16(0x21 * 4 + 2, 0)
    m.memory.write_u16(6 * 4, ud)
    m.memory.write_u16(6 * 4 + 2, 0)
    m.cpu.cs, m.cpu.ip, m.cpu.ss, m.cpu.sp = 0, 0x7C00, 0, 0x7000
    return m


def test_trace_records_instructions_changes_io_interrupts_and_exceptions():
    m = real_mode_machine()
    records = m.trace(max_instructions=20)
    insns = [r for r in records if r.kind == "insn"]
    assert [r.text for r in insns[:4]] == ["mov ax, 5", "add ax, -5", "out 0x80, al", "int 0x21"]
    assert insns[0].changes["eax"] == (0, 5) and (insns[0].cs, insns[0].eip, insns[0].linear) == (0, 0x7C00, 0x7C00)
    assert insns[0].code == b"\xb8\x05\x00"
    assert "+ZF" in insns[1].changes["flags"][1] and "+CF" in insns[1].changes["flags"][1]
    io = [r for r in records if r.kind == "io"]
    assert io[0].text == "port out 0x0080 <- 0x0"
    soft = [r for r in records if r.kind == "interrupt"]
    assert soft[0].vector == 0x21
    assert records.index(soft[0]) == records.index(insns[3]) + 1    # after the INT that raised it
    faults = [r for r in records if r.kind == "exception"]
    assert faults[0].vector == 6 and "#UD" in str(faults[0])
    assert insns[-1].text == "hlt"
    text = "\n".join(str(r) for r in records)
    assert "0000:00007c00  00007c00  b80500" in text and "eax=00000005" in text


def test_trace_filters_first_last_and_address_range():
    assert len([r for r in real_mode_machine().trace(20, first=2) if r.kind == "insn"]) == 2
    last = [r for r in real_mode_machine().trace(20, last=2) if r.kind == "insn"]
    assert [r.text for r in last] == ["iret", "hlt"]
    ranged = [r for r in real_mode_machine().trace(20, start=0x7C03, end=0x7C08) if r.kind == "insn"]
    assert [r.text for r in ranged] == ["add ax, -5", "out 0x80, al"]


def test_trace_shows_the_timer_interrupt_of_a_kernel():
    # 1 us an instruction: the kernel's 100 Hz ticks come every 10 000 instructions
    m = Machine.from_multiboot(KERNEL, memory_size=8 << 20, ns_per_instruction=1000)
    records = m.trace(max_instructions=40_000)             # the whole kernel: it ends by itself
    irq = [r for r in records if r.kind == "interrupt"]
    assert irq and irq[0].vector == 0x20 and "interrupt vector 0x20 -> 0008:00100e8d" in str(irq[0])
    assert len(irq) >= 10                                   # the kernel counts 10 ticks
    assert [r for r in records if r.kind == "insn"][-1].text.startswith("out")   # the debug exit


def test_cli_trace_to_a_file(tmp_path, capsysbinary):
    out = tmp_path / "trace.txt"
    status = cli_main(["run", str(KERNEL), "--trace", str(out), "--trace-first", "5"])
    assert status == 124
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and lines[0].split()[1] == "0008:00100010"
    assert cli_main(["run", str(KERNEL), "--trace", str(out), "--trace-range", "zz"]) == 2
