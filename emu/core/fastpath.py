"""The fast tier: runs of the commonest instructions without the generic
operand machinery.

The generic path pays for its generality on every instruction: a lookup
(CS limit, translation, decode mode, hash, tag), then execute_at, execute,
exec_<module>, read_operand and write_operand, each a call, each reading
operand kinds from the decoded record.  Compiled code spends most of its
time in those calls, not in the work.

Here, lookup() classifies each instruction once, when it decodes it
(``classify``): MOV, MOVZX, MOVSX, LEA, ADD, SUB, CMP, AND, OR, XOR, TEST,
INC, DEC, shifts and rotates, IMUL, MUL, SETcc,
CMOVcc, Jcc, JMP rel and r/m, CALL rel and r/m, RET, PUSH reg/imm, POP reg
and NOP, with 32-bit addressing and no LOCK or REP, get a fast operation and their
operands packed into one word of the record (D_FAST).  The run loop hands
such an instruction to ``fast_run``, which executes it and the classified
instructions after it for as long as they are in the icache on the same
code page, within the budget, before the next device deadline, and with
nothing that needs the loop between instructions (an interrupt request,
breakpoints, a batch).

The fast tier only takes the common case, and leaves an instruction to the
generic path before changing anything when it is not: a segment that is
not flat (base 0, limit 4 GiB, the right type), a TLB miss that
memory.quiet_walk cannot fill (a walk that would fault, PAE, page tables
outside plain RAM), memory outside RAM (MMIO, holes, the BIOS ROM), a
write to a page that holds decoded code, an access across a page.  So
faults, self-modifying code and devices stay with the generic path.  An instruction executed here leaves exactly the state the
generic path leaves (registers, the lazy flags record, EIP, NEXT_EIP,
INSN_EIP, EA, counters); tests/test_fastpath.py runs random programs both
ways (OPT_NO_FAST_PATH) and compares the whole state.
"""
import numpy as np

from emu.core.jit import jit, jit_inline
from emu.core.flags import (condition, keep_carry, LF_NONE, LF_ADD, LF_SUB, LF_INC, LF_DEC,
                            LF_LOGIC)
from emu.core.memory import PM_CODE, PM_DIRTY, PAGE_SHIFT, PAGE_MASK, TLB_TAG, BIOS_ROM, \
    ACCESS_READ, ACCESS_WRITE, tlb_lookup, quiet_walk
from emu.core import operands
from emu.core.isa import shift
from emu.core.isa.muldiv import signed, mul_flags, multiply_double
from emu.core.dispatch import (IMPL_MOV, IMPL_MOVZX, IMPL_MOVSX, IMPL_LEA, IMPL_ADD, IMPL_SUB,
                               IMPL_CMP, IMPL_AND, IMPL_OR, IMPL_XOR, IMPL_TEST, IMPL_INC,
                               IMPL_DEC, IMPL_Jcc, IMPL_JMP, IMPL_CALL, IMPL_RET, IMPL_PUSH,
                               IMPL_POP, IMPL_NOP, IMPL_SHL, IMPL_SHR, IMPL_SAR, IMPL_ROL,
                               IMPL_ROR, IMPL_RCL, IMPL_RCR, IMPL_IMUL, IMPL_SETcc, IMPL_CMOVcc,
                               IMPL_MUL)
from devices.chips.layout import ROM_LOCKED
from emu.core.blockcall import (call_block, BLOCK_ENV_PAGING, BLOCK_ENV_USER, BLOCK_ENV_WP,
                                  BLOCK_ENV_STACK, BLOCK_ENV_READABLE, BLOCK_ENV_WRITABLE, BLOCK_ENV_AMD,
                                  BLOCK_ENV_ZERO)
from emu.core.layout import (D_TAG, D_GEN, D_MODE, D_LEN, D_FAST, IC_TAG_SHIFT, D_MNEM, D_OSIZE, D_ASIZE,
                             D_SEG, D_REP, D_LOCK, D_MOD, D_REG, D_RM, D_BASE, D_INDEX, D_SCALE,
                             D_DISP, D_IMM, D_K0, D_S0, D_S1, D_S2, D_OPCODE, D_HASMEM, D_NOPS,
                             K_NONE, K_RM, K_REG, K_IMM, K_REL, K_OPREG, K_MEM, K_GPR, K_SEGFIX,
                             K_ONE, K_MOFFS,
                             REP_NONE, IC_ENTRIES, MODE_CS32, MODE_PE, CS, SS, ESP, EIP,
                             NEXT_EIP, INSN_EIP, EA, ICOUNT, ICACHE_HITS, INHIBIT_IRQ, CR0,
                             CR0_PG, CR0_WP, CPL, A20_MASK, SEG_SLOTS, SEG_STRIDE, SEG_BASE,
                             SEG_LIMIT, SEG_ATTR, ATTR_UNUSABLE, ATTR_DB, LF_OP, LF_A, LF_B, LF_R,
                             LF_SIZE, FAST_RETIRED, EFLAGS, FLAG_CF, D_BLOCK, D_BLOCK_KEY, D_HEAT,
                             JIT_REQUEST, JIT_THRESHOLD, JIT_RETIRED,
                             JIT_REQUEST_ENV, UNDEFINED_FLAGS, UNDEF_INTEL, UNDEF_AMD,
                             BLOCK_KEY_MATCH, BLOCK_KEY_LENGTH, BLOCK_KEY_ENV)

# fast operations (D_FAST bits 0-7; 0: the generic path)
F_MOV = 1
F_MOVZX = 2
F_MOVSX = 3
F_LEA = 4
F_ADD = 5
F_SUB = 6
F_CMP = 7
F_AND = 8
F_OR = 9
F_XOR = 10
F_TEST = 11
F_INC = 12
F_DEC = 13
F_JCC = 14
F_JMP = 15
F_CALL = 16
F_RET = 17
F_PUSH = 18
F_POP = 19
F_NOP = 20
F_SHIFT = 21         # SHL SHR SAR ROL ROR RCL RCR (which one: D_FAST bits 32-35)
F_IMUL = 22          # IMUL r, r/m and IMUL r, r/m, imm (D_FAST bit 29: the immediate form)
F_CALLI = 23         # CALL r/m (near, absolute indirect)
F_JMPI = 24          # JMP r/m
F_SETCC = 25         # SETcc r/m8
F_CMOV = 26          # CMOVcc r, r/m
F_MUL = 27           # MUL r/m (unsigned, into AX, DX:AX or EDX:EAX)
F_IMUL1 = 28         # IMUL r/m (signed, the same double width)

SHIFT_SHL, SHIFT_SHR, SHIFT_SAR, SHIFT_ROL, SHIFT_ROR, SHIFT_RCL, SHIFT_RCR = range(7)

# operand codes (D_FAST bits 8-11 destination, 12-15 source): 0-7 a general
# register (ModRM numbering, bytes 4-7 are AH..BH), or one of these
OPD_MEM = 8          # the ModRM memory operand (D_BASE, D_INDEX, D_SCALE, D_DISP, D_SEG)
OPD_IMM = 9          # D_IMM
OPD_NONE = 10
OPD_ONE = 11         # the constant 1 (D1: shift by one)
# operand sizes in bytes: D_FAST bits 16-19 destination, 20-23 source, 24-27
# a third operand (IMUL's immediate)
FAST_MEM_WRITE = 1 << 28     # the memory operand is the destination (written)
FAST_IMM3 = 1 << 29          # IMUL r, r/m, imm
FAST_HAS_MEM = 1 << 30       # one operand is the ModRM memory operand

FLAT32 = MODE_CS32 | MODE_PE    # the decode mode the fast tier runs in (no virtual-8086)
LAST_WHOLE = 0x1000 - 15        # instructions starting after this offset may cross the page
HEAT_MIN_LIMIT = 16             # runs shorter than this (breakpoints, interrupts) do not heat blocks


@jit
def operand_code(d, i):
    """Operand i of a decoded record as an operand code, -1 if the fast
    tier does not take its kind."""
    kind = d[D_K0 + i]
    if kind == K_RM:
        if d[D_MOD] == 3:
            return d[D_RM]
        return OPD_MEM
    if kind == K_REG:
        return d[D_REG]
    if kind == K_OPREG:
        return d[D_OPCODE] & 7
    if kind >= K_GPR and kind < K_SEGFIX:
        return kind - K_GPR
    if kind == K_MEM or kind == K_MOFFS:      # MOV moffs: D_DISP with no base or index
        return OPD_MEM
    if kind == K_IMM:
        return OPD_IMM
    if kind == K_NONE:
        return OPD_NONE
    if kind == K_ONE:
        return OPD_ONE
    return -1


@jit
def fast_operation(d, a, b):
    """The fast operation of a decoded record whose operand codes are a, b;
    0 when the generic path must run it."""
    m = d[D_MNEM]
    osize = d[D_OSIZE]
    opcode = d[D_OPCODE]
    src = a != OPD_IMM and a != OPD_NONE
    if m == IMPL_MOV:
        if src and b != OPD_NONE and not (a == OPD_MEM and b == OPD_MEM):
            return F_MOV
    elif m == IMPL_ADD or m == IMPL_SUB or m == IMPL_CMP or m == IMPL_AND or m == IMPL_OR \
            or m == IMPL_XOR or m == IMPL_TEST:
        if src and b != OPD_NONE:
            if m == IMPL_ADD:
                return F_ADD
            if m == IMPL_SUB:
                return F_SUB
            if m == IMPL_CMP:
                return F_CMP
            if m == IMPL_AND:
                return F_AND
            if m == IMPL_OR:
                return F_OR
            if m == IMPL_XOR:
                return F_XOR
            return F_TEST
    elif m == IMPL_INC or m == IMPL_DEC:
        if src and b == OPD_NONE:
            return F_INC if m == IMPL_INC else F_DEC
    elif m == IMPL_MOVZX or m == IMPL_MOVSX:
        if a < 8 and (b < 8 or b == OPD_MEM):
            return F_MOVZX if m == IMPL_MOVZX else F_MOVSX
    elif m == IMPL_LEA:
        if a < 8 and b == OPD_MEM and osize == 4:
            return F_LEA
    elif m == IMPL_NOP:
        if opcode == 0x90:
            return F_NOP
    elif m == IMPL_SHL or m == IMPL_SHR or m == IMPL_SAR or m == IMPL_ROL or m == IMPL_ROR \
            or m == IMPL_RCL or m == IMPL_RCR:
        if src and (b == OPD_IMM or b == OPD_ONE or (b == 1 and d[D_S1] == 1)):
            return F_SHIFT
    elif m == IMPL_IMUL:
        if d[D_NOPS] >= 2 and a < 8 and (b < 8 or b == OPD_MEM):
            return F_IMUL
        if d[D_NOPS] == 1 and (a < 8 or a == OPD_MEM) and b == OPD_NONE:
            return F_IMUL1
    elif m == IMPL_SETcc:
        if (a < 8 or a == OPD_MEM) and b == OPD_NONE:
            return F_SETCC
    elif m == IMPL_CMOVcc:
        if a < 8 and (b < 8 or b == OPD_MEM):
            return F_CMOV
    elif m == IMPL_MUL:
        if (a < 8 or a == OPD_MEM) and b == OPD_NONE:
            return F_MUL
    elif osize != 4:
        return 0
    elif m == IMPL_Jcc or m == IMPL_JMP or m == IMPL_CALL:
        if d[D_K0] == K_REL and opcode != 0xFF:
            if m == IMPL_Jcc:
                return F_JCC
            return F_JMP if m == IMPL_JMP else F_CALL
        if opcode == 0xFF and m != IMPL_Jcc and (a < 8 or a == OPD_MEM):
            return F_JMPI if m == IMPL_JMP else F_CALLI
    elif m == IMPL_RET:
        if opcode == 0xC3:
            return F_RET
    elif m == IMPL_PUSH:
        if (0x50 <= opcode <= 0x57) or opcode == 0x68 or opcode == 0x6A:
            return F_PUSH
    elif m == IMPL_POP:
        if 0x58 <= opcode <= 0x5F:
            return F_POP
    return 0


@jit
def shift_kind(m):
    if m == IMPL_SHL:
        return SHIFT_SHL
    if m == IMPL_SHR:
        return SHIFT_SHR
    if m == IMPL_SAR:
        return SHIFT_SAR
    if m == IMPL_ROL:
        return SHIFT_ROL
    if m == IMPL_ROR:
        return SHIFT_ROR
    if m == IMPL_RCL:
        return SHIFT_RCL
    return SHIFT_RCR


@jit
def classify(d):
    """Set D_FAST of a freshly decoded record (lookup calls it on every
    decode, so a row never keeps the word of the instruction it held
    before)."""
    d[D_FAST] = 0
    d[D_BLOCK] = 0
    d[D_BLOCK_KEY] = 0
    d[D_HEAT] = 0
    if d[D_LOCK] != 0 or d[D_REP] != REP_NONE or (d[D_HASMEM] and d[D_ASIZE] != 4):
        return
    k0 = d[D_K0]
    if k0 == K_REL:
        a = OPD_NONE
    else:
        a = operand_code(d, 0)
    b = operand_code(d, 1)
    third = d[D_K0 + 2]
    if a < 0 or b < 0 or not (third == K_NONE or (third == K_IMM and d[D_MNEM] == IMPL_IMUL)):
        return
    op = fast_operation(d, a, b)
    if op == 0:
        return
    word = op | (a << 8) | (b << 12) | (d[D_S0] << 16) | (d[D_S1] << 20) | (d[D_S2] << 24)
    if a == OPD_MEM and op != F_CMP and op != F_TEST and op != F_CALLI and op != F_JMPI and op != F_MUL \
            and op != F_IMUL1:
        word |= FAST_MEM_WRITE
    if third == K_IMM:
        word |= FAST_IMM3
    if a == OPD_MEM or b == OPD_MEM:
        word |= FAST_HAS_MEM
    if op == F_SHIFT:
        word |= shift_kind(d[D_MNEM]) << 32
    d[D_FAST] = word


@jit
def flat_segments(cpu):
    """Two bit masks over ES CS SS DS FS GS: the segments that are flat
    (base 0, limit 4 GiB - 1, usable, expand-up) and readable, and those
    that are also writable (data, W=1).  Through them an offset is its
    linear address, and the only check left is the 4 GiB wrap (the
    segment_check rules of memory.py, SDM Vol. 3, 5.3-5.5)."""
    readable = 0
    writable = 0
    for s in range(6):
        b = SEG_SLOTS + s * SEG_STRIDE
        attr = cpu[b + SEG_ATTR]
        if cpu[b + SEG_BASE] != 0 or cpu[b + SEG_LIMIT] != 0xFFFFFFFF:
            continue
        if (attr & ATTR_UNUSABLE) or not (attr & 0x10) or (attr & 0x1C) == 0x14:
            continue
        typ = attr & 0xF
        if typ & 8:
            if typ & 2:                  # readable code
                readable |= 1 << s
        else:
            readable |= 1 << s
            if typ & 2:
                writable |= 1 << s
    return readable, writable


@jit_inline
def fast_physical(g, lin, size, write, paging, user, code_page):
    """Physical address of a flat access that the fast tier may do itself,
    or -1: an access across a page, a TLB miss (or a right the entry does
    not give; a write through a clean entry must set D) that
    memory.quiet_walk cannot fill, memory outside RAM, a write to the BIOS
    ROM or to a page holding decoded code."""
    if (lin & PAGE_MASK) + size > 0x1000:
        return -1
    if paging:
        pa = tlb_lookup(g, lin, ACCESS_WRITE if write else ACCESS_READ, user)
        if pa < 0:
            pa = quiet_walk(g, lin, write, user, code_page)
            if pa < 0:
                return -1
    else:
        pa = lin & g.cpu[A20_MASK]
    if pa < 0 or pa + size > g.mem.shape[0]:
        return -1
    if write:
        if (pa >> 16) == (BIOS_ROM >> 16) and g.dev[ROM_LOCKED]:
            return -1
        page = pa >> PAGE_SHIFT
        if page >= g.pm.shape[0] or g.pm[page] & PM_CODE:
            return -1
    return pa


@jit_inline
def ram_read(mem, pa, size):
    v = np.int64(mem[pa])
    if size >= 2:
        v |= np.int64(mem[pa + 1]) << 8
        if size == 4:
            v |= (np.int64(mem[pa + 2]) << 16) | (np.int64(mem[pa + 3]) << 24)
    return v


@jit_inline
def ram_write(g, pa, size, value):
    """A write fast_physical allowed: the bytes, and the dirty log (the page
    holds no code, so nothing to invalidate: memory.note_write)."""
    mem = g.mem
    mem[pa] = value & 0xFF
    if size >= 2:
        mem[pa + 1] = (value >> 8) & 0xFF
        if size == 4:
            mem[pa + 2] = (value >> 16) & 0xFF
            mem[pa + 3] = (value >> 24) & 0xFF
    page = pa >> PAGE_SHIFT
    g.pm[page] |= PM_DIRTY


# operands.get_reg and set_reg, inlined at numba's IR level here (their
# calls pass the cpu array as seven machine words)
get_reg = jit_inline(getattr(operands.get_reg, "py_func", operands.get_reg))
set_reg = jit_inline(getattr(operands.set_reg, "py_func", operands.set_reg))


@jit_inline
def effective_address32(cpu, d):
    ea = d[D_DISP]
    if d[D_BASE] >= 0:
        ea += cpu[d[D_BASE]]
    if d[D_INDEX] >= 0:
        ea += cpu[d[D_INDEX]] << d[D_SCALE]
    return ea & 0xFFFFFFFF


@jit_inline
def branch_taken(cpu, cc):
    """flags.condition with its lazy cases inlined: E/NE, B/AE, BE/A and
    S/NS straight from the record of the last arithmetic, as condition()
    reads them (no flags are materialised: the same state either way)."""
    op = cpu[LF_OP]
    c = cc >> 1
    if op != LF_NONE and (c == 1 or c == 2 or c == 3 or c == 4):
        size = cpu[LF_SIZE]
        r = cpu[LF_R]
        bits = size * 8
        if c == 4:
            t = ((r >> (bits - 1)) & 1) != 0
        else:
            zf = (r & ((1 << bits) - 1)) == 0
            if c == 2:
                t = zf
            else:
                if op == LF_ADD or op == LF_SUB:
                    cf = ((r >> bits) & 1) != 0
                elif op == LF_LOGIC:
                    cf = False
                else:
                    cf = (cpu[EFLAGS] & FLAG_CF) != 0      # INC, DEC: CF is in EFLAGS
                t = cf if c == 1 else (cf or zf)
        return (not t) if cc & 1 else t
    return condition(cpu, cc)


@jit_inline
def successor_row(ic, eip, code_page, page_pa, code_gen):
    """The icache row of the next instruction, -1 unless it is there, on
    the same code page, decoded in this mode (the tag holds it) from this
    generation of the page."""
    off = eip & PAGE_MASK
    if (eip >> PAGE_SHIFT) != code_page or off > LAST_WHOLE:
        return -1
    pa = page_pa | off
    idx = (pa ^ (pa >> 13)) & (IC_ENTRIES - 1)
    if ic[idx, D_TAG] != ((pa + 1) << IC_TAG_SHIFT) | FLAT32 or ic[idx, D_GEN] != code_gen:
        return -1
    return idx


@jit
def fast_run(g, idx, eip, limit):
    """Execute the classified instruction in icache row ``idx`` (at CS:eip,
    just looked up) and the ones after it; at most ``limit``.  Returns how
    many retired: 0 when the first one needs the generic path (nothing has
    changed then).  The caller has done what the run loop does before an
    instruction (deadline, interrupts, breakpoints) for the first one."""
    cpu = g.cpu
    ic = g.ic
    pm = g.pm
    mem = g.mem
    if idx >= IC_ENTRIES or ic[idx, D_MODE] != FLAT32:
        return 0
    if cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_BASE] != 0 or \
            cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_LIMIT] != 0xFFFFFFFF:
        return 0                       # near jumps can then never leave the CS limit
    readable, writable = flat_segments(cpu)
    stack_ok = (writable >> SS) & 1 and cpu[SEG_SLOTS + SS * SEG_STRIDE + SEG_ATTR] & ATTR_DB
    paging = (cpu[CR0] & CR0_PG) != 0
    wp = (cpu[CR0] & CR0_WP) != 0
    user = cpu[CPL] == 3
    tlb = g.tlb
    # the code page: its physical base, and (paging) the TLB entry that maps
    # it.  The fast tier fills the TLB (memory.quiet_walk) but never that
    # entry's slot, so the page stays mapped as it is for the whole run, as
    # the generic path's fetches would find it.
    pa = (ic[idx, D_TAG] >> IC_TAG_SHIFT) - 1
    page_pa = pa & ~PAGE_MASK
    code_page = eip >> PAGE_SHIFT
    # the page's generation cannot change during the run: it holds decoded
    # code (PM_CODE), and the fast tier leaves every write to such a page to
    # the generic path
    code_gen = pm[pa >> PAGE_SHIFT]
    tlb_i = code_page & (tlb.shape[0] - 1)
    if paging and tlb[tlb_i, TLB_TAG] != code_page + 1:
        return 0
    # compiled blocks (emu/blocks.py): run one where a run of instructions
    # starts (a leader: here, after a jump, after what a block cannot hold),
    # else count the start and ask for a block when it got hot
    threshold = cpu[JIT_THRESHOLD]
    heat_on = threshold > 0 and limit >= HEAT_MIN_LIMIT
    env = (readable * BLOCK_ENV_READABLE) | (writable * BLOCK_ENV_WRITABLE)
    if paging:
        env |= BLOCK_ENV_PAGING
    if user:
        env |= BLOCK_ENV_USER
    if wp:
        env |= BLOCK_ENV_WP
    if stack_ok:
        env |= BLOCK_ENV_STACK
    policy = cpu[UNDEFINED_FLAGS]
    if policy == UNDEF_AMD:
        env |= BLOCK_ENV_AMD
    elif policy != UNDEF_INTEL:
        env |= BLOCK_ENV_ZERO
    # a block is made for the entry conditions: it runs only under the same
    env_key = env << BLOCK_KEY_ENV
    leader = True
    requested = False
    n = 0
    insn = eip
    while True:
        row = ic[idx]
        f = row[D_FAST]
        op = f & 0xFF
        if op == 0:
            break
        if leader and threshold > 0:
            block = row[D_BLOCK]
            key = row[D_BLOCK_KEY]
            if block != 0 and (key & BLOCK_KEY_MATCH) == (eip | env_key) \
                    and n + ((key >> BLOCK_KEY_LENGTH) & 0x7F) <= limit:
                done = call_block(block, g, env, limit - n)
                if done > 0:
                    cpu[JIT_RETIRED] += done
                    n += done
                    insn = cpu[INSN_EIP]
                    eip = cpu[NEXT_EIP]
                    if n >= limit:
                        break
                    idx = successor_row(ic, eip, code_page, page_pa, code_gen)
                    if idx < 0:
                        break
                    continue
            elif heat_on and row[D_HEAT] >= 0:
                heat = row[D_HEAT] + 1
                row[D_HEAT] = heat
                if heat >= threshold and cpu[JIT_REQUEST] == 0:
                    cpu[JIT_REQUEST] = (eip << 16) | (idx + 1)
                    cpu[JIT_REQUEST_ENV] = env
                    requested = True
        a = (f >> 8) & 0xF
        b = (f >> 12) & 0xF
        s0 = (f >> 16) & 0xF
        s1 = (f >> 20) & 0xF
        next_eip = (eip + row[D_LEN]) & 0xFFFFFFFF
        target = next_eip
        # the memory operand: its offset, and the physical address when the
        # fast tier can do the access (the segment is flat and the page mapped)
        ea = 0
        mpa = -1
        if f & FAST_HAS_MEM:
            ea = effective_address32(cpu, row)
            size = s0 if a == OPD_MEM else s1
            seg = row[D_SEG]
            if ea + size - 1 > 0xFFFFFFFF:
                break
            if op == F_LEA:
                mpa = 0
            elif f & FAST_MEM_WRITE:
                if not (writable >> seg) & 1:
                    break
                mpa = fast_physical(g, ea, size, True, paging, user, code_page)
            else:
                if not (readable >> seg) & 1:
                    break
                mpa = fast_physical(g, ea, size, False, paging, user, code_page)
            if mpa < 0:
                break
        if op == F_MOV or op == F_MOVZX or op == F_MOVSX:
            if b < 8:
                v = get_reg(cpu, b, s1)
            elif b == OPD_IMM:
                v = row[D_IMM] & ((1 << (s1 * 8)) - 1)
            else:
                v = ram_read(mem, mpa, s1)
            if op == F_MOVSX:
                v = signed(v, s1) & 0xFFFFFFFF
            if a < 8:
                set_reg(cpu, a, s0, v)
            else:
                ram_write(g, mpa, s0, v)
        elif op == F_ADD or op == F_SUB or op == F_CMP or op == F_AND or op == F_OR or op == F_XOR \
                or op == F_TEST:
            if a < 8:
                x = get_reg(cpu, a, s0)
            else:
                x = ram_read(mem, mpa, s0)
            if b < 8:
                y = get_reg(cpu, b, s1)
            elif b == OPD_IMM:
                y = row[D_IMM] & ((1 << (s1 * 8)) - 1)
            else:
                y = ram_read(mem, mpa, s1)
            if op == F_ADD:
                r = x + y
                kind = LF_ADD
            elif op == F_SUB or op == F_CMP:
                r = x - y
                kind = LF_SUB
            elif op == F_AND or op == F_TEST:
                r = x & y
                kind = LF_LOGIC
            elif op == F_OR:
                r = x | y
                kind = LF_LOGIC
            else:
                r = x ^ y
                kind = LF_LOGIC
            cpu[LF_OP] = kind
            cpu[LF_A] = x
            cpu[LF_B] = y
            cpu[LF_R] = r
            cpu[LF_SIZE] = s0
            if op != F_CMP and op != F_TEST:
                r &= (1 << (s0 * 8)) - 1
                if a < 8:
                    set_reg(cpu, a, s0, r)
                else:
                    ram_write(g, mpa, s0, r)
        elif op == F_INC or op == F_DEC:
            if a < 8:
                x = get_reg(cpu, a, s0)
            else:
                x = ram_read(mem, mpa, s0)
            keep_carry(cpu)              # INC and DEC keep CF: the record below has none
            if op == F_INC:
                r = x + 1
                cpu[LF_OP] = LF_INC
            else:
                r = x - 1
                cpu[LF_OP] = LF_DEC
            cpu[LF_A] = x
            cpu[LF_B] = 1
            cpu[LF_R] = r
            cpu[LF_SIZE] = s0
            r &= (1 << (s0 * 8)) - 1
            if a < 8:
                set_reg(cpu, a, s0, r)
            else:
                ram_write(g, mpa, s0, r)
        elif op == F_SHIFT:
            if a < 8:
                x = get_reg(cpu, a, s0)
            else:
                x = ram_read(mem, mpa, s0)
            if b == OPD_IMM:
                y = row[D_IMM] & ((1 << (s1 * 8)) - 1)
            elif b == OPD_ONE:
                y = 1
            else:
                y = get_reg(cpu, b, s1)
            kind = (f >> 32) & 0xF
            if kind == SHIFT_SHL:
                r = shift.shl(cpu, x, y, s0)
            elif kind == SHIFT_SHR:
                r = shift.shr(cpu, x, y, s0)
            elif kind == SHIFT_SAR:
                r = shift.sar(cpu, x, y, s0)
            elif kind == SHIFT_ROL:
                r = shift.rol(cpu, x, y, s0)
            elif kind == SHIFT_ROR:
                r = shift.ror(cpu, x, y, s0)
            elif kind == SHIFT_RCL:
                r = shift.rcl(cpu, x, y, s0)
            else:
                r = shift.rcr(cpu, x, y, s0)
            if a < 8:
                set_reg(cpu, a, s0, r)
            else:
                ram_write(g, mpa, s0, r)
        elif op == F_IMUL:
            if f & FAST_IMM3:
                x = get_reg(cpu, b, s1) if b < 8 else ram_read(mem, mpa, s1)
                s2 = (f >> 24) & 0xF
                y = row[D_IMM] & ((1 << (s2 * 8)) - 1)
            else:
                x = get_reg(cpu, a, s0)
                y = get_reg(cpu, b, s1) if b < 8 else ram_read(mem, mpa, s1)
            p = signed(x, s0) * signed(y, s0)
            lo = p & ((1 << (s0 * 8)) - 1)
            set_reg(cpu, a, s0, lo)
            mul_flags(cpu, lo, s0, p != signed(lo, s0))
        elif op == F_SETCC:
            v = 1 if branch_taken(cpu, row[D_OPCODE] & 15) else 0
            if a < 8:
                set_reg(cpu, a, 1, v)
            else:
                ram_write(g, mpa, 1, v)
        elif op == F_CMOV:
            # the source is read whatever the condition (move.cmovcc)
            v = get_reg(cpu, b, s1) if b < 8 else ram_read(mem, mpa, s1)
            if branch_taken(cpu, row[D_OPCODE] & 15):
                set_reg(cpu, a, s0, v)
        elif op == F_MUL or op == F_IMUL1:
            multiply_double(cpu, get_reg(cpu, a, s0) if a < 8 else ram_read(mem, mpa, s0), s0,
                            op == F_IMUL1)
        elif op == F_JMPI:
            target = get_reg(cpu, a, 4) if a < 8 else ram_read(mem, mpa, 4)
        elif op == F_LEA:
            set_reg(cpu, a, 4, ea)
        elif op == F_JCC:
            if branch_taken(cpu, row[D_OPCODE] & 15):
                target = (next_eip + row[D_IMM]) & 0xFFFFFFFF
        elif op == F_JMP:
            target = (next_eip + row[D_IMM]) & 0xFFFFFFFF
        elif op == F_NOP:
            pass
        else:
            # the stack: flat SS with a 32-bit stack pointer (SS.B)
            if not stack_ok:
                break
            if op == F_PUSH or op == F_CALL or op == F_CALLI:
                sp = (cpu[ESP] - 4) & 0xFFFFFFFF
                spa = fast_physical(g, sp, 4, True, paging, user, code_page)
                if spa < 0:
                    break
                if op == F_CALL:
                    v = next_eip
                    target = (next_eip + row[D_IMM]) & 0xFFFFFFFF
                elif op == F_CALLI:
                    v = next_eip
                    target = get_reg(cpu, a, 4) if a < 8 else ram_read(mem, mpa, 4)
                elif a < 8:
                    v = get_reg(cpu, a, 4)
                else:
                    v = row[D_IMM] & ((1 << (s0 * 8)) - 1)
                ram_write(g, spa, 4, v)
                cpu[ESP] = sp
            else:
                sp = cpu[ESP] & 0xFFFFFFFF
                if sp + 3 > 0xFFFFFFFF:
                    break
                spa = fast_physical(g, sp, 4, False, paging, user, code_page)
                if spa < 0:
                    break
                v = ram_read(mem, spa, 4)
                cpu[ESP] = (sp + 4) & 0xFFFFFFFF
                if op == F_RET:
                    target = v
                else:
                    set_reg(cpu, a, 4, v)
        # retired, as execute_at retires an instruction
        if mpa >= 0:
            cpu[EA] = ea
        n += 1
        insn = eip
        eip = target
        # a leader: after a transfer, or after what a block cannot hold
        # (blocks.py _Insn.takes: rotates and shifts by CL)
        leader = (op >= F_JCC and op <= F_RET) or op == F_CALLI or op == F_JMPI \
            or (op == F_SHIFT and (((f >> 32) & 0xF) > SHIFT_SAR or b < 8))
        if n >= limit or requested:
            break
        idx = successor_row(ic, eip, code_page, page_pa, code_gen)
        if idx < 0:
            break
    if n > 0:
        cpu[ICACHE_HITS] += n - 1       # lookup counted the first one
        cpu[INHIBIT_IRQ] = 0
        cpu[INSN_EIP] = insn
        cpu[NEXT_EIP] = eip
        cpu[EIP] = eip
        cpu[ICOUNT] += n
        cpu[FAST_RETIRED] += n
    return n
