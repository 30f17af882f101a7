"""`emu fuzz --decode`: random byte strings decoded by visor86 and by
capstone; instruction length and validity compared.

visor86 decodes thousands of strings per call through a small jitted entry
over its decoder alone (emu/core/decode_batch.py), so a campaign needs no
compile of the run loop.  Each disagreement is classified by its cause,
looking at visor86's opcode table (emu/spec/table.py): an instruction
visor86 does not implement is not a length bug, and the places where
capstone is known to differ from the SDM are named as such; what is left
(a length or validity disagreement on an instruction visor86 implements)
is a visor86 bug candidate and makes the campaign fail.

In 32-bit mode one string in fifty is built to be exactly one instruction
of the host-safe set (the classes `emu fuzz` runs natively) with a mix of
legacy prefixes that mean the same in 64-bit mode, its memory operands
steered into the data window.  Those strings also run on the host CPU (in a
forked worker) and in visor86's CPU core, through the differential fuzzer's
oracles: the host confirms the validity (LOCK rules, prefix mixes) and,
through the results, the length.  Random bytes never run natively: a
string runs only when it passes the same vetting as a replayed case file
(campaign.host_unsafe) with nothing but the allowed prefixes in front.
"""
import random
import time
from dataclasses import dataclass, field

import numpy as np

from emu.core import layout as L
from emu.spec import table

MAX_LEN = 15
CHUNK = 10_000
MODES = (16, 32)
# legacy prefixes (SDM Vol. 2, 2.1.1): visor86's decoder knows these eleven
PREFIXES = (0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3)
# opcodes whose ModRM reg field extends the opcode (SDM Vol. 2, table A-6),
# as map * 256 + opcode, besides the groups of visor86's own table
SDM_GROUPS = {0x80, 0x81, 0x82, 0x83, 0x8F, 0xC0, 0xC1, 0xC6, 0xC7, 0xD0, 0xD1, 0xD2, 0xD3, 0xF6,
              0xF7, 0xFE, 0xFF, 0x100, 0x101, 0x118, 0x171, 0x172, 0x173, 0x1AE, 0x1B9, 0x1BA,
              0x1C7}
# SDM Vol. 2, LOCK: the instructions LOCK may prefix (with a memory destination)
SDM_LOCKABLE = {"ADD", "ADC", "AND", "BTC", "BTR", "BTS", "CMPXCHG", "CMPXCHG8B", "DEC", "INC",
                "NEG", "NOT", "OR", "SBB", "SUB", "XOR", "XADD", "XCHG"}


class DecodeInputError(ValueError):
    """A byte string the decoder cannot be given: the message says which and why."""


# --- the opcode table, keyed by what the bytes say -------------------------------

def _rows_by_key():
    out = {}
    for r in table.ROWS:
        out[(r.map, r.opcode, r.reg)] = r
    return out


ROWS_BY_KEY = _rows_by_key()
TABLE_GROUPS = {r.opcode_key for r in table.ROWS if r.reg >= 0}


@dataclass(frozen=True)
class Opcode:
    """What the bytes of a string say before decoding: the legacy prefixes,
    the opcode map ("" one-byte, "0F", "0F 38", "0F 3A"), the opcode byte,
    and the ModRM byte after it (None when the string ends first)."""
    prefixes: bytes
    map: str
    opcode: int
    modrm: int | None

    @property
    def grouped(self):
        key = {"": 0, "0F": 0x100}.get(self.map, -1) + self.opcode
        return self.map in ("", "0F") and (key in TABLE_GROUPS or key in SDM_GROUPS)

    @property
    def key(self):
        """The opcode as the report groups strings: "0F BA /4", "C6 /7", "F4", "0F 38 00"."""
        text = (self.map + " " if self.map else "") + f"{self.opcode:02X}"
        if self.grouped:
            text += f" /{(self.modrm >> 3) & 7}" if self.modrm is not None else " /?"
        return text

    def row(self):
        """visor86's row for this opcode (None: not in the table)."""
        if self.map not in ("", "0F"):
            return None
        m = 1 if self.map else 0
        reg = (self.modrm >> 3) & 7 if self.modrm is not None else -9
        return ROWS_BY_KEY.get((m, self.opcode, reg)) or ROWS_BY_KEY.get((m, self.opcode, -1))


def parse_opcode(s):
    """The Opcode of byte string ``s`` (None: only prefixes)."""
    i = 0
    while i < len(s) and s[i] in PREFIXES:
        i += 1
    if i >= len(s):
        return None
    prefixes, m, op = bytes(s[:i]), "", s[i]
    i += 1
    if op == 0x0F:
        if i >= len(s):
            return None
        m, op = "0F", s[i]
        i += 1
        if op in (0x38, 0x3A):
            if i >= len(s):
                return None
            m, op = f"0F {op:02X}", s[i]
            i += 1
    return Opcode(prefixes, m, op, s[i] if i < len(s) else None)


def row_text(row):
    return f"{row.mnemonic} {row.operands_text}".strip()


# --- visor86 ----------------------------------------------------------------------

def check_strings(strings):
    """The strings as bytes; DecodeInputError for anything that is not a
    byte string of 1 to 15 bytes (an x86 instruction is at most 15 bytes,
    SDM Vol. 2, 2.3.11)."""
    out = []
    for i, s in enumerate(strings):
        if not isinstance(s, (bytes, bytearray, memoryview)):
            raise DecodeInputError(f"string {i} is a {type(s).__name__}, not bytes")
        s = bytes(s)
        if not 1 <= len(s) <= MAX_LEN:
            raise DecodeInputError(f"string {i} is {len(s)} bytes long: an x86 instruction is 1 to "
                                   f"{MAX_LEN} bytes, so the decoder takes strings of that length")
        out.append(s)
    return out


@dataclass(frozen=True)
class Visor86Answer:
    """visor86's decoder on one string: ``status`` "ok" (an instruction of
    ``length`` bytes, opcode-table ``row``), "ud" (an undefined opcode:
    #UD after ``length`` bytes) or "past_end" (the instruction needs more
    bytes than the string has, or more than 15)."""
    status: str
    length: int
    row: object = None

    def text(self):
        if self.status == "ok":
            return f"{row_text(self.row)} ({self.length} bytes)"
        return "#UD" if self.status == "ud" else "needs more bytes than given"


class Visor86Decoder:
    """visor86's decoder over many strings per call:
    ``Visor86Decoder().decode([b"\\x01\\xc8", ...], mode=32)``."""

    def __init__(self):
        from emu import Machine
        from emu.core.decode_batch import decode_many
        t = time.perf_counter()
        self._guest = Machine.flat32(memory_size=64 << 10)._state
        self._decode_many = decode_many
        self.decode_arrays([b"\x90"])      # compile, or load the compiled code from the cache
        self.startup_seconds = time.perf_counter() - t

    def decode_arrays(self, strings, mode=32):
        """(length, row, vector) int64 arrays for checked strings (see decode_batch)."""
        if mode not in MODES:
            raise DecodeInputError(f"mode {mode!r}: the decoder runs 16- or 32-bit code")
        strings = check_strings(strings)
        n = len(strings)
        code = np.frombuffer(b"".join(strings), np.uint8).copy() if n else np.zeros(0, np.uint8)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum([len(s) for s in strings], out=offsets[1:])
        length = np.zeros(n, np.int64)
        row = np.zeros(n, np.int64)
        vector = np.zeros(n, np.int64)
        done = self._decode_many(self._guest, code, offsets, n, 1 if mode == 32 else 0, length, row, vector)
        if done != n:
            raise RuntimeError(f"the batch decoder refused its arrays ({done} of {n})")
        return length, row, vector

    def decode(self, strings, mode=32):
        """A Visor86Answer per string."""
        length, row, vector = self.decode_arrays(strings, mode)
        return [_answer(n, r, v) for n, r, v in zip(length.tolist(), row.tolist(), vector.tolist())]


def _answer(length, row, vector):
    from emu.core.decode_batch import DECODED
    if vector == DECODED:
        return Visor86Answer("ok", length, table.ROWS[row])
    if vector == L.VEC_UD:
        return Visor86Answer("ud", length)
    if vector == L.VEC_GP:
        return Visor86Answer("past_end", 0)
    raise RuntimeError(f"the batch decoder reported vector {vector}")


# --- capstone ---------------------------------------------------------------------

class CapstoneDecoder:
    def __init__(self, mode=32):
        import capstone
        self.md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32 if mode == 32 else capstone.CS_MODE_16)
        self.mode = mode

    def decode(self, s):
        """(length, "mnemonic operands") of the first instruction, or None."""
        for _, size, mnemonic, op_str in self.md.disasm_lite(s, 0x1000, 1):
            return size, f"{mnemonic} {op_str}".strip()
        return None

    def groups(self, s):
        """capstone's instruction groups (sse2, avx, fpu ...) of the first instruction."""
        self.md.detail = True
        try:
            for insn in self.md.disasm(s, 0x1000, 1):
                return [insn.group_name(g) for g in insn.groups]
            return []
        finally:
            self.md.detail = False


# --- random byte strings ----------------------------------------------------------

def _prefix_run(rng, choices=PREFIXES):
    """0 to 14 legacy prefixes: mostly none or a few, sometimes a run long
    enough to push the instruction past 15 bytes."""
    p = rng.random()
    if p < 0.35:
        k = 0
    elif p < 0.60:
        k = 1
    elif p < 0.78:
        k = 2
    elif p < 0.92:
        k = rng.randint(3, 4)
    else:
        k = rng.randint(5, 14)
    return bytes(rng.choice(choices) for _ in range(k))


def _modrm_bytes(rng, reg=None):
    """A ModRM byte (reg forced for a group) and its SIB byte: register
    forms, [base], disp8 and disp32 (the random bytes after give the
    displacement), SIB with and without a base (mod=00 base=101), disp32
    alone (mod=00 r/m=101)."""
    mod = rng.randrange(4)
    shape = rng.random()
    rm = 4 if shape < 0.3 else (5 if shape < 0.45 else rng.randrange(8))
    modrm = (mod << 6) | ((rng.randrange(8) if reg is None else reg) << 3) | rm
    out = bytes([modrm])
    if mod != 3 and rm == 4:
        base = 5 if rng.random() < 0.3 else rng.randrange(8)
        out += bytes([(rng.randrange(4) << 6) | (rng.randrange(8) << 3) | base])
    return out


def _random_tail(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def _finish(rng, s, truncate):
    """Pad with random bytes to 15 (the decoder then never runs out), or,
    for a few strings, cut at a random length to test truncation."""
    s = (s + _random_tail(rng, MAX_LEN))[:MAX_LEN]
    if rng.random() < truncate:
        s = s[:rng.randint(1, MAX_LEN - 1)]
    return s


def generate(seed, chunk, size, mode=32):
    """Chunk ``chunk`` of a campaign: ``size`` (strategy, bytes, HostCase or
    None) triples, the same for the same seed and mode.  Strategies:
    "random" (random bytes), "table" (prefixes, then an opcode of visor86's
    table with its group's ModRM reg, ModRM/SIB/displacement variety and
    random bytes after), "opcode" (prefixes, then any one-byte, 0F, 0F 38 or
    0F 3A opcode) and, in 32-bit mode, "host" (one instruction of the
    host-safe set with a mix of prefixes, see host_case)."""
    rng = random.Random(f"decode-{seed}-{mode}-{chunk}")
    rows = table.ROWS
    out = []
    for _ in range(size):
        p = rng.random()
        if mode == 32 and p < HOST_SHARE:
            hc = host_case(rng)
            out.append(("host", hc.case.code, hc))
            continue
        if p < 0.3:
            out.append(("random", _finish(rng, b"", 0.15), None))
            continue
        prefixes = _prefix_run(rng)
        if p < 0.7:
            row = rng.choice(rows)
            op = (b"\x0f" if row.map else b"") + bytes([row.opcode])
            modrm = _modrm_bytes(rng, row.reg if row.reg >= 0 else None)
            out.append(("table", _finish(rng, prefixes + op + modrm, 0.1), None))
        else:
            m = rng.random()
            if m < 0.45:
                op = bytes([rng.randrange(256)])
            elif m < 0.9:
                op = bytes([0x0F, rng.randrange(256)])
            else:
                op = bytes([0x0F, rng.choice((0x38, 0x3A)), rng.randrange(256)])
            out.append(("opcode", _finish(rng, prefixes + op + _modrm_bytes(rng), 0.1), None))
    return out


# --- classification -----------------------------------------------------------------

AGREE = "agree"
AGREE_INVALID = "agree-invalid"
NOT_IMPLEMENTED = "not-implemented"
CAPSTONE_ACCEPTS = "capstone-accepts-invalid"
CAPSTONE_REJECTS = "capstone-rejects-valid"
EXECUTION_UD = "execution-ud"
LENGTH_EXPLAINED = "length-explained"
BUG_LENGTH = "length-differs"
BUG_VISOR86_ONLY = "visor86-decodes-capstone-rejects"
BUG_CAPSTONE_ONLY = "visor86-ud-capstone-decodes"

CATEGORIES = {
    AGREE: "agree: an instruction of the same length",
    AGREE_INVALID: "agree: no instruction (#UD, or it runs past the string's end)",
    NOT_IMPLEMENTED: "not implemented in visor86 (capstone knows it)",
    CAPSTONE_ACCEPTS: "capstone decodes an encoding the SDM makes #UD",
    CAPSTONE_REJECTS: "capstone rejects an encoding the CPU runs",
    EXECUTION_UD: "visor86 decodes it, its executor raises #UD/#NM",
    LENGTH_EXPLAINED: "length differs: vendor-dependent or a capstone error",
    BUG_LENGTH: "length differs",
    BUG_VISOR86_ONLY: "visor86 decodes, capstone rejects",
    BUG_CAPSTONE_ONLY: "visor86 #UD, capstone decodes",
}
EXPLAINED = (NOT_IMPLEMENTED, CAPSTONE_ACCEPTS, CAPSTONE_REJECTS, EXECUTION_UD, LENGTH_EXPLAINED)
BUG_CANDIDATES = (BUG_LENGTH, BUG_VISOR86_ONLY, BUG_CAPSTONE_ONLY)

# instructions capstone decodes in 32- and 16-bit code that exist only in 64-bit mode
CAPSTONE_64_ONLY = {"swapgs"}
UD0_REASON = ("UD0 (0F FF): the Intel SDM gives it a ModRM (0F FF /r, Vol. 2, UD), visor86 too; "
              "AMD and capstone end it after the opcode")
UD1_REASON = "UD1 (0F B9 /r): capstone ends it after the opcode; the SDM gives it a ModRM (Vol. 2, UD)"


@dataclass(frozen=True)
class Verdict:
    category: str
    reason: str
    key: str            # the opcode, as Opcode.key


def _mnemonic(capstone_text):
    """capstone's mnemonic without its prefix words (lock, rep, bnd ...)."""
    words = capstone_text.split(" ")
    while len(words) > 1 and words[0] in ("lock", "rep", "repe", "repne", "bnd", "notrack",
                                          "xacquire", "xrelease", "data16", "addr16", "addr32"):
        words = words[1:]
    return words[0]


def lock_allowed(row, modrm):
    """SDM Vol. 2, LOCK: LOCK may prefix ADD ADC AND BTC BTR BTS CMPXCHG
    CMPXCHG8B DEC INC NEG NOT OR SBB SUB XOR XADD XCHG when the destination
    is memory; anything else is #UD."""
    return (row.mnemonic in SDM_LOCKABLE and bool(row.operands)
            and row.operands[0].kind in (L.K_RM, L.K_MEM) and modrm is not None and modrm >> 6 != 3)


class Classifier:
    """Puts each (string, visor86's answer, capstone's answer) in a
    category of CATEGORIES, with a reason and the opcode's key."""

    def __init__(self, capstone_decoder):
        self.cs = capstone_decoder
        self._group_cache = {}

    def capstone_group(self, s, text):
        """capstone's instruction-set extension for the first instruction of
        ``s`` (sse2, mmx, vm ...), None when it names none."""
        m = _mnemonic(text)
        if m not in self._group_cache:
            names = [g for g in self.cs.groups(s) if g not in ("mode32", "mode64", "not64bitmode",
                                                              "branch_relative", "jump", "call", "ret",
                                                              "int", "iret", "privilege", "16bitmode")]
            self._group_cache[m] = names[0] if names else None
        return self._group_cache[m]

    def classify(self, s, v, c, lock_free=None):
        """``v`` a Visor86Answer, ``c`` capstone's (length, text) or None;
        ``lock_free`` visor86's answer for ``s`` without its F0 prefixes
        (asked only when v is #UD and s has one)."""
        op = parse_opcode(s)
        key = op.key if op else "prefixes only"
        row = op.row() if op else None
        if v.status == "ok":
            if c is not None and c[0] == v.length:
                return Verdict(AGREE, "", key)
            if c is not None:
                return self._length(v.row, key)
            return self._visor86_only(s, v, op, key)
        if c is None:
            return Verdict(AGREE_INVALID, "", key)
        if v.status == "past_end":
            # capstone found an instruction within the string, visor86 wants more bytes
            if row is not None:
                return self._length(row, key, ", visor86 needs more bytes")
            return Verdict(BUG_LENGTH, "visor86 needs more bytes", key)
        return self._capstone_only(s, c, op, row, key, lock_free)

    def _length(self, row, key, what=""):
        if row.mnemonic == "UD0":
            return Verdict(LENGTH_EXPLAINED, UD0_REASON, key)
        if row.mnemonic == "UD1":
            return Verdict(LENGTH_EXPLAINED, UD1_REASON, key)
        return Verdict(BUG_LENGTH, row_text(row) + what, key)

    def _visor86_only(self, s, v, op, key):
        row = v.row
        if row.mnemonic == "ESC":
            return Verdict(EXECUTION_UD, "x87 escape (D8-DF) in a form capstone rejects: visor86 has no "
                                         "FPU and decodes every escape by its ModRM, then raises #NM or #UD",
                           key)
        if row.impl in ("MOV_TO_SREG", "MOV_FROM_SREG") and op.modrm is not None and (op.modrm >> 3) & 7 > 5:
            return Verdict(EXECUTION_UD, "MOV with segment register 6 or 7 (there are six): the executor "
                                         "raises #UD (SDM Vol. 2, MOV)", key)
        if any(p in (0xF2, 0xF3) for p in op.prefixes):
            bare = bytes(b for b in op.prefixes if b not in (0xF2, 0xF3)) + s[len(op.prefixes):]
            c = self.cs.decode(bare)
            if c is not None:
                if c[0] == v.length - (len(s) - len(bare)):
                    return Verdict(CAPSTONE_REJECTS, "capstone rejects an F2/F3 prefix the CPU ignores here "
                                                     "(the SDM calls such use reserved)", key)
                return self._length(row, key)
        return Verdict(BUG_VISOR86_ONLY, row_text(row), key)

    def _capstone_only(self, s, c, op, row, key, lock_free):
        mnemonic = _mnemonic(c[1])
        if mnemonic in CAPSTONE_64_ONLY:
            return Verdict(CAPSTONE_ACCEPTS, f"{mnemonic} exists only in 64-bit mode", key)
        if row is None:
            return self._not_implemented(s, c, op, key, "")
        if lock_free is not None and lock_free.status == "ok":
            if not lock_allowed(lock_free.row, op.modrm):
                return Verdict(CAPSTONE_ACCEPTS, "LOCK on an instruction or form it may not prefix "
                                                 "(SDM Vol. 2, LOCK: #UD)", key)
            return Verdict(BUG_CAPSTONE_ONLY, f"LOCK {row_text(lock_free.row)}: visor86 #UD", key)
        mem_only = any(o.kind == L.K_MEM for o in row.operands)
        if mem_only and op.modrm is not None and op.modrm >> 6 == 3 and mnemonic != row.mnemonic.lower():
            return self._not_implemented(s, c, op, key, f"register form of {row_text(row)} (memory only), ")
        return Verdict(BUG_CAPSTONE_ONLY, row_text(row), key)

    def _not_implemented(self, s, c, op, key, form):
        """An opcode (or form) outside visor86's table that capstone decodes,
        named by the encoding space it lies in or by capstone's group."""
        modrm3 = op.modrm is not None and op.modrm >> 6 == 3
        if op.map == "" and op.opcode in (0xC4, 0xC5) and modrm3:
            reason = "VEX prefix (AVX, FMA, BMI ...)"
        elif op.map == "" and op.opcode == 0x62 and modrm3:
            reason = "EVEX prefix (AVX-512)"
        elif op.map == "" and op.opcode == 0x8F and op.modrm is not None and op.modrm & 0x38:
            reason = "XOP prefix (AMD)"
        elif op.map == "0F" and 0x18 <= op.opcode <= 0x1F:
            reason = ("hint NOPs and prefetches, 0F 18-0F 1F (NOPs since the P6; visor86 has only "
                      "0F 1F /0; ENDBR32 is F3 0F 1E FB)")
        else:
            group = self.capstone_group(s, c[1])
            if group is None:
                return Verdict(NOT_IMPLEMENTED, form + "in no extension group of capstone's",
                               f"{key} {_mnemonic(c[1])}")
            reason = group
        return Verdict(NOT_IMPLEMENTED, form + reason, key)


# --- the host CPU -------------------------------------------------------------------

# prefixes that mean the same to visor86's flat 32-bit machine and to the host
# in 64-bit mode: ES/SS/DS overrides (base 0 in both; CS is left out, as a
# write through it is #GP in visor86 and fine on the host), LOCK, REP/REPNE
HOST_PREFIXES = (0x26, 0x36, 0x3E, 0xF0, 0xF2, 0xF3)
HOST_SHARE = 0.02           # of the strings in 32-bit mode


def _host_rows():
    from emu.fuzz.cases import native_rows, NATIVE_MODULES
    return native_rows(NATIVE_MODULES)


@dataclass
class HostCase:
    """A string built to run on the host: one instruction of the host-safe
    set with a random mix of HOST_PREFIXES.  ``plain`` is the same case
    without the added prefixes (what the differential fuzzer would run)."""
    row: object
    case: object            # emu.fuzz.native.Case with the prefixed code
    plain: object


def host_case(rng):
    """A HostCase: a case of the differential fuzzer (registers steering
    memory operands into the data window) with 0 to 4 prefixes added, kept
    within 15 bytes.  F3 is not put before BSF/BSR (F3 0F BC/BD are TZCNT
    and LZCNT on hosts with BMI1/ABM, which an i486-class visor86 is not)."""
    from emu.fuzz.cases import make_case
    from emu.fuzz.native import Case
    row = rng.choice(_host_rows())
    plain = make_case(rng, row, prefix_mix=False)      # the prefixes are added here
    choices = [p for p in HOST_PREFIXES if not (p == 0xF3 and row.mnemonic in ("BSF", "BSR"))]
    k = rng.choice((0, 1, 1, 1, 2, 2, 3, 4))
    extra = [0xF0 if rng.random() < 0.2 else rng.choice(choices) for _ in range(k)]
    extra = extra[:MAX_LEN - len(plain.code)]
    code = plain.code
    has66 = code[:1] == b"\x66"
    cut = rng.randint(0, len(extra)) if has66 else len(extra)
    code = bytes(extra[:cut]) + code[:1 if has66 else 0] + bytes(extra[cut:]) + code[1 if has66 else 0:]
    return HostCase(row, Case(code, plain.regs, plain.eflags, plain.mem), plain)


def host_unsafe_mix(hc):
    """Why ``hc`` must not run natively (None if it may): its bytes are
    exactly the vetted case of the differential fuzzer (campaign.host_unsafe)
    with only HOST_PREFIXES added in front."""
    from emu.fuzz.campaign import host_unsafe
    code = hc.case.code
    i = 0
    while i < len(code) and code[i] in HOST_PREFIXES + (0x66,):
        i += 1
    if code[i:] != hc.plain.code[1 if hc.plain.code[:1] == b"\x66" else 0:]:
        return "the bytes are not the plain case behind prefixes"
    if code[:i].count(0x66) != hc.plain.code[:1].count(0x66):
        return "an operand-size prefix was added"
    return host_unsafe(hc.row, hc.plain)


@dataclass
class HostStats:
    """Host-safe strings run natively and in visor86 (32-bit mode)."""
    cases: int = 0
    completed: int = 0        # both ran the instruction to its end and agreed
    ud: int = 0               # both raised #UD (a LOCK the instruction does not take ...)
    other_exceptions: int = 0  # both raised the same other exception (#DE ...)
    divergences: list = field(default_factory=list)   # (bytes, disassembly, differences)
    refused: int = 0          # built but failed the safety vetting (never run)
    visor86_seconds: float = 0.0
    host_seconds: float = 0.0

    def summary(self):
        return {"cases": self.cases, "completed": self.completed, "ud": self.ud,
                "other_exceptions": self.other_exceptions, "refused": self.refused,
                "divergences": [(c.hex(), d) for c, _, d in self.divergences]}

    def lines(self):
        out = [f"host CPU: {self.cases} host-safe strings (one instruction, prefix mixes) run natively "
               f"and in visor86",
               f"  agree: completed {self.completed}, #UD {self.ud}, same other exception "
               f"{self.other_exceptions}; diverge {len(self.divergences)}"
               + (f"; refused by the safety check {self.refused}" if self.refused else ""),
               f"  host {self.cases / max(self.host_seconds, 1e-9):,.0f} strings/s (a new forked worker "
               f"after each fault), visor86 {self.cases / max(self.visor86_seconds, 1e-9):,.0f} strings/s "
               f"(Machine.step)"]
        for code, text, diffs in self.divergences[:10]:
            out.append(f"    {code.hex():<30} {text:<36} " + "; ".join(diffs))
        return out


class HostChecker:
    """Runs HostCases natively (emu.fuzz.native, in a forked worker) and in
    visor86 (a flat 32-bit machine), through the differential fuzzer's
    oracles and comparison."""

    def __init__(self):
        from emu.fuzz.campaign import Visor86Side
        from emu.fuzz.native import NativeExecutor
        self.native = NativeExecutor()
        self.side = Visor86Side()

    def close(self):
        self.native.close()

    def run(self, host_cases, stats):
        from emu.fuzz.campaign import Outcome, compare, disassemble
        safe = []
        for hc in host_cases:
            if host_unsafe_mix(hc) is None:
                safe.append(hc)
            else:
                stats.refused += 1
        t = time.perf_counter()
        refs = self.native.run([hc.case for hc in safe])
        stats.host_seconds += time.perf_counter() - t
        t = time.perf_counter()
        ours = self.side.run_many([hc.case for hc in safe]) if safe else []
        stats.visor86_seconds += time.perf_counter() - t
        for hc, r, mine in zip(safe, refs, ours):
            stats.cases += 1
            ref = Outcome(r.regs, r.eflags, r.mem, r.exception)
            # the plain case tells compare() the operand size and shift count
            diffs, _ = compare(hc.row, hc.plain, mine, ref)
            if diffs:
                stats.divergences.append((hc.case.code, disassemble(hc.case.code), diffs))
            elif ref.exception is None:
                stats.completed += 1
            elif ref.exception == L.VEC_UD:
                stats.ud += 1
            else:
                stats.other_exceptions += 1


# --- the campaign -------------------------------------------------------------------

@dataclass
class Example:
    code: bytes
    visor86: str
    capstone: str

    def line(self):
        return f"{self.code.hex():<30} visor86: {self.visor86}; capstone: {self.capstone}"


@dataclass
class Report:
    mode: int
    seed: int
    strings: int = 0
    counts: dict = field(default_factory=dict)          # category -> strings
    reasons: dict = field(default_factory=dict)         # (category, reason) -> {opcode key: strings}
    examples: dict = field(default_factory=dict)        # (category, reason, key) -> Example (the first)
    strategies: dict = field(default_factory=dict)      # strategy -> strings
    visor86_seconds: float = 0.0
    capstone_seconds: float = 0.0
    wall_seconds: float = 0.0
    startup_seconds: float = 0.0                        # visor86's decoder compiled or loaded
    host: object = None                                 # HostStats, in 32-bit mode

    @property
    def failed(self):
        """A visor86 bug candidate, or a divergence on the host CPU."""
        return bool(self.bug_candidates) or bool(self.host and self.host.divergences)

    def count(self, category, strategy):
        self.strings += 1
        self.strategies[strategy] = self.strategies.get(strategy, 0) + 1
        self.counts[category] = self.counts.get(category, 0) + 1

    def add(self, verdict, strategy, s, v, c):
        self.count(verdict.category, strategy)
        if verdict.category in (AGREE, AGREE_INVALID):
            return
        keys = self.reasons.setdefault((verdict.category, verdict.reason), {})
        keys[verdict.key] = keys.get(verdict.key, 0) + 1
        ex = (verdict.category, verdict.reason, verdict.key)
        if ex not in self.examples:
            ctext = f"{c[1]} ({c[0]} bytes)" if c else "invalid"
            self.examples[ex] = Example(bytes(s), v.text(), ctext)

    @property
    def bug_candidates(self):
        """(category, reason, key, strings, Example) for every disagreement on
        an instruction visor86 implements that no known cause explains."""
        out = []
        for (cat, reason), keys in self.reasons.items():
            if cat in BUG_CANDIDATES:
                for key, n in sorted(keys.items(), key=lambda kv: (-kv[1], kv[0])):
                    out.append((cat, reason, key, n, self.examples[(cat, reason, key)]))
        return sorted(out, key=lambda t: (BUG_CANDIDATES.index(t[0]), -t[3], t[2], t[1]))

    def summary(self):
        """The counts alone (what determinism is judged on)."""
        return {"strings": self.strings, "counts": dict(sorted(self.counts.items())),
                "reasons": {f"{c}: {r}": dict(sorted(k.items())) for (c, r), k in sorted(self.reasons.items())},
                "strategies": dict(sorted(self.strategies.items())),
                "host": self.host.summary() if self.host else None}

    def text(self, examples_per_reason=3):
        n = max(self.strings, 1)
        lines = [f"emu fuzz --decode: {self.strings} byte strings (seed {self.seed}, {self.mode}-bit code) "
                 f"in {self.wall_seconds:.1f} s",
                 f"  decoding: visor86 {self.strings / max(self.visor86_seconds, 1e-9):,.0f} strings/s "
                 f"(its decoder ready in {self.startup_seconds:.1f} s), "
                 f"capstone {self.strings / max(self.capstone_seconds, 1e-9):,.0f} strings/s",
                 "  strategies: " + ", ".join(f"{k} {v}" for k, v in sorted(self.strategies.items())), "",
                 f"  {'outcome':<66} {'strings':>9} {'share':>7}"]

        def row(cat, indent=2):
            k = self.counts.get(cat, 0)
            lines.append(f"  {' ' * indent}{CATEGORIES[cat]:<{66 - indent}} {k:>9} {k / n:>7.2%}")
        row(AGREE, 0)
        row(AGREE_INVALID, 0)
        lines.append("  explained disagreements")
        for cat in EXPLAINED:
            row(cat)
        lines.append("  visor86 bug candidates (instructions visor86 implements)")
        for cat in BUG_CANDIDATES:
            row(cat)
        if self.host is not None:
            lines += [""] + self.host.lines()
        for cat in EXPLAINED:
            reasons = [(r, k) for (c, r), k in self.reasons.items() if c == cat]
            if not reasons:
                continue
            lines += ["", f"{CATEGORIES[cat]}:"]
            for reason, keys in sorted(reasons, key=lambda rk: -sum(rk[1].values())):
                top = sorted(keys.items(), key=lambda kv: (-kv[1], kv[0]))
                lines.append(f"  {reason} ({sum(keys.values())}): "
                             + ", ".join(f"{k} x{v}" for k, v in top[:8]) + (" ..." if len(top) > 8 else ""))
                for key, _ in top[:examples_per_reason]:
                    lines.append("      " + self.examples[(cat, reason, key)].line())
        bugs = self.bug_candidates
        lines.append("")
        if bugs:
            lines.append(f"{len(bugs)} visor86 bug candidates (one example per opcode and reason):")
            for cat, reason, key, k, ex in bugs:
                lines.append(f"  [{CATEGORIES[cat]}] {key}: {reason} (x{k})")
                lines.append("      " + ex.line())
        else:
            lines.append("no disagreement on an instruction visor86 implements")
        return "\n".join(lines)


class DecodeFuzzError(Exception):
    """A decode campaign that cannot run: the message says why."""


def run_chunk(report, chunk, size, visor86, capstone_decoder, classifier, host=None, host_budget=0):
    """Decode one chunk of the campaign on both sides and add it to the
    report; run up to ``host_budget`` of its host strings on ``host`` (a
    HostChecker, or a function returning one)."""
    from emu.core.decode_batch import DECODED
    pairs = generate(report.seed, chunk, size, report.mode)
    strings = [s for _, s, _ in pairs]
    t = time.perf_counter()
    length, row, vector = visor86.decode_arrays(strings, report.mode)
    report.visor86_seconds += time.perf_counter() - t
    t = time.perf_counter()
    decode = capstone_decoder.decode
    theirs = [decode(s) for s in strings]
    report.capstone_seconds += time.perf_counter() - t
    length, row, vector = length.tolist(), row.tolist(), vector.tolist()
    slow = []
    for i, c in enumerate(theirs):
        if vector[i] == DECODED:
            if c is not None and c[0] == length[i]:
                report.count(AGREE, pairs[i][0])
                continue
        elif c is None:
            report.count(AGREE_INVALID, pairs[i][0])
            continue
        slow.append(i)
    # the disagreements: visor86's answers as objects, and for a #UD with a
    # LOCK prefix, visor86's answer without it (was LOCK the reason?)
    answers = {i: _answer(length[i], row[i], vector[i]) for i in slow}
    locked, stripped = [], []
    for i in slow:
        op = parse_opcode(strings[i])
        if answers[i].status == "ud" and op is not None and 0xF0 in op.prefixes:
            locked.append(i)
            stripped.append(bytes(b for b in op.prefixes if b != 0xF0) + strings[i][len(op.prefixes):])
    lock_free = dict(zip(locked, visor86.decode(stripped, report.mode))) if stripped else {}
    for i in slow:
        strategy, s, _ = pairs[i]
        v, c = answers[i], theirs[i]
        report.add(classifier.classify(s, v, c, lock_free.get(i)), strategy, s, v, c)
    host_cases = [hc for _, _, hc in pairs if hc is not None][:max(host_budget, 0)]
    if host_cases:
        if report.host is None:
            report.host = HostStats()
        (host() if callable(host) else host).run(host_cases, report.host)
    return len(host_cases)


def campaign(cases=100_000, seed=0, mode=32, progress=None, host_cases=None, chunk_size=CHUNK):
    """Decode ``cases`` random strings with visor86 and capstone; returns the
    Report.  In 32-bit mode about one string in fifty is built to be
    host-safe; ``host_cases`` of them (default all, 0 for none) also run on
    the host CPU and in visor86's CPU core (which needs the core compiled:
    minutes the first time, cached after)."""
    if not isinstance(cases, int) or cases < 1:
        raise DecodeFuzzError("a decode campaign needs at least one string (--cases N, N >= 1)")
    if mode not in MODES:
        raise DecodeFuzzError(f"--mode {mode}: the decoder runs 16- or 32-bit code (16 or 32)")
    if host_cases is not None and (not isinstance(host_cases, int) or host_cases < 0):
        raise DecodeFuzzError("--host N: the number of strings to run on the host CPU, 0 or more")
    start = time.perf_counter()
    report = Report(mode, seed)
    visor86 = Visor86Decoder()
    report.startup_seconds = visor86.startup_seconds
    capstone_decoder = CapstoneDecoder(mode)
    classifier = Classifier(capstone_decoder)
    budget = cases if host_cases is None else host_cases
    checker = []

    def host():
        if not checker:
            checker.append(HostChecker())
        return checker[0]
    try:
        for chunk, at in enumerate(range(0, cases, chunk_size)):
            budget -= run_chunk(report, chunk, min(chunk_size, cases - at), visor86, capstone_decoder,
                                classifier, host, budget if mode == 32 else 0)
            if progress:
                progress(report, cases)
    finally:
        if checker:
            checker[0].close()
    report.wall_seconds = time.perf_counter() - start
    return report
