"""Stack instructions (SDM Vol. 1, 6.2 and 7.3.1.4): PUSH POP PUSHA POPA
PUSHF POPF ENTER LEAVE."""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import get_eflags, set_eflags_raw
from emu.core.memory import read_mem, write_mem, check_write
from emu.core.operands import read_operand, write_operand, set_reg, effective_address
from emu.core.stackops import push as push_value, pop as pop_value, stack_mask, set_sp
from emu.core.segments import protected_mode
from emu.core.layout import (FAULT, ESP, EBP, EA, SS, CPL, D_OSIZE, D_K0,
                             D_HASMEM, K_SEGFIX, FLAG_IF, FLAG_IOPL, FLAG_VM, FLAG_RF, FLAG_VIF,
                             FLAG_VIP, FLAGS_WRITABLE, VEC_GP, SCRATCH, D_IMM, D_IMM2)


@jit
def push(g, d):
    """PUSH r/m, imm, Sreg.  A segment register push with 32-bit operand
    size moves ESP by 4 and writes only the low word, as Intel processors
    since the Pentium Pro do (SDM Vol. 2, PUSH)."""
    cpu = g.cpu
    size = d[D_OSIZE]
    v = read_operand(g, d, 0)
    if cpu[FAULT] >= 0:
        return
    if d[D_K0] >= K_SEGFIX:
        sp = (cpu[ESP] - size) & stack_mask(cpu)
        if write_mem(g, SS, sp, 2, v):
            set_sp(cpu, sp)
        return
    push_value(g, v, size)


@jit
def pop(g, d):
    """POP r/m.  A memory destination addressed through ESP uses ESP after
    the increment (SDM Vol. 2, POP)."""
    cpu = g.cpu
    size = d[D_OSIZE]
    v = read_mem(g, SS, cpu[ESP] & stack_mask(cpu), size)
    if cpu[FAULT] >= 0:
        return
    old = cpu[ESP]
    set_sp(cpu, cpu[ESP] + size)
    if d[D_HASMEM]:
        cpu[EA] = effective_address(cpu, d)
    if not write_operand(g, d, 0, v):
        cpu[ESP] = old


@jit
def pusha(g, d):
    """PUSHA/PUSHAD: AX CX DX BX (original) SP BP SI DI."""
    cpu = g.cpu
    size = d[D_OSIZE]
    mask = stack_mask(cpu)
    sp0 = cpu[ESP]
    if not check_write(g, SS, (sp0 - 8 * size) & mask, 8 * size):
        return
    for r in range(8):
        v = sp0 if r == ESP else cpu[r]
        if not write_mem(g, SS, (sp0 - (r + 1) * size) & mask, size, v):
            cpu[ESP] = sp0
            return
    set_sp(cpu, sp0 - 8 * size)


@jit
def popa(g, d):
    """POPA/POPAD: DI SI BP (skip SP) BX DX CX AX."""
    cpu = g.cpu
    size = d[D_OSIZE]
    mask = stack_mask(cpu)
    sp0 = cpu[ESP]
    vals = cpu[SCRATCH:SCRATCH + 8]     # scratch slots: values are committed only if every read succeeds
    for i in range(8):
        vals[7 - i] = read_mem(g, SS, (sp0 + i * size) & mask, size)
        if cpu[FAULT] >= 0:
            return
    for r in range(8):
        if r != ESP:
            set_reg(cpu, r, size, vals[r])
    set_sp(cpu, sp0 + 8 * size)


@jit
def pushf(g, d):
    """PUSHF: VM and RF are pushed as 0 (SDM Vol. 2, PUSHF); in virtual-8086
    mode IOPL < 3 is #GP(0)."""
    cpu = g.cpu
    f = get_eflags(cpu)
    if (f & FLAG_VM) and ((f & FLAG_IOPL) >> 12) < 3:
        raise_fault(cpu, VEC_GP, 0)
        return
    push_value(g, f & ~(FLAG_VM | FLAG_RF), d[D_OSIZE])


@jit
def popf(g, d):
    """POPF: IOPL changes only at CPL 0, IF only when CPL <= IOPL; VM, VIF,
    VIP are never changed by POPF and RF is cleared (SDM Vol. 2, POPF)."""
    cpu = g.cpu
    size = d[D_OSIZE]
    old = get_eflags(cpu)
    if (old & FLAG_VM) and ((old & FLAG_IOPL) >> 12) < 3:
        raise_fault(cpu, VEC_GP, 0)
        return
    v = pop_value(g, size)
    if cpu[FAULT] >= 0:
        return
    changeable = FLAGS_WRITABLE & ~(FLAG_VM | FLAG_RF | FLAG_VIF | FLAG_VIP)
    if protected_mode(cpu) or (old & FLAG_VM):
        cpl = cpu[CPL] if not (old & FLAG_VM) else 3
        iopl = (old & FLAG_IOPL) >> 12
        if cpl > 0:
            changeable &= ~FLAG_IOPL
        if cpl > iopl:
            changeable &= ~FLAG_IF
    if size == 2:
        changeable &= 0xFFFF
    set_eflags_raw(cpu, (old & ~changeable) | (v & changeable))


@jit
def enter(g, d):
    """ENTER size, level (SDM Vol. 2, ENTER): level masked to 5 bits; the
    frame pointer chain is copied for nested procedures."""
    cpu = g.cpu
    size = d[D_OSIZE]
    alloc = d[D_IMM] & 0xFFFF
    level = d[D_IMM2] & 0x1F
    mask = stack_mask(cpu)
    sp = cpu[ESP] & mask
    bp = cpu[EBP]
    if not check_write(g, SS, (sp - size * (level + 1)) & mask, size * (level + 1)):
        return
    sp = (sp - size) & mask
    write_mem(g, SS, sp, size, bp)
    # FrameTemp: the whole ESP after the push for a 32-bit operand size, else SP
    # (SDM Vol. 2, ENTER)
    frame = ((cpu[ESP] & ~mask) | sp) & 0xFFFFFFFF if size == 4 else sp
    if level > 0:
        for i in range(1, level):
            bp = (bp - size) & (0xFFFFFFFF if mask == 0xFFFFFFFF else 0xFFFF)
            v = read_mem(g, SS, bp, size)
            if cpu[FAULT] >= 0:
                return
            sp = (sp - size) & mask
            write_mem(g, SS, sp, size, v)
        sp = (sp - size) & mask
        write_mem(g, SS, sp, size, frame)
    sp = (sp - alloc) & mask
    if cpu[FAULT] >= 0:
        return
    # the final stack pointer must be addressable (SDM: #SS if it exceeds the limit)
    if alloc and not check_write(g, SS, sp, 1):
        return
    set_reg(cpu, EBP, size, frame)
    set_sp(cpu, sp)


@jit
def leave(g, d):
    """LEAVE: (E)SP = (E)BP, then pop (E)BP."""
    cpu = g.cpu
    size = d[D_OSIZE]
    mask = stack_mask(cpu)
    v = read_mem(g, SS, cpu[EBP] & mask, size)
    if cpu[FAULT] >= 0:
        return
    set_sp(cpu, cpu[EBP] + size)
    set_reg(cpu, EBP, size, v)
