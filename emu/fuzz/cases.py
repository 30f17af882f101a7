"""Random single-instruction cases drawn from the opcode table, for the
differential tests and `emu fuzz`.  A case is bytes valid in
32-bit mode plus registers, flags and a data window; every memory operand
points into the window at DATA_BASE."""
import random

from emu.core import layout as L
from emu.spec import table
from emu.fuzz.native import Case, DATA_BASE, WINDOW

# instructions the host can run in 64-bit mode with the same meaning (see native.py)
NATIVE_MODULES = {"alu", "shift", "muldiv", "bits", "move", "flagctl"}
NATIVE_EXCLUDED = {"BOUND", "ARPL", "SALC", "XLAT", "WAIT", "ESC", "UD0", "UD1", "UD2", "CLI", "STI",
                   "NOP"}
UNSAFE_KINDS = {L.K_SREG, L.K_CREG, L.K_DREG, L.K_MOFFS, L.K_FARPTR, L.K_REL, L.K_STRSRC,
                L.K_STRDST, L.K_RMREG}

# prefixes a case may carry in front of its instruction, legal or not: segment
# overrides that change nothing in flat or 64-bit code, LOCK (#UD unless the
# instruction is a lockable read-modify-write of memory, SDM Vol. 2, LOCK),
# and REP/REPNE, which instructions outside the string group ignore
PREFIX_MIX = (0x26, 0x36, 0x3E, 0xF0, 0xF2, 0xF3)
ALL_PREFIXES = PREFIX_MIX + (0x66,)


def prefix_length(code):
    """How many prefix bytes (of ALL_PREFIXES) open ``code``."""
    n = 0
    while n < len(code) and code[n] in ALL_PREFIXES:
        n += 1
    return n


def mix_allowed(row):
    """False where REP/REPNE give the bytes another meaning on current CPUs
    (F3 0F BC/BD are TZCNT/LZCNT, F3 0F B8 POPCNT)."""
    return not (row.map and row.opcode in (0xB8, 0xBC, 0xBD))


EDGE_VALUES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)


def native_rows(modules):
    rows = []
    for r in table.ROWS:
        if r.module not in modules or r.mnemonic in NATIVE_EXCLUDED:
            continue
        if any(o.kind in UNSAFE_KINDS or o.kind >= L.K_SEGFIX for o in r.operands):
            continue
        if r.map == 0 and (0x40 <= r.opcode <= 0x4F or r.opcode == 0x82):
            continue                    # REX prefixes, and 82h is #UD, in 64-bit mode
        if r.mnemonic == "XCHG" and r.opcode == 0x94 or (r.mnemonic in ("MOV", "BSWAP") and
                                                         any(o.kind == L.K_OPREG for o in r.operands)
                                                         and (r.opcode & 7) == 4):
            continue                    # ESP as an operand
        rows.append(r)
    return rows


def value(rng, bits=32):
    if rng.random() < 0.3:
        return rng.choice(EDGE_VALUES) & ((1 << bits) - 1)
    return rng.getrandbits(bits)


def _modrm_memory(rng, regs, avoid):
    """A ModRM (and SIB, displacement) addressing the data window; sets the
    base/index registers.  Returns bytes and the registers it used."""
    for _ in range(100):
        mod = rng.choice((0, 1, 2))
        use_sib = rng.random() < 0.35
        disp = 0
        if use_sib:
            base = rng.choice([r for r in (0, 1, 2, 3, 5, 6, 7) if not (r == 5 and mod == 0)])
            index = rng.choice((0, 1, 2, 3, 4, 5, 6, 7))
            scale = rng.randrange(4)
            rm = 4
        else:
            base = rng.choice([r for r in (0, 1, 2, 3, 5, 6, 7) if not (r == 5 and mod == 0)])
            index, scale, rm = 4, 0, base
        if base in avoid or (index != 4 and index in avoid):
            continue
        if mod == 1:
            disp = rng.randrange(-0x40, 0x40)
        elif mod == 2:
            disp = rng.randrange(-0x100, 0x100)
        iv = rng.randrange(0, 0x10) if index != 4 else 0
        target = DATA_BASE + rng.randrange(0x40, WINDOW - 0x48)
        if index != 4 and index == base:
            # base + base * scale + disp = target
            k = 1 + (1 << scale)
            if (target - disp) % k:
                continue
            regs[base] = (target - disp) // k
        else:
            if index != 4:
                regs[index] = iv
            regs[base] = target - disp - (iv << scale)
        out = bytes([(mod << 6) | rm])
        if use_sib:
            out += bytes([(scale << 6) | (index << 3) | base])
        if mod == 1:
            out += (disp & 0xFF).to_bytes(1, "little")
        elif mod == 2:
            out += (disp & 0xFFFFFFFF).to_bytes(4, "little")
        used = {base} | ({index} if index != 4 else set())
        return out, used
    raise RuntimeError("could not place a memory operand")


def make_case(rng, row, prefix_mix=True):
    """One random encoding of ``row`` with registers, flags and memory;
    with ``prefix_mix`` about one in eight carries LOCK/REP/segment prefixes."""
    for _ in range(1000):
        case = _make_case(rng, row, prefix_mix)
        if case is not None:
            return case
    raise RuntimeError(f"no case for {row.mnemonic} {row.operands_text}")


def _make_case(rng, row, prefix_mix=True):
    names = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
    reg_values = [value(rng) for _ in names]
    reg_values[4] = 0
    prefix = b""
    osize = 4
    if any(o.size == L.SZ_V for o in row.operands) and rng.random() < 0.35:
        prefix = b"\x66"
        osize = 2
    if row.mnemonic in ("DIV", "IDIV") and rng.random() < 0.7:
        reg_values[2] = rng.randrange(0, 4)     # keep most quotients in range
    is_bt = row.mnemonic in ("BT", "BTS", "BTR", "BTC")
    code = bytearray(prefix + (b"\x0f" if row.map else b"") + bytes([row.opcode]))
    byte_regs = all(o.size == 1 for o in row.operands if o.kind in (L.K_REG, L.K_RM))
    if row.needs_modrm:
        mem_only = any(o.kind == L.K_MEM for o in row.operands)
        reg_field = row.reg if row.reg >= 0 else rng.choice([r for r in range(8) if byte_regs or r != 4])
        if not mem_only and rng.random() < 0.5:
            rm = rng.choice([r for r in range(8) if byte_regs or r != 4])
            code.append(0xC0 | (reg_field << 3) | rm)
        else:
            bit_offset_reg = is_bt and row.reg < 0
            if bit_offset_reg:
                reg_values[reg_field] = rng.randrange(0, 0x100)   # stays inside the window
            modrm, used = _modrm_memory(rng, reg_values, {reg_field} if bit_offset_reg else set())
            code.append(modrm[0] | (reg_field << 3))
            code += modrm[1:]
    for o in row.operands:
        if o.kind == L.K_IMM:
            n = osize if o.size == L.SZ_V else o.size
            if row.mnemonic in ("SHLD", "SHRD") and osize == 2:
                code += bytes([rng.randrange(0, 17)])
            else:
                code += value(rng, 8 * n).to_bytes(n, "little")
    if row.mnemonic in ("SHLD", "SHRD") and osize == 2 and any(o.text == "CL" for o in row.operands) \
            and (reg_values[1] & 0x1F) > 16:
        return None        # a 16-bit double shift by more than 16 has an undefined result
    if prefix_mix and mix_allowed(row) and rng.random() < 0.12:
        code[0:0] = bytes(rng.choice(PREFIX_MIX) for _ in range(rng.randint(1, 3)))
    regs = {n: v & 0xFFFFFFFF for n, v in zip(names, reg_values)}
    eflags = rng.getrandbits(12) & 0x0CD5
    mem = rng.randbytes(WINDOW)
    return Case(bytes(code), regs, eflags, mem)


def undefined_flags(row, case):
    """Flags the SDM leaves undefined for this row and these operands."""
    info = table.MNEMONIC_INFO[row.mnemonic]
    undefined = info.flags_undefined
    if info.flags_conditional:
        count = None
        if any(o.text == "CL" for o in row.operands):
            count = case.regs["ecx"] & 0x1F
        elif any(o.kind == L.K_ONE for o in row.operands):
            count = 1
        else:
            count = case.code[-1] & 0x1F
        osize_prefix = 0x66 in case.code[:prefix_length(case.code)]
        bits = 8 if row.operands[0].size == 1 else (16 if osize_prefix != getattr(case, 'mode16', False) else 32)
        undefined = 0
        if count == 0:
            return 0
        if count != 1:
            undefined |= L.FLAG_OF
        if row.mnemonic in ("SHL", "SHR", "SAR", "SHLD", "SHRD"):
            undefined |= L.FLAG_AF
        if row.mnemonic in ("SHL", "SHR") and count >= bits:
            undefined |= L.FLAG_CF | L.FLAG_OF       # SDM: CF is undefined for a count >= the size
        if row.mnemonic in ("SHLD", "SHRD") and count > bits:
            undefined |= L.FLAGS_ARITH
    return undefined
