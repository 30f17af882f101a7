"""String instructions (SDM Vol. 1, 7.3.9; Vol. 2 MOVS CMPS SCAS LODS STOS
INS OUTS and REP/REPE/REPNE).

One REP instruction is one step of the API: the element loop runs inside
the instruction.  It is restartable: each element updates rSI/rDI/rCX as
it completes, so a fault (or a port access handed to Python) leaves the
registers at the element where it stopped and EIP on the instruction.
After CHUNK elements the instruction yields (EIP stays, nothing faults) so
a huge count cannot hold the host; the run loop comes straight back.  Each
yield counts as an instruction, so an instruction budget of N bounds a
guest's work at N x CHUNK elements: a guest spinning on REP STOSD with
ECX=FFFFFFFFh gets its fair share of the host and no more.
"""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import get_eflags, set_lazy, LF_SUB
from emu.core.memory import read_mem, write_mem, check_write
from emu.core.operands import get_reg, set_reg
from emu.core.isa.io import port_allowed, port_read, port_write
from emu.core.layout import (FAULT, EAX, ECX, EDX, ESI, EDI, ES, DS, NEXT_EIP, INSN_EIP, EXIT_REASON,
                             D_ASIZE, D_SEGOVR, D_REP, D_S0, D_S1, FLAG_DF, FLAG_ZF, REP_NONE,
                             REP_E, REP_NE, VEC_GP, REP_YIELD)

CHUNK = 1024

OP_MOVS, OP_CMPS, OP_SCAS, OP_LODS, OP_STOS, OP_INS, OP_OUTS = 0, 1, 2, 3, 4, 5, 6


@jit
def string_loop(g, d, op, size):
    cpu = g.cpu
    asize = d[D_ASIZE]
    amask = 0xFFFFFFFF if asize == 4 else 0xFFFF
    src_seg = d[D_SEGOVR] if d[D_SEGOVR] >= 0 else DS
    rep = d[D_REP]
    step = -size if get_eflags(cpu) & FLAG_DF else size
    if op == OP_INS or op == OP_OUTS:
        port = get_reg(cpu, EDX, 2)
        if not port_allowed(g, port, size):
            raise_fault(cpu, VEC_GP, 0)
            return
    else:
        port = 0
    done = 0
    while True:
        if rep != REP_NONE and get_reg(cpu, ECX, asize) == 0:
            return
        si = get_reg(cpu, ESI, asize)
        di = get_reg(cpu, EDI, asize)
        if op == OP_MOVS:
            v = read_mem(g, src_seg, si, size)
            if cpu[FAULT] >= 0 or not write_mem(g, ES, di, size, v):
                return
            set_reg(cpu, ESI, asize, (si + step) & amask)
            set_reg(cpu, EDI, asize, (di + step) & amask)
        elif op == OP_STOS:
            if not write_mem(g, ES, di, size, get_reg(cpu, EAX, size)):
                return
            set_reg(cpu, EDI, asize, (di + step) & amask)
        elif op == OP_LODS:
            v = read_mem(g, src_seg, si, size)
            if cpu[FAULT] >= 0:
                return
            set_reg(cpu, EAX, size, v)
            set_reg(cpu, ESI, asize, (si + step) & amask)
        elif op == OP_CMPS:
            a = read_mem(g, src_seg, si, size)
            b = read_mem(g, ES, di, size)
            if cpu[FAULT] >= 0:
                return
            set_lazy(cpu, LF_SUB, a, b, a - b, size)
            set_reg(cpu, ESI, asize, (si + step) & amask)
            set_reg(cpu, EDI, asize, (di + step) & amask)
        elif op == OP_SCAS:
            b = read_mem(g, ES, di, size)
            if cpu[FAULT] >= 0:
                return
            a = get_reg(cpu, EAX, size)
            set_lazy(cpu, LF_SUB, a, b, a - b, size)
            set_reg(cpu, EDI, asize, (di + step) & amask)
        elif op == OP_INS:
            # the destination is probed before the port is read: the read has side effects
            if not check_write(g, ES, di, size):
                return
            v = port_read(g, port, size)
            if v < 0:
                return
            if not write_mem(g, ES, di, size, v):
                return
            set_reg(cpu, EDI, asize, (di + step) & amask)
        else:
            v = read_mem(g, src_seg, si, size)
            if cpu[FAULT] >= 0:
                return
            if not port_write(g, port, size, v):
                return
            set_reg(cpu, ESI, asize, (si + step) & amask)
        if rep == REP_NONE:
            return
        set_reg(cpu, ECX, asize, get_reg(cpu, ECX, asize) - 1)
        if cpu[EXIT_REASON] != 0:
            # a port write ended the run (debug exit, reset): resume here later
            if get_reg(cpu, ECX, asize) != 0:
                cpu[NEXT_EIP] = cpu[INSN_EIP]
            return
        if op == OP_CMPS or op == OP_SCAS:
            zf = (get_eflags(cpu) & FLAG_ZF) != 0
            if (rep == REP_E and not zf) or (rep == REP_NE and zf):
                return
        done += 1
        if done >= CHUNK and get_reg(cpu, ECX, asize) != 0:
            cpu[NEXT_EIP] = cpu[INSN_EIP]
            cpu[REP_YIELD] = 1
            return


@jit
def movs(g, d):
    string_loop(g, d, OP_MOVS, d[D_S0])


@jit
def cmps(g, d):
    string_loop(g, d, OP_CMPS, d[D_S0])


@jit
def scas(g, d):
    string_loop(g, d, OP_SCAS, d[D_S1])


@jit
def lods(g, d):
    string_loop(g, d, OP_LODS, d[D_S0])


@jit
def stos(g, d):
    string_loop(g, d, OP_STOS, d[D_S0])


@jit
def ins(g, d):
    string_loop(g, d, OP_INS, d[D_S0])


@jit
def outs(g, d):
    string_loop(g, d, OP_OUTS, d[D_S1])
