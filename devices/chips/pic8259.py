"""8259A programmable interrupt controllers, master and slave cascaded on
IRQ 2, as on the PC/AT (Intel 8259A data sheet: ICW1-4, OCW1-3).

``chip`` is 0 for the master (ports 0x20/0x21) and 1 for the slave
(0xA0/0xA1).  IRQ lines 0-7 reach the master, 8-15 the slave.
"""
from emu.core.jit import jit
from devices.chips.layout import (PIC_BASE, PIC_STRIDE, PIC_IRR, PIC_IMR, PIC_ISR, PIC_LINES,
                                  PIC_VECTOR_BASE, PIC_INIT_STEP, PIC_ICW1, PIC_ICW4, PIC_READ_ISR,
                                  PIC_POLL, PIC_SPECIAL_MASK, PIC_LOWEST, PIC_ROTATE_AEOI, PIC_ICW3)

ICW1_IC4 = 0x01        # ICW4 will follow
ICW1_SINGLE = 0x02     # no cascade: no ICW3
ICW1_LEVEL = 0x08      # LTIM: level-triggered inputs
ICW1_INIT = 0x10
ICW4_AUTO_EOI = 0x02
OCW3_SELECT = 0x08
CASCADE_LINE = 2
NO_IRQ = -1


@jit
def pic_slot(chip):
    return PIC_BASE + chip * PIC_STRIDE


@jit
def priority(dev, s, line):
    """0 is the highest priority: the line after PIC_LOWEST (rotation)."""
    return (line - dev[s + PIC_LOWEST] - 1) & 7


@jit
def highest_in(dev, s, bits):
    """The line of ``bits`` with the highest priority, or NO_IRQ."""
    best = NO_IRQ
    best_p = 8
    for line in range(8):
        if bits & (1 << line):
            p = priority(dev, s, line)
            if p < best_p:
                best_p = p
                best = line
    return best


@jit
def pending_line(dev, chip):
    """The line this chip presents on INT, or NO_IRQ: the highest-priority
    unmasked request above every in-service line (in special mask mode,
    masked in-service lines do not block)."""
    s = pic_slot(chip)
    req = dev[s + PIC_IRR] & ~dev[s + PIC_IMR] & 0xFF
    if req == 0:
        return NO_IRQ
    line = highest_in(dev, s, req)
    isr = dev[s + PIC_ISR]
    if dev[s + PIC_SPECIAL_MASK]:
        isr &= ~dev[s + PIC_IMR]
    in_service = highest_in(dev, s, isr & 0xFF)
    if in_service != NO_IRQ and priority(dev, s, in_service) <= priority(dev, s, line):
        return NO_IRQ
    return line


@jit
def set_line(dev, chip, line, level):
    """Drive input ``line`` (0-7) of a chip.  Edge mode latches IRR on a
    rising edge; level mode makes IRR follow the pin."""
    s = pic_slot(chip)
    bit = 1 << line
    was = dev[s + PIC_LINES] & bit
    if level:
        dev[s + PIC_LINES] |= bit
        if dev[s + PIC_ICW1] & ICW1_LEVEL or not was:
            dev[s + PIC_IRR] |= bit
    else:
        dev[s + PIC_LINES] &= ~bit
        if dev[s + PIC_ICW1] & ICW1_LEVEL:
            dev[s + PIC_IRR] &= ~bit


@jit
def update_cascade(dev):
    """The slave's INT output drives the master's IRQ 2 input."""
    set_line(dev, 0, CASCADE_LINE, 1 if pending_line(dev, 1) != NO_IRQ else 0)


@jit
def set_irq(dev, irq, level):
    """Drive ISA IRQ line 0-15."""
    if irq < 8:
        set_line(dev, 0, irq, level)
    else:
        set_line(dev, 1, irq - 8, level)
        update_cascade(dev)


@jit
def pulse_irq(dev, irq):
    """A rising then falling edge (timer ticks): latches IRR in edge mode."""
    set_irq(dev, irq, 1)
    set_irq(dev, irq, 0)


@jit
def interrupt_requested(dev):
    """The master's INT output to the CPU."""
    return pending_line(dev, 0) != NO_IRQ


@jit
def acknowledge_chip(dev, chip):
    """One chip's share of an INTA cycle: the vector of its highest request,
    moving it from IRR to ISR (unless auto-EOI); spurious IRQ 7 when the
    request went away."""
    s = pic_slot(chip)
    line = pending_line(dev, chip)
    if line == NO_IRQ:
        return dev[s + PIC_VECTOR_BASE] | 7, 7, True
    bit = 1 << line
    if not dev[s + PIC_ICW1] & ICW1_LEVEL:
        dev[s + PIC_IRR] &= ~bit
    if dev[s + PIC_ICW4] & ICW4_AUTO_EOI:
        if dev[s + PIC_ROTATE_AEOI]:
            dev[s + PIC_LOWEST] = line
    else:
        dev[s + PIC_ISR] |= bit
    return dev[s + PIC_VECTOR_BASE] | line, line, False


@jit
def acknowledge(dev):
    """The INTA cycle of the CPU: returns the interrupt vector."""
    vector, line, spurious = acknowledge_chip(dev, 0)
    if not spurious and line == CASCADE_LINE and not (dev[pic_slot(0) + PIC_ICW1] & ICW1_SINGLE):
        vector, line, spurious = acknowledge_chip(dev, 1)
        update_cascade(dev)
    return vector


@jit
def end_of_interrupt(dev, s, line):
    if line != NO_IRQ:
        dev[s + PIC_ISR] &= ~(1 << line)


@jit
def write_command(dev, chip, value):
    """Port 0x20/0xA0: ICW1, OCW2 or OCW3."""
    s = pic_slot(chip)
    if value & ICW1_INIT:
        dev[s + PIC_ICW1] = value
        dev[s + PIC_IMR] = 0
        dev[s + PIC_ISR] = 0
        dev[s + PIC_IRR] = 0
        dev[s + PIC_LINES] = 0
        dev[s + PIC_ICW4] = 0
        dev[s + PIC_READ_ISR] = 0
        dev[s + PIC_POLL] = 0
        dev[s + PIC_SPECIAL_MASK] = 0
        dev[s + PIC_LOWEST] = 7
        dev[s + PIC_ROTATE_AEOI] = 0
        dev[s + PIC_INIT_STEP] = 2
        return
    if value & OCW3_SELECT:
        if value & 0x02:
            dev[s + PIC_READ_ISR] = value & 1
        if value & 0x04:
            dev[s + PIC_POLL] = 1
        if value & 0x40:
            dev[s + PIC_SPECIAL_MASK] = (value >> 5) & 1
        return
    command = value >> 5
    isr = dev[s + PIC_ISR]
    if command == 1 or command == 5:         # non-specific EOI (and rotate)
        line = highest_in(dev, s, isr & 0xFF)
        end_of_interrupt(dev, s, line)
        if command == 5 and line != NO_IRQ:
            dev[s + PIC_LOWEST] = line
    elif command == 3 or command == 7:       # specific EOI (and rotate)
        end_of_interrupt(dev, s, value & 7)
        if command == 7:
            dev[s + PIC_LOWEST] = value & 7
    elif command == 6:                       # set priority
        dev[s + PIC_LOWEST] = value & 7
    elif command == 4:
        dev[s + PIC_ROTATE_AEOI] = 1
    elif command == 0:
        dev[s + PIC_ROTATE_AEOI] = 0


@jit
def write_data(dev, chip, value):
    """Port 0x21/0xA1: ICW2-4 during initialisation, else OCW1 (the mask)."""
    s = pic_slot(chip)
    step = dev[s + PIC_INIT_STEP]
    if step == 2:
        dev[s + PIC_VECTOR_BASE] = value & 0xF8
        if not dev[s + PIC_ICW1] & ICW1_SINGLE:
            dev[s + PIC_INIT_STEP] = 3
        elif dev[s + PIC_ICW1] & ICW1_IC4:
            dev[s + PIC_INIT_STEP] = 4
        else:
            dev[s + PIC_INIT_STEP] = 0
    elif step == 3:
        dev[s + PIC_ICW3] = value
        dev[s + PIC_INIT_STEP] = 4 if dev[s + PIC_ICW1] & ICW1_IC4 else 0
    elif step == 4:
        dev[s + PIC_ICW4] = value
        dev[s + PIC_INIT_STEP] = 0
    else:
        dev[s + PIC_IMR] = value & 0xFF


@jit
def poll(dev, chip):
    """OCW3 poll: an acknowledge without INTA; 0x80 | line, or 0."""
    s = pic_slot(chip)
    dev[s + PIC_POLL] = 0
    line = pending_line(dev, chip)
    if line == NO_IRQ:
        return 0
    if chip == 0 and line == CASCADE_LINE:
        acknowledge_chip(dev, 0)
        update_cascade(dev)
        return 0x80 | line
    acknowledge_chip(dev, chip)
    if chip == 1:
        update_cascade(dev)
    return 0x80 | line


@jit
def read_port(dev, chip, offset):
    s = pic_slot(chip)
    if dev[s + PIC_POLL]:
        return poll(dev, chip)
    if offset == 0:
        return dev[s + PIC_ISR] if dev[s + PIC_READ_ISR] else dev[s + PIC_IRR]
    return dev[s + PIC_IMR]


@jit
def write_port(dev, chip, offset, value):
    if offset == 0:
        write_command(dev, chip, value)
    else:
        write_data(dev, chip, value)
    if chip == 1:
        update_cascade(dev)
