"""The opcode table parsed into rows: the one source for decoder tables,
dispatcher, coverage document, fuzzer and disassembly checks."""
from dataclasses import dataclass, field

from emu.spec import opcodes
from emu.core import layout as L

FLAG_LETTERS = {"O": L.FLAG_OF, "S": L.FLAG_SF, "Z": L.FLAG_ZF, "A": L.FLAG_AF,
                "P": L.FLAG_PF, "C": L.FLAG_CF, "D": L.FLAG_DF, "I": L.FLAG_IF,
                "T": L.FLAG_TF}

GPR8 = ("AL", "CL", "DL", "BL", "AH", "CH", "DH", "BH")
GPR16 = ("AX", "CX", "DX", "BX", "SP", "BP", "SI", "DI")
SEGS = ("ES", "CS", "SS", "DS", "FS", "GS")

SIZE_CODES = {"b": 1, "w": 2, "d": 4, "q": 8, "v": L.SZ_V, "z": L.SZ_V,
              "p": L.SZ_P, "a": L.SZ_A, "s": L.SZ_S, "": 0}
METHOD_KINDS = {"E": L.K_RM, "G": L.K_REG, "I": L.K_IMM, "J": L.K_REL, "M": L.K_MEM,
                "O": L.K_MOFFS, "A": L.K_FARPTR, "S": L.K_SREG, "C": L.K_CREG,
                "D": L.K_DREG, "R": L.K_RMREG, "Z": L.K_OPREG, "X": L.K_STRSRC,
                "Y": L.K_STRDST}


@dataclass(frozen=True)
class Operand:
    text: str          # as written in the table, e.g. "Ev", "AL", "Ibs"
    kind: int          # K_*
    size: int          # bytes, or an SZ_* code
    sign_extend: bool = False

    @property
    def needs_modrm(self):
        return self.kind in (L.K_RM, L.K_REG, L.K_MEM, L.K_SREG, L.K_CREG, L.K_DREG, L.K_RMREG)


def parse_operand(text):
    if text == "1":
        return Operand(text, L.K_ONE, 1)
    if text in GPR8:
        return Operand(text, L.K_GPR + GPR8.index(text), 1)
    if text in GPR16:
        return Operand(text, L.K_GPR + GPR16.index(text), 2)
    if text.startswith("e") and text[1:] in GPR16:
        return Operand(text, L.K_GPR + GPR16.index(text[1:]), L.SZ_V)
    if text in SEGS:
        return Operand(text, L.K_SEGFIX + SEGS.index(text), 2)
    method, size = text[0], text[1:]
    if method not in METHOD_KINDS:
        raise ValueError(f"opcode table: unknown addressing method in operand {text!r}")
    sign = size.endswith("s") and method == "I"
    if sign:
        size = size[:-1]
    if method == "M" and size == "":
        size = "v"
    if size not in SIZE_CODES:
        raise ValueError(f"opcode table: unknown size code in operand {text!r}")
    return Operand(text, METHOD_KINDS[method], SIZE_CODES[size], sign)


@dataclass(frozen=True)
class Mnemonic:
    name: str
    module: str
    flags_written: int
    flags_undefined: int
    flags_conditional: bool   # '?' in the table: which flags depends on the operands
    summary: str


@dataclass
class Row:
    index: int
    opcode_text: str       # e.g. "0F BA/4", "40+r" expanded to one opcode
    map: int               # 0 one-byte, 1 two-byte (0F)
    opcode: int            # opcode byte
    reg: int               # ModRM reg extension, -1 if none
    mnemonic: str
    operands_text: str
    operands: tuple
    module: str
    impl: str              # the function that executes it (mnemonic or special form)
    writeback: bool
    flags_written: int
    flags_undefined: int

    @property
    def needs_modrm(self):
        return self.reg >= 0 or any(o.needs_modrm for o in self.operands)

    @property
    def opcode_key(self):
        return self.map * 256 + self.opcode


def _flag_mask(text):
    return sum(FLAG_LETTERS[c] for c in text if c in FLAG_LETTERS)


def parse_mnemonics():
    out = {}
    for line in opcodes.MNEMONICS.strip().splitlines():
        name, module, written, undefined, summary = line.split(None, 4)
        out[name] = Mnemonic(name, module, _flag_mask(written), _flag_mask(undefined),
                             "?" in undefined, summary)
    return out


def _expand(opcode_text):
    """'40+r' -> 8 opcodes, '70+cc' -> 16, '0F 01/2' -> one with reg 2."""
    text = opcode_text
    reg = -1
    if "/" in text:
        text, r = text.split("/")
        reg = int(r)
    parts = text.split()
    m = 0
    if parts[0] == "0F" and len(parts) == 2:
        m, parts = 1, parts[1:]
    code = parts[0]
    count = 1
    if code.endswith("+r"):
        code, count = code[:-2], 8
    elif code.endswith("+cc"):
        code, count = code[:-3], 16
    base = int(code, 16)
    return [(m, base + i, reg) for i in range(count)]


def parse_rows():
    mnems = parse_mnemonics()
    rows = []
    seen = {}
    for line in opcodes.OPCODE_MAP.strip().splitlines():
        fields = line.split()
        if fields[0] == "0F":
            opcode_text, fields = fields[0] + " " + fields[1], fields[2:]
        else:
            opcode_text, fields = fields[0], fields[1:]
        mnemonic = fields[0]
        operands_text = fields[1] if len(fields) > 1 else ""
        if mnemonic not in mnems:
            raise ValueError(f"opcode table: {opcode_text} uses mnemonic {mnemonic} missing from MNEMONICS")
        ops = tuple(parse_operand(t) for t in operands_text.split(",")) if operands_text else ()
        mn = mnems[mnemonic]
        module, impl = opcodes.SPECIAL_FORMS.get((mnemonic, operands_text), (mn.module, mnemonic))
        for m, opc, reg in _expand(opcode_text):
            key = (m, opc, reg)
            if key in seen:
                raise ValueError(f"opcode table: {opcode_text} defined twice")
            seen[key] = True
            rows.append(Row(len(rows), opcode_text, m, opc, reg, mnemonic, operands_text, ops,
                            module, impl, mnemonic not in opcodes.NO_WRITEBACK,
                            mn.flags_written, mn.flags_undefined))
    return rows


ROWS = parse_rows()
MNEMONIC_INFO = parse_mnemonics()
IMPLS = sorted({(r.module, r.impl) for r in ROWS}, key=lambda x: (x[0], x[1]))
MODULES = sorted({m for m, _ in IMPLS})
IMPL_IDS = {impl: i + 1 for i, (_, impl) in enumerate(IMPLS)}   # 0 is the #UD pseudo-instruction
MODULE_IDS = {m: i + 1 for i, m in enumerate(MODULES)}
