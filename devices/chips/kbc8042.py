"""A minimal 8042 keyboard controller with a keyboard behind it: data port
0x60, status/command port 0x64; the controller commands a PC BIOS and
kernels use (command byte, self tests, interface enable/disable, output
port with the A20 gate and the reset line, pulse reset 0xFE), the common
keyboard commands (reset, enable, LEDs, identify, scancode set, echo), and
scancodes queued by the host.  IRQ 1 is raised while a keyboard byte waits
and the command byte enables it.  There is no mouse: aux commands answer
nothing.
"""
from emu.core.jit import jit
from devices.chips.layout import (KBC_BASE, KBC_COMMAND_BYTE, KBC_OUTPUT_PORT, KBC_PENDING,
                                  KBC_KBD_PENDING, KBC_OUT_COUNT, KBC_OUT_HEAD,
                                  KBC_LAST_WAS_COMMAND, KBC_KBD_ENABLED, KBC_IRQ_LEVEL,
                                  KBC_SCANCODE_SET, KBC_OUT_QUEUE, KBC_OUT_SOURCE, KBC_QUEUE_SIZE)

STATUS_OBF = 0x01
STATUS_SYSTEM = 0x04
STATUS_COMMAND = 0x08
STATUS_UNLOCKED = 0x10
STATUS_AUX_OBF = 0x20
CMD_BYTE_KBD_INT = 0x01
CMD_BYTE_SYSTEM = 0x04
CMD_BYTE_KBD_DISABLED = 0x10
CMD_BYTE_TRANSLATE = 0x40
OUTPUT_NOT_RESET = 0x01
OUTPUT_A20 = 0x02
SOURCE_CONTROLLER = 0
SOURCE_KEYBOARD = 1
KBD_ACK = 0xFA
KBD_RESEND = 0xFE


@jit
def enqueue(dev, byte, source):
    """Queue a byte for the output buffer (dropped when 16 wait: the
    keyboard's own buffer would overflow too)."""
    k = KBC_BASE
    n = dev[k + KBC_OUT_COUNT]
    if n >= KBC_QUEUE_SIZE:
        return
    at = (dev[k + KBC_OUT_HEAD] + n) % KBC_QUEUE_SIZE
    dev[k + KBC_OUT_QUEUE + at] = byte & 0xFF
    dev[k + KBC_OUT_SOURCE + at] = source
    dev[k + KBC_OUT_COUNT] = n + 1


@jit
def front_source(dev):
    k = KBC_BASE
    return dev[k + KBC_OUT_SOURCE + dev[k + KBC_OUT_HEAD]]


@jit
def irq_level(dev):
    k = KBC_BASE
    if dev[k + KBC_OUT_COUNT] == 0:
        return 0
    if front_source(dev) == SOURCE_CONTROLLER:
        return 0
    if not dev[k + KBC_COMMAND_BYTE] & CMD_BYTE_KBD_INT:
        return 0
    return 1


@jit
def status(dev):
    k = KBC_BASE
    s = STATUS_UNLOCKED
    if dev[k + KBC_COMMAND_BYTE] & CMD_BYTE_SYSTEM:
        s |= STATUS_SYSTEM
    if dev[k + KBC_LAST_WAS_COMMAND]:
        s |= STATUS_COMMAND
    if dev[k + KBC_OUT_COUNT] > 0:
        s |= STATUS_OBF
    return s


@jit
def read_data(dev):
    k = KBC_BASE
    n = dev[k + KBC_OUT_COUNT]
    if n == 0:
        # an empty buffer reads the last byte again
        return dev[k + KBC_OUT_QUEUE + (dev[k + KBC_OUT_HEAD] - 1) % KBC_QUEUE_SIZE]
    head = dev[k + KBC_OUT_HEAD]
    v = dev[k + KBC_OUT_QUEUE + head]
    dev[k + KBC_OUT_HEAD] = (head + 1) % KBC_QUEUE_SIZE
    dev[k + KBC_OUT_COUNT] = n - 1
    return v


@jit
def keyboard_command(dev, value):
    """A byte written to port 0x60 for the keyboard itself."""
    k = KBC_BASE
    pending = dev[k + KBC_KBD_PENDING]
    if pending:
        dev[k + KBC_KBD_PENDING] = 0
        if pending == 0xF0 and value == 0:
            enqueue(dev, KBD_ACK, SOURCE_KEYBOARD)
            enqueue(dev, dev[k + KBC_SCANCODE_SET], SOURCE_KEYBOARD)
            return
        if pending == 0xF0 and 1 <= value <= 3:
            dev[k + KBC_SCANCODE_SET] = value
        enqueue(dev, KBD_ACK, SOURCE_KEYBOARD)
        return
    if value == 0xFF:                     # reset and self test
        dev[k + KBC_KBD_ENABLED] = 1
        enqueue(dev, KBD_ACK, SOURCE_KEYBOARD)
        enqueue(dev, 0xAA, SOURCE_KEYBOARD)
    elif value == 0xEE:                   # echo
        enqueue(dev, 0xEE, SOURCE_KEYBOARD)
    elif value == 0xF2:                   # identify: an MF2 keyboard
        enqueue(dev, KBD_ACK, SOURCE_KEYBOARD)
        enqueue(dev, 0xAB, SOURCE_KEYBOARD)
        enqueue(dev, 0x41 if dev[k + KBC_COMMAND_BYTE] & CMD_BYTE_TRANSLATE else 0x83,
                SOURCE_KEYBOARD)
    elif value == 0xF4:
        dev[k + KBC_KBD_ENABLED] = 1
        enqueue(dev, KBD_ACK, SOURCE_KEYBOARD)
    elif value == 0xF5:
        dev[k + KBC_KBD_ENABLED] = 0
        enqueue(dev, KBD_ACK, SOURCE_KEYBOARD)
    elif value == 0xED or value == 0xF3 or value == 0xF0:   # LEDs, typematic, scancode set
        dev[k + KBC_KBD_PENDING] = value
        enqueue(dev, KBD_ACK, SOURCE_KEYBOARD)
    elif value == 0xF6:
        dev[k + KBC_KBD_ENABLED] = 1
        enqueue(dev, KBD_ACK, SOURCE_KEYBOARD)
    elif value == 0xFE:
        pass                               # resend: nothing was lost
    else:
        enqueue(dev, KBD_ACK, SOURCE_KEYBOARD)


@jit
def write_data(dev, value):
    k = KBC_BASE
    dev[k + KBC_LAST_WAS_COMMAND] = 0
    pending = dev[k + KBC_PENDING]
    dev[k + KBC_PENDING] = 0
    if pending == 0x60:
        dev[k + KBC_COMMAND_BYTE] = value
    elif pending == 0xD1:
        dev[k + KBC_OUTPUT_PORT] = value
    elif pending == 0xD2:
        enqueue(dev, value, SOURCE_KEYBOARD)
    elif pending == 0xD3 or pending == 0xD4:
        pass                               # no mouse
    else:
        keyboard_command(dev, value)


@jit
def write_command(dev, value):
    k = KBC_BASE
    dev[k + KBC_LAST_WAS_COMMAND] = 1
    if value == 0x20:
        enqueue(dev, dev[k + KBC_COMMAND_BYTE], SOURCE_CONTROLLER)
    elif value == 0x60 or value == 0xD1 or value == 0xD2 or value == 0xD3 or value == 0xD4:
        dev[k + KBC_PENDING] = value
    elif value == 0xAA:                     # controller self test
        enqueue(dev, 0x55, SOURCE_CONTROLLER)
    elif value == 0xAB or value == 0xA9:    # interface tests
        enqueue(dev, 0x00, SOURCE_CONTROLLER)
    elif value == 0xAD:
        dev[k + KBC_COMMAND_BYTE] |= CMD_BYTE_KBD_DISABLED
    elif value == 0xAE:
        dev[k + KBC_COMMAND_BYTE] &= ~CMD_BYTE_KBD_DISABLED
    elif value == 0xC0:
        enqueue(dev, 0xFF, SOURCE_CONTROLLER)
    elif value == 0xD0:
        enqueue(dev, dev[k + KBC_OUTPUT_PORT], SOURCE_CONTROLLER)
    elif value == 0xDD:
        dev[k + KBC_OUTPUT_PORT] &= ~OUTPUT_A20
    elif value == 0xDF:
        dev[k + KBC_OUTPUT_PORT] |= OUTPUT_A20
    elif value >= 0xF0:
        # pulse output port lines whose bit is 0 in the command: bit 0 is reset
        if not value & 1:
            dev[k + KBC_OUTPUT_PORT] &= ~OUTPUT_NOT_RESET


@jit
def read_port(dev, offset):
    """offset 0: port 0x60, offset 4: port 0x64."""
    if offset == 0:
        return read_data(dev)
    return status(dev)


@jit
def write_port(dev, offset, value):
    if offset == 0:
        write_data(dev, value)
    else:
        write_command(dev, value)


@jit
def push_scancode(dev, byte):
    """A key event from the host (when the keyboard is enabled)."""
    k = KBC_BASE
    if dev[k + KBC_KBD_ENABLED] and not dev[k + KBC_COMMAND_BYTE] & CMD_BYTE_KBD_DISABLED:
        enqueue(dev, byte, SOURCE_KEYBOARD)


@jit
def reset(dev):
    k = KBC_BASE
    for i in range(KBC_OUT_SOURCE + KBC_QUEUE_SIZE):
        dev[k + i] = 0
    dev[k + KBC_COMMAND_BYTE] = CMD_BYTE_KBD_INT | CMD_BYTE_SYSTEM | CMD_BYTE_TRANSLATE
    dev[k + KBC_OUTPUT_PORT] = OUTPUT_NOT_RESET | OUTPUT_A20
    dev[k + KBC_KBD_ENABLED] = 1
    dev[k + KBC_SCANCODE_SET] = 2
