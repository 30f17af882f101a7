"""16550A UART (National Semiconductor PC16550D data sheet): registers
RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR and the divisor latch,
16-byte receive FIFO, THR-empty and receive interrupts, loopback.

``u`` is 0 for COM1 and 1 for COM2.  Transmission is instantaneous: a byte
written to THR goes straight to the transmit ring that Python drains (the
host side of the wire), and THR is empty again at once.  Bytes the host
sends wait in the input ring and enter the receive FIFO as it has room, so
nothing typed is lost.  With the FIFO enabled the receive interrupt is
raised as soon as data waits (the character-timeout indication, IIR 0x0C,
when below the trigger level), since virtual time has no idle line.
"""
from emu.core.jit import jit
from devices.chips.layout import (UART_BASE, UART_STRIDE, U_IER, U_LCR, U_MCR, U_SCR, U_DLL, U_DLM,
                                  U_FCR, U_OVERRUN, U_THRE_PENDING, U_MSR_DELTA, U_RX_COUNT,
                                  U_RX_HEAD, U_TX_HEAD, U_TX_TAIL, U_IN_HEAD, U_IN_TAIL,
                                  U_IRQ_LEVEL, U_MSR_LAST, U_IN_MORE, U_FIFO, UART_FIFO_SIZE, UART_TX_RING,
                                  UART_IN_RING, COM1_TX, COM2_TX, COM1_IN, COM2_IN)

LCR_DLAB = 0x80
MCR_DTR = 0x01
MCR_RTS = 0x02
MCR_OUT1 = 0x04
MCR_OUT2 = 0x08        # on a PC, gates the interrupt line to the PIC
MCR_LOOP = 0x10
IER_RX = 0x01
IER_THRE = 0x02
IER_LINE = 0x04
IER_MODEM = 0x08
LSR_DR = 0x01
LSR_OE = 0x02
LSR_THRE = 0x20
LSR_TEMT = 0x40
IIR_NONE = 0x01
IIR_MODEM = 0x00
IIR_THRE = 0x02
IIR_RX = 0x04
IIR_LINE = 0x06
IIR_TIMEOUT = 0x0C
IIR_FIFOS = 0xC0
FCR_ENABLE = 0x01
FCR_CLEAR_RX = 0x02
TRIGGER_LEVELS = (1, 4, 8, 14)


@jit
def base(u):
    return UART_BASE + u * UART_STRIDE


@jit
def tx_ring(u):
    return COM1_TX if u == 0 else COM2_TX


@jit
def in_ring(u):
    return COM1_IN if u == 0 else COM2_IN


@jit
def fifo_capacity(dev, s):
    return UART_FIFO_SIZE if dev[s + U_FCR] & FCR_ENABLE else 1


@jit
def fifo_push(dev, s, byte):
    n = dev[s + U_RX_COUNT]
    if n >= fifo_capacity(dev, s):
        dev[s + U_OVERRUN] = 1
        return
    dev[s + U_FIFO + (dev[s + U_RX_HEAD] + n) % UART_FIFO_SIZE] = byte
    dev[s + U_RX_COUNT] = n + 1


@jit
def fifo_pop(dev, s):
    n = dev[s + U_RX_COUNT]
    if n == 0:
        return 0
    head = dev[s + U_RX_HEAD]
    v = dev[s + U_FIFO + head]
    dev[s + U_RX_HEAD] = (head + 1) % UART_FIFO_SIZE
    dev[s + U_RX_COUNT] = n - 1
    return v


@jit
def take_host_input(dev, u):
    """Move bytes the host sent into the receive FIFO while it has room
    (not in loopback, where the receiver hears only the transmitter)."""
    s = base(u)
    if dev[s + U_MCR] & MCR_LOOP:
        return
    ring = in_ring(u)
    while dev[s + U_IN_TAIL] < dev[s + U_IN_HEAD] and dev[s + U_RX_COUNT] < fifo_capacity(dev, s):
        fifo_push(dev, s, dev[ring + dev[s + U_IN_TAIL] % UART_IN_RING])
        dev[s + U_IN_TAIL] += 1


@jit
def wants_more_input(dev, u):
    """The input ring ran low while Python holds more: time to exit and refill."""
    s = base(u)
    return dev[s + U_IN_MORE] != 0 and dev[s + U_IN_HEAD] - dev[s + U_IN_TAIL] < UART_IN_RING // 2


@jit
def tx_ring_full(dev, u):
    s = base(u)
    return dev[s + U_TX_HEAD] - dev[s + U_TX_TAIL] >= UART_TX_RING


@jit
def modem_status(dev, s):
    """MSR bits 4-7 (CTS DSR RI DCD): the host side holds CTS, DSR and DCD
    asserted; in loopback they follow RTS, DTR, OUT1 and OUT2."""
    mcr = dev[s + U_MCR]
    if mcr & MCR_LOOP:
        return ((mcr & MCR_RTS) << 3) | ((mcr & MCR_DTR) << 5) | ((mcr & MCR_OUT1) << 4) \
            | ((mcr & MCR_OUT2) << 4)
    return 0x10 | 0x20 | 0x80


@jit
def note_modem_change(dev, s):
    now = modem_status(dev, s)
    changed = now ^ dev[s + U_MSR_LAST]
    delta = ((changed >> 4) & 0x0B)
    if (changed & 0x40) and not (now & 0x40):
        delta |= 0x04                 # TERI: trailing edge of RI
    dev[s + U_MSR_DELTA] |= delta
    dev[s + U_MSR_LAST] = now


@jit
def trigger_level(dev, s):
    return TRIGGER_LEVELS[(dev[s + U_FCR] >> 6) & 3]


@jit
def interrupt_identification(dev, s):
    """IIR bits 0-3 by priority: line status, received data, THR empty,
    modem status (data sheet, table IV)."""
    ier = dev[s + U_IER]
    if ier & IER_LINE and dev[s + U_OVERRUN]:
        return IIR_LINE
    if ier & IER_RX and dev[s + U_RX_COUNT] > 0:
        if dev[s + U_FCR] & FCR_ENABLE and dev[s + U_RX_COUNT] < trigger_level(dev, s):
            return IIR_TIMEOUT
        return IIR_RX
    if ier & IER_THRE and dev[s + U_THRE_PENDING]:
        return IIR_THRE
    if ier & IER_MODEM and dev[s + U_MSR_DELTA]:
        return IIR_MODEM
    return IIR_NONE


@jit
def irq_level(dev, u):
    """The interrupt line as the PIC sees it: pending and OUT2 set."""
    s = base(u)
    if not dev[s + U_MCR] & MCR_OUT2:
        return 0
    return 1 if interrupt_identification(dev, s) != IIR_NONE else 0


@jit
def transmit(dev, u, byte):
    s = base(u)
    if dev[s + U_MCR] & MCR_LOOP:
        fifo_push(dev, s, byte)
    else:
        ring = tx_ring(u)
        dev[ring + dev[s + U_TX_HEAD] % UART_TX_RING] = byte
        dev[s + U_TX_HEAD] += 1
    dev[s + U_THRE_PENDING] = 1      # THR is empty again at once


@jit
def read_port(dev, u, offset):
    """Ports base+0 .. base+7."""
    s = base(u)
    take_host_input(dev, u)
    dlab = dev[s + U_LCR] & LCR_DLAB
    if offset == 0:
        if dlab:
            return dev[s + U_DLL]
        v = fifo_pop(dev, s)
        take_host_input(dev, u)
        return v
    if offset == 1:
        return dev[s + U_DLM] if dlab else dev[s + U_IER]
    if offset == 2:
        iir = interrupt_identification(dev, s)
        if iir == IIR_THRE:
            dev[s + U_THRE_PENDING] = 0     # reading IIR reporting THRE clears it
        return iir | (IIR_FIFOS if dev[s + U_FCR] & FCR_ENABLE else 0)
    if offset == 3:
        return dev[s + U_LCR]
    if offset == 4:
        return dev[s + U_MCR]
    if offset == 5:
        lsr = LSR_THRE | LSR_TEMT
        if dev[s + U_RX_COUNT] > 0:
            lsr |= LSR_DR
        if dev[s + U_OVERRUN]:
            lsr |= LSR_OE
            dev[s + U_OVERRUN] = 0
        return lsr
    if offset == 6:
        note_modem_change(dev, s)
        v = dev[s + U_MSR_LAST] | dev[s + U_MSR_DELTA]
        dev[s + U_MSR_DELTA] = 0
        return v
    return dev[s + U_SCR]


@jit
def write_port(dev, u, offset, value):
    """Returns False when the transmit ring is full: the caller exits to let
    Python drain it and retries the write."""
    s = base(u)
    dlab = dev[s + U_LCR] & LCR_DLAB
    if offset == 0:
        if dlab:
            dev[s + U_DLL] = value
        else:
            if not dev[s + U_MCR] & MCR_LOOP and tx_ring_full(dev, u):
                return False
            dev[s + U_THRE_PENDING] = 0
            transmit(dev, u, value)
    elif offset == 1:
        if dlab:
            dev[s + U_DLM] = value
        else:
            if value & IER_THRE and not dev[s + U_IER] & IER_THRE:
                dev[s + U_THRE_PENDING] = 1   # enabling ETBEI with THR empty interrupts
            dev[s + U_IER] = value & 0x0F
    elif offset == 2:
        if value & FCR_CLEAR_RX or (value ^ dev[s + U_FCR]) & FCR_ENABLE:
            dev[s + U_RX_COUNT] = 0
            dev[s + U_RX_HEAD] = 0
        dev[s + U_FCR] = value & 0xC9
    elif offset == 3:
        dev[s + U_LCR] = value
    elif offset == 4:
        dev[s + U_MCR] = value & 0x1F
        note_modem_change(dev, s)
    elif offset == 7:
        dev[s + U_SCR] = value
    take_host_input(dev, u)
    return True


@jit
def reset(dev, u):
    s = base(u)
    for i in range(UART_STRIDE):
        if i not in (U_TX_HEAD, U_TX_TAIL, U_IN_HEAD, U_IN_TAIL, U_IN_MORE):
            dev[s + i] = 0
    dev[s + U_DLL] = 12          # 9600 baud (the latch is undefined after a hardware reset)
    dev[s + U_MSR_LAST] = modem_status(dev, s)
