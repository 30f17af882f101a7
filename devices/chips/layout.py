"""Slots of the device state array ``dev`` (int64) and the port map.

Every chip keeps its whole state in its own slice of ``dev`` so that a
snapshot of the board is a copy of one array.  The port map ``ports``
(uint8[65536]) names, for each I/O port, the chip that answers it; it is
built from data in devices/board.py, which refuses overlaps.
"""

# --- who answers a port (values of the port map) ----------------------------
CHIP_NONE = 0          # unassigned: reads all ones, writes are dropped
CHIP_PYTHON = 1        # a device written in Python: the run loop exits to serve it
CHIP_PIC_MASTER = 2
CHIP_PIC_SLAVE = 3
CHIP_PIT = 4
CHIP_PORT61 = 5        # system control port B: PIT channel 2 gate, speaker, refresh
CHIP_COM1 = 6
CHIP_COM2 = 7
CHIP_RTC = 8
CHIP_KBC = 9
CHIP_PORT92 = 10       # system control port A: fast A20, reset
CHIP_POST = 11         # port 0x80, POST codes
CHIP_DEBUG_EXIT = 12   # QEMU-compatible isa-debug-exit
CHIP_ATA = 13          # primary ATA channel: command block 0x1F0-0x1F7
CHIP_ATA_CONTROL = 14  # its control block: 0x3F6 (alternate status / device control)
CHIP_COUNT = 15

# --- the virtual clock and the bus ------------------------------------------
# Virtual time in ns is CLK_BASE_NS + (ICOUNT - CLK_BASE_ICOUNT) * CLK_NS_PER_INSN:
# it follows retired instructions, and jumps ahead to the next deadline
# while the CPU halts, so a run is deterministic.
CLK_BASE_NS = 0
CLK_BASE_ICOUNT = 1
CLK_NS_PER_INSN = 2
DEADLINE_ICOUNT = 3    # the run loop calls devices_catch_up when ICOUNT reaches it
NEXT_EVENT_NS = 4      # earliest device deadline in ns (NEVER if none)
LAST_NS = 5            # virtual time at the last catch-up (time never goes back)
POST_CODE = 6
PORT92_VALUE = 7
RESET_REQUESTED = 8
CLK_HOST = 9           # 1: time follows the host clock (Python rebases it); HLT does not skip ahead
MMIO_COUNT = 10        # Python devices on physical address ranges outside RAM
ROM_LOCKED = 11        # 1: F0000-FFFFF holds the BIOS ROM (writes dropped), aliased below 4 GiB
MMIO_TABLE = 104       # MMIO_MAX pairs (first, end) at MMIO_TABLE..
MMIO_MAX = 8
NEVER = 1 << 62

# --- 8259A PICs: master at PIC_BASE, slave at PIC_BASE + PIC_STRIDE ----------
PIC_BASE = 16
PIC_STRIDE = 16
PIC_IRR = 0
PIC_IMR = 1
PIC_ISR = 2
PIC_LINES = 3          # level of each input pin
PIC_VECTOR_BASE = 4    # ICW2 & 0xF8
PIC_INIT_STEP = 5      # 0 ready; 2, 3, 4: expecting ICW2, ICW3, ICW4
PIC_ICW1 = 6
PIC_ICW4 = 7
PIC_READ_ISR = 8       # OCW3: the command port reads ISR (1) or IRR (0)
PIC_POLL = 9           # OCW3 poll command pending
PIC_SPECIAL_MASK = 10  # OCW3 special mask mode
PIC_LOWEST = 11        # lowest-priority line (priority rotation); 7 after init
PIC_ROTATE_AEOI = 12
PIC_ICW3 = 13

# --- 8254 PIT: three channels ------------------------------------------------
PIT_BASE = 48
PIT_STRIDE = 16
PIT_COUNT = 0          # reload value N, 1..65536 (binary) or 1..10000 (BCD)
PIT_MODE = 1
PIT_ACCESS = 2         # 1 low byte, 2 high byte, 3 low then high
PIT_BCD = 3
PIT_WRITE_HIGH = 4     # next byte written is the high byte (access 3)
PIT_READ_HIGH = 5      # next byte read is the high byte (access 3)
PIT_LATCHED = 6        # bytes of a latched count still to read (0, 1, 2)
PIT_LATCH_VALUE = 7
PIT_STATUS_LATCHED = 8
PIT_STATUS_VALUE = 9
PIT_START_TICK = 10    # PIT clock tick at which counting (re)started; -1 while not counting
PIT_GATE = 11
PIT_FROZEN = 12        # count held while the gate is low (modes 0, 2, 3, 4); -1 if none
PIT_NULL = 13          # null count flag of the status byte
PIT_NEXT_EDGE = 14     # channel 0: tick of the next rising OUT edge (IRQ 0); -1 none
PIT_LOW_BYTE = 15      # first byte of a low-then-high write
PORT61_VALUE = 100     # bits 0-3 as last written to port 0x61

# --- 16550A UARTs: COM1 at UART_BASE, COM2 at UART_BASE + UART_STRIDE --------
UART_BASE = 128
UART_STRIDE = 48
U_IER = 0
U_LCR = 1
U_MCR = 2
U_SCR = 3
U_DLL = 4
U_DLM = 5
U_FCR = 6              # FIFO control as last written (bit 0: FIFOs enabled)
U_OVERRUN = 7          # LSR.OE, cleared by reading LSR
U_THRE_PENDING = 8     # THR-empty interrupt pending (cleared by IIR read or THR write)
U_MSR_DELTA = 9        # MSR bits 0-3
U_RX_COUNT = 10        # bytes in the receive FIFO
U_RX_HEAD = 11
U_TX_HEAD = 12         # transmit ring: bytes written (monotonic)
U_TX_TAIL = 13         # transmit ring: bytes drained by Python (monotonic)
U_IN_HEAD = 14         # host input ring: bytes pushed by Python (monotonic)
U_IN_TAIL = 15         # host input ring: bytes taken into the receive FIFO
U_IRQ_LEVEL = 16
U_MSR_LAST = 17        # modem status lines last reported (bits 4-7)
U_IN_MORE = 18         # Python holds more host input than the ring had room for
U_FIFO = 32            # 16 bytes of receive FIFO
UART_FIFO_SIZE = 16
# rings of bytes held one per int64 slot
UART_TX_RING = 4096
UART_IN_RING = 1024
COM1_TX = 1024
COM2_TX = COM1_TX + UART_TX_RING
COM1_IN = COM2_TX + UART_TX_RING
COM2_IN = COM1_IN + UART_IN_RING

# --- MC146818 RTC / CMOS ----------------------------------------------------
RTC_BASE = 240
RTC_INDEX = 0
RTC_NMI_DISABLED = 1
RTC_EPOCH = 2          # seconds since 1970 that virtual time 0 corresponds to
RTC_OFFSET = 3         # seconds added by guest writes to the clock
RTC_NEXT_PERIODIC = 4  # ns of the next periodic interrupt; -1 none
RTC_NEXT_UPDATE = 5    # ns of the next update-ended event; -1 none
RTC_IRQ_LEVEL = 6
RTC_FLAGS = 7          # register C
RTC_RAM = 384          # 128 bytes of CMOS RAM, one per slot
RTC_RAM_SIZE = 128

# --- 8042 keyboard controller ---------------------------------------------------
KBC_BASE = 272
KBC_COMMAND_BYTE = 0
KBC_OUTPUT_PORT = 1    # bit 0: not reset, bit 1: A20
KBC_PENDING = 2        # controller command waiting for its data byte, 0 if none
KBC_KBD_PENDING = 3    # keyboard command waiting for its data byte, 0 if none
KBC_OUT_COUNT = 4      # bytes queued for the output buffer
KBC_OUT_HEAD = 5
KBC_LAST_WAS_COMMAND = 6
KBC_KBD_ENABLED = 7
KBC_IRQ_LEVEL = 8
KBC_SCANCODE_SET = 9
KBC_OUT_QUEUE = 16     # 16 queued bytes
KBC_OUT_SOURCE = 32    # 16 queued sources (0 controller, 1 keyboard, 2 aux)
KBC_QUEUE_SIZE = 16

# --- ATA (IDE) controller, primary channel, one disk as master -----------------
ATA_BASE = COM2_IN + UART_IN_RING
A_FEATURES = 0
A_ERROR = 1
A_NSECT = 2
A_LBA0 = 3
A_LBA1 = 4
A_LBA2 = 5
A_SELECT = 6           # drive/head register
A_STATUS = 7
A_CONTROL = 8          # device control: bit 1 nIEN, bit 2 SRST
A_COMMAND = 9          # the command being served
A_BUF_POS = 10         # next byte of the sector buffer
A_BUF_LEN = 11         # bytes in the buffer (0 when no transfer)
A_REMAINING = 12       # sectors still to transfer
A_LBA = 13             # sector the buffer belongs to
A_BLOCK = 14           # sectors per interrupt (1, or the READ/WRITE MULTIPLE setting)
A_MULTIPLE = 15        # SET MULTIPLE MODE setting (0: off)
A_IRQ = 16             # INTRQ pending
A_SECTORS = 17         # size of the disk in sectors (0: no disk)
A_CYLINDERS = 18
A_HEADS = 19
A_SPT = 20
A_IN_BLOCK = 21        # sectors moved in the current block
A_BUF = 32             # 512 bytes of sector buffer, one per slot
ATA_SLOTS = A_BUF + 512

# metering: bytes of port I/O each chip served in the loop, by CHIP_* (IN, then OUT)
IO_IN_BYTES = ATA_BASE + ATA_SLOTS
IO_OUT_BYTES = IO_IN_BYTES + 16
DEV_SLOTS = IO_OUT_BYTES + 16
