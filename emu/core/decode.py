"""Instruction decoding: prefixes, opcode, ModRM/SIB, displacement and
immediates into a decoded record (one row of the icache), driven by the
tables generated from the opcode table (emu/core/optable.py)."""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.memory import fetch_code
from emu.core.optable import (DEC_ENTRY, DEC_PREFIX, DEC_ESCAPE, DEC_GROUP, GROUP_ROWS,
                              ROW_MODRM, ROW_IMPL, ROW_MODULE, ROW_NOPS, ROW_LOCKABLE,
                              ROW_KIND, ROW_SIZE, ROW_SIGNX)
from emu.core.layout import (FAULT, D_LEN, D_ROW, D_MNEM, D_GROUP, D_OSIZE, D_ASIZE, D_SEG,
                             D_SEGOVR, D_REP, D_LOCK, D_MOD, D_REG, D_RM, D_BASE, D_INDEX,
                             D_SCALE, D_DISP, D_IMM, D_IMM2, D_K0, D_S0, D_OPCODE, D_NOPS,
                             D_HASMEM, DS, SS, EBP, ESP, EBX, ESI, EDI, K_NONE, K_RM, K_MEM,
                             K_IMM, K_REL, K_FARPTR, K_MOFFS, K_IMM2, K_RMREG, SZ_V, SZ_P, SZ_A, SZ_S,
                             REP_NONE, REP_NE, REP_E, VEC_GP, VEC_UD)

MAX_INSN_LEN = 15
IMPL_UD = 0          # pseudo-instruction: raise #UD

# 16-bit ModRM r/m -> base, index (SDM Vol. 2, table 2-1)
RM16_BASE = (EBX, EBX, EBP, EBP, ESI, EDI, EBP, EBX)
RM16_INDEX = (ESI, EDI, ESI, EDI, -1, -1, -1, -1)


@jit
def sign_extend(value, size):
    bits = size * 8
    value &= (1 << bits) - 1
    if value >> (bits - 1):
        return value - (1 << bits)
    return value


@jit
def decode_ud(d, length, opcode):
    d[D_LEN] = length
    d[D_ROW] = -1
    d[D_MNEM] = IMPL_UD
    d[D_GROUP] = 0
    d[D_OPCODE] = opcode
    d[D_NOPS] = 0
    d[D_HASMEM] = 0
    d[D_K0] = K_NONE
    d[D_K0 + 1] = K_NONE
    d[D_K0 + 2] = K_NONE


@jit
def decode(g, eip, cs32, d):
    """Decode the instruction at CS:eip into the record d.  Returns False
    with a fault pending when fetching faults (or the instruction is longer
    than 15 bytes: #GP(0)); an undefined opcode decodes to IMPL_UD."""
    cpu = g.cpu
    osize = 4 if cs32 else 2
    asize = osize
    segovr = -1
    rep = REP_NONE
    lock = 0
    pos = 0
    while True:
        b = fetch_code(g, (eip + pos) & 0xFFFFFFFF, 1)
        if cpu[FAULT] >= 0:
            return False
        pos += 1
        if pos > MAX_INSN_LEN:
            raise_fault(cpu, VEC_GP, 0)
            return False
        e = DEC_ENTRY[b]
        if e != DEC_PREFIX:
            break
        if b == 0x66:
            osize = 2 if cs32 else 4
        elif b == 0x67:
            asize = 2 if cs32 else 4
        elif b == 0xF0:
            lock = 1
        elif b == 0xF2:
            rep = REP_NE
        elif b == 0xF3:
            rep = REP_E
        elif b == 0x26:
            segovr = 0
        elif b == 0x2E:
            segovr = 1
        elif b == 0x36:
            segovr = 2
        elif b == 0x3E:
            segovr = 3
        elif b == 0x64:
            segovr = 4
        else:
            segovr = 5
    opcode = b
    if e == DEC_ESCAPE:
        b = fetch_code(g, (eip + pos) & 0xFFFFFFFF, 1)
        if cpu[FAULT] >= 0:
            return False
        pos += 1
        opcode = 0x100 | b
        e = DEC_ENTRY[opcode]
    d[D_OSIZE] = osize
    d[D_ASIZE] = asize
    d[D_SEGOVR] = segovr
    d[D_REP] = rep
    d[D_LOCK] = lock
    d[D_OPCODE] = opcode
    row = e
    modrm = -1
    if e >= DEC_GROUP:
        modrm = fetch_code(g, (eip + pos) & 0xFFFFFFFF, 1)
        if cpu[FAULT] >= 0:
            return False
        pos += 1
        row = GROUP_ROWS[(e - DEC_GROUP) * 8 + ((modrm >> 3) & 7)]
    if row < 0:
        decode_ud(d, pos, opcode)
        return True
    if modrm < 0 and ROW_MODRM[row]:
        modrm = fetch_code(g, (eip + pos) & 0xFFFFFFFF, 1)
        if cpu[FAULT] >= 0:
            return False
        pos += 1
    if modrm >= 0 and (ROW_KIND[row * 3] == K_RMREG or ROW_KIND[row * 3 + 1] == K_RMREG):
        # MOV to/from CRn/DRn: the mod bits are ignored and r/m always names a
        # register, so no SIB or displacement follows (SDM Vol. 2, MOV--Move
        # to/from Control Registers, and --Debug Registers)
        modrm |= 0xC0
    # --- ModRM / SIB / displacement
    d[D_HASMEM] = 0
    d[D_BASE] = -1
    d[D_INDEX] = -1
    d[D_SCALE] = 0
    d[D_DISP] = 0
    d[D_SEG] = DS if segovr < 0 else segovr
    if modrm >= 0:
        mod = modrm >> 6
        rm = modrm & 7
        d[D_MOD] = mod
        d[D_REG] = (modrm >> 3) & 7
        d[D_RM] = rm
        if mod != 3:
            d[D_HASMEM] = 1
            default_ss = False
            disp_size = 0
            if asize == 2:
                if mod == 0 and rm == 6:
                    disp_size = 2
                else:
                    d[D_BASE] = RM16_BASE[rm]
                    d[D_INDEX] = RM16_INDEX[rm]
                    default_ss = RM16_BASE[rm] == EBP
                if mod == 1:
                    disp_size = 1
                elif mod == 2:
                    disp_size = 2
            else:
                if rm == 4:
                    sib = fetch_code(g, (eip + pos) & 0xFFFFFFFF, 1)
                    if cpu[FAULT] >= 0:
                        return False
                    pos += 1
                    base = sib & 7
                    index = (sib >> 3) & 7
                    if index != 4:
                        d[D_INDEX] = index
                        d[D_SCALE] = sib >> 6
                    if base == 5 and mod == 0:
                        disp_size = 4
                    else:
                        d[D_BASE] = base
                        default_ss = base == ESP or base == EBP
                elif rm == 5 and mod == 0:
                    disp_size = 4
                else:
                    d[D_BASE] = rm
                    default_ss = rm == EBP
                if mod == 1:
                    disp_size = 1
                elif mod == 2:
                    disp_size = 4
            if disp_size:
                disp = fetch_code(g, (eip + pos) & 0xFFFFFFFF, disp_size)
                if cpu[FAULT] >= 0:
                    return False
                pos += disp_size
                d[D_DISP] = sign_extend(disp, disp_size)
            if default_ss and segovr < 0:
                d[D_SEG] = SS
    else:
        d[D_MOD] = 3
        d[D_REG] = 0
        d[D_RM] = 0
    if lock and not (ROW_LOCKABLE[row] and d[D_HASMEM]):
        # LOCK on anything but a read-modify-write of memory is #UD (SDM Vol. 2, LOCK)
        decode_ud(d, pos, opcode)
        return True
    # --- operands and immediates
    nops = ROW_NOPS[row]
    d[D_IMM] = 0
    d[D_IMM2] = 0
    first_imm = True
    for i in range(3):
        kind = ROW_KIND[row * 3 + i]
        code = ROW_SIZE[row * 3 + i]
        if code == SZ_V:
            size = osize
        elif code == SZ_P:
            size = osize + 2
        elif code == SZ_A:
            size = osize * 2
        elif code == SZ_S:
            size = 6
        else:
            size = code
        d[D_K0 + i] = kind
        if kind == K_MEM and modrm >= 0 and (modrm >> 6) == 3:
            decode_ud(d, pos, opcode)
            return True
        if kind == K_IMM or kind == K_REL or kind == K_IMM2:
            v = fetch_code(g, (eip + pos) & 0xFFFFFFFF, size)
            if cpu[FAULT] >= 0:
                return False
            pos += size
            if kind == K_REL or ROW_SIGNX[row * 3 + i]:
                v = sign_extend(v, size)
                if kind == K_IMM:
                    size = osize
                    v &= (1 << (size * 8)) - 1
            if first_imm:
                d[D_IMM] = v
                first_imm = False
            else:
                d[D_IMM2] = v
                d[D_K0 + i] = K_IMM2
        elif kind == K_FARPTR:
            off = fetch_code(g, (eip + pos) & 0xFFFFFFFF, osize)
            sel = fetch_code(g, (eip + pos + osize) & 0xFFFFFFFF, 2)
            if cpu[FAULT] >= 0:
                return False
            pos += osize + 2
            d[D_IMM] = off
            d[D_IMM2] = sel
        elif kind == K_MOFFS:
            off = fetch_code(g, (eip + pos) & 0xFFFFFFFF, asize)
            if cpu[FAULT] >= 0:
                return False
            pos += asize
            d[D_DISP] = off
            d[D_HASMEM] = 1
        d[D_S0 + i] = size
    if pos > MAX_INSN_LEN:
        raise_fault(cpu, VEC_GP, 0)
        return False
    d[D_LEN] = pos
    d[D_ROW] = row
    d[D_MNEM] = ROW_IMPL[row]
    d[D_GROUP] = ROW_MODULE[row]
    d[D_NOPS] = nops
    return True
