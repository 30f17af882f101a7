"""The ``system`` class of the Unicorn oracle: system and segment
instructions run in a prepared state, in 16-bit real mode and in 32-bit
protected mode with a real GDT and IDT.

The prepared state is the same for every case of a mode and is written
into both sides before each case (so a case file needs nothing more than
the other classes' fields):

- real mode: an IVT at 0 whose vector v points at HANDLER_SEG:v*16,
  IDTR = (0, 3FFh), GDTR = (0, FFFFh), CR0 = ET, CS = 0, DS = ES = FS = GS
  = DATA_SEG, SS = STACK_SEG;
- protected mode: the GDT below at GDT_AT, 256 IDT gates at IDT_AT (even
  vectors interrupt gates, odd ones trap gates, to 8:HANDLER_AT + v*16),
  CR0 = PE | ET, CS = 08h, the data segments 10h, CPL 0, LDTR = TR = 0.

Unicorn never delivers an interrupt or exception through the IVT/IDT: its
hook reports the vector, with EIP after a software interrupt.  So for INT
n, INT3 and INTO visor86 really delivers the interrupt, and the expected
state is Unicorn's outcome completed by the SDM's delivery rule (Vol. 2,
INT n: real mode pushes FLAGS, CS, IP and clears IF, TF, AC; through a
32-bit gate at the same privilege EFLAGS, CS, EIP are pushed, TF, NT, RF,
VM are cleared and IF too for an interrupt gate; CS:EIP from the table).
For faults only the vector is compared (Unicorn does not report error
codes).
"""
import struct

from emu.core import layout as L
from emu.fuzz.cases import value
from emu.fuzz.unicorn_oracle import (UCase, CODE_AT, DATA_BASE, WINDOW, STACK_TOP, STACK_WINDOW, DATA_SEG, STACK_SEG,
                                     REGS, stack_linear)

SEG_NAMES = ("es", "cs", "ss", "ds", "fs", "gs")
HANDLER_SEG = 0x5000
HANDLER_AT = 0x10000
GDT_AT = 0x400
IDT_AT = 0x8000
TSS_AT = 0x3000
CR0_ET = 0x10
FLAG_IF = L.FLAG_IF
SYSTEM_FLAGS_IN = 0x0CD5 | FLAG_IF      # a system case may start with IF set too


def descriptor(base, limit, access, flags):
    """An 8-byte segment descriptor (flags: the G, D/B, L, AVL nibble)."""
    return struct.pack("<HHBBBB", limit & 0xFFFF, base & 0xFFFF, (base >> 16) & 0xFF, access,
                       (flags << 4) | ((limit >> 16) & 0xF), base >> 24)


def gate(offset, selector, access):
    return struct.pack("<HHBBH", offset & 0xFFFF, selector, 0, access, offset >> 16)


# (selector, base, limit as loaded, access byte, flags nibble, what it is); accessed bits preset so
# that no load writes the GDT
GDT_ENTRIES = (
    (0x08, 0, 0xFFFFF, 0x9B, 0xC, "flat 32-bit code"),
    (0x10, 0, 0xFFFFF, 0x93, 0xC, "flat 32-bit data"),
    (0x18, DATA_BASE, 0xFFFF, 0x93, 0x0, "16-bit data at the data window"),
    (0x20, DATA_BASE, 0xFF, 0x97, 0x4, "expand-down data, B = 1"),
    (0x28, 0, 0xFFFFF, 0x13, 0xC, "a data segment not present"),
    (0x30, TSS_AT, 0x67, 0x89, 0x0, "an available 32-bit TSS (system)"),
    (0x38, 0, 0xFFFFF, 0x91, 0xC, "read-only data"),
    (0x40, 0, 0xFFFFF, 0x99, 0xC, "execute-only code"),
    (0x48, 0, 0xFFFFF, 0x9F, 0xC, "conforming readable code"),
    (0x50, 0, 0xFFFFF, 0xF3, 0xC, "data DPL 3"),
    (0x58, 0, 0, 0x8C, 0x0, "a 32-bit call gate (to 08h:0)"),
    (0x60, TSS_AT + 0x100, 0x1F, 0x82, 0x0, "an LDT"),
    (0x68, 0, 0, 0x8E, 0x0, "an interrupt gate in the GDT"),
    (0x70, 0, 0xFFFFF, 0xB3, 0xC, "data DPL 1"),
)
GDT_LIMIT = 8 * (len(GDT_ENTRIES) + 1) - 1


def gdt_bytes():
    out = bytearray(8)
    for sel, base, limit, access, flags, _ in GDT_ENTRIES:
        out += gate(0x1000, 0x08, access) if access in (0x8C, 0x8E) else descriptor(base, limit, access, flags)
    return bytes(out)


def idt_bytes():
    return b"".join(gate(HANDLER_AT + v * 16, 0x08, 0x8E if v % 2 == 0 else 0x8F) for v in range(256))


def ivt_bytes():
    return b"".join(struct.pack("<HH", v * 16, HANDLER_SEG) for v in range(256))


def segment_base(selector, bits):
    """The base a segment register holding ``selector`` has in the prepared state."""
    if bits == 16:
        return selector << 4
    for sel, base, *_ in GDT_ENTRIES:
        if sel == selector & ~3 and not selector & 4:
            return base
    return None                       # the null selector (DS ... GS) or one that cannot be loaded


def prepared_tables(bits):
    """(linear address, bytes) the prepared state keeps in memory."""
    if bits == 16:
        return [(0, ivt_bytes())]
    return [(GDT_AT, gdt_bytes()), (IDT_AT, idt_bytes())]


def prepared_segments(bits):
    """Selectors of ES CS SS DS FS GS before each case."""
    if bits == 16:
        return {"es": DATA_SEG, "cs": 0, "ss": STACK_SEG, "ds": DATA_SEG, "fs": DATA_SEG, "gs": DATA_SEG}
    return {"es": 0x10, "cs": 0x08, "ss": 0x10, "ds": 0x10, "fs": 0x10, "gs": 0x10}


def prepared_registers(bits):
    """CR0 CR2 CR3 CR4, GDTR and IDTR (base, limit) before each case."""
    if bits == 16:
        return {"cr0": CR0_ET, "cr2": 0, "cr3": 0, "cr4": 0, "gdtr": (0, 0xFFFF), "idtr": (0, 0x3FF)}
    return {"cr0": CR0_ET | 1, "cr2": 0, "cr3": 0, "cr4": 0, "gdtr": (GDT_AT, GDT_LIMIT),
            "idtr": (IDT_AT, 0x7FF)}


# --- cases ------------------------------------------------------------------------------------

SYSTEM_ROWS = {
    # mnemonic: (both modes, protected mode only)
    "INT", "INT3", "INTO", "IRET", "CLI", "STI", "SGDT", "SIDT", "LGDT", "LIDT", "SMSW", "LMSW", "CLTS",
    "LES", "LDS", "LSS", "LFS", "LGS", "SLDT", "STR", "LAR", "LSL", "VERR", "VERW", "ARPL",
}


def system_rows():
    """The opcode-table rows of the system class (the same in both modes;
    the protected-mode-only ones are #UD in real mode, and compared so)."""
    from emu.spec import table
    out = []
    for r in table.ROWS:
        if r.mnemonic in SYSTEM_ROWS:
            out.append(r)
        elif r.mnemonic == "MOV" and ((r.map == 1 and r.opcode in (0x20, 0x22))
                                      or (r.map == 0 and r.opcode in (0x8C, 0x8E))):
            out.append(r)
        elif r.mnemonic in ("PUSH", "POP") and r.operands and r.operands[0].kind >= L.K_SEGFIX:
            out.append(r)
    return out


def selector(rng, bits):
    """A selector: in real mode any value; in protected mode mostly one of
    the prepared GDT's, with an RPL, sometimes TI = 1, past the limit, or null."""
    if bits == 16:
        return rng.choice((value(rng, 16), DATA_SEG, STACK_SEG, rng.randrange(0, 0x10000)))
    k = rng.random()
    if k < 0.75:
        sel = rng.choice(GDT_ENTRIES)[0]
        return sel | rng.choice((0, 0, 0, 0, 0, 1, 2, 3))
    if k < 0.85:
        return rng.randrange(0, 4)                         # null
    if k < 0.92:
        return rng.randrange(0, 0x100) | 4                 # the LDT (LDTR is null)
    return rng.randrange(GDT_LIMIT + 1, 0x10000) & ~4     # past the GDT limit


def cr0_value(rng, bits):
    v = CR0_ET if rng.random() < 0.8 else 0
    for bit in (1, 2, 3, 5, 16, 18):                     # MP EM TS NE WP AM
        if rng.random() < 0.3:
            v |= 1 << bit
    if rng.random() < 0.15:
        v |= 1 << 30                                     # CD
    if rng.random() < 0.1:
        v |= 1 << 29                                     # NW (without CD: #GP)
    if bits == 32 and rng.random() < 0.9:
        v |= 1                                           # PE (sometimes cleared: back to real mode)
    if bits == 16 and rng.random() < 0.05:
        v |= 1 << 31                                     # PG without PE: #GP
    return v


def cr4_value(rng):
    v = 0
    for bit in (2, 4, 5, 7):                             # TSD PSE PAE PGE
        if rng.random() < 0.3:
            v |= 1 << bit
    if rng.random() < 0.1:
        v |= 1 << rng.randrange(22, 32)                  # reserved: #GP
    return v


def make_system_case(rng, row, bits):
    """One random case of a system-class row in the prepared state of ``bits``."""
    from emu.fuzz.unicorn_cases import modrm16, modrm32
    regs = [value(rng) for _ in range(8)]
    sp = STACK_TOP - 0x80 if bits == 32 else 0x1000 - 0x80
    regs[4] = sp if bits == 32 else (regs[4] & 0xFFFF0000) | sp
    mem = bytearray(rng.getrandbits(8) for _ in range(WINDOW))
    stack = bytearray(rng.getrandbits(8) for _ in range(STACK_WINDOW))
    top = STACK_WINDOW - 0x80                             # (E)SP's offset in the stack window
    code = bytearray()
    osize = bits // 8
    m = row.mnemonic
    allows_66 = m in ("IRET", "LES", "LDS", "LSS", "LFS", "LGS", "LAR", "LSL", "SGDT", "SIDT", "LGDT", "LIDT",
                      "PUSH", "POP", "SMSW") or (m == "MOV" and row.map == 0)
    if allows_66 and rng.random() < 0.3:
        code += b"\x66"
        osize = 6 - osize
    code += (b"\x0f" if row.map else b"") + bytes([row.opcode])

    def memory_operand(reg_field):
        saved = regs[4]
        mm = modrm16(rng, regs) if bits == 16 else modrm32(rng, regs)
        regs[4] = saved
        return bytes([mm[0] | (reg_field << 3)]) + mm[1:]

    if row.needs_modrm:
        reg_field = row.reg if row.reg >= 0 else rng.randrange(8)
        if m == "MOV" and row.map == 1:                   # control registers: always a register operand
            reg_field = rng.choice((0, 0, 0, 2, 3, 4, 4, 1, 5, 6, 7))
            rm = rng.randrange(8)
            code.append(0xC0 | (reg_field << 3) | rm)
            if row.opcode == 0x22:
                regs[rm] = (cr0_value(rng, bits) if reg_field == 0 else cr4_value(rng) if reg_field == 4
                            else value(rng) & ~7 if reg_field == 3 else value(rng))
        elif m == "MOV" and row.opcode == 0x8E:
            reg_field = rng.choice((0, 2, 3, 4, 5, 0, 2, 3, 4, 5, 1, 6, 7))   # CS, 6 and 7 are #UD
            _selector_operand(rng, code, regs, bits, mem, stack, memory_operand, reg_field,
                              selector(rng, bits), 0.5)
        elif m == "MOV" and row.opcode == 0x8C:
            reg_field = rng.choice((0, 1, 2, 3, 4, 5, 6, 7))
            if rng.random() < 0.5:
                code.append(0xC0 | (reg_field << 3) | rng.choice([r for r in range(8) if r != 4]))
            else:
                code += memory_operand(reg_field)
        elif m in ("LES", "LDS", "LSS", "LFS", "LGS"):
            if rng.random() < 0.05 and (bits == 16 or row.map):
                # a register operand: #UD (C4/C5 with one are VEX prefixes outside real mode)
                code.append(0xC0 | (reg_field << 3) | rng.randrange(8))
            else:
                code += memory_operand(reg_field)
                _plant_far_pointer(code, regs, bits, mem, stack, osize, selector(rng, bits), value(rng))
        elif m in ("SGDT", "SIDT", "LGDT", "LIDT"):
            if rng.random() < 0.05:
                code.append(0xC0 | (reg_field << 3) | rng.randrange(8))   # a register operand: #UD
            else:
                code += memory_operand(reg_field)
        elif m in ("LAR", "LSL", "VERR", "VERW", "ARPL", "LMSW"):
            sel = selector(rng, bits)
            if m == "LMSW":
                sel = value(rng, 16) & (~1 if bits == 16 and rng.random() < 0.9 else 0xFFFF)
            if m == "ARPL":
                sel = rng.choice((sel, value(rng, 16)))
            _selector_operand(rng, code, regs, bits, mem, stack, memory_operand, reg_field, sel, 0.6)
            if m == "ARPL" and reg_field != 4:
                regs[reg_field] = (regs[reg_field] & 0xFFFF0000) | rng.randrange(0, 0x10000)
        else:                                             # SLDT STR SMSW
            if rng.random() < 0.5:
                code.append(0xC0 | (reg_field << 3) | rng.choice([r for r in range(8) if r != 4]))
            else:
                code += memory_operand(reg_field)
    elif m == "INT":
        code.append(rng.randrange(256))
    elif m == "IRET":
        _plant_iret_frame(rng, stack, top, bits, osize)
    elif m == "POP":
        sel = selector(rng, bits)
        stack[top:top + 2] = sel.to_bytes(2, "little")
    eflags = rng.getrandbits(12) & 0x0CD5
    if m in ("CLI", "STI", "INT", "INT3", "INTO", "IRET", "PUSH") and rng.random() < 0.5:
        eflags |= FLAG_IF
    if m == "INTO" and rng.random() < 0.5:
        eflags |= L.FLAG_OF
    return UCase(bytes(code), dict(zip(REGS, (v & 0xFFFFFFFF for v in regs))), eflags, bytes(mem), bytes(stack),
                 mode16=bits == 16, system=True)


def _selector_operand(rng, code, regs, bits, mem, stack, memory_operand, reg_field, sel, p_register):
    """A 16-bit selector operand: a register other than ESP holding ``sel``
    (with probability ``p_register``), else a memory operand with ``sel``
    planted where it points."""
    if rng.random() < p_register:
        rm = rng.choice([r for r in range(8) if r != 4])
        code.append(0xC0 | (reg_field << 3) | rm)
        regs[rm] = (regs[rm] & 0xFFFF0000) | sel
    else:
        code += memory_operand(reg_field)
        _plant_word(code, regs, bits, mem, stack, sel)


def _plant_word(code, regs, bits, mem, stack, word):
    where = _locate(code, regs, bits)
    if where:
        buf, at = (mem if where[0] == "mem" else stack), where[1]
        buf[at:at + 2] = (word & 0xFFFF).to_bytes(2, "little")


def _plant_far_pointer(code, regs, bits, mem, stack, osize, sel, offset):
    where = _locate(code, regs, bits)
    if where:
        buf, at = (mem if where[0] == "mem" else stack), where[1]
        buf[at:at + osize] = (offset & ((1 << (8 * osize)) - 1)).to_bytes(osize, "little")
        buf[at + osize:at + osize + 2] = (sel & 0xFFFF).to_bytes(2, "little")


def _locate(code, regs, bits):
    """Where the ModRM memory operand at the end of ``code`` points:
    ('mem' | 'stack', offset in that window), or None."""
    i = 0
    while code[i] == 0x66:
        i += 1
    i += 2 if code[i] == 0x0F else 1
    modrm = code[i]
    mod, rm = modrm >> 6, modrm & 7
    disp_bytes = code[i + 1:]
    if bits == 16:
        r = [regs[k] & 0xFFFF for k in range(8)]
        if mod == 0 and rm == 6:
            return "mem", int.from_bytes(disp_bytes[:2], "little")
        disp = 0 if mod == 0 else int.from_bytes(disp_bytes[:1 if mod == 1 else 2], "little", signed=True)
        parts = ((3, 6), (3, 7), (5, 6), (5, 7), (6,), (7,), (5,), (3,))[rm]
        ea = (sum(r[p] for p in parts) + disp) & 0xFFFF
        if parts[0] == 5:
            at = ea - (0x1000 - STACK_WINDOW)
            return ("stack", at) if 0 <= at <= STACK_WINDOW - 8 else None
        return ("mem", ea) if 0 <= ea <= WINDOW - 8 else None
    disp = 0 if mod == 0 else int.from_bytes(disp_bytes[:1 if mod == 1 else 4], "little", signed=True)
    ea = (regs[rm] + disp) & 0xFFFFFFFF
    at = ea - DATA_BASE
    return ("mem", at) if 0 <= at <= WINDOW - 8 else None


def _plant_iret_frame(rng, stack, top, bits, osize):
    """An IRET frame at (E)SP: EIP, CS, EFLAGS (each ``osize`` bytes)."""
    if bits == 16:
        eip = rng.randrange(0, 0x10000)
        cs = rng.choice((0, HANDLER_SEG, rng.randrange(0, 0x10000)))
        flags = rng.getrandbits(16) & ~L.FLAG_TF
    else:
        eip = rng.choice((0x1000 + rng.randrange(0x100), value(rng)))
        cs = 0x08 if rng.random() < 0.7 else selector(rng, bits)
        flags = (rng.getrandbits(22) & ~(L.FLAG_TF | L.FLAG_VM | L.FLAG_NT | L.FLAG_RF)) | 2
    mask = (1 << (8 * osize)) - 1
    frame = b"".join((v & mask).to_bytes(osize, "little") for v in (eip, cs, flags))
    stack[top:top + len(frame)] = frame


# --- the expected outcome of a software interrupt ---------------------------------------------

SOFTWARE_INTERRUPTS = ("INT", "INT3", "INTO")


def delivered(row, case, ref):
    """Unicorn's outcome of INT n / INT3 / INTO (the vector, EIP after the
    instruction, nothing delivered) completed by the SDM's delivery rule
    into what a CPU does; anything else as it is."""
    import dataclasses
    if row.mnemonic not in SOFTWARE_INTERRUPTS or ref.exception is None or ref.exception < 0:
        return ref
    v = ref.exception
    bits = case.bits
    regs = dict(ref.regs)
    stack = bytearray(ref.stack)
    base = stack_linear(bits)
    sys = dict(ref.sys)
    segs = dict(sys["segments"])
    if bits == 16:
        sp = (regs["esp"] - 6) & 0xFFFF
        frame = struct.pack("<HHH", ref.eip & 0xFFFF, segs["cs"][0], ref.eflags & 0xFFFF)
        at = (STACK_SEG << 4) + sp - base
        regs["esp"] = (regs["esp"] & 0xFFFF0000) | sp
        eflags = ref.eflags & ~(L.FLAG_IF | L.FLAG_TF | L.FLAG_AC)
        segs["cs"] = (HANDLER_SEG, HANDLER_SEG << 4)
        eip = v * 16
    else:
        sp = (regs["esp"] - 12) & 0xFFFFFFFF
        frame = struct.pack("<III", ref.eip, segs["cs"][0], ref.eflags)
        at = sp - base
        regs["esp"] = sp
        eflags = ref.eflags & ~(L.FLAG_TF | L.FLAG_NT | L.FLAG_RF | L.FLAG_VM | (L.FLAG_IF if v % 2 == 0 else 0))
        segs["cs"] = (0x08, 0)
        eip = HANDLER_AT + v * 16
    if 0 <= at and at + len(frame) <= len(stack):
        stack[at:at + len(frame)] = frame
    sys["segments"] = segs
    return dataclasses.replace(ref, regs=regs, eip=eip, eflags=eflags, stack=bytes(stack), exception=None, sys=sys)


def system_differences(case, ours, ref):
    """What differs in the system state: segment selectors and bases (the
    base Unicorn's selector names in the prepared state), GDTR, IDTR, CR0 CR2 CR3 CR4."""
    diffs = []
    a, b = ours.sys, ref.sys
    for name in SEG_NAMES:
        (sel, base), (rsel, _) = a["segments"][name], b["segments"][name]
        if sel != rsel:
            diffs.append(f"{name}: visor86 {sel:#06x}, unicorn {rsel:#06x}")
            continue
        want = segment_base(rsel, case.bits)
        if want is not None and base != want:
            diffs.append(f"{name} base: visor86 {base:#x}, the selector names {want:#x}")
    for name in ("gdtr", "idtr"):
        if a[name] != b[name]:
            diffs.append(f"{name}: visor86 base {a[name][0]:#x} limit {a[name][1]:#x}, "
                         f"unicorn base {b[name][0]:#x} limit {b[name][1]:#x}")
    for name in ("cr0", "cr2", "cr3", "cr4"):
        if a[name] != b[name]:
            diffs.append(f"{name}: visor86 {a[name]:#010x}, unicorn {b[name]:#010x}")
    return diffs


def is_software_interrupt(code):
    """True for INT n, INT3 and INTO (after an optional 66h)."""
    i = 1 if code[:1] == b"\x66" else 0
    return i < len(code) and code[i] in (0xCC, 0xCD, 0xCE)


def modrm_of(code, row):
    """(osize prefix, ModRM byte) of a case's bytes."""
    i = 1 if code[:1] == b"\x66" else 0
    return i == 1, code[i + (2 if row.map else 1)]


def control_write(row, case):
    """(CR number, value) of a MOV CRn, r32 case, or None."""
    if row.mnemonic != "MOV" or row.map != 1 or row.opcode != 0x22:
        return None
    _, modrm = modrm_of(case.code, row)
    return (modrm >> 3) & 7, case.regs["eaxecxedxebxespebpesiedi"[(modrm & 7) * 3:(modrm & 7) * 3 + 3]]


def system_deviation(row, case, ref, ours):
    """Why Unicorn is not the reference for this system case (the SDM
    wins), or None."""
    if row.mnemonic == "INT" and case.code[-1] == 6 and ref.eip == CODE_AT:
        return ("INT 6 is a software interrupt that returns after the instruction (SDM Vol. 2, INT n); Unicorn "
                "reports it as an invalid opcode at the INT")
    cr = control_write(row, case)
    if cr and ref.exception in (None, 14) and ours.exception == 13:
        n, v = cr
        if n == 0 and ((v >> 31 and not v & 1) or (v >> 29 & 1 and not v >> 30 & 1)):
            return ("MOV CR0 with PG set and PE clear, or NW set and CD clear, is #GP(0) (SDM Vol. 2, MOV to "
                    "control registers); Unicorn loads it (with PG it may then page-fault on the next fetch)")
        if n == 4 and v >> 22:
            return ("MOV CR4 setting a reserved bit (22-31) is #GP(0) (SDM Vol. 2, MOV to control registers); "
                    "Unicorn drops the bit")
    return None


def system_undefined(row, case, ref, ours):
    """Unicorn's outcome with what the SDM leaves to the implementation
    taken from visor86's (it is then not compared):
    - SMSW r32: bits 16-31 of the register are undefined (SDM Vol. 2, SMSW);
    - PUSH Sreg with a 32-bit operand size: the processor pushes the
      selector zero-extended or writes only its 16 bits (SDM Vol. 2, PUSH:
      recent processors do a 16-bit move), so bytes 2-3 of the slot."""
    import dataclasses
    if ref.exception is not None or ours.exception is not None:
        return ref
    wide, modrm = (modrm_of(case.code, row) if row.needs_modrm else (case.code[:1] == b"\x66", 0))
    osize32 = wide != (case.bits == 32)
    if row.mnemonic == "SMSW" and modrm >> 6 == 3 and osize32:
        r = REGS[modrm & 7]
        regs = dict(ref.regs, **{r: (ref.regs[r] & 0xFFFF) | (ours.regs[r] & 0xFFFF0000)})
        return dataclasses.replace(ref, regs=regs)
    if row.mnemonic == "PUSH" and osize32:
        at = (ref.regs["esp"] & (0xFFFF if case.bits == 16 else 0xFFFFFFFF)) + 2 - \
            (stack_linear(case.bits) - (STACK_SEG << 4 if case.bits == 16 else 0))
        if 0 <= at <= len(ref.stack) - 2:
            stack = ref.stack[:at] + ours.stack[at:at + 2] + ref.stack[at + 2:]
            return dataclasses.replace(ref, stack=stack)
    return ref
