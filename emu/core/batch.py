"""Batch mode: many single-instruction cases in one call of the run loop,
for fuzzers.  Python writes a table of case records into guest RAM
(layout.REC_*) and sets the BATCH_* slots; the loop then runs each case
from its own registers, EFLAGS, code and data window, and writes the
outcome back over the record: the registers, EFLAGS, EIP and window after
the instruction and what ended it (retired, an exception, an exit).  No
Python runs between cases, which is what makes it fast.

Every address comes from the cpu slots, which only Python sets, but the
records and windows are still checked against the RAM array before each
copy: a table that does not fit ends the batch (EXIT_BATCH, EXIT_ARG -1)
instead of touching memory outside the guest.
"""
import numpy as np

from emu.core.jit import jit
from emu.core.flags import get_eflags, set_eflags_raw
from emu.core.memory import note_write, PAGE_SHIFT
from emu.core.layout import (EAX, EIP, EXIT_REASON, EXIT_NONE, EXIT_EXCEPTION, EXIT_BATCH,
                             EXIT_BUDGET, EXIT_VECTOR, EXIT_ERROR, EXIT_ARG, FAULT, FAULT_ERR,
                             HALTED, INHIBIT_IRQ, IO_PENDING, IO_RETRY, MMIO_SERVED,
                             MMIO_READ_READY, MMIO_WRITE_DONE, BATCH_LEFT, BATCH_RECORD,
                             BATCH_RECORD_SIZE, BATCH_CODE, BATCH_EIP, BATCH_WINDOW,
                             BATCH_WINDOW_LEN, BATCH_STEPS, BATCH_MAX_STEPS, REP_YIELD, REC_REGS,
                             REC_EFLAGS, REC_CODE_LEN, REC_CODE, REC_EIP, REC_EXIT, REC_VECTOR,
                             REC_ERROR, REC_HEADER)


@jit
def _load32(mem, at):
    return (np.int64(mem[at]) | (np.int64(mem[at + 1]) << 8) | (np.int64(mem[at + 2]) << 16)
            | (np.int64(mem[at + 3]) << 24))


@jit
def _store32(mem, at, value):
    for i in range(4):
        mem[at + i] = (value >> (8 * i)) & 0xFF


@jit
def _note_range(g, at, n):
    """Dirty-log the pages of [at, at + n) (and drop code decoded from them)."""
    if n > 0:
        for page in range(at >> PAGE_SHIFT, ((at + n - 1) >> PAGE_SHIFT) + 1):
            note_write(g, page)


@jit
def _copy(g, src, dst, n):
    """RAM to RAM; the caller has checked both ranges."""
    mem = g.mem
    for i in range(n):
        mem[dst + i] = mem[src + i]
    _note_range(g, dst, n)


@jit
def batch_table_fits(g):
    """The record, the code and the window lie inside RAM and do not overlap."""
    cpu = g.cpu
    ram = g.mem.shape[0]
    rec = cpu[BATCH_RECORD]
    size = cpu[BATCH_RECORD_SIZE]
    window = cpu[BATCH_WINDOW]
    wlen = cpu[BATCH_WINDOW_LEN]
    code = cpu[BATCH_CODE]
    if rec < 0 or size < REC_HEADER + wlen or wlen < 0 or window < 0 or code < 0:
        return False
    if rec + size > ram or window + wlen > ram or code + 15 > ram:
        return False
    # the record must survive its own case: it may not be the window or the code
    if rec < window + wlen and window < rec + size:
        return False
    return not (rec < code + 15 and code < rec + size)


@jit
def batch_refuse(cpu):
    """End the batch: its table cannot be trusted (EXIT_ARG -1), nothing copied."""
    cpu[BATCH_LEFT] = 0
    cpu[EXIT_REASON] = EXIT_BATCH
    cpu[EXIT_ARG] = -1


@jit
def batch_load(g):
    """Start the case at BATCH_RECORD: registers, EFLAGS, code and window."""
    cpu = g.cpu
    mem = g.mem
    if not batch_table_fits(g):
        batch_refuse(cpu)
        return
    rec = cpu[BATCH_RECORD]
    for r in range(8):
        cpu[EAX + r] = _load32(mem, rec + REC_REGS + 4 * r)
    set_eflags_raw(cpu, _load32(mem, rec + REC_EFLAGS))
    n = min(np.int64(mem[rec + REC_CODE_LEN]), 15)
    _copy(g, rec + REC_CODE, cpu[BATCH_CODE], n)
    _copy(g, rec + REC_HEADER, cpu[BATCH_WINDOW], cpu[BATCH_WINDOW_LEN])
    cpu[EIP] = cpu[BATCH_EIP]
    cpu[HALTED] = 0
    cpu[INHIBIT_IRQ] = 0
    cpu[FAULT] = -1
    cpu[FAULT_ERR] = -1
    cpu[IO_PENDING] = 0
    cpu[IO_RETRY] = 0
    cpu[MMIO_SERVED] = 0
    cpu[MMIO_READ_READY] = 0
    cpu[MMIO_WRITE_DONE] = 0
    cpu[REP_YIELD] = 0
    cpu[BATCH_STEPS] = 0


@jit
def batch_next(g):
    """After an instruction of a batch case: record its outcome over the
    record and load the next case, or end the batch.  A REP string
    instruction that only yielded goes on (up to BATCH_MAX_STEPS times)."""
    cpu = g.cpu
    mem = g.mem
    reason = cpu[EXIT_REASON]
    cpu[BATCH_STEPS] += 1
    if cpu[REP_YIELD]:
        cpu[REP_YIELD] = 0
        if reason == EXIT_NONE and cpu[BATCH_STEPS] < BATCH_MAX_STEPS:
            return
        if reason == EXIT_NONE:
            reason = EXIT_BUDGET
    if not batch_table_fits(g):
        batch_refuse(cpu)
        return
    rec = cpu[BATCH_RECORD]
    for r in range(8):
        _store32(mem, rec + REC_REGS + 4 * r, cpu[EAX + r])
    _store32(mem, rec + REC_EFLAGS, get_eflags(cpu))
    _store32(mem, rec + REC_EIP, cpu[EIP])
    _store32(mem, rec + REC_EXIT, reason)
    exception = reason == EXIT_EXCEPTION
    _store32(mem, rec + REC_VECTOR, cpu[EXIT_VECTOR] if exception else -1)
    _store32(mem, rec + REC_ERROR, cpu[EXIT_ERROR] if exception else -1)
    window = cpu[BATCH_WINDOW]
    for i in range(cpu[BATCH_WINDOW_LEN]):
        mem[rec + REC_HEADER + i] = mem[window + i]
    _note_range(g, rec, cpu[BATCH_RECORD_SIZE])
    cpu[EXIT_REASON] = EXIT_NONE
    cpu[BATCH_LEFT] -= 1
    if cpu[BATCH_LEFT] <= 0:
        cpu[BATCH_LEFT] = 0
        cpu[EXIT_REASON] = EXIT_BATCH
        cpu[EXIT_ARG] = 0
        return
    cpu[BATCH_RECORD] = rec + cpu[BATCH_RECORD_SIZE]
    batch_load(g)
