"""The run loop: fetch a decoded instruction, execute it, deliver faults
and interrupts, keep the devices on time, until the budget is spent or
something needs Python (an exit)."""
from emu.core.jit import jit
from emu.core.icache import lookup
from emu.core.batch import batch_load, batch_next
from emu.core.dispatch import execute
from emu.core.fastpath import fast_run
from emu.core.faults import handle_fault, deliver_event, EVENT_EXTERNAL
from devices.chips.bus import catch_up, skip_to_next_event, interrupt_acknowledge
from devices.chips.layout import DEADLINE_ICOUNT, RTC_BASE, RTC_NMI_DISABLED
from emu.core.operands import effective_address
from emu.core.layout import (EIP, EFLAGS, LF_OP, LF_A, LF_B, LF_R, LF_SIZE, FAULT, NEXT_EIP,
                             INSN_EIP, ICOUNT, HALTED, EA, EXIT_REASON, EXIT_NONE, EXIT_BUDGET,
                             EXIT_HALT, EXIT_IO, EXIT_BREAKPOINT, EXIT_ARG, D_LEN, D_HASMEM,
                             D_OSIZE, BP_COUNT, BP_FIRST, CS, SEG_SLOTS, SEG_STRIDE, SEG_BASE,
                             SEG_ATTR, ATTR_DB, INHIBIT_IRQ, INTR_LINE, NMI_PENDING,
                             NMI_BLOCKED, FLAG_IF, VEC_NMI, NO_ERROR_CODE, VEC_MMIO_EXIT,
                             FAULT_ERR, EXIT_MMIO, MMIO_SERVED, MMIO_READ_READY, MMIO_WRITE_DONE,
                             EXIT_WATCH, BATCH_LEFT, BATCH_STEPS, D_FAST, OPTIONS,
                             OPT_NO_FAST_PATH, WATCH_COUNT, JIT_REQUEST, EXIT_COMPILE,
                             JIT_ATTEMPTS)


@jit
def at_breakpoint(cpu, eip):
    lin = (cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_BASE] + eip) & 0xFFFFFFFF
    for i in range(cpu[BP_COUNT]):
        if cpu[BP_FIRST + i] == lin:
            return True
    return False


@jit
def nmi_deliverable(g):
    cpu = g.cpu
    return cpu[NMI_PENDING] != 0 and cpu[NMI_BLOCKED] == 0 and g.dev[RTC_BASE + RTC_NMI_DISABLED] == 0


@jit
def take_interrupt(g):
    """At an instruction boundary: an NMI, else a maskable interrupt from the
    PIC when IF = 1 (SDM Vol. 3, 6.9: NMI has priority over INTR).  The
    return address is the instruction that would have run next."""
    cpu = g.cpu
    cpu[INSN_EIP] = cpu[EIP]
    if nmi_deliverable(g):
        cpu[NMI_PENDING] = 0
        cpu[NMI_BLOCKED] = 1
        deliver_event(g, VEC_NMI, NO_ERROR_CODE, EVENT_EXTERNAL)
        return
    if cpu[INTR_LINE] and cpu[EFLAGS] & FLAG_IF:
        vector = interrupt_acknowledge(g)
        deliver_event(g, vector, NO_ERROR_CODE, EVENT_EXTERNAL)


@jit
def execute_at(g, idx, eip):
    """Execute the decoded instruction in icache row ``idx``: retire it, or
    undo its flags and deliver (or report) its fault, or leave it to be run
    again after an exit (port or MMIO access served by Python)."""
    cpu = g.cpu
    d = g.ic[idx]
    cs32 = cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_ATTR] & ATTR_DB
    cpu[NEXT_EIP] = (eip + d[D_LEN]) & (0xFFFFFFFF if cs32 else 0xFFFF)
    if d[D_HASMEM]:
        cpu[EA] = effective_address(cpu, d)
    # a faulting instruction leaves the flags as they were
    saved_flags = cpu[EFLAGS]
    saved_op = cpu[LF_OP]
    saved_a = cpu[LF_A]
    saved_b = cpu[LF_B]
    saved_r = cpu[LF_R]
    saved_size = cpu[LF_SIZE]
    cpu[INHIBIT_IRQ] = 0
    execute(g, d)
    if cpu[FAULT] >= 0:
        if cpu[EXIT_REASON] == EXIT_WATCH:
            cpu[EXIT_REASON] = EXIT_NONE      # the instruction did not retire: no watch hit
        cpu[EFLAGS] = saved_flags
        cpu[LF_OP] = saved_op
        cpu[LF_A] = saved_a
        cpu[LF_B] = saved_b
        cpu[LF_R] = saved_r
        cpu[LF_SIZE] = saved_size
        if cpu[FAULT] == VEC_MMIO_EXIT:
            # not retired: re-executed when Python has served the MMIO access
            cpu[FAULT] = -1
            cpu[FAULT_ERR] = -1
            cpu[EXIT_REASON] = EXIT_MMIO
            return
        handle_fault(g)
    elif cpu[EXIT_REASON] != EXIT_IO:     # EXIT_IO: not retired, re-executed when the port is served
        cpu[EIP] = cpu[NEXT_EIP]
        cpu[ICOUNT] += 1
        if cpu[MMIO_SERVED]:
            cpu[MMIO_SERVED] = 0
            cpu[MMIO_READ_READY] = 0
            cpu[MMIO_WRITE_DONE] = 0


@jit
def fast_limit(g, left):
    """How many instructions the fast tier may run back to back (``left``
    of the budget): up to the next device deadline, and one at a time when
    the loop has something to do between instructions (an interrupt
    request, breakpoints, a batch).  0: not at all (switched off,
    watchpoints, an MMIO access being served)."""
    cpu = g.cpu
    if (cpu[OPTIONS] & OPT_NO_FAST_PATH) or cpu[WATCH_COUNT] > 0 or cpu[MMIO_SERVED]:
        return 0
    if cpu[NMI_PENDING] or cpu[INTR_LINE] or cpu[BP_COUNT] > 0 or cpu[BATCH_LEFT] > 0:
        return 1
    until_deadline = g.dev[DEADLINE_ICOUNT] - cpu[ICOUNT]
    if until_deadline < left:
        left = until_deadline
    return left if left > 1 else 1


@jit
def run(g, budget, skip_breakpoint_at_start):
    """Run at most ``budget`` instructions; returns an EXIT_* code."""
    cpu = g.cpu
    dev = g.dev
    cpu[EXIT_REASON] = EXIT_NONE
    if cpu[BATCH_LEFT] > 0 and cpu[BATCH_STEPS] < 0:
        batch_load(g)             # a new batch: its first case
    n = 0
    while n < budget:
        if cpu[ICOUNT] >= dev[DEADLINE_ICOUNT]:
            catch_up(g)
        # INHIBIT_IRQ still holds the shadow of the previous instruction (STI, MOV SS)
        # (a batch runs its cases back to back: interrupts wait until it ends)
        if (cpu[NMI_PENDING] or (cpu[INTR_LINE] and cpu[EFLAGS] & FLAG_IF)) and not cpu[INHIBIT_IRQ] \
                and cpu[BATCH_LEFT] == 0:
            take_interrupt(g)
            if cpu[EXIT_REASON] != EXIT_NONE:
                break
        if cpu[HALTED]:
            # HLT waits for an interrupt: virtual time jumps to the next device
            # event; with nothing able to wake the CPU the run ends
            if ((cpu[EFLAGS] & FLAG_IF) or cpu[NMI_PENDING]) and skip_to_next_event(g):
                n += 1
                continue
            cpu[EXIT_REASON] = EXIT_HALT
            break
        eip = cpu[EIP]
        if cpu[BP_COUNT] > 0 and not (n == 0 and skip_breakpoint_at_start) and at_breakpoint(cpu, eip):
            cpu[EXIT_REASON] = EXIT_BREAKPOINT
            cpu[EXIT_ARG] = eip
            break
        cpu[INSN_EIP] = eip
        n += 1
        idx = lookup(g, eip)
        if idx < 0:
            handle_fault(g)
        else:
            done = 0
            if g.ic[idx, D_FAST] != 0:
                limit = fast_limit(g, budget - n + 1)
                if limit > 0:
                    done = fast_run(g, idx, eip, limit)
            if done == 0:
                execute_at(g, idx, eip)
            else:
                n += done - 1         # the fast tier ran ``done`` instructions
        if cpu[BATCH_LEFT] > 0:
            batch_next(g)
        if cpu[JIT_REQUEST] != 0 and cpu[EXIT_REASON] == EXIT_NONE:
            cpu[EXIT_REASON] = EXIT_COMPILE     # Python compiles the block (emu/blocks.py)
            cpu[JIT_ATTEMPTS] = n
        if cpu[EXIT_REASON] != EXIT_NONE:
            break
    if cpu[EXIT_REASON] == EXIT_NONE:
        cpu[EXIT_REASON] = EXIT_BUDGET
    return cpu[EXIT_REASON]
