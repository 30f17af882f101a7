"""Decode many byte strings in one call, for `emu fuzz --decode`.

A small jitted entry over the decoder alone (not the run loop, whose
dispatcher would make its compile take minutes).  Each string is placed at
CODE_AT in a scratch guest whose CS limit ends at the string's last byte, so
an instruction that needs more bytes than the string holds faults on the
limit (#GP) instead of reading whatever follows.

The guest passed in is scratch: the entry takes over its first code bytes,
CS base and limit, CR0.PG, CPL, the A20 mask, the watchpoints and the last
row of its icache (the record it decodes into).
"""
from emu.core.jit import jit
from emu.core.decode import decode, MAX_INSN_LEN
from emu.core.layout import (FAULT, FAULT_ERR, D_LEN, D_ROW, D_FIELDS, CR0, CR0_PG, CPL, A20_MASK,
                             WATCH_COUNT, CS, SEG_SLOTS, SEG_STRIDE, SEG_BASE, SEG_LIMIT, VEC_UD)

CODE_AT = 0x1000
# out_vector values besides fault vectors
DECODED = -1        # decoded to an instruction of the opcode table (out_row >= 0)
BAD_INPUT = -2      # the string's offsets are out of range or its length is not 1..15


@jit
def decode_many(g, code, offsets, count, cs32, out_len, out_row, out_vector):
    """Decode ``count`` strings: string i is code[offsets[i]:offsets[i + 1]].
    For each: out_vector DECODED with the length and the opcode-table row,
    VEC_UD with the bytes consumed up to the point the decoder gave up
    (row -1), another vector (#GP: the instruction runs past the string's
    end) with length 0, or BAD_INPUT.  Returns the number decoded, or -1
    when the arrays do not fit together (nothing is decoded then)."""
    cpu = g.cpu
    mem = g.mem
    ic = g.ic
    if count < 0 or count + 1 > offsets.shape[0] or count > out_len.shape[0] \
            or count > out_row.shape[0] or count > out_vector.shape[0]:
        return -1
    if CODE_AT + MAX_INSN_LEN > mem.shape[0] or ic.shape[0] < 1 or ic.shape[1] < D_FIELDS:
        return -1
    d = ic[ic.shape[0] - 1]
    cpu[CR0] &= ~CR0_PG
    cpu[CPL] = 0
    cpu[A20_MASK] = 0xFFFFFFFF
    cpu[WATCH_COUNT] = 0
    cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_BASE] = 0
    total = code.shape[0]
    for i in range(count):
        start = offsets[i]
        end = offsets[i + 1]
        n = end - start
        out_len[i] = 0
        out_row[i] = -1
        if start < 0 or end > total or n < 1 or n > MAX_INSN_LEN:
            out_vector[i] = BAD_INPUT
            continue
        for k in range(n):
            mem[CODE_AT + k] = code[start + k]
        # the string's last byte is the last byte CS allows: fetching past it is #GP(0)
        cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_LIMIT] = CODE_AT + n - 1
        cpu[FAULT] = -1
        cpu[FAULT_ERR] = -1
        if not decode(g, CODE_AT, cs32, d):
            out_vector[i] = cpu[FAULT]
            continue
        out_len[i] = d[D_LEN]
        if d[D_ROW] < 0:
            out_vector[i] = VEC_UD
        else:
            out_row[i] = d[D_ROW]
            out_vector[i] = DECODED
    cpu[FAULT] = -1
    cpu[FAULT_ERR] = -1
    return count
