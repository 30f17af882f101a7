"""Data movement (SDM Vol. 1, 7.3.1): MOV, MOVZX, MOVSX, CMOVcc, XCHG,
LEA, XLAT, CBW/CWDE, CWD/CDQ, SALC, NOP."""
from emu.core.jit import jit
from emu.core.flags import condition, get_cf, set_lazy, set_flag_bits, LF_ADD, LF_SUB
from emu.core.memory import read_mem, write_mem, check_write
from emu.core.operands import read_operand, write_operand, get_reg, set_reg
from emu.core.layout import (FAULT, EA, EAX, EBX, ECX, EDX, D_OSIZE, D_ASIZE, D_SEG, D_S0, D_S1,
                             D_OPCODE, D_MOD, FLAG_ZF)


@jit
def _sign_extend(v, size):
    bits = size * 8
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


@jit
def mov(cpu, src, size):
    return src


@jit
def movzx(cpu, src, size):
    return src


@jit
def movsx(g, d):
    src = read_operand(g, d, 1)
    if g.cpu[FAULT] >= 0:
        return
    write_operand(g, d, 0, _sign_extend(src, d[D_S1]) & 0xFFFFFFFF)


@jit
def cmovcc(g, d):
    """The source is read (and may fault) whatever the condition; a false
    condition leaves the destination as it was."""
    src = read_operand(g, d, 1)
    if g.cpu[FAULT] >= 0:
        return
    if condition(g.cpu, d[D_OPCODE] & 15):
        write_operand(g, d, 0, src)


@jit
def xchg(g, d):
    a = read_operand(g, d, 0)
    b = read_operand(g, d, 1)
    if g.cpu[FAULT] >= 0:
        return
    # memory (operand 0 for the ModRM forms) first: if it faults, no register changed
    if write_operand(g, d, 0, b):
        write_operand(g, d, 1, a)


@jit
def lea(g, d):
    """LEA stores the offset, truncated to the operand size (SDM Vol. 2, LEA)."""
    write_operand(g, d, 0, g.cpu[EA] & ((1 << (d[D_OSIZE] * 8)) - 1))


@jit
def xlat(g, d):
    cpu = g.cpu
    mask = 0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF
    off = (cpu[EBX] + (cpu[EAX] & 0xFF)) & mask
    v = read_mem(g, d[D_SEG], off, 1)
    if cpu[FAULT] < 0:
        set_reg(cpu, EAX, 1, v)


@jit
def cbw(g, d):
    cpu = g.cpu
    if d[D_OSIZE] == 2:
        set_reg(cpu, EAX, 2, _sign_extend(cpu[EAX], 1))
    else:
        set_reg(cpu, EAX, 4, _sign_extend(cpu[EAX], 2))


@jit
def cwd(g, d):
    cpu = g.cpu
    size = d[D_OSIZE]
    v = get_reg(cpu, EAX, size)
    set_reg(cpu, EDX, size, -1 if v >> (size * 8 - 1) else 0)


@jit
def salc(g, d):
    set_reg(g.cpu, EAX, 1, 0xFF if get_cf(g.cpu) else 0)


@jit
def nop(g, d):
    """NOP and the multi-byte NOP Ev (0F 1F /0): no operand is accessed."""
    pass


@jit
def xadd(g, d):
    """XADD: dest = dest + src, src = old dest; flags as ADD."""
    cpu = g.cpu
    size = d[D_S0]
    a = read_operand(g, d, 0)
    b = read_operand(g, d, 1)
    if cpu[FAULT] >= 0:
        return
    r = a + b
    # SRC <- DEST, then DEST <- sum (so XADD r, r leaves the sum); a memory
    # destination is written first so that a fault changes no register
    if d[D_MOD] == 3:
        write_operand(g, d, 1, a)
        write_operand(g, d, 0, r & ((1 << (size * 8)) - 1))
    elif write_operand(g, d, 0, r & ((1 << (size * 8)) - 1)):
        write_operand(g, d, 1, a)
    else:
        return
    set_lazy(cpu, LF_ADD, a, b, r, size)


@jit
def cmpxchg(g, d):
    """Compare the accumulator with dest (flags as CMP); equal: dest = src,
    else accumulator = dest.  The destination is always written, with its
    old value on a mismatch, as the processor does (SDM Vol. 2, CMPXCHG)."""
    cpu = g.cpu
    size = d[D_S0]
    dest = read_operand(g, d, 0)
    src = read_operand(g, d, 1)
    if cpu[FAULT] >= 0:
        return
    acc = get_reg(cpu, EAX, size)
    if acc == dest:
        if write_operand(g, d, 0, src):
            set_lazy(cpu, LF_SUB, acc, dest, acc - dest, size)
    else:
        if write_operand(g, d, 0, dest):
            set_reg(cpu, EAX, size, dest)
            set_lazy(cpu, LF_SUB, acc, dest, acc - dest, size)


@jit
def cmpxchg8b(g, d):
    """Compare EDX:EAX with m64; equal: m64 = ECX:EBX and ZF = 1, else
    EDX:EAX = m64 and ZF = 0 (the old value is written back)."""
    cpu = g.cpu
    seg = d[D_SEG]
    # the operand is the 8 bytes at EA..EA+7: the effective address wraps at the
    # address size, the bytes of one operand do not (past the limit is #GP/#SS)
    lo = read_mem(g, seg, cpu[EA], 4)
    hi = read_mem(g, seg, cpu[EA] + 4, 4)
    if cpu[FAULT] >= 0:
        return
    if lo == (cpu[EAX] & 0xFFFFFFFF) and hi == (cpu[EDX] & 0xFFFFFFFF):
        nlo = cpu[EBX] & 0xFFFFFFFF
        nhi = cpu[ECX] & 0xFFFFFFFF
        zf = FLAG_ZF
    else:
        nlo = lo
        nhi = hi
        zf = 0
    if not check_write(g, seg, cpu[EA], 8):
        return
    write_mem(g, seg, cpu[EA], 4, nlo)
    write_mem(g, seg, cpu[EA] + 4, 4, nhi)
    if not zf:
        cpu[EAX] = lo
        cpu[EDX] = hi
    set_flag_bits(cpu, FLAG_ZF, zf)
