"""Bit and byte instructions (SDM Vol. 1, 7.3.7): BT BTS BTR BTC, BSF BSR,
SETcc, BSWAP."""
from emu.core.jit import jit
from emu.core.flags import condition, set_flag_bits, get_eflags, parity, set_undefined
from emu.core.memory import read_mem, write_mem
from emu.core.operands import read_operand, write_operand, get_reg, set_reg
from emu.core.layout import (FAULT, EA, D_S0, D_MOD, D_K1, D_ASIZE, D_SEG, D_OPCODE, D_OSIZE,
                             K_IMM, FLAG_CF, FLAG_ZF, FLAG_OF, FLAG_SF, FLAG_AF, FLAG_PF)

BT_UNDEFINED = FLAG_OF | FLAG_SF | FLAG_AF | FLAG_PF
BSF_UNDEFINED = FLAG_CF | FLAG_OF | FLAG_SF | FLAG_AF | FLAG_PF

OP_BT, OP_BTS, OP_BTR, OP_BTC = 0, 1, 2, 3


@jit
def bit_op(g, d, op):
    """A register operand's bit offset is taken modulo its width; with a
    memory operand a register offset is signed and may address bytes
    outside the operand (SDM Vol. 2, BT, "bit base"), an immediate is
    taken modulo the width."""
    cpu = g.cpu
    size = d[D_S0]
    bits = size * 8
    offset = read_operand(g, d, 1)
    if d[D_MOD] == 3 or d[D_K1] == K_IMM:
        bit = offset & (bits - 1)
        if d[D_MOD] == 3:
            v = read_operand(g, d, 0)
            addr = 0
        else:
            addr = cpu[EA]
            v = read_mem(g, d[D_SEG], addr, size)
    else:
        if offset >> (bits - 1):
            offset -= 1 << bits
        shift = 4 if size == 2 else 5
        addr = (cpu[EA] + (offset >> shift) * size) & (0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF)
        bit = offset & (bits - 1)
        v = read_mem(g, d[D_SEG], addr, size)
    if cpu[FAULT] >= 0:
        return
    cf = (v >> bit) & 1
    if op != OP_BT:
        if op == OP_BTS:
            r = v | (1 << bit)
        elif op == OP_BTR:
            r = v & ~(1 << bit)
        else:
            r = v ^ (1 << bit)
        if d[D_MOD] == 3:
            write_operand(g, d, 0, r)
        elif not write_mem(g, d[D_SEG], addr, size, r):
            return
    set_flag_bits(cpu, FLAG_CF, FLAG_CF if cf else 0)
    # OF SF AF PF are undefined: Intel and AMD processors leave them as they were
    f = get_eflags(cpu)
    set_undefined(cpu, BT_UNDEFINED, f, f)


@jit
def bit_scan_flags(cpu, index):
    """ZF: the source was 0 (index -1).  CF OF SF AF PF are undefined:
    Intel and AMD processors clear them but PF, which is the parity of the
    index (of 0 for a zero source)."""
    pf = FLAG_PF if parity(max(index, 0)) else 0
    set_flag_bits(cpu, FLAG_ZF, FLAG_ZF if index < 0 else 0)
    set_undefined(cpu, BSF_UNDEFINED, pf, pf)


@jit
def bt(g, d):
    bit_op(g, d, OP_BT)


@jit
def bts(g, d):
    bit_op(g, d, OP_BTS)


@jit
def btr(g, d):
    bit_op(g, d, OP_BTR)


@jit
def btc(g, d):
    bit_op(g, d, OP_BTC)


@jit
def bsf(g, d):
    """Index of the lowest set bit; a zero source sets ZF and leaves the
    destination unchanged (as Intel and AMD processors do)."""
    cpu = g.cpu
    src = read_operand(g, d, 1)
    if cpu[FAULT] >= 0:
        return
    if src == 0:
        bit_scan_flags(cpu, -1)
        return
    i = 0
    while not (src >> i) & 1:
        i += 1
    write_operand(g, d, 0, i)
    if cpu[FAULT] < 0:
        bit_scan_flags(cpu, i)


@jit
def bsr(g, d):
    cpu = g.cpu
    src = read_operand(g, d, 1)
    if cpu[FAULT] >= 0:
        return
    if src == 0:
        bit_scan_flags(cpu, -1)
        return
    i = d[D_S0] * 8 - 1
    while not (src >> i) & 1:
        i -= 1
    write_operand(g, d, 0, i)
    if cpu[FAULT] < 0:
        bit_scan_flags(cpu, i)


@jit
def setcc(g, d):
    write_operand(g, d, 0, 1 if condition(g.cpu, d[D_OPCODE] & 15) else 0)


@jit
def bswap(g, d):
    """BSWAP r32.  With a 16-bit operand size the result is undefined; Intel
    processors clear the low word, and so does this."""
    cpu = g.cpu
    r = d[D_OPCODE] & 7
    if d[D_OSIZE] == 2:
        set_reg(cpu, r, 2, 0)
        return
    v = get_reg(cpu, r, 4)
    set_reg(cpu, r, 4, ((v & 0xFF) << 24) | ((v & 0xFF00) << 8) | ((v >> 8) & 0xFF00) | (v >> 24))
