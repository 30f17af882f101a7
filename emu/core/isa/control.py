"""Control transfer (SDM Vol. 1, 6.3-6.4 and 7.3.8; Vol. 3, 5.8 privilege
level checks on far transfers, call gates and stack switching)."""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import condition, get_eflags, set_eflags_raw
from emu.core.memory import read_mem, write_mem, read_linear, write_linear, ACCESS_READ
from emu.core.operands import read_operand, get_reg, set_reg
from emu.core.segments import (protected_mode, read_descriptor, desc_base, desc_limit, desc_attr,
                               load_code_segment, set_segment_cache, set_accessed,
                               invalidate_for_cpl, load_segment_real, inner_stack)
from emu.core.stackops import stack_mask, set_sp
from emu.core.faults import software_interrupt, stack_push_raw, EVENT_SOFTWARE, EVENT_TRAP
from emu.core.layout import NMI_BLOCKED
from emu.core.tasks import switch_task, TS_JMP, TS_CALL, TS_IRET
from emu.core.layout import (FAULT, NEXT_EIP, INSN_EIP, EIP, ECX, ESP, CS, SS, CPL, EFLAGS, EA,
                             D_IMM, D_IMM2, D_OPCODE, D_OSIZE, D_ASIZE, D_SEG, D_REG, D_K0,
                             K_FARPTR, SEG_SLOTS, SEG_STRIDE, SEG_SEL, SEG_BASE, SEG_LIMIT,
                             SEG_ATTR, ATTR_DB, TR, FLAG_OF, FLAG_ZF, FLAG_VM, FLAG_IOPL, FLAG_IF,
                             FLAG_NT, FLAG_RF, FLAG_VIF, FLAG_VIP, FLAGS_WRITABLE, VEC_GP, VEC_NP,
                             VEC_SS, VEC_TS, VEC_BR, VEC_OF, VEC_BP, VEC_DB, DESC_SCRATCH, SCRATCH)

CS_SLOT = SEG_SLOTS + CS * SEG_STRIDE


# --- near transfers ------------------------------------------------------------------

@jit
def near_jump(cpu, target, osize):
    """Set the next EIP; a target beyond the CS limit is #GP(0)."""
    target &= 0xFFFFFFFF if osize == 4 else 0xFFFF
    if target > cpu[CS_SLOT + SEG_LIMIT]:
        raise_fault(cpu, VEC_GP, 0)
        return False
    cpu[NEXT_EIP] = target
    return True


@jit
def jcc(g, d):
    if condition(g.cpu, d[D_OPCODE] & 15):
        near_jump(g.cpu, g.cpu[NEXT_EIP] + d[D_IMM], d[D_OSIZE])


@jit
def jmp(g, d):
    """JMP rel / JMP r/m (near, absolute indirect)."""
    cpu = g.cpu
    if d[D_OPCODE] == 0xFF:
        target = read_operand(g, d, 0)
        if cpu[FAULT] >= 0:
            return
    else:
        target = cpu[NEXT_EIP] + d[D_IMM]
    near_jump(cpu, target, d[D_OSIZE])


@jit
def call(g, d):
    """CALL rel / CALL r/m: push the return address, then jump; nothing is
    pushed when the target is beyond the CS limit."""
    cpu = g.cpu
    size = d[D_OSIZE]
    if d[D_OPCODE] == 0xFF:
        target = read_operand(g, d, 0)
        if cpu[FAULT] >= 0:
            return
    else:
        target = cpu[NEXT_EIP] + d[D_IMM]
    ret = cpu[NEXT_EIP]
    if not near_jump(cpu, target, size):
        return
    sp = (cpu[ESP] - size) & stack_mask(cpu)
    if write_mem(g, SS, sp, size, ret):
        set_sp(cpu, sp)


@jit
def ret(g, d):
    """RET [imm16]: pop EIP, then release imm16 bytes of parameters."""
    cpu = g.cpu
    size = d[D_OSIZE]
    mask = stack_mask(cpu)
    target = read_mem(g, SS, cpu[ESP] & mask, size)
    if cpu[FAULT] >= 0:
        return
    if not near_jump(cpu, target, size):
        return
    release = (d[D_IMM] & 0xFFFF) if d[D_OPCODE] == 0xC2 else 0
    set_sp(cpu, cpu[ESP] + size + release)


@jit
def count_register(cpu, d):
    """LOOP and JCXZ count in CX or ECX by address size (SDM Vol. 2, LOOPcc)."""
    return get_reg(cpu, ECX, d[D_ASIZE])


@jit
def loop(g, d):
    cpu = g.cpu
    n = (count_register(cpu, d) - 1) & (0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF)
    if n != 0 and not near_jump(cpu, cpu[NEXT_EIP] + d[D_IMM], d[D_OSIZE]):
        return
    set_reg(cpu, ECX, d[D_ASIZE], n)


@jit
def loope(g, d):
    cpu = g.cpu
    n = (count_register(cpu, d) - 1) & (0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF)
    if n != 0 and (get_eflags(cpu) & FLAG_ZF):
        if not near_jump(cpu, cpu[NEXT_EIP] + d[D_IMM], d[D_OSIZE]):
            return
    set_reg(cpu, ECX, d[D_ASIZE], n)


@jit
def loopne(g, d):
    cpu = g.cpu
    n = (count_register(cpu, d) - 1) & (0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF)
    if n != 0 and not (get_eflags(cpu) & FLAG_ZF):
        if not near_jump(cpu, cpu[NEXT_EIP] + d[D_IMM], d[D_OSIZE]):
            return
    set_reg(cpu, ECX, d[D_ASIZE], n)


@jit
def jcxz(g, d):
    cpu = g.cpu
    if count_register(cpu, d) == 0:
        near_jump(cpu, cpu[NEXT_EIP] + d[D_IMM], d[D_OSIZE])


# --- interrupts -------------------------------------------------------------------------

@jit
def int_(g, d):
    """INT n.  In virtual-8086 mode with IOPL < 3 it is #GP(0)."""
    cpu = g.cpu
    if (cpu[EFLAGS] & FLAG_VM) and ((cpu[EFLAGS] & FLAG_IOPL) >> 12) < 3:
        raise_fault(cpu, VEC_GP, 0)
        return
    software_interrupt(g, d[D_IMM] & 0xFF, EVENT_SOFTWARE)


@jit
def int3(g, d):
    software_interrupt(g, VEC_BP, EVENT_SOFTWARE)


@jit
def into(g, d):
    if get_eflags(g.cpu) & FLAG_OF:
        software_interrupt(g, VEC_OF, EVENT_SOFTWARE)


@jit
def int1(g, d):
    """ICEBP (F1): a #DB trap without the gate DPL check."""
    software_interrupt(g, VEC_DB, EVENT_TRAP)


@jit
def bound(g, d):
    """BOUND: #BR (a fault) when the signed index is outside [lower, upper]."""
    cpu = g.cpu
    size = d[D_OSIZE]
    mask = 0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF
    lower = read_mem(g, d[D_SEG], cpu[EA], size)
    upper = read_mem(g, d[D_SEG], (cpu[EA] + size) & mask, size)
    if cpu[FAULT] >= 0:
        return
    bits = size * 8
    index = get_reg(cpu, d[D_REG], size)
    if index >> (bits - 1):
        index -= 1 << bits
    if lower >> (bits - 1):
        lower -= 1 << bits
    if upper >> (bits - 1):
        upper -= 1 << bits
    if index < lower or index > upper:
        raise_fault(cpu, VEC_BR, -1)


# --- far transfers --------------------------------------------------------------------------

@jit
def far_operand(g, d, out):
    """Offset and selector of a far pointer: immediate (Ap) or memory (Mp)."""
    cpu = g.cpu
    size = d[D_OSIZE]
    if d[D_K0] == K_FARPTR:
        out[0] = d[D_IMM] & (0xFFFFFFFF if size == 4 else 0xFFFF)
        out[1] = d[D_IMM2] & 0xFFFF
        return True
    mask = 0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF
    out[0] = read_mem(g, d[D_SEG], cpu[EA], size)
    out[1] = read_mem(g, d[D_SEG], (cpu[EA] + size) & mask, 2)
    return cpu[FAULT] < 0


@jit
def push_pair(g, first, second, size):
    """Push two values atomically on SS (CS then EIP for a far call)."""
    cpu = g.cpu
    mask = stack_mask(cpu)
    sp = cpu[ESP]
    sp1 = (sp - size) & mask
    sp2 = (sp - 2 * size) & mask
    if not write_mem(g, SS, sp1, size, first):
        return False
    if not write_mem(g, SS, sp2, size, second):
        return False
    set_sp(cpu, sp2)
    return True


@jit
def check_code_target(g, sel, hi):
    """Privilege and type checks on a code descriptor reached directly by
    JMP/CALL far (SDM Vol. 3, 5.8.1).  Returns False with #GP/#NP raised."""
    cpu = g.cpu
    attr = desc_attr(hi)
    dpl = (attr >> 5) & 3
    cpl = cpu[CPL]
    if attr & 4:                      # conforming
        if dpl > cpl:
            raise_fault(cpu, VEC_GP, sel & 0xFFFC)
            return False
    elif (sel & 3) > cpl or dpl != cpl:
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return False
    if not attr & 0x80:
        raise_fault(cpu, VEC_NP, sel & 0xFFFC)
        return False
    return True


@jit
def far_transfer(g, sel, offset, osize, is_call):
    """JMP/CALL far to sel:offset in any mode."""
    cpu = g.cpu
    sel &= 0xFFFF
    ret_eip = cpu[NEXT_EIP]
    old_cs = cpu[CS_SLOT + SEG_SEL]
    if not protected_mode(cpu):
        if offset > cpu[CS_SLOT + SEG_LIMIT]:
            raise_fault(cpu, VEC_GP, 0)
            return
        if is_call and not push_pair(g, old_cs, ret_eip, osize):
            return
        load_segment_real(cpu, CS, sel)
        cpu[NEXT_EIP] = offset
        return
    if (sel & 0xFFFC) == 0:
        raise_fault(cpu, VEC_GP, 0)
        return
    dsc = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    if not read_descriptor(g, sel, dsc):
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return
    lo = dsc[0]
    hi = dsc[1]
    attr = desc_attr(hi)
    cpl = cpu[CPL]
    if (attr & 0x18) == 0x18:
        # a code segment, same privilege
        if not check_code_target(g, sel, hi):
            return
        if offset > desc_limit(lo, hi):
            raise_fault(cpu, VEC_GP, 0)
            return
        if is_call and not push_pair(g, old_cs, ret_eip, osize):
            return
        set_accessed(g, sel, hi)
        load_code_segment(cpu, sel, lo, hi, cpl)
        cpu[NEXT_EIP] = offset
        return
    gtype = attr & 0x1F
    if gtype == 0x01 or gtype == 0x09 or gtype == 0x05:
        # a TSS or a task gate: hardware task switch (SDM Vol. 3, 7.3)
        if ((attr >> 5) & 3) < cpl or ((attr >> 5) & 3) < (sel & 3):
            raise_fault(cpu, VEC_GP, sel & 0xFFFC)
            return
        if not attr & 0x80:
            raise_fault(cpu, VEC_NP, sel & 0xFFFC)
            return
        tss = sel if gtype != 0x05 else (lo >> 16) & 0xFFFF
        switch_task(g, tss, TS_CALL if is_call else TS_JMP, 0, -1, ret_eip)
        return
    if gtype != 0x04 and gtype != 0x0C:
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return
    # call gate (SDM Vol. 3, 5.8.4)
    gdpl = (attr >> 5) & 3
    if gdpl < cpl or gdpl < (sel & 3):
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return
    if not attr & 0x80:
        raise_fault(cpu, VEC_NP, sel & 0xFFFC)
        return
    gate32 = gtype == 0x0C
    size = 4 if gate32 else 2
    target_sel = (lo >> 16) & 0xFFFF
    target_off = (lo & 0xFFFF) | ((hi & 0xFFFF0000) if gate32 else 0)
    params = hi & 0x1F
    if (target_sel & 0xFFFC) == 0:
        raise_fault(cpu, VEC_GP, 0)
        return
    if not read_descriptor(g, target_sel, dsc):
        raise_fault(cpu, VEC_GP, target_sel & 0xFFFC)
        return
    clo = dsc[0]
    chi = dsc[1]
    cattr = desc_attr(chi)
    cdpl = (cattr >> 5) & 3
    if (cattr & 0x18) != 0x18 or cdpl > cpl:
        raise_fault(cpu, VEC_GP, target_sel & 0xFFFC)
        return
    if not is_call and not (cattr & 4) and cdpl != cpl:
        raise_fault(cpu, VEC_GP, target_sel & 0xFFFC)
        return
    if not cattr & 0x80:
        raise_fault(cpu, VEC_NP, target_sel & 0xFFFC)
        return
    if target_off > desc_limit(clo, chi):
        raise_fault(cpu, VEC_GP, 0)
        return
    if is_call and not (cattr & 4) and cdpl < cpl:
        # more privileged: switch to the stack of level cdpl from the TSS, copy parameters
        ok, new_esp, new_ss, sbase, slimit, sattr = inner_stack(g, cdpl, 0, dsc)
        if not ok:
            return
        big = (sattr & ATTR_DB) != 0
        old_ss = cpu[SEG_SLOTS + SS * SEG_STRIDE + SEG_SEL]
        old_esp = cpu[ESP]
        old_mask = stack_mask(cpu)
        # read the parameters from the old stack first (they may fault)
        par = cpu[SCRATCH:SCRATCH + 32]      # a gate copies at most 31 parameters
        for i in range(params):
            par[i] = read_mem(g, SS, (old_esp + i * size) & old_mask, size)
        if cpu[FAULT] >= 0:
            return
        sp = stack_push_raw(g, sbase, slimit, big, new_esp, size, old_ss)
        if sp >= 0:
            sp = stack_push_raw(g, sbase, slimit, big, sp, size, old_esp)
        i = params - 1
        while sp >= 0 and i >= 0:
            sp = stack_push_raw(g, sbase, slimit, big, sp, size, par[i])
            i -= 1
        if sp >= 0:
            sp = stack_push_raw(g, sbase, slimit, big, sp, size, cpu[CS_SLOT + SEG_SEL])
        if sp >= 0:
            sp = stack_push_raw(g, sbase, slimit, big, sp, size, ret_eip)
        if sp < 0:
            if cpu[FAULT] < 0:
                raise_fault(cpu, VEC_SS, new_ss & 0xFFFC)
            return
        set_segment_cache(cpu, SS, (new_ss & 0xFFFC) | cdpl, sbase, slimit, sattr)
        cpu[ESP] = sp if big else ((cpu[ESP] & 0xFFFF0000) | sp)
        set_accessed(g, target_sel, chi)
        load_code_segment(cpu, target_sel, clo, chi, cdpl)
        cpu[NEXT_EIP] = target_off
        return
    if is_call and not push_pair(g, old_cs, ret_eip, size):
        return
    set_accessed(g, target_sel, chi)
    load_code_segment(cpu, target_sel, clo, chi, cpl)
    cpu[NEXT_EIP] = target_off


@jit
def jmpf(g, d):
    cpu = g.cpu
    ptr = cpu[SCRATCH + 14:SCRATCH + 16]
    if far_operand(g, d, ptr):
        far_transfer(g, ptr[1], ptr[0], d[D_OSIZE], False)


@jit
def callf(g, d):
    cpu = g.cpu
    ptr = cpu[SCRATCH + 14:SCRATCH + 16]
    if far_operand(g, d, ptr):
        far_transfer(g, ptr[1], ptr[0], d[D_OSIZE], True)


@jit
def check_return_cs(g, sel, dsc):
    """Checks on the CS a far return or IRET goes back to (SDM Vol. 2, RET
    and IRET): present code segment, RPL >= CPL, DPL rules by conformity."""
    cpu = g.cpu
    if (sel & 0xFFFC) == 0:
        raise_fault(cpu, VEC_GP, 0)
        return False
    if not read_descriptor(g, sel, dsc):
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return False
    attr = desc_attr(dsc[1])
    rpl = sel & 3
    dpl = (attr >> 5) & 3
    if (attr & 0x18) != 0x18 or rpl < cpu[CPL]:
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return False
    if (attr & 4) and dpl > rpl:
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return False
    if not (attr & 4) and dpl != rpl:
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return False
    if not attr & 0x80:
        raise_fault(cpu, VEC_NP, sel & 0xFFFC)
        return False
    return True


@jit
def load_outer_stack(g, new_ss, new_esp, rpl, dsc):
    """The SS:ESP a return to an outer privilege level pops (SDM Vol. 2,
    RET, "RETURN-TO-OUTER-PRIVILEGE-LEVEL")."""
    cpu = g.cpu
    if (new_ss & 0xFFFC) == 0:
        raise_fault(cpu, VEC_GP, 0)
        return False
    if not read_descriptor(g, new_ss, dsc):
        raise_fault(cpu, VEC_GP, new_ss & 0xFFFC)
        return False
    slo = dsc[0]
    shi = dsc[1]
    sattr = desc_attr(shi)
    if (new_ss & 3) != rpl or ((sattr >> 5) & 3) != rpl or (sattr & 0x1A) != 0x12:
        raise_fault(cpu, VEC_GP, new_ss & 0xFFFC)
        return False
    if not sattr & 0x80:
        raise_fault(cpu, VEC_SS, new_ss & 0xFFFC)
        return False
    set_accessed(g, new_ss, shi)
    set_segment_cache(cpu, SS, new_ss, desc_base(slo, shi), desc_limit(slo, shi), sattr | 1)
    if sattr & ATTR_DB:
        cpu[ESP] = new_esp & 0xFFFFFFFF
    else:
        cpu[ESP] = (cpu[ESP] & 0xFFFF0000) | (new_esp & 0xFFFF)
    return True


@jit
def retf(g, d):
    cpu = g.cpu
    size = d[D_OSIZE]
    mask = stack_mask(cpu)
    release = (d[D_IMM] & 0xFFFF) if d[D_OPCODE] == 0xCA else 0
    sp = cpu[ESP]
    new_eip = read_mem(g, SS, sp & mask, size)
    new_cs = read_mem(g, SS, (sp + size) & mask, size) & 0xFFFF
    if cpu[FAULT] >= 0:
        return
    if not protected_mode(cpu):
        if new_eip > cpu[CS_SLOT + SEG_LIMIT]:
            raise_fault(cpu, VEC_GP, 0)
            return
        load_segment_real(cpu, CS, new_cs)
        cpu[NEXT_EIP] = new_eip
        set_sp(cpu, sp + 2 * size + release)
        return
    dsc = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    if not check_return_cs(g, new_cs, dsc):
        return
    clo = dsc[0]
    chi = dsc[1]
    if new_eip > desc_limit(clo, chi):
        raise_fault(cpu, VEC_GP, 0)
        return
    rpl = new_cs & 3
    if rpl == cpu[CPL]:
        set_accessed(g, new_cs, chi)
        load_code_segment(cpu, new_cs, clo, chi, rpl)
        cpu[NEXT_EIP] = new_eip
        set_sp(cpu, sp + 2 * size + release)
        return
    at = sp + 2 * size + release
    new_esp = read_mem(g, SS, at & mask, size)
    new_ss = read_mem(g, SS, (at + size) & mask, size) & 0xFFFF
    if cpu[FAULT] >= 0:
        return
    if not load_outer_stack(g, new_ss, new_esp + release, rpl, dsc):
        return
    set_accessed(g, new_cs, chi)
    load_code_segment(cpu, new_cs, clo, chi, rpl)
    cpu[NEXT_EIP] = new_eip
    invalidate_for_cpl(cpu)


@jit
def iret_flags(cpu, new_flags, size, cpl):
    """EFLAGS as IRET loads them (SDM Vol. 2, IRET): IOPL only at CPL 0, IF
    only when CPL <= IOPL; VM, VIF, VIP untouched here."""
    old = get_eflags(cpu)
    changeable = FLAGS_WRITABLE & ~(FLAG_VM | FLAG_VIF | FLAG_VIP)
    if protected_mode(cpu):
        if cpl > 0:
            changeable &= ~FLAG_IOPL
        if cpl > ((old & FLAG_IOPL) >> 12):
            changeable &= ~FLAG_IF
    if size == 2:
        changeable &= 0xFFFF
    set_eflags_raw(cpu, (old & ~changeable) | (new_flags & changeable))


@jit
def iret(g, d):
    cpu = g.cpu
    size = d[D_OSIZE]
    if protected_mode(cpu) and get_eflags(cpu) & FLAG_NT:
        # return from a nested task to the one in the back link (SDM Vol. 3, 7.3)
        cpu[NMI_BLOCKED] = 0
        trs = SEG_SLOTS + TR * SEG_STRIDE
        link = read_linear(g, cpu[trs + SEG_BASE], 2, ACCESS_READ, False)
        if cpu[FAULT] < 0:
            switch_task(g, link, TS_IRET, 0, -1, cpu[NEXT_EIP])
        return
    mask = stack_mask(cpu)
    sp = cpu[ESP]
    new_eip = read_mem(g, SS, sp & mask, size)
    new_cs = read_mem(g, SS, (sp + size) & mask, size) & 0xFFFF
    new_flags = read_mem(g, SS, (sp + 2 * size) & mask, size)
    if cpu[FAULT] >= 0:
        return
    cpu[NMI_BLOCKED] = 0        # IRET ends NMI blocking (SDM Vol. 3, 6.7.1)
    if cpu[EFLAGS] & FLAG_VM:
        if ((cpu[EFLAGS] & FLAG_IOPL) >> 12) < 3:
            raise_fault(cpu, VEC_GP, 0)
            return
    if not protected_mode(cpu):
        if new_eip > cpu[CS_SLOT + SEG_LIMIT] and not (cpu[EFLAGS] & FLAG_VM):
            raise_fault(cpu, VEC_GP, 0)
            return
        load_segment_real(cpu, CS, new_cs)
        cpu[NEXT_EIP] = new_eip
        set_sp(cpu, sp + 3 * size)
        if cpu[EFLAGS] & FLAG_VM:
            # virtual-8086 mode: IOPL is not changed by IRET
            keep = cpu[EFLAGS] & FLAG_IOPL
            iret_flags(cpu, new_flags, size, 0)
            cpu[EFLAGS] = (cpu[EFLAGS] & ~FLAG_IOPL) | keep | FLAG_VM
        else:
            iret_flags(cpu, new_flags, size, 0)
        return
    if size == 4 and (new_flags & FLAG_VM) and cpu[CPL] == 0:
        # return to virtual-8086 mode is not supported yet
        raise_fault(cpu, VEC_GP, 0)
        return
    dsc = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    if not check_return_cs(g, new_cs, dsc):
        return
    clo = dsc[0]
    chi = dsc[1]
    if new_eip > desc_limit(clo, chi):
        raise_fault(cpu, VEC_GP, 0)
        return
    rpl = new_cs & 3
    cpl = cpu[CPL]
    if rpl == cpl:
        set_accessed(g, new_cs, chi)
        load_code_segment(cpu, new_cs, clo, chi, rpl)
        cpu[NEXT_EIP] = new_eip
        set_sp(cpu, sp + 3 * size)
        iret_flags(cpu, new_flags, size, cpl)
        return
    new_esp = read_mem(g, SS, (sp + 3 * size) & mask, size)
    new_ss = read_mem(g, SS, (sp + 4 * size) & mask, size) & 0xFFFF
    if cpu[FAULT] >= 0:
        return
    if not load_outer_stack(g, new_ss, new_esp, rpl, dsc):
        return
    set_accessed(g, new_cs, chi)
    iret_flags(cpu, new_flags, size, cpl)
    load_code_segment(cpu, new_cs, clo, chi, rpl)
    cpu[NEXT_EIP] = new_eip
    invalidate_for_cpl(cpu)
