"""Slot constants for the state arrays, decoded-record fields and exit codes.

The whole guest lives in a few numpy arrays bundled in a ``Guest``
(emu/core/guest.py: jitted code receives it as one pointer):

- ``cpu``  int64[CPU_SLOTS]: registers, hidden segment state, control
  registers, lazy-flag record, pending fault, exit reason, counters.
- ``mem``  uint8[ram_size]: guest physical RAM.
- ``pm``   int64[pages]: per 4 KiB physical page metadata (code-page bit and
  generation counter for the decoded-instruction cache, dirty bit).
- ``ic``   int64[IC_ENTRIES, D_FIELDS]: the decoded-instruction cache.
- ``dev``  int64[DEV_SLOTS]: the state of every chip on the board and the
  virtual clock (slots in devices/chips/layout.py).
- ``ports`` uint8[65536]: which chip answers each I/O port (devices/board.py).
- ``tlb``  int64[TLB_ENTRIES, 2]: the software TLB (core/memory.py): linear
  page + 1 as the tag, and the physical page with its rights.
- ``disk`` uint8[bytes]: the hard disk's contents (a copy-on-write map of
  the image file), served by the ATA controller (devices/chips/ata.py).
"""
from emu.core.guest import Guest  # noqa: F401 - the bundle's home is guest.py

# --- general registers, in ModRM encoding order (SDM Vol. 2, 2.1.5) -------
EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI = range(8)
EIP = 8
EFLAGS = 9          # architectural EFLAGS; arithmetic bits stale while LF_OP != LF_NONE

# --- segment registers: selector, hidden base, limit, attributes -----------
ES, CS, SS, DS, FS, GS, LDTR, TR = range(8)
SEG_NAMES = ("es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr")
SEG_SLOTS = 16
SEG_STRIDE = 4
SEG_SEL, SEG_BASE, SEG_LIMIT, SEG_ATTR = range(4)
# ATTR holds descriptor byte 5 (type, S, DPL, P) in bits 0-7 and the flags
# nibble (AVL, L, D/B, G) in bits 12-15, exactly as in a descriptor's high
# dword bits 8-15 and 20-23 shifted down by 8.  Bit 16 marks a segment
# register loaded with a null selector in protected mode (unusable).
ATTR_TYPE_MASK = 0x0F
ATTR_ACCESSED = 0x01
ATTR_S = 0x10        # code/data (1) or system (0)
ATTR_DPL_SHIFT = 5
ATTR_P = 0x80
ATTR_DB = 0x4000     # default operand size / big
ATTR_G = 0x8000
ATTR_UNUSABLE = 0x10000
# the attributes a real-mode segment load leaves (present, DPL 0, data r/w, accessed)
ATTR_REAL_DATA = 0x93
ATTR_REAL_CODE = 0x9B

GDTR_BASE, GDTR_LIMIT, IDTR_BASE, IDTR_LIMIT = 48, 49, 50, 51
CR0, CR2, CR3, CR4 = 52, 53, 54, 55
DR0 = 56            # DR0..DR7 at 56..63

# --- lazy flags (see core/flags.py) ----------------------------------------
LF_OP, LF_A, LF_B, LF_R, LF_SIZE = 64, 65, 66, 67, 68

# --- per-instruction execution state ---------------------------------------
NEXT_EIP = 70       # where EIP goes when the instruction retires
FAULT = 71          # pending exception vector, -1 if none
FAULT_ERR = 72      # its error code, -1 if the exception has none
EA = 73             # effective address (offset) of the memory operand
INSN_EIP = 74       # EIP of the instruction being executed
CPL = 75
ICOUNT = 76         # instructions retired
TSC_OFFSET = 77     # TSC = ICOUNT + TSC_OFFSET (virtual, deterministic)
HALTED = 78
A20_MASK = 79
RAM_SIZE = 80
EXIT_REASON = 81
EXIT_VECTOR = 82
EXIT_ERROR = 83
EXIT_ARG = 84
OPTIONS = 85        # OPT_* bits
IO_PORT, IO_SIZE, IO_DIR, IO_DATA, IO_PENDING = 86, 87, 88, 89, 90
INHIBIT_IRQ = 91    # one-instruction interrupt shadow (STI, MOV SS, POP SS)
SYSENTER_CS_MSR, SYSENTER_ESP_MSR, SYSENTER_EIP_MSR = 92, 93, 94
DELIVERING = 95     # vector being delivered (for #DF / triple fault), -1 if none
ICACHE_HITS, ICACHE_MISSES = 96, 97
BP_COUNT = 98       # number of active breakpoints at BP_FIRST..
FAULT_CLASS = 99
FAULT_STOP = 100    # 1 while a fault that stops the run is being reported
SHADOW_DONE = 101
STRING_PAGED = 102  # REP MOVS/STOS elements done a page at a time (isa/string.py string_run): a counter
DESC_SCRATCH = 104   # two slots: a descriptor read by faults.py (lo, hi)
INTR_LINE = 106     # the PIC's INT output: a maskable interrupt is requested
NMI_PENDING = 107
NMI_BLOCKED = 108   # NMI handler running: further NMIs wait for the next IRET (SDM Vol. 3, 6.7.1)
IO_RETRY = 109      # a chip could not take a write now (full transmit ring): retry it
EFER = 110          # MSR C000_0080: only NXE is implemented
BP_FIRST = 112
BP_MAX = 16
# a Python device on a physical address range outside RAM (an MMIO exit):
# the access that exits, and the results Python served for the retry
MMIO_ADDR, MMIO_SIZE, MMIO_DIR, MMIO_DATA = 128, 129, 130, 131
MMIO_READ_READY = 132   # physical address + 1 of a served read, 0 if none
MMIO_READ_VALUE = 133
MMIO_WRITE_DONE = 134   # physical address + 1 of a served write, 0 if none
MMIO_SERVED = 135       # either of the two is set: cleared when the instruction retires
VEC_MMIO_EXIT = 256     # FAULT value: abort the instruction, exit to Python, run it again
SCRATCH = 136       # 32 slots for instructions that must read everything before committing
# the last interrupt or exception delivered (for traces and metering): a
# count of deliveries, and the vector, kind (faults.EVENT_*) and error code
EVENT_COUNT, LAST_EVENT_VECTOR, LAST_EVENT_KIND, LAST_EVENT_ERROR = 168, 169, 170, 171
# watchpoints (memory.watch_check, isa/io.watch_port): WATCH_COUNT entries
# of (first, last + 1, kind) from WATCH_FIRST, on linear addresses for
# WATCH_READ|WATCH_WRITE and on ports for WATCH_PORT; the access that hit
# ends the run after its instruction retires.  WATCH_HIT_KIND is the
# access: WATCH_READ or WATCH_WRITE, plus WATCH_PORT for IN and OUT
WATCH_COUNT = 176
WATCH_HIT_ADDR, WATCH_HIT_SIZE, WATCH_HIT_KIND = 177, 178, 179
WATCH_FIRST = 180
WATCH_STRIDE = 3
WATCH_MAX = 8
WATCH_READ = 1
WATCH_WRITE = 2
WATCH_PORT = 4
# batch mode (batch.py): a table of case records in guest RAM, each run
# from its own registers, flags, code and data window, its outcome written
# back over the record, with no return to Python between cases
BATCH_LEFT = 208        # cases still to run; 0 when not in batch mode
BATCH_RECORD = 209      # physical address of the current record
BATCH_RECORD_SIZE = 210
BATCH_CODE = 211        # physical address the case's code is copied to
BATCH_EIP = 212         # EIP each case starts at
BATCH_WINDOW = 213      # physical address of the data window
BATCH_WINDOW_LEN = 214
BATCH_STEPS = 215       # attempts of the current case (a REP instruction yields every 1024 elements)
REP_YIELD = 216         # set by a REP string instruction that stopped to let the loop check events
UNDEFINED_FLAGS = 217   # UNDEF_*: how flags the SDM leaves undefined are set (flags.undefined)
FAST_RETIRED = 218      # instructions retired by the fast tier (core/fastpath.py): a counter
JIT_REQUEST = 219       # EIP << 16 | icache row + 1 of a block start that got hot: Python compiles it
JIT_THRESHOLD = 220     # starts of a block before it is compiled; 0: compiled blocks off
JIT_DEFAULT_THRESHOLD = 1000  # a compile costs ~10-20 ms (~2 million interpreted instructions)
JIT_RETIRED = 221       # instructions retired in compiled blocks: a counter
JIT_ATTEMPTS = 222      # EXIT_COMPILE: the loop's attempts (its budget count) before the exit
JIT_REQUEST_ENV = 223   # the entry conditions (BLOCK_ENV_*) the requested block is for
# compiled blocks' bookkeeping: when a block goes in depends on how fast the
# host compiles it (emu/blocks.py: the compile thread), so these are left
# out of snapshots (0 there) to keep a run's snapshots a function of the guest
JIT_BOOKKEEPING = (JIT_REQUEST, JIT_RETIRED, JIT_ATTEMPTS, JIT_REQUEST_ENV)
# slots that count what caches did, not machine state: machines with the same
# history but different caches (a clone, a restored snapshot) differ only here
CACHE_STATISTICS = (ICACHE_HITS, ICACHE_MISSES, JIT_REQUEST, JIT_RETIRED, JIT_ATTEMPTS, JIT_REQUEST_ENV)
CPU_SLOTS = 224

# policies for the flags the SDM leaves undefined (flags.pick_undefined):
# as Intel processors set them (box64's model of modern Intel cores; not
# measured here), as AMD's do (measured on a Zen 4 by `emu fuzz`), or zero
UNDEF_INTEL, UNDEF_AMD, UNDEF_ZERO = 0, 1, 2
UNDEF_NAMES = ("intel", "amd", "zero")

# a case record (little-endian dwords), the window follows the header; the
# outcome overwrites it: registers, EFLAGS and the window as they are after
# the instruction, and what ended it
REC_REGS = 0            # EAX..EDI
REC_EFLAGS = 32
REC_CODE_LEN = 36       # case: bytes of code (1-15)
REC_CODE = 37           # case: the code
REC_EIP = 36            # outcome: EIP after
REC_EXIT = 40           # outcome: EXIT_* (EXIT_NONE: it retired)
REC_VECTOR = 44         # outcome: the exception's vector, -1 if none
REC_ERROR = 48          # outcome: its error code, -1 if none
REC_HEADER = 64
BATCH_MAX_STEPS = 64    # REP continuations of one case before it is ended with EXIT_BUDGET

OPT_STOP_ON_EXCEPTION = 1   # report guest exceptions as an exit instead of delivering them
OPT_BREAK_ON_INT3 = 2       # INT3 ends the run with a breakpoint exit
OPT_NO_FAST_PATH = 4        # every instruction takes the generic path (core/fastpath.py)

# --- EFLAGS bits (SDM Vol. 1, 3.4.3) ---------------------------------------
FLAG_CF = 1 << 0
FLAG_RESERVED1 = 1 << 1
FLAG_PF = 1 << 2
FLAG_AF = 1 << 4
FLAG_ZF = 1 << 6
FLAG_SF = 1 << 7
FLAG_TF = 1 << 8
FLAG_IF = 1 << 9
FLAG_DF = 1 << 10
FLAG_OF = 1 << 11
FLAG_IOPL = 3 << 12
FLAG_NT = 1 << 14
FLAG_RF = 1 << 16
FLAG_VM = 1 << 17
FLAG_AC = 1 << 18
FLAG_VIF = 1 << 19
FLAG_VIP = 1 << 20
FLAG_ID = 1 << 21
FLAGS_ARITH = FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF
# bits software can change on this CPU (i486 + CPUID: AC and ID exist)
FLAGS_WRITABLE = (FLAGS_ARITH | FLAG_TF | FLAG_IF | FLAG_DF | FLAG_IOPL | FLAG_NT
                  | FLAG_RF | FLAG_VM | FLAG_AC | FLAG_ID)

# --- control register bits (SDM Vol. 3, 2.5) --------------------------------
CR0_PE = 1 << 0
CR0_MP = 1 << 1
CR0_EM = 1 << 2
CR0_TS = 1 << 3
CR0_ET = 1 << 4
CR0_NE = 1 << 5
CR0_WP = 1 << 16
CR0_AM = 1 << 18
CR0_NW = 1 << 29
CR0_CD = 1 << 30
CR0_PG = 1 << 31
CR4_VME = 1 << 0
CR4_PVI = 1 << 1
CR4_TSD = 1 << 2
CR4_DE = 1 << 3
CR4_PSE = 1 << 4
CR4_PAE = 1 << 5
CR4_PGE = 1 << 7
EFER_NXE = 1 << 11

# --- exception vectors (SDM Vol. 3, 6.3.1) ----------------------------------
VEC_DE, VEC_DB, VEC_NMI, VEC_BP, VEC_OF, VEC_BR, VEC_UD, VEC_NM = range(8)
VEC_DF, VEC_TS, VEC_NP, VEC_SS, VEC_GP, VEC_PF = 8, 10, 11, 12, 13, 14
VEC_MF, VEC_AC = 16, 17
NO_ERROR_CODE = -1

# --- exit reasons returned by run() ----------------------------------------
EXIT_NONE = 0
EXIT_BUDGET = 1
EXIT_HALT = 2
EXIT_EXCEPTION = 3
EXIT_SHUTDOWN = 4
EXIT_IO = 5
EXIT_BREAKPOINT = 6
EXIT_DEBUG_EXIT = 7     # the guest wrote the debug-exit port; EXIT_ARG = exit status
EXIT_RESET = 8          # the guest reset the machine (8042 pulse, port 0x92)
EXIT_SERIAL = 9         # the serial transmit ring is full: Python drains it and continues
EXIT_MMIO = 10          # an access to a Python device's MMIO range (MMIO_* slots)
EXIT_WATCH = 11         # a data watchpoint was hit (WATCH_HIT_* slots); the instruction retired
EXIT_BATCH = 12         # batch mode ran its last case (or its table was refused: EXIT_ARG = -1)
EXIT_COMPILE = 13       # a block got hot (JIT_REQUEST): Python compiles it and resumes (JIT_ATTEMPTS)
EXIT_NAMES = ("none", "budget", "halt", "exception", "shutdown", "io", "breakpoint", "debug_exit",
              "reset", "serial", "mmio", "watch", "batch", "compile")

# --- decoded-instruction record (one row of the icache) ---------------------
D_TAG = 0           # ((physical address of the first byte + 1) << IC_TAG_SHIFT) | decode mode; 0: empty
D_GEN = 1           # page generation when decoded (see memory.invalidate_code)
D_MODE = 2          # decode mode (MODE_* bits) the record is valid for
D_LEN = 3
D_ROW = 4           # row of the opcode table
D_MNEM = 5
D_GROUP = 6
D_OSIZE = 7         # effective operand size in bytes (2 or 4)
D_ASIZE = 8         # effective address size in bytes (2 or 4)
D_SEG = 9           # segment of the memory operand (override or default)
D_SEGOVR = 10       # segment override prefix, -1 if none
D_REP = 11          # REP_NONE, REP_NE (F2), REP_E (F3)
D_LOCK = 12
D_MOD = 13
D_REG = 14
D_RM = 15
D_BASE = 16         # base register of the memory operand, -1 if none
D_INDEX = 17        # index register, -1 if none
D_SCALE = 18        # index shift (0-3)
D_DISP = 19
D_IMM = 20
D_IMM2 = 21
D_K0, D_K1, D_K2 = 22, 23, 24       # operand kinds (K_*)
D_S0, D_S1, D_S2 = 25, 26, 27       # operand sizes in bytes
D_OPCODE = 28       # opcode byte, +0x100 for the 0F map
D_NOPS = 29
D_HASMEM = 30       # the instruction has a ModRM memory operand or moffs
D_FAST = 31         # fast-tier operation and operands (core/fastpath.py), 0: generic path
# a compiled block starting at this instruction (emu/blocks.py; cleared on every decode)
D_BLOCK = 32        # address of its machine code, 0: none
D_BLOCK_KEY = 33    # the EIP it was compiled for | its instruction count << 32 | its BLOCK_ENV_* << 39
D_HEAT = 34         # times the fast tier started a run of instructions here (BLOCK_NEVER: not compilable)
D_FIELDS = 35
BLOCK_NEVER = -1
BLOCK_PENDING = -2  # D_HEAT: being compiled (emu/blocks.py puts it in when it is ready)
BLOCK_KEY_LENGTH = 32   # 7 bits: a block holds 64 instructions at most
BLOCK_KEY_ENV = 39      # 24 bits (blockcall.BLOCK_ENV_*)
BLOCK_KEY_MATCH = 0xFFFFFFFF | (0xFFFFFF << BLOCK_KEY_ENV)   # the EIP and the entry conditions

TLB_BITS = 11
TLB_ENTRIES = 1 << TLB_BITS

IC_BITS = 14
IC_TAG_SHIFT = 3    # D_TAG holds the decode mode (MODE_* bits) below the address
IC_ENTRIES = 1 << IC_BITS

MODE_CS32 = 1       # CS.D: default operand and address size 32
MODE_PE = 2         # protected mode
MODE_VM = 4         # virtual-8086 mode

REP_NONE, REP_NE, REP_E = 0, 2, 3

# --- operand kinds ----------------------------------------------------------
K_NONE = 0
K_RM = 1            # E: ModRM r/m, register or memory
K_REG = 2           # G: ModRM reg, general register
K_IMM = 3           # I: immediate (D_IMM)
K_IMM2 = 4          # second immediate (D_IMM2), e.g. ENTER's level
K_REL = 5           # J: relative offset (D_IMM, sign-extended)
K_MOFFS = 6         # O: direct memory offset (D_DISP)
K_OPREG = 7         # Z: general register in the opcode's low three bits
K_SREG = 8          # S: segment register in ModRM reg
K_CREG = 9          # C: control register in ModRM reg
K_DREG = 10         # D: debug register in ModRM reg
K_FARPTR = 11       # A: immediate far pointer, offset D_IMM, selector D_IMM2
K_MEM = 12          # M: memory only (mod = 3 is #UD)
K_ONE = 13          # the constant 1 (shift by one)
K_STRSRC = 14       # X: DS:rSI
K_STRDST = 15       # Y: ES:rDI
K_GPR = 16          # 16..23: a fixed general register (AL, CL, DX, eAX ...)
K_SEGFIX = 24       # 24..29: a fixed segment register (PUSH ES ...)
K_RMREG = 30        # R: ModRM r/m that must name a register (MOV CRn/DRn)

# operand-size codes in the decode tables (positive = bytes)
SZ_V = -1           # word or dword by operand size
SZ_P = -3           # far pointer: offset (v) + 16-bit selector
SZ_A = -4           # BOUND pair: two v-sized values
SZ_S = -5           # pseudo-descriptor (6 bytes)
