"""Exception and interrupt delivery through the IVT (real mode) or the IDT
(protected mode), with #DF and triple fault (SDM Vol. 3, chapter 6)."""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import get_eflags, set_eflags_raw
from emu.core.memory import read_linear, write_linear, ACCESS_READ
from emu.core.segments import (read_descriptor, desc_base, desc_limit, desc_attr,
                               load_code_segment, set_segment_cache, set_accessed, protected_mode,
                               inner_stack)
from emu.core.stackops import push
from emu.core.tasks import switch_task, TS_INT
from emu.core.layout import (CS, SS, ESP, EIP, CPL, FAULT, FAULT_ERR, INSN_EIP, NEXT_EIP,
                             IDTR_BASE, IDTR_LIMIT, SEG_SLOTS, SEG_STRIDE, SEG_SEL, SEG_BASE,
                             SEG_LIMIT, SEG_ATTR, TR, ATTR_DB, FLAG_IF, FLAG_TF, FLAG_NT,
                             FLAG_RF, FLAG_VM, FLAG_AC, VEC_DF, VEC_GP, VEC_NP, VEC_SS, VEC_TS,
                             VEC_PF, VEC_DE, NO_ERROR_CODE, HALTED, DELIVERING, EXIT_REASON,
                             EXIT_SHUTDOWN, EXIT_EXCEPTION, EXIT_VECTOR, EXIT_ERROR, OPTIONS,
                             OPT_STOP_ON_EXCEPTION, EFLAGS, DESC_SCRATCH, EVENT_COUNT,
                             LAST_EVENT_VECTOR, LAST_EVENT_KIND, LAST_EVENT_ERROR)

# how an event reached the CPU: decides the return EIP, the DPL check and EXT
EVENT_FAULT = 0      # exception; return to the faulting instruction
EVENT_SOFTWARE = 1   # INT n, INT3, INTO: gate DPL checked, return after
EVENT_EXTERNAL = 2   # hardware interrupt (EXT = 1), return to the current instruction
EVENT_TRAP = 3       # exception of trap class (INT1/ICEBP, single step): return after, EXT = 1


@jit
def is_contributory(v):
    return v == VEC_DE or v == 10 or v == VEC_NP or v == VEC_SS or v == VEC_GP


@jit
def escalates_to_double_fault(first, second):
    """SDM Vol. 3, table 6-5: which pairs of exceptions become #DF."""
    if is_contributory(first) and is_contributory(second):
        return True
    if first == VEC_PF and (is_contributory(second) or second == VEC_PF):
        return True
    return False


@jit
def deliver_real(g, vector, return_eip):
    """Real-address mode: push FLAGS, CS, IP and jump through the IVT."""
    cpu = g.cpu
    if vector * 4 + 3 > cpu[IDTR_LIMIT]:
        raise_fault(cpu, VEC_GP, 0)
        return
    entry = read_linear(g, cpu[IDTR_BASE] + vector * 4, 4, ACCESS_READ, False)
    if cpu[FAULT] >= 0:
        return
    flags = get_eflags(cpu)
    sp = cpu[ESP]
    cs = cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_SEL]
    if not (push(g, flags & 0xFFFF, 2) and push(g, cs, 2) and push(g, return_eip & 0xFFFF, 2)):
        cpu[ESP] = sp
        return
    set_eflags_raw(cpu, flags & ~(FLAG_IF | FLAG_TF | FLAG_AC | FLAG_RF))
    sel = (entry >> 16) & 0xFFFF
    s = SEG_SLOTS + CS * SEG_STRIDE
    cpu[s + SEG_SEL] = sel
    cpu[s + SEG_BASE] = sel << 4
    cpu[EIP] = entry & 0xFFFF


@jit
def stack_push_raw(g, base, limit, big, sp, size, value):
    """Push onto a stack that is not (yet) SS; returns the new SP or -1."""
    mask = 0xFFFFFFFF if big else 0xFFFF
    sp = (sp - size) & mask
    if sp + size - 1 > limit:
        return -1
    if not write_linear(g, base + sp, size, value, False):
        return -1
    return sp


@jit
def deliver_protected(g, vector, error_code, event, return_eip):
    """Protected mode: through an interrupt or trap gate of the IDT, with a
    stack switch from the TSS when the handler is more privileged."""
    cpu = g.cpu
    ext = 0 if event == EVENT_SOFTWARE else 1
    idt_err = vector * 8 + 2 + ext
    if vector * 8 + 7 > cpu[IDTR_LIMIT]:
        raise_fault(cpu, VEC_GP, idt_err)
        return
    lo = read_linear(g, cpu[IDTR_BASE] + vector * 8, 4, ACCESS_READ, False)
    hi = read_linear(g, cpu[IDTR_BASE] + vector * 8 + 4, 4, ACCESS_READ, False)
    if cpu[FAULT] >= 0:
        return
    gate_type = (hi >> 8) & 0x1F
    if gate_type not in (0x05, 0x06, 0x07, 0x0E, 0x0F):
        raise_fault(cpu, VEC_GP, idt_err)
        return
    gate_dpl = (hi >> 13) & 3
    cpl = cpu[CPL]
    if event == EVENT_SOFTWARE and gate_dpl < cpl:
        raise_fault(cpu, VEC_GP, idt_err)
        return
    if not hi & 0x8000:
        raise_fault(cpu, VEC_NP, idt_err)
        return
    if gate_type == 0x05:
        # a task gate: the handler is a task (SDM Vol. 3, 6.12.2)
        switch_task(g, (lo >> 16) & 0xFFFF, TS_INT, ext, error_code, return_eip)
        return
    gate32 = (gate_type & 8) != 0
    trap_gate = (gate_type & 1) != 0
    sel = (lo >> 16) & 0xFFFF
    offset = (lo & 0xFFFF) | ((hi & 0xFFFF0000) if gate32 else 0)
    if (sel & 0xFFFC) == 0:
        raise_fault(cpu, VEC_GP, ext)
        return
    d = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    if not read_descriptor(g, sel, d):
        raise_fault(cpu, VEC_GP, (sel & 0xFFFC) + ext)
        return
    clo = d[0]
    chi = d[1]
    cattr = desc_attr(chi)
    dpl = (cattr >> 5) & 3
    if (cattr & 0x18) != 0x18 or dpl > cpl:
        raise_fault(cpu, VEC_GP, (sel & 0xFFFC) + ext)
        return
    if not cattr & 0x80:
        raise_fault(cpu, VEC_NP, (sel & 0xFFFC) + ext)
        return
    conforming = (cattr & 4) != 0
    size = 4 if gate32 else 2
    flags = get_eflags(cpu)
    old_cs = cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_SEL]
    if not conforming and dpl < cpl:
        # inter-privilege: new stack from the TSS (SDM Vol. 3, 6.12.1)
        ok, new_esp, new_ss, sbase, slimit, sattr = inner_stack(g, dpl, ext, d)
        if not ok:
            return
        big = (sattr & ATTR_DB) != 0
        ss_s = SEG_SLOTS + SS * SEG_STRIDE
        sp = new_esp
        for value in (cpu[ss_s + SEG_SEL], cpu[ESP], flags, old_cs, return_eip):
            sp = stack_push_raw(g, sbase, slimit, big, sp, size, value)
            if sp < 0:
                break
        if sp >= 0 and error_code >= 0:
            sp = stack_push_raw(g, sbase, slimit, big, sp, size, error_code)
        if sp < 0:
            if cpu[FAULT] < 0:
                raise_fault(cpu, VEC_SS, (new_ss & 0xFFFC) + ext)
            return
        set_segment_cache(cpu, SS, (new_ss & 0xFFFC) | dpl, sbase, slimit, sattr)
        cpu[ESP] = sp if big else ((cpu[ESP] & 0xFFFF0000) | sp)
        new_cpl = dpl
    elif conforming or dpl == cpl:
        ss_s = SEG_SLOTS + SS * SEG_STRIDE
        big = (cpu[ss_s + SEG_ATTR] & ATTR_DB) != 0
        sp = cpu[ESP] & (0xFFFFFFFF if big else 0xFFFF)
        sbase = cpu[ss_s + SEG_BASE]
        slimit = cpu[ss_s + SEG_LIMIT]
        for value in (flags, old_cs, return_eip):
            sp = stack_push_raw(g, sbase, slimit, big, sp, size, value)
            if sp < 0:
                break
        if sp >= 0 and error_code >= 0:
            sp = stack_push_raw(g, sbase, slimit, big, sp, size, error_code)
        if sp < 0:
            if cpu[FAULT] < 0:
                raise_fault(cpu, VEC_SS, ext)
            return
        cpu[ESP] = sp if big else ((cpu[ESP] & 0xFFFF0000) | sp)
        new_cpl = cpl
    else:
        raise_fault(cpu, VEC_GP, (sel & 0xFFFC) + ext)
        return
    set_accessed(g, sel, chi)
    load_code_segment(cpu, sel, clo, chi, new_cpl)
    if not gate32:
        offset &= 0xFFFF
    cpu[EIP] = offset
    newflags = flags & ~(FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM)
    if not trap_gate:
        newflags &= ~FLAG_IF
    set_eflags_raw(cpu, newflags)


@jit
def deliver_event(g, vector, error_code, event):
    """Deliver one event; escalates to #DF and to a triple fault (shutdown
    exit) as SDM Vol. 3, 6.15 (interrupt 8) describes."""
    cpu = g.cpu
    if event == EVENT_FAULT or event == EVENT_EXTERNAL:
        return_eip = cpu[INSN_EIP]
    else:
        return_eip = cpu[NEXT_EIP]
    cpu[HALTED] = 0
    while True:
        cpu[EVENT_COUNT] += 1
        cpu[LAST_EVENT_VECTOR] = vector
        cpu[LAST_EVENT_KIND] = event
        cpu[LAST_EVENT_ERROR] = error_code
        cpu[FAULT] = -1
        cpu[FAULT_ERR] = -1
        cpu[DELIVERING] = vector
        if protected_mode(cpu):
            deliver_protected(g, vector, error_code if event != EVENT_SOFTWARE else -1, event,
                              return_eip)
        else:
            deliver_real(g, vector, return_eip)
        if cpu[FAULT] < 0:
            cpu[DELIVERING] = -1
            return
        second = cpu[FAULT]
        second_err = cpu[FAULT_ERR]
        cpu[FAULT] = -1
        cpu[FAULT_ERR] = -1
        if vector == VEC_DF:
            cpu[DELIVERING] = -1
            cpu[EXIT_REASON] = EXIT_SHUTDOWN
            return
        if escalates_to_double_fault(vector, second) or not protected_mode(cpu):
            # in real mode a fault while delivering (IVT limit, stack) is #DF too
            vector = VEC_DF
            error_code = 0
        else:
            vector = second
            error_code = second_err
        event = EVENT_FAULT
        return_eip = cpu[INSN_EIP]


@jit
def handle_fault(g):
    """Called by the run loop when an instruction left a fault pending:
    stop the run (OPT_STOP_ON_EXCEPTION) or deliver it to the guest."""
    cpu = g.cpu
    vector = cpu[FAULT]
    err = cpu[FAULT_ERR]
    if cpu[OPTIONS] & OPT_STOP_ON_EXCEPTION:
        cpu[FAULT] = -1
        cpu[FAULT_ERR] = -1
        cpu[EXIT_REASON] = EXIT_EXCEPTION
        cpu[EXIT_VECTOR] = vector
        cpu[EXIT_ERROR] = err
        return
    deliver_event(g, vector, err, EVENT_FAULT)


@jit
def software_interrupt(g, vector, event):
    """INT n / INT3 / INTO / INT1: a trap; the return address is the next
    instruction.  With OPT_STOP_ON_EXCEPTION the run stops instead."""
    cpu = g.cpu
    if cpu[OPTIONS] & OPT_STOP_ON_EXCEPTION:
        cpu[EXIT_REASON] = EXIT_EXCEPTION
        cpu[EXIT_VECTOR] = vector
        cpu[EXIT_ERROR] = NO_ERROR_CODE
        cpu[EIP] = cpu[NEXT_EIP]
        return
    deliver_event(g, vector, NO_ERROR_CODE, event)
    if cpu[EXIT_REASON] == 0:
        # the handler address is where execution continues
        cpu[NEXT_EIP] = cpu[EIP]
