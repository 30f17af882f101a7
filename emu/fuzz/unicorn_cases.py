"""Cases for the Unicorn oracle, and visor86 set up the same way: what
the host CPU cannot run in 64-bit mode -- 16-bit code (real mode), BCD,
stack and near control transfers, string instructions with REP, and
32-bit forms that 64-bit mode lacks (82h, INC/DEC 40h-4Fh, XLAT, PUSHA ...).

Both sides see the layout of unicorn_oracle.py: code at CODE_AT, a data
window at DATA_BASE and a stack window below STACK_TOP (32-bit flat), or
the same windows through DS/ES = DATA_SEG and SS = STACK_SEG (real mode).
Every memory operand a case makes points into one of the windows.

Where Unicorn, not visor86, departs from the SDM, unicorn_deviation()
names the reason; such cases are counted apart, never as divergences.
Used by `emu fuzz --oracle unicorn` (UnicornFuzz) and by
tests/test_differential_unicorn.py.
"""
from emu.core import layout as L
from emu.spec import table
from emu.fuzz.cases import value, undefined_flags
from emu.fuzz.campaign import (FuzzError, Verdict, COMPARED_FLAGS, FLAG_NAMES, flag_differences,
                               memory_difference, vector_name, encoding_problem)
from emu.fuzz.unicorn_system import (SEG_NAMES, SYSTEM_FLAGS_IN, system_rows, make_system_case, delivered,
                                     system_differences, system_deviation, system_undefined)
from emu.fuzz.unicorn_oracle import (UnicornOracle, UCase, UResult, CODE_AT, DATA_BASE, WINDOW, STACK_TOP,
                                     STACK_WINDOW, DATA_SEG, STACK_SEG, MEMORY, REGS, stack_linear)

UNICORN_CLASSES = ("alu", "bcd", "bits", "control", "flagctl", "move", "muldiv", "shift", "stack", "string",
                   "system")
EXCLUDED = {"JMPF", "CALLF", "RETF", "INT", "INT3", "INT1", "INTO", "IRET", "INS", "OUTS", "IN", "OUT",
            "CLI", "STI", "WAIT", "ESC", "UD0", "UD1", "UD2", "SALC", "NOP"}
UNSAFE_KINDS = {L.K_SREG, L.K_CREG, L.K_DREG, L.K_FARPTR, L.K_RMREG}
# POPF loads the system flags too: they are compared for it
POPF_COMPARED = L.FLAGS_ARITH | L.FLAG_DF | L.FLAG_TF | L.FLAG_IF | L.FLAG_IOPL | L.FLAG_NT
ALL_FLAG_NAMES = {**FLAG_NAMES, L.FLAG_TF: "TF", L.FLAG_IF: "IF", L.FLAG_IOPL: "IOPL", L.FLAG_NT: "NT"}
FLAGS_IN = 0x0CD5               # OF DF SF ZF AF PF CF: what a case may set
NOT_RUN = "Unicorn stopped on a memory access outside its mapped memory (1 MiB)"


def unicorn_deviation(row, ref, ours):
    """Why Unicorn is not the reference for this case (the SDM wins), or
    None.  ``ref`` is Unicorn's outcome, ``ours`` visor86's (UResult)."""
    if row.mnemonic == "TEST" and row.reg == 1:
        return ("F6/F7 /1 is TEST on Intel and AMD processors (an undocumented alias of /0); "
                "Unicorn raises #UD")
    if row.mnemonic == "RET" and row.operands and ref.regs["esp"] != ours.regs["esp"] and \
            (ref.regs["esp"] ^ ours.regs["esp"]) & 0xFFFF == 0:
        return ("RET imm16 with a 16-bit operand size on a 32-bit stack: the SDM adds imm16 to ESP; "
                "Unicorn wraps it to SP")
    if row.mnemonic == "ENTER" and ref.regs["ebp"] != ours.regs["ebp"] and \
            (ref.regs["ebp"] ^ ours.regs["ebp"]) & 0xFFFF == 0:
        return ("ENTER with a 32-bit operand size on a 16-bit stack: the SDM loads EBP with the whole "
                "ESP; Unicorn only writes BP")
    if row.mnemonic in ("JMP", "CALL", "RET") and ours.exception == 13 and ref.exception is None \
            and ref.eip > 0xFFFF:
        return ("a near branch or return beyond the CS limit is #GP(0) (SDM Vol. 2, JMP/CALL/RET); "
                "Unicorn does not check the limit in real mode")
    return None


def rows_for(modules, bits=32):
    """The opcode-table rows of ``modules`` that cases are made for (the
    same in both modes): no far transfers, interrupts, port I/O, segment,
    control or debug registers."""
    out = []
    for r in table.ROWS:
        if r.module not in modules or r.mnemonic in EXCLUDED:
            continue
        if any(o.kind in UNSAFE_KINDS for o in r.operands):
            continue
        if r.mnemonic in ("PUSH", "POP") and any(o.kind >= L.K_SEGFIX for o in r.operands):
            continue          # segment registers: real-mode loads would move the windows
        out.append(r)
    return out


RM16 = ((3, 6), (3, 7), (5, 6), (5, 7), (6,), (7,), (5,), (3,))   # registers of each 16-bit r/m


def modrm16(rng, regs):
    """A 16-bit ModRM memory operand inside the data window (DS) or, through
    BP, the stack window (SS); sets the registers it uses in ``regs``."""
    mod = rng.choice((0, 1, 2))
    rm = rng.randrange(8)
    disp = 0 if mod == 0 else (rng.randrange(-0x40, 0x40) if mod == 1 else rng.randrange(-0x100, 0x100))
    if mod == 0 and rm == 6:
        disp = rng.randrange(0x20, WINDOW - 0x28)
        return bytes([rm]) + disp.to_bytes(2, "little")
    parts = RM16[rm]
    via_bp = parts[0] == 5
    target = rng.randrange(0x1000 - STACK_WINDOW + 0x20, 0x1000 - 0x28) if via_bp \
        else rng.randrange(0x20, WINDOW - 0x28)
    rest = 0
    for p in parts[1:]:
        v = rng.randrange(0, 0x20)
        regs[p] = (regs[p] & 0xFFFF0000) | v
        rest += v
    regs[parts[0]] = (regs[parts[0]] & 0xFFFF0000) | ((target - rest - disp) & 0xFFFF)
    out = bytes([(mod << 6) | rm])
    if mod == 1:
        out += (disp & 0xFF).to_bytes(1, "little")
    elif mod == 2:
        out += (disp & 0xFFFF).to_bytes(2, "little")
    return out


def modrm32(rng, regs):
    """A 32-bit ModRM memory operand (no SIB) inside the data window."""
    mod = rng.choice((0, 1, 2))
    rm = rng.choice([r for r in (0, 1, 2, 3, 6, 7, 5) if not (r == 5 and mod == 0)])
    disp = 0 if mod == 0 else (rng.randrange(-0x40, 0x40) if mod == 1 else rng.randrange(-0x100, 0x100))
    target = DATA_BASE + rng.randrange(0x20, WINDOW - 0x28)
    regs[rm] = (target - disp) & 0xFFFFFFFF
    out = bytes([(mod << 6) | rm])
    if mod == 1:
        out += (disp & 0xFF).to_bytes(1, "little")
    elif mod == 2:
        out += (disp & 0xFFFFFFFF).to_bytes(4, "little")
    return out


def make_case(rng, row, bits):
    """One random encoding of ``row`` for ``bits``-bit code (16: real mode,
    32: flat) with registers, flags, data and stack windows."""
    regs = [value(rng) for _ in range(8)]
    osize = bits // 8
    prefix = b""
    if any(o.size == L.SZ_V for o in row.operands) or row.mnemonic in ("PUSHA", "POPA", "PUSHF", "POPF",
                                                                         "RET", "CALL", "LEAVE", "ENTER",
                                                                         "CBW", "CWD", "MOVS", "STOS"):
        if rng.random() < 0.3:
            prefix = b"\x66"
            osize = 6 - osize
    code = bytearray(prefix)
    if row.module == "string" and rng.random() < 0.5:
        code += rng.choice((b"\xf3", b"\xf2"))
    code += (b"\x0f" if row.map else b"") + bytes([row.opcode])
    byte_regs = all(o.size == 1 for o in row.operands if o.kind in (L.K_REG, L.K_RM))
    # the stack: (E)SP inside the stack window
    sp = STACK_TOP - 0x80 if bits == 32 else 0x1000 - 0x80
    regs[4] = sp if bits == 32 else (regs[4] & 0xFFFF0000) | sp
    if row.mnemonic in ("ENTER", "LEAVE"):
        bp = STACK_TOP - 0x40 if bits == 32 else 0x1000 - 0x40
        regs[5] = bp if bits == 32 else (regs[5] & 0xFFFF0000) | bp
    if row.module == "string":
        regs[6] = (DATA_BASE + 0x100 if bits == 32 else (regs[6] & 0xFFFF0000) | 0x100)
        regs[7] = (DATA_BASE + 0x180 if bits == 32 else (regs[7] & 0xFFFF0000) | 0x180)
        regs[1] = (regs[1] & 0xFFFF0000) | rng.randrange(0, 9) if bits == 16 else rng.randrange(0, 9)
    if row.mnemonic in ("DIV", "IDIV") and rng.random() < 0.7:
        regs[2] = rng.randrange(0, 4)      # most quotients in range (before a memory operand may use EDX)
    if row.mnemonic == "XLAT":
        regs[3] = DATA_BASE + 0x10 if bits == 32 else (regs[3] & 0xFFFF0000) | 0x10
    if row.needs_modrm:
        reg_field = row.reg if row.reg >= 0 else rng.choice([r for r in range(8) if byte_regs or r != 4])
        mem_only = any(o.kind == L.K_MEM for o in row.operands)
        if not mem_only and rng.random() < 0.5:
            rm = rng.choice([r for r in range(8) if byte_regs or r != 4])
            code.append(0xC0 | (reg_field << 3) | rm)
        else:
            saved_sp = regs[4]
            m = modrm16(rng, regs) if bits == 16 else modrm32(rng, regs)
            regs[4] = saved_sp
            code.append(m[0] | (reg_field << 3))
            code += m[1:]
            if row.mnemonic in ("BT", "BTS", "BTR", "BTC") and row.reg < 0 and reg_field != 4:
                regs[reg_field] = rng.randrange(0, 0x100)
    for o in row.operands:
        if o.kind in (L.K_IMM, L.K_REL):
            n = osize if o.size == L.SZ_V else o.size
            if row.mnemonic == "ENTER" and o.size == 1:
                code += bytes([rng.randrange(0, 4)])
            elif row.mnemonic == "ENTER":
                code += rng.randrange(0, 0x20).to_bytes(2, "little")
            elif o.kind == L.K_REL:
                code += (rng.randrange(-0x80, 0x80) & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
            elif row.mnemonic in ("SHLD", "SHRD") and osize == 2:
                code += bytes([rng.randrange(0, 17)])
            else:
                code += value(rng, 8 * n).to_bytes(n, "little")
        elif o.kind == L.K_MOFFS:
            code += rng.randrange(0x20, WINDOW - 0x28).to_bytes(4 if bits == 32 else 2, "little") \
                if bits == 16 else (DATA_BASE + rng.randrange(0x20, WINDOW - 0x28)).to_bytes(4, "little")
    if row.mnemonic in ("SHLD", "SHRD") and osize == 2 and (regs[1] & 0x1F) > 16 \
            and any(o.text == "CL" for o in row.operands):
        regs[1] &= ~0x10
    eflags = rng.getrandbits(12) & FLAGS_IN
    mem = bytes(rng.getrandbits(8) for _ in range(WINDOW))
    stack = bytes(rng.getrandbits(8) for _ in range(STACK_WINDOW))
    return UCase(bytes(code), dict(zip(REGS, (v & 0xFFFFFFFF for v in regs))), eflags, mem, stack,
                 mode16=bits == 16)


def machine_for(bits):
    """A visor86 machine in the oracle's layout: flat 32-bit protected mode,
    or real mode with CS = 0, DS = ES = DATA_SEG, SS = STACK_SEG.  Both stop
    on a guest exception instead of delivering it."""
    from emu import Machine
    if bits == 32:
        m = Machine.flat32(memory_size=MEMORY)
    else:
        m = Machine(memory_size=MEMORY, deliver_exceptions=False)
        m.cpu.cs, m.cpu.ds, m.cpu.es, m.cpu.ss = 0, DATA_SEG, DATA_SEG, STACK_SEG
    return m


class Visor86UnicornSide:
    """visor86 running cases in the Unicorn oracle's layout, one machine
    per mode, reset between cases by rewriting the code, the windows, the
    registers and the flags (and in real mode the segment registers).
    ``system``: the system class's machine, put back into its prepared
    state (unicorn_system.py) before each case; it delivers INT n, INT3 and
    INTO through its IVT or IDT and stops on any other exception."""

    def __init__(self, bits, system=False):
        self.bits = bits
        self.system = system
        self.m = machine_for(bits)
        self.stack_at = stack_linear(bits)
        if system:
            from emu.fuzz.unicorn_system import prepared_tables
            for at, data in prepared_tables(bits):
                self.m.memory.write(at, data)

    def _prepare(self, case):
        from emu.fuzz.unicorn_system import (prepared_registers, prepared_segments, segment_base, GDT_ENTRIES,
                                             is_software_interrupt)
        m = self.m
        regs = prepared_registers(self.bits)
        for name in ("cr0", "cr2", "cr3", "cr4", "gdtr", "idtr"):
            setattr(m.cpu, name, regs[name])
        m.cpu.set_segment("ldtr", 0, 0, 0, 0)
        m.cpu.cpl = 0
        for name, sel in prepared_segments(self.bits).items():
            if self.bits == 16:
                setattr(m.cpu, name, sel)
            else:
                access, flags = next((a, f) for s, _, _, a, f, _ in GDT_ENTRIES if s == sel)
                m.cpu.set_segment(name, sel, segment_base(sel, 32), 0xFFFFFFFF,
                                  access | (L.ATTR_DB if flags & 4 else 0) | (L.ATTR_G if flags & 8 else 0))
        m.deliver_exceptions = is_software_interrupt(case.code)

    def run(self, case):
        m = self.m
        m.memory.write(CODE_AT, case.code + b"\x90" * 16)
        m.memory.write(DATA_BASE, case.mem)
        m.memory.write(self.stack_at, case.stack)
        if self.system:
            self._prepare(case)
        elif self.bits == 16:
            m.cpu.cs, m.cpu.ds, m.cpu.es, m.cpu.ss = 0, DATA_SEG, DATA_SEG, STACK_SEG
        for r in REGS:
            setattr(m.cpu, r, case.regs.get(r, 0))
        m.cpu.eflags = case.eflags | 2
        m.cpu.eip = CODE_AT
        e = m.step()
        exception = e.vector if e.kind == "exception" else (None if e.kind == "budget" else -1)
        sys = None
        if self.system:
            sys = {"segments": {n: (getattr(m.cpu, n), m.cpu.segment(n).base) for n in SEG_NAMES},
                   "gdtr": m.cpu.gdtr, "idtr": m.cpu.idtr}
            for name in ("cr0", "cr2", "cr3", "cr4"):
                sys[name] = getattr(m.cpu, name)
        return UResult({r: getattr(m.cpu, r) for r in REGS}, m.cpu.eip, m.cpu.eflags,
                       m.memory.read(DATA_BASE, WINDOW), m.memory.read(self.stack_at, STACK_WINDOW), exception, sys)


def compare(row, case, ours, ref):
    """(differences, undefined) between visor86 and Unicorn in what the SDM
    defines: the exception, the registers, EIP, the defined flags (POPF:
    the system flags too), the data and the stack window.  Each difference
    is a short string whose part before ':' names the field; ``undefined``
    is the mask of flags the SDM leaves undefined here."""
    undefined = undefined_flags(row, case)
    diffs = []
    if ref.exception is not None or ours.exception is not None:
        if ref.exception != ours.exception:
            diffs.append(f"exception: visor86 {vector_name(ours.exception)}, unicorn {vector_name(ref.exception)}")
        return diffs, undefined
    for r in REGS:
        if ours.regs[r] != ref.regs[r]:
            diffs.append(f"{r}: visor86 {ours.regs[r]:#010x}, unicorn {ref.regs[r]:#010x}")
    if ours.eip != ref.eip:
        diffs.append(f"eip: visor86 {ours.eip:#x}, unicorn {ref.eip:#x}")
    compared = POPF_COMPARED if row.mnemonic == "POPF" or case.system else COMPARED_FLAGS
    diffs += flag_differences(ours.eflags, ref.eflags, compared & ~undefined, ALL_FLAG_NAMES, "unicorn")
    diffs += memory_difference("memory", DATA_BASE, ours.mem, ref.mem, "unicorn")
    diffs += memory_difference("stack", stack_linear(case.bits), ours.stack, ref.stack, "unicorn")
    if case.system:
        diffs += system_differences(case, ours, ref)
    return diffs, undefined


class UnicornFuzz:
    """Unicorn as a campaign's oracle (see campaign.HostOracle for the
    interface): 16-bit real-mode and 32-bit flat cases of UNICORN_CLASSES."""
    name = "unicorn"
    title = "Unicorn"
    short = "Unicorn"
    classes = UNICORN_CLASSES
    modes = (16, 32)
    windows = {"mem": WINDOW, "stack": STACK_WINDOW}
    has_deviations = True

    def __init__(self, undefined_flags="host"):
        from emu.fuzz.campaign import resolve_policy
        self._oracles, self._sides, self._rows = {}, {}, {}
        self.undefined_flags = resolve_policy(undefined_flags)

    def close(self):
        pass

    def describe(self, modes):
        names = {16: "16-bit real mode", 32: "32-bit flat mode"}
        return f"Unicorn {unicorn_version()} ({' and '.join(names[m] for m in modes)})"

    def prepare(self, modes):
        """Make the Uc instances and the machines now, so that their start is not timed."""
        return [(self._oracle(m), self._side(m)) for m in modes]

    def draw(self, rng, klass, mode):
        if klass not in self._rows:
            self._rows[klass] = system_rows() if klass == "system" else rows_for({klass})
        row = rng.choice(self._rows[klass])
        if klass == "system":
            return row, make_system_case(rng, row, mode)
        return row, make_case(rng, row, mode)

    def mode_of(self, case):
        return case.bits

    def label(self, klass, mode):
        return f"{klass}/{mode}"

    def _oracle(self, bits, system=False):
        if (bits, system) not in self._oracles:
            self._oracles[bits, system] = UnicornOracle(bits, system)
        return self._oracles[bits, system]

    def _side(self, bits, system=False):
        if (bits, system) not in self._sides:
            self._sides[bits, system] = Visor86UnicornSide(bits, system)
            self._sides[bits, system].m.undefined_flags = self.undefined_flags
        return self._sides[bits, system]

    def reference(self, cases):
        return [self._oracle(c.bits, c.system).run(c) for c in cases]

    def visor86(self, cases):
        return [self._side(c.bits, c.system).run(c) for c in cases]

    def judge(self, row, case, ours, ref):
        if ref.exception == -1:
            return Verdict(skipped=NOT_RUN)
        if case.system:
            why = system_deviation(row, case, ref, ours)
            if why:
                return Verdict(deviation=why)
            ref = delivered(row, case, ref)
            ref = system_undefined(row, case, ref, ours)
        why = unicorn_deviation(row, ref, ours)
        if why:
            return Verdict(deviation=why)
        diffs, undefined = compare(row, case, ours, ref)
        return Verdict(diffs, undefined)

    def case_from_json(self, data, path, row, case):
        """A UCase from a loaded case file, checked: a row of these
        classes, encoded as make_case does, the mode, flags, the windows."""
        mode = data.get("mode")
        if mode not in (16, 32):
            raise FuzzError(f"{path}: a Unicorn case has \"mode\": 16 or 32, not {mode!r}")
        system = data.get("class") == "system"
        if row not in (system_rows() if system else rows_for(set(UNICORN_CLASSES) - {"system"})):
            raise FuzzError(f"{path}: {row.mnemonic} {row.operands_text} is not an instruction the unicorn "
                            f"oracle runs{' in the system class' if system else ''}")
        why = encoding_problem(row, case.code, (b"\x66",) if system else (b"\x66", b"\xf2\xf3"))
        if why:
            raise FuzzError(f"{path}: {why}")
        allowed = SYSTEM_FLAGS_IN if system else FLAGS_IN
        if case.eflags & ~allowed:
            raise FuzzError(f"{path}: a case's eflags may set only OF DF SF ZF AF PF CF"
                            f"{' IF' if system else ''} ({allowed:#x}), not {case.eflags:#x}")
        try:
            stack = bytes.fromhex(data.get("stack", ""))
        except (TypeError, ValueError) as e:
            raise FuzzError(f"{path} has a malformed field: stack: {e}")
        if len(stack) > STACK_WINDOW:
            raise FuzzError(f"{path}: the stack window is {STACK_WINDOW} bytes, the case has {len(stack)}")
        regs = {r: case.regs.get(r, 0) for r in REGS}
        return UCase(case.code, regs, case.eflags, case.mem.ljust(WINDOW, b"\0"),
                     stack.ljust(STACK_WINDOW, b"\0"), mode16=mode == 16, system=system)


def unicorn_version():
    import unicorn
    return unicorn.__version__
