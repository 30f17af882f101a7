"""THE opcode table of visor86.

Written in the notation of the Intel SDM, Vol. 2, appendix A (opcode map):
operands are an addressing method letter followed by a size letter.

Addressing methods                      Sizes
  E  ModRM r/m (register or memory)       b  byte
  G  ModRM reg (general register)         w  word
  I  immediate (Ibs: byte, sign-extended) d  dword
  J  relative offset                      q  qword
  M  ModRM memory only (mod=3 is #UD)     v  word or dword by operand size
  O  direct offset, no ModRM              z  word or dword by operand size
  A  immediate far pointer                p  far pointer (offset v, selector w)
  S  ModRM reg names a segment register   a  two v-sized values (BOUND)
  C  ModRM reg names a control register   s  6-byte pseudo-descriptor
  D  ModRM reg names a debug register
  R  ModRM r/m names a general register (mod ignored)
  Z  general register in the opcode's low three bits (AMD's notation)
  X  DS:rSI string source, Y  ES:rDI string destination
  1  the constant 1; AL CL DX eAX ES CS ...  fixed registers

An opcode is two hex digits (``0F xx`` for the two-byte map), with ``/n``
for the ModRM reg extension of a group, ``+r`` for eight opcodes that name a
register in their low bits, and ``+cc`` for the sixteen condition codes.
The tests, the decoder tables, the dispatcher, the coverage document, the
fuzzer and the disassembly cross-check all read this file.
"""

# opcode      mnemonic   operands
OPCODE_MAP = """
00            ADD        Eb,Gb
01            ADD        Ev,Gv
02            ADD        Gb,Eb
03            ADD        Gv,Ev
04            ADD        AL,Ib
05            ADD        eAX,Iz
06            PUSH       ES
07            POP        ES
08            OR         Eb,Gb
09            OR         Ev,Gv
0A            OR         Gb,Eb
0B            OR         Gv,Ev
0C            OR         AL,Ib
0D            OR         eAX,Iz
0E            PUSH       CS
10            ADC        Eb,Gb
11            ADC        Ev,Gv
12            ADC        Gb,Eb
13            ADC        Gv,Ev
14            ADC        AL,Ib
15            ADC        eAX,Iz
16            PUSH       SS
17            POP        SS
18            SBB        Eb,Gb
19            SBB        Ev,Gv
1A            SBB        Gb,Eb
1B            SBB        Gv,Ev
1C            SBB        AL,Ib
1D            SBB        eAX,Iz
1E            PUSH       DS
1F            POP        DS
20            AND        Eb,Gb
21            AND        Ev,Gv
22            AND        Gb,Eb
23            AND        Gv,Ev
24            AND        AL,Ib
25            AND        eAX,Iz
27            DAA
28            SUB        Eb,Gb
29            SUB        Ev,Gv
2A            SUB        Gb,Eb
2B            SUB        Gv,Ev
2C            SUB        AL,Ib
2D            SUB        eAX,Iz
2F            DAS
30            XOR        Eb,Gb
31            XOR        Ev,Gv
32            XOR        Gb,Eb
33            XOR        Gv,Ev
34            XOR        AL,Ib
35            XOR        eAX,Iz
37            AAA
38            CMP        Eb,Gb
39            CMP        Ev,Gv
3A            CMP        Gb,Eb
3B            CMP        Gv,Ev
3C            CMP        AL,Ib
3D            CMP        eAX,Iz
3F            AAS
40+r          INC        Zv
48+r          DEC        Zv
50+r          PUSH       Zv
58+r          POP        Zv
60            PUSHA
61            POPA
62            BOUND      Gv,Ma
63            ARPL       Ew,Gw
68            PUSH       Iz
69            IMUL       Gv,Ev,Iz
6A            PUSH       Ibs
6B            IMUL       Gv,Ev,Ibs
6C            INS        Yb,DX
6D            INS        Yv,DX
6E            OUTS       DX,Xb
6F            OUTS       DX,Xv
70+cc         Jcc        Jb
80/0          ADD        Eb,Ib
80/1          OR         Eb,Ib
80/2          ADC        Eb,Ib
80/3          SBB        Eb,Ib
80/4          AND        Eb,Ib
80/5          SUB        Eb,Ib
80/6          XOR        Eb,Ib
80/7          CMP        Eb,Ib
81/0          ADD        Ev,Iz
81/1          OR         Ev,Iz
81/2          ADC        Ev,Iz
81/3          SBB        Ev,Iz
81/4          AND        Ev,Iz
81/5          SUB        Ev,Iz
81/6          XOR        Ev,Iz
81/7          CMP        Ev,Iz
82/0          ADD        Eb,Ib
82/1          OR         Eb,Ib
82/2          ADC        Eb,Ib
82/3          SBB        Eb,Ib
82/4          AND        Eb,Ib
82/5          SUB        Eb,Ib
82/6          XOR        Eb,Ib
82/7          CMP        Eb,Ib
83/0          ADD        Ev,Ibs
83/1          OR         Ev,Ibs
83/2          ADC        Ev,Ibs
83/3          SBB        Ev,Ibs
83/4          AND        Ev,Ibs
83/5          SUB        Ev,Ibs
83/6          XOR        Ev,Ibs
83/7          CMP        Ev,Ibs
84            TEST       Eb,Gb
85            TEST       Ev,Gv
86            XCHG       Eb,Gb
87            XCHG       Ev,Gv
88            MOV        Eb,Gb
89            MOV        Ev,Gv
8A            MOV        Gb,Eb
8B            MOV        Gv,Ev
8C            MOV        Ev,Sw
8D            LEA        Gv,M
8E            MOV        Sw,Ew
8F/0          POP        Ev
90            NOP
91            XCHG       Zv,eAX
92            XCHG       Zv,eAX
93            XCHG       Zv,eAX
94            XCHG       Zv,eAX
95            XCHG       Zv,eAX
96            XCHG       Zv,eAX
97            XCHG       Zv,eAX
98            CBW
99            CWD
9A            CALLF      Ap
9B            WAIT
9C            PUSHF
9D            POPF
9E            SAHF
9F            LAHF
A0            MOV        AL,Ob
A1            MOV        eAX,Ov
A2            MOV        Ob,AL
A3            MOV        Ov,eAX
A4            MOVS       Yb,Xb
A5            MOVS       Yv,Xv
A6            CMPS       Xb,Yb
A7            CMPS       Xv,Yv
A8            TEST       AL,Ib
A9            TEST       eAX,Iz
AA            STOS       Yb,AL
AB            STOS       Yv,eAX
AC            LODS       AL,Xb
AD            LODS       eAX,Xv
AE            SCAS       AL,Yb
AF            SCAS       eAX,Yv
B0+r          MOV        Zb,Ib
B8+r          MOV        Zv,Iv
C0/0          ROL        Eb,Ib
C0/1          ROR        Eb,Ib
C0/2          RCL        Eb,Ib
C0/3          RCR        Eb,Ib
C0/4          SHL        Eb,Ib
C0/5          SHR        Eb,Ib
C0/6          SHL        Eb,Ib
C0/7          SAR        Eb,Ib
C1/0          ROL        Ev,Ib
C1/1          ROR        Ev,Ib
C1/2          RCL        Ev,Ib
C1/3          RCR        Ev,Ib
C1/4          SHL        Ev,Ib
C1/5          SHR        Ev,Ib
C1/6          SHL        Ev,Ib
C1/7          SAR        Ev,Ib
C2            RET        Iw
C3            RET
C4            LES        Gv,Mp
C5            LDS        Gv,Mp
C6/0          MOV        Eb,Ib
C7/0          MOV        Ev,Iz
C8            ENTER      Iw,Ib
C9            LEAVE
CA            RETF       Iw
CB            RETF
CC            INT3
CD            INT        Ib
CE            INTO
CF            IRET
D0/0          ROL        Eb,1
D0/1          ROR        Eb,1
D0/2          RCL        Eb,1
D0/3          RCR        Eb,1
D0/4          SHL        Eb,1
D0/5          SHR        Eb,1
D0/6          SHL        Eb,1
D0/7          SAR        Eb,1
D1/0          ROL        Ev,1
D1/1          ROR        Ev,1
D1/2          RCL        Ev,1
D1/3          RCR        Ev,1
D1/4          SHL        Ev,1
D1/5          SHR        Ev,1
D1/6          SHL        Ev,1
D1/7          SAR        Ev,1
D2/0          ROL        Eb,CL
D2/1          ROR        Eb,CL
D2/2          RCL        Eb,CL
D2/3          RCR        Eb,CL
D2/4          SHL        Eb,CL
D2/5          SHR        Eb,CL
D2/6          SHL        Eb,CL
D2/7          SAR        Eb,CL
D3/0          ROL        Ev,CL
D3/1          ROR        Ev,CL
D3/2          RCL        Ev,CL
D3/3          RCR        Ev,CL
D3/4          SHL        Ev,CL
D3/5          SHR        Ev,CL
D3/6          SHL        Ev,CL
D3/7          SAR        Ev,CL
D4            AAM        Ib
D5            AAD        Ib
D6            SALC
D7            XLAT
D8+r          ESC        Ev
E0            LOOPNE     Jb
E1            LOOPE      Jb
E2            LOOP       Jb
E3            JCXZ       Jb
E4            IN         AL,Ib
E5            IN         eAX,Ib
E6            OUT        Ib,AL
E7            OUT        Ib,eAX
E8            CALL       Jz
E9            JMP        Jz
EA            JMPF       Ap
EB            JMP        Jb
EC            IN         AL,DX
ED            IN         eAX,DX
EE            OUT        DX,AL
EF            OUT        DX,eAX
F1            INT1
F4            HLT
F5            CMC
F6/0          TEST       Eb,Ib
F6/1          TEST       Eb,Ib
F6/2          NOT        Eb
F6/3          NEG        Eb
F6/4          MUL        Eb
F6/5          IMUL       Eb
F6/6          DIV        Eb
F6/7          IDIV       Eb
F7/0          TEST       Ev,Iz
F7/1          TEST       Ev,Iz
F7/2          NOT        Ev
F7/3          NEG        Ev
F7/4          MUL        Ev
F7/5          IMUL       Ev
F7/6          DIV        Ev
F7/7          IDIV       Ev
F8            CLC
F9            STC
FA            CLI
FB            STI
FC            CLD
FD            STD
FE/0          INC        Eb
FE/1          DEC        Eb
FF/0          INC        Ev
FF/1          DEC        Ev
FF/2          CALL       Ev
FF/3          CALLF      Mp
FF/4          JMP        Ev
FF/5          JMPF       Mp
FF/6          PUSH       Ev
0F 00/0       SLDT       Ew
0F 00/1       STR        Ew
0F 00/2       LLDT       Ew
0F 00/3       LTR        Ew
0F 00/4       VERR       Ew
0F 00/5       VERW       Ew
0F 01/0       SGDT       Ms
0F 01/1       SIDT       Ms
0F 01/2       LGDT       Ms
0F 01/3       LIDT       Ms
0F 01/4       SMSW       Ew
0F 01/6       LMSW       Ew
0F 01/7       INVLPG     M
0F 02         LAR        Gv,Ew
0F 03         LSL        Gv,Ew
0F 06         CLTS
0F 08         INVD
0F 09         WBINVD
0F 0B         UD2
0F 1F/0       NOP        Ev
0F 20         MOV        Rd,Cd
0F 21         MOV        Rd,Dd
0F 22         MOV        Cd,Rd
0F 23         MOV        Dd,Rd
0F 30         WRMSR
0F 31         RDTSC
0F 32         RDMSR
0F 34         SYSENTER
0F 35         SYSEXIT
0F 40+cc      CMOVcc     Gv,Ev
0F 80+cc      Jcc        Jz
0F 90+cc      SETcc      Eb
0F A0         PUSH       FS
0F A1         POP        FS
0F A2         CPUID
0F A3         BT         Ev,Gv
0F A4         SHLD       Ev,Gv,Ib
0F A5         SHLD       Ev,Gv,CL
0F A8         PUSH       GS
0F A9         POP        GS
0F AB         BTS        Ev,Gv
0F AC         SHRD       Ev,Gv,Ib
0F AD         SHRD       Ev,Gv,CL
0F AF         IMUL       Gv,Ev
0F B0         CMPXCHG    Eb,Gb
0F B1         CMPXCHG    Ev,Gv
0F B2         LSS        Gv,Mp
0F B3         BTR        Ev,Gv
0F B4         LFS        Gv,Mp
0F B5         LGS        Gv,Mp
0F B6         MOVZX      Gv,Eb
0F B7         MOVZX      Gv,Ew
0F B9         UD1        Gv,Ev
0F BA/4       BT         Ev,Ib
0F BA/5       BTS        Ev,Ib
0F BA/6       BTR        Ev,Ib
0F BA/7       BTC        Ev,Ib
0F BB         BTC        Ev,Gv
0F BC         BSF        Gv,Ev
0F BD         BSR        Gv,Ev
0F BE         MOVSX      Gv,Eb
0F BF         MOVSX      Gv,Ew
0F C0         XADD       Eb,Gb
0F C1         XADD       Ev,Gv
0F C7/1       CMPXCHG8B  Mq
0F C8+r       BSWAP      Zd
0F FF         UD0        Gv,Ev
"""

# Prefix bytes: decoded before the opcode, never rows of the map.
PREFIXES = {
    0x26: "ES", 0x2E: "CS", 0x36: "SS", 0x3E: "DS", 0x64: "FS", 0x65: "GS",
    0x66: "operand-size", 0x67: "address-size",
    0xF0: "LOCK", 0xF2: "REPNE", 0xF3: "REP",
}

# mnemonic    module    flags written   flags undefined   what
# (module: the SDM chapter file in emu/core/isa/ holding its semantics;
#  flags: O S Z A P C D I T, or - for none; ? = depends on the operands)
MNEMONICS = """
ADD         alu       OSZAPC   -        integer add
ADC         alu       OSZAPC   -        add with carry
SUB         alu       OSZAPC   -        integer subtract
SBB         alu       OSZAPC   -        subtract with borrow
CMP         alu       OSZAPC   -        compare (subtract, result discarded)
AND         alu       OSZPC    A        logical and
OR          alu       OSZPC    A        logical or
XOR         alu       OSZPC    A        logical exclusive or
TEST        alu       OSZPC    A        logical compare (and, result discarded)
INC         alu       OSZAP    -        increment (CF unchanged)
DEC         alu       OSZAP    -        decrement (CF unchanged)
NEG         alu       OSZAPC   -        two's complement negation
NOT         alu       -        -        one's complement negation
ROL         shift     OC       O?       rotate left (OF defined for count 1)
ROR         shift     OC       O?       rotate right
RCL         shift     OC       O?       rotate left through carry
RCR         shift     OC       O?       rotate right through carry
SHL         shift     OSZPC    OA?      shift left (SAL)
SHR         shift     OSZPC    OA?      logical shift right
SAR         shift     OSZPC    OA?      arithmetic shift right
SHLD        shift     OSZPC    OA?      double-precision shift left
SHRD        shift     OSZPC    OA?      double-precision shift right
MUL         muldiv    OC       SZAP     unsigned multiply
IMUL        muldiv    OC       SZAP     signed multiply
DIV         muldiv    -        OSZAPC   unsigned divide
IDIV        muldiv    -        OSZAPC   signed divide
DAA         bcd       SZAPC    O        decimal adjust after addition
DAS         bcd       SZAPC    O        decimal adjust after subtraction
AAA         bcd       AC       OSZP     ASCII adjust after addition
AAS         bcd       AC       OSZP     ASCII adjust after subtraction
AAM         bcd       SZP      OAC      ASCII adjust after multiply
AAD         bcd       SZP      OAC      ASCII adjust before division
BT          bits      C        OSAP     bit test
BTS         bits      C        OSAP     bit test and set
BTR         bits      C        OSAP     bit test and reset
BTC         bits      C        OSAP     bit test and complement
BSF         bits      Z        OSAPC    bit scan forward
BSR         bits      Z        OSAPC    bit scan reverse
SETcc       bits      -        -        set byte on condition
BSWAP       bits      -        -        byte swap
MOV         move      -        -        move
MOVZX       move      -        -        move with zero-extend
MOVSX       move      -        -        move with sign-extend
CMOVcc      move      -        -        conditional move
XCHG        move      -        -        exchange
XADD        move      OSZAPC   -        exchange and add
CMPXCHG     move      OSZAPC   -        compare and exchange
CMPXCHG8B   move      Z        -        compare and exchange 8 bytes
LEA         move      -        -        load effective address
XLAT        move      -        -        table look-up translation
CBW         move      -        -        convert byte to word / word to dword (CWDE)
CWD         move      -        -        convert word to dword / dword to qword (CDQ)
SALC        move      -        -        set AL from carry (undocumented)
NOP         move      -        -        no operation
PUSH        stack     -        -        push
POP         stack     -        -        pop
PUSHA       stack     -        -        push all general registers (PUSHAD)
POPA        stack     -        -        pop all general registers (POPAD)
PUSHF       stack     -        -        push EFLAGS
POPF        stack     OSZAPCDIT -       pop EFLAGS
ENTER       stack     -        -        make a stack frame
LEAVE       stack     -        -        release a stack frame
MOVS        string    -        -        move string
CMPS        string    OSZAPC   -        compare strings
SCAS        string    OSZAPC   -        scan string
LODS        string    -        -        load string
STOS        string    -        -        store string
INS         string    -        -        input string from port
OUTS        string    -        -        output string to port
IN          io        -        -        input from port
OUT         io        -        -        output to port
Jcc         control   -        -        jump if condition
JMP         control   -        -        near jump
JMPF        control   -        -        far jump
CALL        control   -        -        near call
CALLF       control   -        -        far call
RET         control   -        -        near return
RETF        control   -        -        far return
LOOP        control   -        -        loop while rCX != 0
LOOPE       control   -        -        loop while rCX != 0 and ZF
LOOPNE      control   -        -        loop while rCX != 0 and not ZF
JCXZ        control   -        -        jump if rCX is zero (JECXZ)
INT         control   -        -        software interrupt
INT3        control   -        -        breakpoint trap
INT1        control   -        -        debug trap (ICEBP)
INTO        control   -        -        interrupt 4 on overflow
IRET        control   OSZAPCDIT -       interrupt return
BOUND       control   -        -        check array index against bounds
LES         segment   -        -        load far pointer into ES
LDS         segment   -        -        load far pointer into DS
LSS         segment   -        -        load far pointer into SS
LFS         segment   -        -        load far pointer into FS
LGS         segment   -        -        load far pointer into GS
ARPL        segment   Z        -        adjust RPL of a selector
LAR         segment   Z        -        load access rights
LSL         segment   Z        -        load segment limit
VERR        segment   Z        -        verify segment for reading
VERW        segment   Z        -        verify segment for writing
CLC         flagctl   C        -        clear carry
STC         flagctl   C        -        set carry
CMC         flagctl   C        -        complement carry
CLD         flagctl   D        -        clear direction
STD         flagctl   D        -        set direction
CLI         flagctl   I        -        clear interrupt flag
STI         flagctl   I        -        set interrupt flag
SAHF        flagctl   SZAPC    -        store AH into flags
LAHF        flagctl   -        -        load flags into AH
HLT         system    -        -        halt
LGDT        system    -        -        load GDTR
LIDT        system    -        -        load IDTR
SGDT        system    -        -        store GDTR
SIDT        system    -        -        store IDTR
LLDT        system    -        -        load LDTR
SLDT        system    -        -        store LDTR
LTR         system    -        -        load task register
STR         system    -        -        store task register
LMSW        system    -        -        load machine status word
SMSW        system    -        -        store machine status word
CLTS        system    -        -        clear CR0.TS
INVD        system    -        -        invalidate caches
WBINVD      system    -        -        write back and invalidate caches
INVLPG      system    -        -        invalidate TLB entry
CPUID       system    -        -        CPU identification
RDTSC       system    -        -        read time-stamp counter
RDMSR       system    -        -        read model-specific register
WRMSR       system    -        -        write model-specific register
SYSENTER    system    I        -        fast system call
SYSEXIT     system    -        -        fast return from system call
UD2         system    -        -        undefined instruction (#UD)
UD1         system    -        -        undefined instruction (#UD)
UD0         system    -        -        undefined instruction (#UD)
WAIT        system    -        -        wait for FPU (no FPU: #NM if CR0.MP and TS)
ESC         system    -        -        x87 escape (no FPU: #NM if CR0.EM or TS, else #UD)
"""

CONDITION_CODES = ("O", "NO", "B", "AE", "E", "NE", "BE", "A",
                   "S", "NS", "P", "NP", "L", "GE", "LE", "G")

# Rows whose semantics live in a function other than the mnemonic's own:
# (mnemonic, operands) -> (module, implementation name).  The SDM gives these
# their own instruction pages ("MOV—Move to/from Control Registers" ...).
SPECIAL_FORMS = {
    ("MOV", "Sw,Ew"): ("segment", "MOV_TO_SREG"),
    ("MOV", "Ev,Sw"): ("segment", "MOV_FROM_SREG"),
    ("MOV", "Rd,Cd"): ("system", "MOV_FROM_CR"),
    ("MOV", "Cd,Rd"): ("system", "MOV_TO_CR"),
    ("MOV", "Rd,Dd"): ("system", "MOV_FROM_DR"),
    ("MOV", "Dd,Rd"): ("system", "MOV_TO_DR"),
    ("POP", "ES"): ("segment", "POP_SREG"),
    ("POP", "SS"): ("segment", "POP_SREG"),
    ("POP", "DS"): ("segment", "POP_SREG"),
    ("POP", "FS"): ("segment", "POP_SREG"),
    ("POP", "GS"): ("segment", "POP_SREG"),
}

# Mnemonics whose first operand is only read (no write-back of a result).
NO_WRITEBACK = {"CMP", "TEST", "BT"}
