"""The PC devices and hardware interrupts, driven by guest code in 32-bit
protected mode: 8259A PICs, 8254 PIT, 16550A UART, MC146818 RTC/CMOS, 8042,
port 0x92, the debug-exit port; IF, the STI/MOV SS interrupt shadow, HLT
wake-up, NMI.  Each test names the data-sheet or SDM rule it checks."""
import struct

import pytest

from emu import Machine
from tests.asm import assemble

CODE = 0x10000
COUNTS = 0x8000          # dword per vector: interrupts taken
LAST_VECTOR = 0x8400
LAST_EIP = 0x8404
LAST_EAX = 0x8408
NO_EOI = 0x840C
LOG_LEN = 0x8410
LOG = 0x8500             # vectors in the order taken
RESULTS = 0x9000         # guest stores what it read here

PRELUDE = f"""
bits 32
org {CODE:#x}
    lgdt [gdtr]
    lidt [idtr]
    jmp 0x08:body
align 8
gdt: dq 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF
gdtr: dw 23
    dd gdt
idtr: dw 256 * 8 - 1
    dd idt
align 8
idt:
%assign v 0
%rep 256
    dw (stub_ %+ v - $$ + {CODE:#x}) & 0xFFFF, 0x08, 0x8E00, (stub_ %+ v - $$ + {CODE:#x}) >> 16
%assign v v + 1
%endrep
%assign v 0
%rep 256
stub_ %+ v:
    push dword v
    jmp irq_common
%assign v v + 1
%endrep
; every interrupt: count it, log it, remember EIP and EAX at the interrupt,
; send EOI for IRQs unless the test asked not to
irq_common:
    push eax
    mov eax, [esp + 4]
    inc dword [{COUNTS:#x} + eax * 4]
    mov [{LAST_VECTOR:#x}], eax
    push ebx
    mov ebx, [{LOG_LEN:#x}]
    mov [{LOG:#x} + ebx * 4], eax
    inc dword [{LOG_LEN:#x}]
    mov ebx, [esp + 12]
    mov [{LAST_EIP:#x}], ebx
    mov ebx, [esp + 4]
    mov [{LAST_EAX:#x}], ebx
    pop ebx
    cmp dword [{NO_EOI:#x}], 0
    jne .done
    cmp eax, 0x20
    jb .done
    cmp eax, 0x30
    jae .done
    cmp eax, 0x28
    jb .master
    mov al, 0x20
    out 0xA0, al
.master:
    mov al, 0x20
    out 0x20, al
.done:
    pop eax
    add esp, 4
    iret
"""

PIC_INIT = """
    mov al, 0x11        ; ICW1: edge, cascade, ICW4 follows
    out 0x20, al
    out 0xA0, al
    mov al, 0x20        ; ICW2: vector bases 0x20 and 0x28
    out 0x21, al
    mov al, 0x28
    out 0xA1, al
    mov al, 0x04        ; ICW3: slave on IRQ 2
    out 0x21, al
    mov al, 0x02
    out 0xA1, al
    mov al, 0x01        ; ICW4: 8086 mode
    out 0x21, al
    out 0xA1, al
"""

PIT_1KHZ = """
    mov al, 0x34        ; channel 0, low/high, mode 2
    out 0x43, al
    mov ax, 1193        ; 1193182 / 1000
    out 0x40, al
    mov al, ah
    out 0x40, al
"""

PIT_100HZ = """
    mov al, 0x34        ; channel 0, low/high, mode 2
    out 0x43, al
    mov ax, 11932       ; 1193182 / 100
    out 0x40, al
    mov al, ah
    out 0x40, al
"""


def guest(body, memory_size=4 << 20, budget=2_000_000, **machine_args):
    m = Machine.flat32(memory_size=memory_size, deliver_exceptions=True, **machine_args)
    image = assemble(PRELUDE + "body:\n" + body)
    m.memory.write(CODE, image)
    m.cpu.eip = CODE
    m.cpu.esp = 0x7000
    return m


def run(body, **kw):
    budget = kw.pop("budget", 2_000_000)
    m = guest(body, **kw)
    e = m.run(max_instructions=budget)
    return m, e


def dword(m, addr):
    return struct.unpack("<I", m.memory.read(addr, 4))[0]


def results(m, n):
    return list(m.memory.read(RESULTS, n))


def count(m, vector):
    return dword(m, COUNTS + 4 * vector)


def log(m):
    return [dword(m, LOG + 4 * i) for i in range(dword(m, LOG_LEN))]


def store(i):
    return f"    mov [{RESULTS + i:#x}], al\n"


# --- 8259A ------------------------------------------------------------------------

def test_pic_mask_and_registers_read_back():
    """8259A: OCW1 sets IMR (read at the data port); OCW3 selects IRR or ISR
    at the command port."""
    m, e = run(PIC_INIT + """
    mov al, 0xA5
    out 0x21, al
    in al, 0x21
""" + store(0) + """
    mov al, 0x0B        ; OCW3: read ISR
    out 0x20, al
    in al, 0x20
""" + store(1) + """
    mov al, 0x0A        ; OCW3: read IRR
    out 0x20, al
    in al, 0x20
""" + store(2) + "    hlt\n")
    assert e.kind == "halt"
    assert results(m, 3) == [0xA5, 0, 0]
    assert m.board.pic.imr & 0xFF == 0xA5
    assert m.board.pic.vector_bases == (0x20, 0x28)


def test_timer_interrupts_arrive_at_100_hz_of_virtual_time():
    """8254 mode 2 with divisor 11932 ticks IRQ 0 at 100 Hz; the PIC
    delivers vector base + 0; HLT sleeps until the next tick (virtual time
    jumps ahead), so 10 ticks take 100 ms of virtual time."""
    m, e = run(PIC_INIT + PIT_100HZ + """
    mov al, 0xFE
    out 0x21, al
    sti
.idle:
    hlt
    cmp dword [0x8000 + 0x20 * 4], 10
    jb .idle
    cli
    hlt
""")
    assert e.kind == "halt"
    assert count(m, 0x20) == 10
    assert 100_000_000 <= m.virtual_time_ns < 101_000_000
    assert e.instructions < 1000          # the waits cost no instructions


def test_runs_are_deterministic():
    """Virtual time follows retired instructions: two runs of the same guest
    end in the same state."""
    body = PIC_INIT + PIT_100HZ.replace("11932", "1193") + """
    mov al, 0xFE
    out 0x21, al
    sti
    xor ecx, ecx
.spin:
    inc ecx
    cmp dword [0x8000 + 0x20 * 4], 5
    jb .spin
    cli
    hlt
"""
    a, ea = run(body)
    b, eb = run(body)
    assert ea == eb and ea.kind == "halt"
    assert a.cpu.ecx == b.cpu.ecx > 1000
    assert a.snapshot().cpu.tolist() == b.snapshot().cpu.tolist()


def test_masked_irq_waits_in_irr_until_unmasked():
    """8259A: a masked request stays in IRR and is delivered once OCW1
    unmasks it."""
    m, e = run(PIC_INIT + PIT_1KHZ + """
    mov al, 0xFF
    out 0x21, al
    sti
    mov ecx, 200000
.spin:
    loop .spin
    mov al, 0x0A
    out 0x20, al
    in al, 0x20
""" + store(0) + """
    mov eax, [0x8000 + 0x20 * 4]
    mov [0x9004], eax
    mov al, 0xFE
    out 0x21, al
    nop
    nop
    cli
    hlt
""")
    assert results(m, 1)[0] & 1 == 1
    assert dword(m, 0x9004) == 0
    assert count(m, 0x20) == 1


def test_in_service_irq_blocks_until_eoi():
    """8259A fully nested mode: while IRQ 0 is in service (no EOI), further
    timer ticks are not delivered; a non-specific EOI re-enables them."""
    m, e = run(PIC_INIT + PIT_1KHZ + f"""
    mov dword [{NO_EOI:#x}], 1
    mov al, 0xFE
    out 0x21, al
    sti
    mov ecx, 1000000
.spin:
    loop .spin
    mov eax, [0x8000 + 0x20 * 4]
    mov [0x9004], eax
    mov al, 0x0B
    out 0x20, al
    in al, 0x20
""" + store(0) + f"""
    mov dword [{NO_EOI:#x}], 0
    mov al, 0x20
    out 0x20, al
    nop
    cli
    hlt
""")
    assert dword(m, 0x9004) == 1          # only the first tick got through
    assert results(m, 1)[0] == 0x01       # IRQ 0 in service
    assert count(m, 0x20) == 2            # the pending tick follows the EOI


def test_auto_eoi_leaves_isr_clear():
    """ICW4 AEOI: the in-service bit is cleared at the acknowledge."""
    m, e = run(PIC_INIT.replace("mov al, 0x01        ; ICW4", "mov al, 0x03        ; ICW4") + PIT_100HZ + f"""
    mov dword [{NO_EOI:#x}], 1
    mov al, 0xFE
    out 0x21, al
    sti
.idle:
    hlt
    cmp dword [0x8000 + 0x20 * 4], 3
    jb .idle
    cli
    mov al, 0x0B
    out 0x20, al
    in al, 0x20
""" + store(0) + "    hlt\n")
    assert count(m, 0x20) == 3
    assert results(m, 1) == [0]


def test_slave_pic_cascade_delivers_rtc_periodic_interrupt():
    """IRQ 8 (the RTC's periodic interrupt, register B PIE) reaches the CPU
    through the slave PIC and the master's IRQ 2, with the slave's vector;
    reading RTC register C acknowledges it."""
    m, e = run(PIC_INIT + """
    mov al, 0xFB        ; master: only the cascade
    out 0x21, al
    mov al, 0xFE        ; slave: only IRQ 8
    out 0xA1, al
    mov al, 0x0A
    out 0x70, al
    mov al, 0x26        ; 32.768 kHz, rate 6 = 1024 Hz
    out 0x71, al
    mov al, 0x0B
    out 0x70, al
    in al, 0x71
    or al, 0x40         ; PIE
    out 0x71, al
    sti
.idle:
    hlt
    mov al, 0x0C
    out 0x70, al
    in al, 0x71
    cmp dword [0x8000 + 0x28 * 4], 4
    jb .idle
    cli
    hlt
""")
    assert count(m, 0x28) == 4
    assert count(m, 0x20) == 0
    assert 3_900_000 <= m.virtual_time_ns <= 4_000_000    # 4 periods of 1/1024 s


def test_spurious_interrupt_is_irq7():
    """8259A: a request that disappears before the acknowledge gives IRQ 7's
    vector without setting its in-service bit (driven from Python)."""
    from devices.chips import pic8259
    import numpy as np
    from devices.chips.layout import DEV_SLOTS
    dev = np.zeros(DEV_SLOTS, np.int64)
    for chip, base in ((0, 0x20), (1, 0x28)):
        pic8259.write_port(dev, chip, 0, 0x19)        # ICW1 level-triggered
        pic8259.write_port(dev, chip, 1, base)
        pic8259.write_port(dev, chip, 1, 4 if chip == 0 else 2)
        pic8259.write_port(dev, chip, 1, 1)
    pic8259.set_irq(dev, 5, 1)
    assert pic8259.interrupt_requested(dev)
    pic8259.set_irq(dev, 5, 0)                        # level dropped before INTA
    assert pic8259.acknowledge(dev) == 0x27
    assert pic8259.read_port(dev, 0, 0) == 0          # IRR clear
    pic8259.write_port(dev, 0, 0, 0x0B)
    assert pic8259.read_port(dev, 0, 0) == 0          # ISR clear: no EOI owed
    # priority: IRQ 3 beats IRQ 6; specific EOI and rotation
    pic8259.set_irq(dev, 6, 1)
    pic8259.set_irq(dev, 3, 1)
    assert pic8259.acknowledge(dev) == 0x23
    assert not pic8259.interrupt_requested(dev)       # 6 is below 3 in service
    pic8259.write_port(dev, 0, 0, 0x63)               # specific EOI for 3
    assert pic8259.interrupt_requested(dev)
    pic8259.set_irq(dev, 3, 0)
    assert pic8259.acknowledge(dev) == 0x26
    # the slave's requests come through IRQ 2 with the slave's vector
    pic8259.write_port(dev, 0, 0, 0x20)
    pic8259.set_irq(dev, 6, 0)
    pic8259.set_irq(dev, 12, 1)
    assert pic8259.acknowledge(dev) == 0x2C


# --- interrupt recognition (SDM Vol. 3, 6.8.3 and 6.9) ---------------------------------

def test_sti_shadow_delays_the_interrupt_by_one_instruction():
    """STI: interrupts are recognized after the instruction following STI
    (SDM Vol. 2, STI), so the handler sees EAX = 1, not 0."""
    m, e = run(PIC_INIT + PIT_1KHZ + """
    mov al, 0xFE
    out 0x21, al
    mov ecx, 300000     ; let a tick become pending with IF = 0
.spin:
    loop .spin
    xor eax, eax
    sti
    inc eax
    inc eax
    cli
    hlt
""")
    assert count(m, 0x20) == 1
    assert dword(m, LAST_EAX) == 1


def test_mov_ss_shadow_delays_the_interrupt():
    """MOV SS inhibits interrupts (here an NMI) until after the next
    instruction (SDM Vol. 3, 6.8.3), so SS:ESP are loaded as a pair."""
    m = guest("""
    xor eax, eax
    mov bx, 0x10
    mov ss, bx
    inc eax
    inc eax
    cli
    hlt
""")
    for _ in range(5):                    # LGDT, LIDT, JMP FAR, XOR, MOV BX
        m.step()
    m.step()                              # MOV SS
    m.nmi()
    m.step()                              # the first INC runs in the shadow
    m.run(max_instructions=100)
    assert count(m, 2) == 1
    assert dword(m, LAST_EAX) == 1


def test_hlt_wakes_on_interrupt_and_resumes_after_hlt():
    """HLT: an interrupt resumes execution; the return address is the
    instruction after HLT (SDM Vol. 2, HLT)."""
    m, e = run(PIC_INIT + PIT_100HZ + """
    mov al, 0xFE
    out 0x21, al
    sti
    hlt
after_hlt:
    cli
    hlt
""")
    image = assemble(PRELUDE + "body:\n" + PIC_INIT + PIT_100HZ + "    mov al, 0xFE\n    out 0x21, al\n    sti\n    hlt\nafter_hlt:\n")
    assert count(m, 0x20) == 1
    assert dword(m, LAST_EIP) == CODE + len(image)
    assert e.kind == "halt"


def test_halt_with_interrupts_disabled_ends_the_run():
    m, e = run("    cli\n    hlt\n")
    assert e.kind == "halt"


def test_nmi_ignores_if_and_waits_for_iret():
    """NMI is taken with IF = 0; a second NMI is held until the handler's
    IRET (SDM Vol. 3, 6.7.1)."""
    m = guest("""
    cli
    xor eax, eax
.spin:
    inc eax
    jmp .spin
""")
    m.run(max_instructions=1000)
    m.nmi()
    m.run(max_instructions=3)              # into the handler: vector 2
    assert count(m, 2) == 0                # the handler has not counted yet
    m.nmi()
    m.run(max_instructions=200)
    assert count(m, 2) == 2
    assert log(m) == [2, 2]


def test_nmi_masked_by_port_70_bit_7():
    m = guest("""
    mov al, 0x80
    out 0x70, al
.spin:
    jmp .spin
""")
    m.run(max_instructions=100)
    m.nmi()
    m.run(max_instructions=100)
    assert count(m, 2) == 0


# --- 8254 -------------------------------------------------------------------------

def test_pit_latch_and_read_back_status():
    """8254: a counter-latch command freezes the count for reading (low then
    high byte); read-back returns the status byte (OUT, null count, access,
    mode, BCD)."""
    m, e = run("""
    mov al, 0x34
    out 0x43, al
    mov al, 0x00
    out 0x40, al
    mov al, 0x10        ; N = 0x1000
    out 0x40, al
    mov ecx, 100
.spin:
    loop .spin
    mov al, 0x00        ; latch channel 0
    out 0x43, al
    in al, 0x40
""" + store(0) + """
    in al, 0x40
""" + store(1) + """
    mov al, 0xE2        ; read-back: status of channel 0
    out 0x43, al
    in al, 0x40
""" + store(2) + "    hlt\n")
    count_ = results(m, 2)
    value = count_[0] | count_[1] << 8
    # 100 LOOPs + ~10 other instructions at 10 ns each: about 1.3 PIT ticks
    assert 0x1000 - 5 <= value < 0x1000
    assert results(m, 3)[2] == 0x80 | 0x34     # OUT high, access 3, mode 2


def test_pit_channel2_gate_and_output_on_port_61():
    """Port 0x61: bit 0 gates channel 2, bit 5 reads its OUT; mode 0 (interrupt
    on terminal count) raises OUT after N ticks."""
    m, e = run("""
    mov al, 0xB0        ; channel 2, low/high, mode 0
    out 0x43, al
    mov al, 100
    out 0x42, al
    xor al, al
    out 0x42, al
    in al, 0x61
""" + store(0) + """
    mov al, 1           ; gate on
    out 0x61, al
    xor ecx, ecx
.poll:
    inc ecx
    in al, 0x61
    test al, 0x20
    jz .poll
    hlt
""")
    assert results(m, 1)[0] & 0x20 == 0
    # 100 ticks of 838 ns at 10 ns per instruction, 4 instructions a poll
    assert 1900 < m.cpu.ecx < 2200


# --- 16550A -------------------------------------------------------------------------

def test_uart_transmits_to_the_host():
    m, e = run("""
    mov esi, msg
    mov dx, 0x3F8
.next:
    lodsb
    test al, al
    jz .done
    out dx, al
    jmp .next
.done:
    hlt
msg: db "hello, serial", 13, 10, 0
""")
    assert m.com1.read() == b"hello, serial\r\n"
    assert m.com1.read() == b""


def test_uart_loopback_and_line_status():
    """16550A MCR bit 4: transmitted bytes come back to the receiver; LSR.DR
    reports data, THRE and TEMT an empty transmitter; nothing reaches the host."""
    m, e = run("""
    mov dx, 0x3FC
    mov al, 0x10
    out dx, al
    mov dx, 0x3FD
    in al, dx
""" + store(0) + """
    mov dx, 0x3F8
    mov al, 'x'
    out dx, al
    mov dx, 0x3FD
    in al, dx
""" + store(1) + """
    mov dx, 0x3F8
    in al, dx
""" + store(2) + """
    mov dx, 0x3FD
    in al, dx
""" + store(3) + "    hlt\n")
    assert results(m, 4) == [0x60, 0x61, ord("x"), 0x60]
    assert m.com1.read() == b""


def test_uart_receive_interrupt_through_irq4():
    """IER bit 0 with MCR OUT2: received data raises IRQ 4; IIR says 'received
    data' (FIFO off); the handler reads RBR."""
    m = guest(PIC_INIT + """
    mov al, 0xEF        ; unmask IRQ 4
    out 0x21, al
    mov dx, 0x3FC
    mov al, 0x0B        ; DTR RTS OUT2
    out dx, al
    mov dx, 0x3F9
    mov al, 1
    out dx, al
    sti
.idle:
    hlt
    jmp .idle
""")
    # the common handler does not read RBR: mask IER in its place by reading IIR here
    e = m.run(max_instructions=10_000)
    assert e.kind == "halt"
    m.com1.send(b"k")
    e = m.run(max_instructions=200)
    assert count(m, 0x24) >= 1
    assert m.board.pic.irr & 0x10 or count(m, 0x24) >= 1


def test_uart_host_input_is_never_lost():
    """More input than the receive FIFO and the input ring hold arrives
    complete and in order (polled, LSR.DR)."""
    data = bytes(range(256)) * 12
    m = guest(f"""
    mov edi, {RESULTS:#x}
    mov ecx, {len(data)}
.next:
    mov dx, 0x3FD
.wait:
    in al, dx
    test al, 1
    jz .wait
    mov dx, 0x3F8
    in al, dx
    stosb
    loop .next
    hlt
""", memory_size=4 << 20)
    m.com1.send(data)
    e = m.run(max_instructions=2_000_000)
    assert e.kind == "halt"
    assert m.memory.read(RESULTS, len(data)) == data


def test_uart_output_larger_than_the_ring_arrives_whole():
    """REP OUTSB of more bytes than the transmit ring holds: the run loop lets
    Python drain the ring and nothing is lost or repeated."""
    data = bytes((i * 7) & 0xFF for i in range(20000))
    m = guest(f"""
    mov esi, {RESULTS:#x}
    mov ecx, {len(data)}
    mov dx, 0x3F8
    rep outsb
    hlt
""")
    m.memory.write(RESULTS, data)
    e = m.run(max_instructions=100)
    assert e.kind == "halt"
    assert m.com1.read() == data


# --- RTC / CMOS ---------------------------------------------------------------------

def test_rtc_reads_the_virtual_clock_in_bcd():
    """MC146818: registers 0-9 and the century in BCD (register B DM = 0),
    24-hour mode; the default epoch is 2026-01-01 00:00:00, and virtual time
    moves it (2 s of PIT-driven HLT)."""
    regs = [0, 2, 4, 6, 7, 8, 9, 0x32]
    body = PIC_INIT + PIT_100HZ + """
    mov al, 0xFE
    out 0x21, al
    sti
.idle:
    hlt
    cmp dword [0x8000 + 0x20 * 4], 205
    jb .idle
    cli
"""
    for i, r in enumerate(regs):
        body += f"    mov al, {r}\n    out 0x70, al\n    in al, 0x71\n" + store(i)
    m, e = run(body + "    hlt\n")
    sec, minute, hour, wday, day, month, year, century = results(m, len(regs))
    assert (sec, minute, hour) == (0x02, 0, 0)
    assert (day, month, year, century) == (0x01, 0x01, 0x26, 0x20)
    assert wday == 5                        # Thursday (Sunday = 1)


def test_rtc_binary_mode_and_setting_the_clock():
    """Register B DM = 1 gives binary values; writing a field moves the clock."""
    m, e = run("""
    mov al, 0x0B
    out 0x70, al
    mov al, 0x06        ; binary, 24 h
    out 0x71, al
    mov al, 4
    out 0x70, al
    mov al, 23
    out 0x71, al
    mov al, 9
    out 0x70, al
    mov al, 99
    out 0x71, al
    mov al, 4
    out 0x70, al
    in al, 0x71
""" + store(0) + """
    mov al, 9
    out 0x70, al
    in al, 0x71
""" + store(1) + "    hlt\n", rtc_epoch=0)
    assert results(m, 2) == [23, 99]


def test_cmos_memory_size_bytes():
    """CMOS 0x15-0x18, 0x30-0x31, 0x34-0x35: base, extended and above-16 MiB
    memory as a PC BIOS reports them."""
    body = ""
    for i, r in enumerate((0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35)):
        body += f"    mov al, {r}\n    out 0x70, al\n    in al, 0x71\n" + store(i)
    m, e = run(body + "    hlt\n", memory_size=32 << 20)
    r = results(m, 8)
    assert r[0] | r[1] << 8 == 640
    assert r[2] | r[3] << 8 == 31 * 1024
    assert r[4] | r[5] << 8 == 31 * 1024
    assert r[6] | r[7] << 8 == 16 * 16


# --- 8042, port 0x92, debug exit ---------------------------------------------------

def test_kbc_self_test_and_a20_gate():
    """8042: command 0xAA answers 0x55; output port bit 1 (command 0xD1) is
    the A20 gate: with it off, 1 MiB wraps to 0."""
    m, e = run("""
    mov al, 0xAA
    out 0x64, al
    in al, 0x60
""" + store(0) + """
    mov dword [0x100000], 0x11111111
    mov dword [0x000000], 0x22222222
    mov al, 0xD1
    out 0x64, al
    mov al, 0x01        ; A20 off, not reset
    out 0x60, al
    mov eax, [0x100000]
    mov [0x9004], eax
    mov al, 0xD1
    out 0x64, al
    mov al, 0x03
    out 0x60, al
    mov eax, [0x100000]
    mov [0x9008], eax
    hlt
""")
    assert results(m, 1) == [0x55]
    assert dword(m, 0x9004) == 0x22222222
    assert dword(m, 0x9008) == 0x11111111


def test_kbc_scancodes_raise_irq1():
    m = guest(PIC_INIT + """
    mov al, 0xFD
    out 0x21, al
    sti
.idle:
    hlt
    in al, 0x60
    mov [0x9000], al
    jmp .idle
""")
    m.run(max_instructions=1000)
    m.board.push_scancodes(b"\x1e")
    m.run(max_instructions=1000)
    assert count(m, 0x21) == 1
    assert results(m, 1) == [0x1E]


@pytest.mark.parametrize("code", ["mov al, 0xFE\n    out 0x64, al", "mov al, 1\n    out 0x92, al"])
def test_reset_through_8042_and_port_92(code):
    m, e = run(f"    {code}\n    hlt\n")
    assert e.kind == "reset"


def test_port_92_fast_a20():
    m, e = run("""
    mov dword [0x100000], 1
    mov dword [0], 2
    in al, 0x92
""" + store(0) + """
    and al, ~2
    out 0x92, al
    mov eax, [0x100000]
    mov [0x9004], eax
    hlt
""")
    assert results(m, 1)[0] & 2
    assert dword(m, 0x9004) == 2
    assert not m.a20


@pytest.mark.parametrize("insn, status", [("mov eax, 0\n    out 0xF4, eax", 1),
                                          ("mov al, 0x21\n    out 0xF4, al", 0x43)])
def test_debug_exit_port(insn, status):
    """QEMU's isa-debug-exit at 0xF4: the run ends with status (v << 1) | 1."""
    m, e = run(f"    {insn}\n    hlt\n")
    assert e.kind == "debug_exit" and e.status == status


def test_unassigned_ports_read_all_ones():
    m, e = run("""
    mov dx, 0x1234
    in eax, dx
    mov [0x9000], eax
    hlt
""")
    assert dword(m, 0x9000) == 0xFFFFFFFF


def test_python_device_cannot_claim_a_chip_port():
    m = Machine.flat32(memory_size=1 << 20)

    class Dev:
        def read(self, port, size):
            return 0

        def write(self, port, size, value):
            pass

    with pytest.raises(ValueError, match="0x3f8 is already wired to com1"):
        m.port_handlers[0x3F8] = Dev()
    m.port_handlers[0x500] = Dev()


# --- devices written in Python: MMIO ranges, and the host clock ------------------------

class Registers:
    """A Python MMIO device: a counter register and a scratch register."""

    def __init__(self):
        self.reads = []
        self.writes = []
        self.counter = 0
        self.scratch = 0

    def read(self, address, size):
        self.reads.append((address, size))
        if address == 0xFEC00000:
            self.counter += 1
            return self.counter
        return self.scratch

    def write(self, address, size, value):
        self.writes.append((address, size, value))
        self.scratch = value


def test_python_mmio_device_sees_each_access_once():
    """Loads, stores and a read-modify-write (ADD [m], imm) reach the Python
    device exactly once each; the instruction completes with the served value."""
    dev = Registers()
    m = guest("""
    mov eax, [0xFEC00000]
    mov ebx, [0xFEC00000]
    mov dword [0xFEC00004], 40
    add dword [0xFEC00004], 2
    mov ecx, [0xFEC00004]
    hlt
""")
    m.board.attach_mmio(dev, 0xFEC00000, 0x1000)
    e = m.run(max_instructions=100)
    assert e.kind == "halt"
    assert (m.cpu.eax, m.cpu.ebx, m.cpu.ecx) == (1, 2, 42)
    assert dev.reads == [(0xFEC00000, 4), (0xFEC00000, 4), (0xFEC00004, 4), (0xFEC00004, 4)]
    assert dev.writes == [(0xFEC00004, 4, 40), (0xFEC00004, 4, 42)]


def test_mmio_ranges_must_not_overlap_ram_or_each_other():
    m = Machine.flat32(memory_size=1 << 20)
    with pytest.raises(ValueError, match="overlaps RAM"):
        m.board.attach_mmio(Registers(), 0x80000, 0x1000)
    m.board.attach_mmio(Registers(), 0xFEC00000, 0x1000)
    with pytest.raises(ValueError, match="overlaps"):
        m.board.attach_mmio(Registers(), 0xFEC00800, 0x1000)


def test_host_clock_follows_wall_time():
    """clock="host": device time is the host's, so 5 ticks of a 100 Hz PIT
    take at least 40 ms of wall time (a halted CPU sleeps)."""
    import time
    m = guest(PIC_INIT + PIT_100HZ + """
    mov al, 0xFE
    out 0x21, al
    sti
.idle:
    hlt
    cmp dword [0x8000 + 0x20 * 4], 5
    jb .idle
    cli
    hlt
""", clock="host")
    t = time.monotonic()
    e = m.run(max_instructions=10_000_000)
    assert e.kind == "halt" and count(m, 0x20) == 5
    assert time.monotonic() - t >= 0.04


def test_device_views_from_python():
    """The Python classes that inspect the chips agree with what the guest did."""
    m, e = run(PIC_INIT + PIT_100HZ + "    hlt\n", rtc_epoch=0)
    ch = m.board.pit.channel(0)
    assert (ch["mode"], ch["reload"], ch["access"], ch["counting"]) == (2, 11932, 3, True)
    assert 0 < ch["count"] <= 11932
    assert m.board.rtc.cmos(0x15) == 640 & 0xFF
    assert "1970-01-01" in repr(m.board.rtc)
    assert m.board.kbc.output_port & 2                # A20 on
    assert m.board.pic.vector_bases == (0x20, 0x28)
    with pytest.raises(ValueError):
        m.board.pit.channel(3)


# --- ATA disk -----------------------------------------------------------------------

ATA_WAIT = """
.wait_%(n)s:
    in al, dx
    test al, 0x80
    jnz .wait_%(n)s
"""


def ata_guest(tmp_path, body, sectors=64, writable=False):
    import hashlib
    image = tmp_path / "disk.img"
    image.write_bytes(b"".join(bytes([i]) * 512 for i in range(sectors)))
    m = guest(body)
    m.attach_disk(image, writable=writable)
    m.memory.write(CODE, assemble(PRELUDE + "body:\n" + body))
    m.cpu.eip = CODE
    m.cpu.esp = 0x7000
    return m, image, hashlib.sha256(image.read_bytes()).hexdigest()


def ata_command(lba, count, command, lba_mode=True):
    select = (0xE0 | ((lba >> 24) & 0xF)) if lba_mode else 0xA0
    return f"""
    mov dx, 0x1F2
    mov al, {count}
    out dx, al
    inc dx
    mov al, {lba & 0xFF}
    out dx, al
    inc dx
    mov al, {(lba >> 8) & 0xFF}
    out dx, al
    inc dx
    mov al, {(lba >> 16) & 0xFF}
    out dx, al
    inc dx
    mov al, {select:#x}
    out dx, al
    inc dx
    mov al, {command:#x}
    out dx, al
"""


def test_ata_identify_and_pio_read(tmp_path):
    """ATA: IDENTIFY DEVICE (model string, LBA capacity in words 60-61), then
    READ SECTORS of LBA 5 and 6 through the 16-bit data port (REP INSW);
    status reads DRQ while data waits and DRDY when done."""
    m, image, _ = ata_guest(tmp_path, ata_command(0, 0, 0xEC) + f"""
    in al, dx
    mov [{RESULTS:#x}], al
    mov edi, 0x20000
    mov ecx, 256
    mov dx, 0x1F0
    rep insw
""" + ata_command(5, 2, 0x20) + """
    mov edi, 0x21000
    mov ecx, 512
    mov dx, 0x1F0
    rep insw
    mov dx, 0x1F7
    in al, dx
    mov [0x9001], al
    hlt
""")
    assert m.run(max_instructions=100_000).kind == "halt"
    status_after_identify, status_done = results(m, 2)
    assert status_after_identify & 0x08 and status_done == 0x50
    ident = m.memory.read(0x20000, 512)
    model = bytes(b for pair in zip(ident[55:94:2], ident[54:94:2]) for b in pair)
    assert model.startswith(b"VISOR86 HARDDISK")
    assert struct.unpack_from("<I", ident, 120)[0] == 64
    assert m.memory.read(0x21000, 1024) == bytes([5]) * 512 + bytes([6]) * 512


def test_ata_write_goes_to_an_overlay_unless_writable(tmp_path):
    """WRITE SECTORS: the guest reads back what it wrote; the image file is
    unchanged (copy-on-write) unless the disk is writable."""
    import hashlib
    body = ata_command(3, 1, 0x30) + """
    mov esi, 0x20000
    mov ecx, 256
    mov dx, 0x1F0
    rep outsw
""" + ata_command(3, 1, 0x20) + """
    mov edi, 0x21000
    mov ecx, 256
    mov dx, 0x1F0
    rep insw
    hlt
"""
    for writable in (False, True):
        m, image, digest = ata_guest(tmp_path, body, writable=writable)
        m.memory.write(0x20000, b"\xAB" * 512)
        assert m.run(max_instructions=100_000).kind == "halt"
        assert m.memory.read(0x21000, 512) == b"\xAB" * 512
        changed = hashlib.sha256(image.read_bytes()).hexdigest() != digest
        assert changed == writable


def test_ata_chs_read_and_out_of_range_error(tmp_path):
    """CHS addressing (cylinder 0, head 0, sector 3 is LBA 2); a sector past
    the end of the disk sets ERR with IDNF in the error register."""
    m, image, _ = ata_guest(tmp_path, ata_command(3, 1, 0x20, lba_mode=False) + """
    mov edi, 0x21000
    mov ecx, 256
    mov dx, 0x1F0
    rep insw
""" + ata_command(100, 1, 0x20) + f"""
    in al, dx
    mov [{RESULTS:#x}], al
    mov dx, 0x1F1
    in al, dx
    mov [0x9001], al
    hlt
""")
    assert m.run(max_instructions=100_000).kind == "halt"
    assert m.memory.read(0x21000, 512) == bytes([2]) * 512
    assert results(m, 2) == [0x51, 0x10]


def test_ata_interrupt_on_irq14(tmp_path):
    """Each sector of a PIO read raises IRQ 14 (slave PIC line 6); reading the
    status register acknowledges it."""
    m, image, _ = ata_guest(tmp_path, PIC_INIT + """
    mov al, 0xFB
    out 0x21, al
    mov al, 0xBF
    out 0xA1, al
""" + ata_command(1, 2, 0x20) + """
    sti
    hlt
    mov dx, 0x1F7
    in al, dx
    mov edi, 0x21000
    mov ecx, 256
    mov dx, 0x1F0
    rep insw            ; the second sector's interrupt comes at the end of this one
    mov dx, 0x1F7
    in al, dx
    mov ecx, 256
    mov dx, 0x1F0
    rep insw
    cli
    hlt
""")
    assert m.run(max_instructions=100_000).kind == "halt"
    assert count(m, 0x2E) == 2
    assert m.memory.read(0x21000, 1024) == bytes([1]) * 512 + bytes([2]) * 512


def test_disk_image_must_be_whole_sectors(tmp_path):
    bad = tmp_path / "bad.img"
    bad.write_bytes(b"x" * 1000)
    m = Machine.flat32(memory_size=1 << 20)
    with pytest.raises(ValueError, match="512-byte sectors"):
        m.attach_disk(bad)
    with pytest.raises(FileNotFoundError):
        m.attach_disk(tmp_path / "missing.img")


# --- firmware ROM ------------------------------------------------------------------

def test_firmware_rom_at_the_reset_vector_is_read_only():
    """A BIOS image sits at F0000-FFFFF and at FFFF0000 (SDM Vol. 3, 9.1.4:
    the first instruction is fetched from FFFFFFF0); writes to it are lost."""
    rom = assemble("""
bits 16
org 0
times 0xE000 - ($ - $$) db 0xFF
start:
    mov ax, 0xF000
    mov ds, ax
    mov byte [0xE100], 0x55     ; a write to the ROM: dropped
    mov al, [0xE100]
    mov dx, 0x3F8
    out dx, al
    mov dx, 0xF4
    mov al, 0x10
    out dx, al
times 0xE100 - ($ - $$) db 0x90
    db 'R'
times 0xFFF0 - ($ - $$) db 0xFF
    jmp 0xF000:start
times 0x10000 - ($ - $$) db 0xFF
""")
    m = Machine(memory_size=1 << 20)
    m.load_firmware(rom)
    e = m.run(max_instructions=100)
    assert (e.kind, e.status) == ("debug_exit", 0x21)
    assert m.com1.read() == b"R"
    m.reset()
    assert m.run(max_instructions=100).kind == "debug_exit"    # still there after a reset
    with pytest.raises(ValueError, match="64 KiB"):
        m.load_firmware(b"\0" * 100)


def test_text_screen_reads_the_b8000_buffer():
    """m.screen: character/attribute pairs at B8000h as 80x25 text (code page 437)."""
    m = Machine(memory_size=1 << 20)
    cells = bytearray(80 * 25 * 2)
    for i, ch in enumerate(b"Hello \x01 \xc9\xcd\xbb"):
        cells[2 * i] = ch
        cells[2 * i + 1] = 0x07
    cells[2 * 80] = ord("x")
    m.memory.write(0xB8000, bytes(cells))
    assert m.screen.lines()[:2] == ["Hello \u263a \u2554\u2550\u2557", "x"]
    assert m.screen.text() == "Hello \u263a \u2554\u2550\u2557\nx"
