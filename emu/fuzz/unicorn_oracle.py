"""Unicorn as the second reference, for what the host CPU cannot run in
64-bit mode: 16-bit code, BCD, stack and near control transfers, string
instructions.  One Uc instance per mode, reused (emu_start costs ~6 us).

32-bit: flat segments, code at CODE_AT, data window at DATA_BASE, stack
window below STACK_TOP.  16-bit (real mode): CS = 0, DS = ES = DATA_SEG,
SS = STACK_SEG, so the same windows are reached through segments.
"""
from dataclasses import dataclass

import unicorn
from unicorn import x86_const as X

CODE_AT = 0x1000
DATA_BASE = 0x20000
WINDOW = 0x200
STACK_TOP = 0x31000           # 32-bit ESP start; 16-bit: SS:SP = 3000:1000
STACK_WINDOW = 0x100
DATA_SEG = DATA_BASE >> 4
STACK_SEG = 0x3000
MEMORY = 0x100000

REGS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
UC_REGS = {"eax": X.UC_X86_REG_EAX, "ecx": X.UC_X86_REG_ECX, "edx": X.UC_X86_REG_EDX,
           "ebx": X.UC_X86_REG_EBX, "esp": X.UC_X86_REG_ESP, "ebp": X.UC_X86_REG_EBP,
           "esi": X.UC_X86_REG_ESI, "edi": X.UC_X86_REG_EDI}


STRING_OPCODES = {0x6C, 0x6D, 0x6E, 0x6F, 0xA4, 0xA5, 0xA6, 0xA7, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF}
PREFIXES = {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3}


def is_rep_string(code):
    i = 0
    while i < len(code) and code[i] in PREFIXES:
        i += 1
    return i < len(code) and code[i] in STRING_OPCODES and (0xF2 in code[:i] or 0xF3 in code[:i])


@dataclass
class UCase:
    code: bytes
    regs: dict
    eflags: int
    mem: bytes
    stack: bytes
    mode16: bool = False        # real mode (16-bit code) rather than 32-bit flat
    system: bool = False        # the system class: run in the prepared state of unicorn_system.py

    @property
    def bits(self):
        return 16 if self.mode16 else 32


@dataclass
class UResult:
    regs: dict
    eip: int
    eflags: int
    mem: bytes
    stack: bytes
    exception: int | None
    sys: dict | None = None     # system cases: segments (selector, base), gdtr, idtr, cr0 ... cr4


def stack_linear(bits):
    """The linear address of the stack window in this mode."""
    return STACK_TOP - STACK_WINDOW if bits == 32 else (STACK_SEG << 4) + 0x1000 - STACK_WINDOW


SEG_REGS = {"es": X.UC_X86_REG_ES, "cs": X.UC_X86_REG_CS, "ss": X.UC_X86_REG_SS, "ds": X.UC_X86_REG_DS,
            "fs": X.UC_X86_REG_FS, "gs": X.UC_X86_REG_GS}
CR_REGS = {"cr0": X.UC_X86_REG_CR0, "cr2": X.UC_X86_REG_CR2, "cr3": X.UC_X86_REG_CR3, "cr4": X.UC_X86_REG_CR4}


class UnicornOracle:
    """One Uc instance for ``bits``-bit cases; ``system``: in the prepared
    state of the system class (unicorn_system.py: IVT, or GDT and IDT in
    protected mode), put back before every case."""

    def __init__(self, bits, system=False):
        self.bits = bits
        self.system = system
        self.uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32 if bits == 32 else unicorn.UC_MODE_16)
        self.uc.mem_map(0, MEMORY)
        if system:
            from emu.fuzz.unicorn_system import prepared_tables
            for at, data in prepared_tables(bits):
                self.uc.mem_write(at, data)
            self._prepare()
        self._vector = None
        self.uc.hook_add(unicorn.UC_HOOK_INTR, self._on_interrupt)
        # The CPU state before any case.  An exception stopped in the hook is
        # never delivered, so QEMU's double-fault bookkeeping (the pending
        # exception) stays behind: the next #DE would come back as #DF, and
        # after that nothing runs.  The state is put back after every case
        # that ends in an exception or an error (restoring it before every
        # case would cost about 0.4 ms each).
        self._clean = self.uc.context_save()

    def _on_interrupt(self, uc, intno, user_data):
        self._vector = intno
        uc.emu_stop()

    def stack_linear(self):
        return stack_linear(self.bits)

    def _prepare(self):
        """The system class's registers: CR0 first (the mode), the table
        registers, then the segment registers (loaded through the GDT in
        protected mode)."""
        from emu.fuzz.unicorn_system import prepared_registers, prepared_segments
        uc = self.uc
        regs = prepared_registers(self.bits)
        for name, r in CR_REGS.items():
            uc.reg_write(r, regs[name])
        uc.reg_write(X.UC_X86_REG_GDTR, (0, *regs["gdtr"], 0))
        uc.reg_write(X.UC_X86_REG_IDTR, (0, *regs["idtr"], 0))
        uc.reg_write(X.UC_X86_REG_LDTR, (0, 0, 0, 0))
        for name, sel in prepared_segments(self.bits).items():
            uc.reg_write(SEG_REGS[name], sel)

    def system_state(self):
        uc = self.uc
        gdtr, idtr = uc.reg_read(X.UC_X86_REG_GDTR), uc.reg_read(X.UC_X86_REG_IDTR)
        out = {"segments": {n: (uc.reg_read(r) & 0xFFFF, None) for n, r in SEG_REGS.items()},
               "gdtr": (gdtr[1] & 0xFFFFFFFF, gdtr[2] & 0xFFFF), "idtr": (idtr[1] & 0xFFFFFFFF, idtr[2] & 0xFFFF)}
        for name, r in CR_REGS.items():
            out[name] = uc.reg_read(r) & 0xFFFFFFFF
        return out

    def run(self, case):
        uc = self.uc
        uc.mem_write(CODE_AT, case.code + b"\x90" * 16)
        uc.ctl_remove_cache(CODE_AT, CODE_AT + 0x100)   # Unicorn keeps translated blocks otherwise
        uc.mem_write(DATA_BASE, case.mem)
        uc.mem_write(self.stack_linear(), case.stack)
        if self.system:
            self._prepare()
        elif self.bits == 16:
            uc.reg_write(X.UC_X86_REG_CS, 0)
            uc.reg_write(X.UC_X86_REG_DS, DATA_SEG)
            uc.reg_write(X.UC_X86_REG_ES, DATA_SEG)
            uc.reg_write(X.UC_X86_REG_SS, STACK_SEG)
        for r in REGS:
            uc.reg_write(UC_REGS[r], case.regs[r])
        uc.reg_write(X.UC_X86_REG_EFLAGS, case.eflags | 2)
        self._vector = None
        failed = False
        try:
            uc.emu_start(CODE_AT, CODE_AT + 0x10000, count=1)
            # Unicorn counts each REP iteration as an instruction: finish the REP
            for _ in range(64 if is_rep_string(case.code) else 0):
                if uc.reg_read(X.UC_X86_REG_EIP) != CODE_AT or self._vector is not None:
                    break
                uc.emu_start(CODE_AT, CODE_AT + 0x10000, count=1)
        except unicorn.UcError as e:
            failed = True
            if e.errno == unicorn.UC_ERR_INSN_INVALID:
                self._vector = 6
            elif e.errno == unicorn.UC_ERR_FETCH_UNMAPPED and uc.reg_read(X.UC_X86_REG_EIP) != CODE_AT:
                pass        # a branch to outside memory: it completed, Unicorn then failed to fetch the target
            else:
                self._vector = -1           # a memory fault outside the prepared windows
        regs = {r: uc.reg_read(UC_REGS[r]) & 0xFFFFFFFF for r in REGS}
        result = UResult(regs, uc.reg_read(X.UC_X86_REG_EIP), uc.reg_read(X.UC_X86_REG_EFLAGS),
                         bytes(uc.mem_read(DATA_BASE, WINDOW)),
                         bytes(uc.mem_read(self.stack_linear(), STACK_WINDOW)), self._vector,
                         self.system_state() if self.system else None)
        if self._vector is not None or failed:
            uc.context_restore(self._clean)
        return result
