"""Compiled blocks: hot runs of fast-tier instructions as machine code.

The fast tier (emu/core/fastpath.py) interprets one decoded record after
another; most of its time goes to the loop around the work (fetching the
record, unpacking its operand word, dispatching on the operation, checking
the next one).  When a run of instructions that starts at a jump target
(a *leader*) has started ``JIT_THRESHOLD`` times, the fast tier asks for it
(JIT_REQUEST) and the run loop exits to Python (EXIT_COMPILE).  Here the
run is read back from the decode cache, written as LLVM IR with every
operand, size and constant folded in, compiled by llvmlite (the LLVM that
numba uses, so no new dependency), and its address put in the leader's
icache row (D_BLOCK).  From then on the fast tier calls it.

A block does exactly what the fast tier does, instruction by instruction:
the same registers, lazy flags record, EA, memory bytes and dirty bits.
Each instruction first checks what the fast tier checks (flat segments,
the TLB entry and its rights, RAM bounds, the ROM, pages holding code) and,
when one fails, the block returns the number of instructions it retired
before it, with NEXT_EIP and INSN_EIP set as the fast tier sets them; the
fast tier then goes on from there as if it had run them itself.  So a
block never faults, walks page tables or touches a device: those stay with
the generic path.  A block ends after a jump, call or return, before an
instruction it does not take, or at 64 instructions.

Its validity is the decode cache's: a block lives in the row of its first
instruction, which every decode clears, and every instruction of it is on
the same page of the same generation (a write to a page holding decoded
code bumps the generation).  The run is keyed by the EIP it was compiled
for as well, since a page can be mapped at two addresses.

Compiled code is shared by every guest of the process (keyed by the EIP
and the decoded records) and is never freed, so an address in a row stays
valid; the process stops compiling at MAX_BLOCKS.  None of it is saved:
snapshots hold no icache, so a restored or migrated guest compiles again.

The IR reads guest memory only at indexes it has checked against the
arrays' sizes (the RAM bound, the TLB mask, the page map size), as the
fast tier does (DESIGN.md: guest isolation)."""
import threading
import time

from emu.core import layout as L
from emu.core import fastpath as F
from emu.core.blockcall import (BLOCK_ENV_PAGING, BLOCK_ENV_USER, BLOCK_ENV_WP, BLOCK_ENV_STACK,
                                BLOCK_ENV_READABLE, BLOCK_ENV_WRITABLE)
from emu.core.flags import LF_NONE, LF_ADD, LF_SUB, LF_INC, LF_DEC, LF_LOGIC
from emu.core.guest import OFFSETS
from emu.core.memory import (PAGE_SHIFT, PAGE_MASK, PM_CODE, PM_DIRTY, T_USER, T_WRITE, T_DIRTY,
                             TLB_TAG, TLB_VALUE, BIOS_ROM)
from devices.chips.layout import ROM_LOCKED

MAX_INSNS = 64              # instructions in one block
MAX_BLOCKS = 200_000        # blocks compiled by one process
TRANSFERS = (F.F_JCC, F.F_JMP, F.F_CALL, F.F_RET, F.F_JMPI, F.F_CALLI)
FLAGS_ARITH = L.FLAGS_ARITH

# type-based alias metadata: the cpu array and the guest's memory, page map
# and TLB are separate numpy arrays, so LLVM may keep registers in machine
# registers across stores to guest memory
CPU_TBAA = ", !tbaa !12"
GUEST_TBAA = ", !tbaa !13"
_TBAA = """
!10 = !{!"visor86 arrays"}
!11 = !{!"visor86 cpu", !10, i64 0}
!14 = !{!"visor86 guest", !10, i64 0}
!12 = !{!11, !11, i64 0}
!13 = !{!14, !14, i64 0}
"""

# the decoded fields a block is made from (with its EIP: the key of the compiled code)
_KEY_FIELDS = (L.D_FAST, L.D_LEN, L.D_IMM, L.D_DISP, L.D_BASE, L.D_INDEX, L.D_SCALE, L.D_SEG,
               L.D_OPCODE)


def _i64(v):
    """An integer as an LLVM i64 literal (two's complement)."""
    v &= (1 << 64) - 1
    return str(v - (1 << 64) if v >> 63 else v)


class _Insn:
    """One decoded instruction of a block: its fast-tier word unpacked."""

    def __init__(self, eip, row):
        f = int(row[L.D_FAST])
        self.eip = eip
        self.length = int(row[L.D_LEN])
        self.next_eip = (eip + self.length) & 0xFFFFFFFF
        self.op = f & 0xFF
        self.a = (f >> 8) & 0xF
        self.b = (f >> 12) & 0xF
        self.s0 = (f >> 16) & 0xF
        self.s1 = (f >> 20) & 0xF
        self.flags = f
        self.shift = (f >> 32) & 0xF
        self.imm = int(row[L.D_IMM])
        self.disp = int(row[L.D_DISP])
        self.base = int(row[L.D_BASE])
        self.index = int(row[L.D_INDEX])
        self.scale = int(row[L.D_SCALE])
        self.seg = int(row[L.D_SEG])
        self.opcode = int(row[L.D_OPCODE])
        self.key = tuple(int(row[field]) for field in _KEY_FIELDS)

    def takes(self):
        """Whether a block can hold this instruction."""
        if self.op == F.F_SHIFT:
            return self.shift in (F.SHIFT_SHL, F.SHIFT_SHR, F.SHIFT_SAR) \
                and self.b in (F.OPD_IMM, F.OPD_ONE)
        return self.op != F.F_IMUL and 0 < self.op <= F.F_JMPI


def read_block(ic, pm, idx, eip):
    """The instructions of the block led by icache row ``idx`` at ``eip``:
    each in the cache (tag, mode and generation of the leader's page), on
    the leader's page, up to the first transfer or one a block cannot
    hold.  [] when there is none."""
    row = ic[idx]
    tag = int(row[L.D_TAG])
    if tag & ((1 << L.IC_TAG_SHIFT) - 1) != F.FLAT32 or tag >> L.IC_TAG_SHIFT == 0:
        return []
    pa = (tag >> L.IC_TAG_SHIFT) - 1
    if (pa & PAGE_MASK) != (eip & PAGE_MASK) or (pa >> PAGE_SHIFT) >= pm.shape[0]:
        return []
    gen = int(row[L.D_GEN])
    if gen != int(pm[pa >> PAGE_SHIFT]):
        return []
    insns = []
    at = eip
    while len(insns) < MAX_INSNS:
        off = at & PAGE_MASK
        if (at >> PAGE_SHIFT) != (eip >> PAGE_SHIFT) or off > F.LAST_WHOLE:
            break
        here = (pa & ~PAGE_MASK) | off
        i = (here ^ (here >> 13)) & (L.IC_ENTRIES - 1)
        r = ic[i]
        if int(r[L.D_TAG]) != ((here + 1) << L.IC_TAG_SHIFT) | F.FLAT32 or int(r[L.D_GEN]) != gen:
            break
        insn = _Insn(at, r)
        if not insn.takes():
            break
        insns.append(insn)
        if insn.op in TRANSFERS:
            break
        at = insn.next_eip
    return insns


class _Writer:
    """LLVM IR for one block: SSA names, basic blocks, and what is known of
    the CPU slots along the block's straight path (values it loaded or
    stored, so each register is read from memory once)."""

    def __init__(self, name):
        self.name = name
        self.lines = []
        self.count = 0
        self.known = {}         # cpu slot -> IR value on the main path
        self.const = {}         # cpu slot -> a Python int known at compile time
        self.label_now = "entry"
        self.exits = {}         # instruction index -> label of its bail-out

    def tmp(self):
        self.count += 1
        return f"%v{self.count}"

    def new_label(self, hint):
        self.count += 1
        return f"{hint}{self.count}"

    def emit(self, text):
        self.lines.append("  " + text)

    def op(self, text):
        v = self.tmp()
        self.lines.append(f"  {v} = {text}")
        return v

    def label(self, name):
        self.lines.append(f"{name}:")
        self.label_now = name

    def bin(self, kind, a, b):
        return self.op(f"{kind} i64 {a}, {b}")

    def cmp(self, pred, a, b):
        return self.op(f"icmp {pred} i64 {a}, {b}")

    def select(self, cond, a, b):
        return self.op(f"select i1 {cond}, i64 {a}, i64 {b}")

    # --- the cpu array -----------------------------------------------------------------
    def cpu_slot(self, slot):
        return self.op(f"getelementptr i64, i64* %cpu, i64 {slot}")

    def load_cpu(self, slot):
        if slot in self.known:
            return self.known[slot]
        v = self.op(f"load i64, i64* {self.cpu_slot(slot)}{CPU_TBAA}")
        self.known[slot] = v
        return v

    def store_cpu(self, slot, value):
        self.emit(f"store i64 {value}, i64* {self.cpu_slot(slot)}{CPU_TBAA}")
        self.known[slot] = value
        self.const.pop(slot, None)

    def set_const(self, slot, value):
        self.store_cpu(slot, _i64(value))
        self.const[slot] = value

    def forget(self, *slots):
        for s in slots:
            self.known.pop(s, None)
            self.const.pop(s, None)

    # --- control -----------------------------------------------------------------------
    def bail_if(self, cond, k):
        """Leave the block before instruction k when ``cond`` holds."""
        go = self.new_label("ok")
        self.emit(f"br i1 {cond}, label %{self.exit_label(k)}, label %{go}")
        self.label(go)

    def exit_label(self, k):
        if k not in self.exits:
            self.exits[k] = f"bail{k}"
        return self.exits[k]


def _mask(size):
    return (1 << (size * 8)) - 1


class _Compiler:
    """Writes the IR of one block (see the module's docstring)."""

    def __init__(self, insns, name):
        self.insns = insns
        self.w = _Writer(name)

    # --- registers (operands.get_reg / set_reg) ---------------------------------------
    def get_reg(self, r, size):
        w = self.w
        if size == 4:
            return w.bin("and", w.load_cpu(r), 0xFFFFFFFF)
        if size == 2:
            return w.bin("and", w.load_cpu(r), 0xFFFF)
        if r < 4:
            return w.bin("and", w.load_cpu(r), 0xFF)
        return w.bin("and", w.bin("ashr", w.load_cpu(r - 4), 8), 0xFF)

    def set_reg(self, r, size, value):
        w = self.w
        if size == 4:
            w.store_cpu(r, w.bin("and", value, 0xFFFFFFFF))
        elif size == 2:
            w.store_cpu(r, w.bin("or", w.bin("and", w.load_cpu(r), 0xFFFF0000), w.bin("and", value, 0xFFFF)))
        elif r < 4:
            w.store_cpu(r, w.bin("or", w.bin("and", w.load_cpu(r), 0xFFFFFF00), w.bin("and", value, 0xFF)))
        else:
            hi = w.bin("shl", w.bin("and", value, 0xFF), 8)
            w.store_cpu(r - 4, w.bin("or", w.bin("and", w.load_cpu(r - 4), 0xFFFF00FF), hi))

    # --- memory (fastpath.fast_physical, ram_read, ram_write) -------------------------
    def physical(self, lin, size, write, k):
        """The physical address of a flat access at ``lin``, on the main
        path; the block leaves before instruction k when the fast tier
        would leave it to the generic path."""
        w = self.w
        w.bail_if(w.cmp("ugt", w.bin("add", w.bin("and", lin, PAGE_MASK), size), 0x1000), k)
        paged, flat, join = w.new_label("paged"), w.new_label("flat"), w.new_label("join")
        w.emit(f"br i1 %paging, label %{paged}, label %{flat}")
        w.label(paged)
        vpn = w.bin("lshr", lin, PAGE_SHIFT)
        slot = w.bin("mul", w.bin("and", vpn, "%tlb_mask"), "%tlb_cols")
        tag = self.load_at("%tlb", w.bin("add", slot, TLB_TAG))
        w.bail_if(w.cmp("ne", tag, w.bin("add", vpn, 1)), k)
        e = self.load_at("%tlb", w.bin("add", slot, TLB_VALUE))
        bad = w.op(f"and i1 %user, {w.cmp('eq', w.bin('and', e, T_USER), 0)}")
        if write:
            dirty = w.cmp("ne", w.bin("and", e, T_DIRTY), 0)
            writable = w.cmp("ne", w.bin("and", e, T_WRITE), 0)
            allowed = w.op(f"and i1 {dirty}, {w.op(f'or i1 {writable}, %supervisor_nowp')}")
            bad = w.op(f"or i1 {bad}, {w.op(f'xor i1 {allowed}, true')}")
        w.bail_if(bad, k)
        paged_pa = w.bin("or", w.bin("and", e, _i64(~PAGE_MASK)), w.bin("and", lin, PAGE_MASK))
        paged_end = w.label_now
        w.emit(f"br label %{join}")
        w.label(flat)
        flat_pa = w.bin("and", lin, "%a20")
        w.emit(f"br label %{join}")
        w.label(join)
        pa = w.op(f"phi i64 [ {paged_pa}, %{paged_end} ], [ {flat_pa}, %{flat} ]")
        outside = w.op(f"or i1 {w.cmp('slt', pa, 0)}, {w.cmp('sgt', w.bin('add', pa, size), '%mem_size')}")
        w.bail_if(outside, k)
        if write:
            rom = w.op(f"and i1 %rom_locked, {w.cmp('eq', w.bin('ashr', pa, 16), BIOS_ROM >> 16)}")
            w.bail_if(rom, k)
            page = w.bin("ashr", pa, PAGE_SHIFT)
            w.bail_if(w.cmp("sge", page, "%pm_size"), k)
            entry = self.load_at("%pm", page)
            w.bail_if(w.cmp("ne", w.bin("and", entry, PM_CODE), 0), k)
        return pa

    def load_at(self, array, index):
        w = self.w
        return w.op(f"load i64, i64* {w.op(f'getelementptr i64, i64* {array}, i64 {index}')}{GUEST_TBAA}")

    def ram_read(self, pa, size):
        w = self.w
        t = f"i{size * 8}"
        at = w.op(f"getelementptr i8, i8* %mem, i64 {pa}")
        if size > 1:
            at = w.op(f"bitcast i8* {at} to {t}*")
        v = w.op(f"load {t}, {t}* {at}, align 1{GUEST_TBAA}")
        return w.op(f"zext {t} {v} to i64")

    def ram_write(self, pa, size, value):
        w = self.w
        t = f"i{size * 8}"
        at = w.op(f"getelementptr i8, i8* %mem, i64 {pa}")
        if size > 1:
            at = w.op(f"bitcast i8* {at} to {t}*")
        w.emit(f"store {t} {w.op(f'trunc i64 {value} to {t}')}, {t}* {at}, align 1{GUEST_TBAA}")
        slot = w.op(f"getelementptr i64, i64* %pm, i64 {w.bin('ashr', pa, PAGE_SHIFT)}")
        dirty = w.bin("or", w.op(f"load i64, i64* {slot}{GUEST_TBAA}"), PM_DIRTY)
        w.emit(f"store i64 {dirty}, i64* {slot}{GUEST_TBAA}")

    # --- flags (flags.py) --------------------------------------------------------------
    def record(self, kind, x, y, r, size):
        w = self.w
        w.set_const(L.LF_OP, kind)
        w.store_cpu(L.LF_A, x)
        w.store_cpu(L.LF_B, y)
        w.store_cpu(L.LF_R, r)
        w.set_const(L.LF_SIZE, size)

    def get_cf(self):
        """flags.get_cf: CF of the lazy record, or of EFLAGS."""
        w = self.w
        op = w.const.get(L.LF_OP)
        size = w.const.get(L.LF_SIZE)
        if op in (LF_ADD, LF_SUB) and size is not None:
            return w.bin("and", w.bin("ashr", w.load_cpu(L.LF_R), size * 8), 1)
        if op == LF_LOGIC:
            return "0"
        eflags_cf = w.bin("and", w.load_cpu(L.EFLAGS), L.FLAG_CF)
        if op is not None:
            return eflags_cf
        op = w.load_cpu(L.LF_OP)
        shift = w.bin("shl", w.load_cpu(L.LF_SIZE), 3)
        lazy = w.bin("and", w.bin("ashr", w.load_cpu(L.LF_R), shift), 1)
        addsub = w.op(f"or i1 {w.cmp('eq', op, LF_ADD)}, {w.cmp('eq', op, LF_SUB)}")
        other = w.select(w.cmp("eq", op, LF_LOGIC), 0, eflags_cf)
        return w.select(addsub, lazy, other)

    def keep_carry(self):
        w = self.w
        cf = self.get_cf()
        w.store_cpu(L.EFLAGS, w.bin("or", w.bin("and", w.load_cpu(L.EFLAGS), _i64(~L.FLAG_CF)), cf))

    def materialise(self):
        """flags.get_eflags: EFLAGS with the lazy record folded in (written
        back, the record dropped), as an i64."""
        w = self.w
        if w.const.get(L.LF_OP) != LF_NONE:
            w.emit("call void @materialise(i64* %cpu)")
            w.forget(L.EFLAGS, L.LF_OP)
            w.const[L.LF_OP] = LF_NONE
        return w.bin("or", w.load_cpu(L.EFLAGS), L.FLAG_RESERVED1)

    def condition(self, cc):
        """fastpath.branch_taken (flags.condition): an i1."""
        w = self.w
        c = cc >> 1
        if c in (1, 2, 3, 4):
            op = w.const.get(L.LF_OP)
            size = w.const.get(L.LF_SIZE)
            eflags = w.load_cpu(L.EFLAGS)
            from_eflags = {1: L.FLAG_CF, 2: L.FLAG_ZF, 3: L.FLAG_CF | L.FLAG_ZF, 4: L.FLAG_SF}[c]
            plain = w.cmp("ne", w.bin("and", eflags, from_eflags), 0)
            if op == LF_NONE:
                t = plain
            else:
                r = w.load_cpu(L.LF_R)
                bits = str(size * 8) if size is not None else w.bin("shl", w.load_cpu(L.LF_SIZE), 3)
                if c == 4:
                    t = w.cmp("ne", w.bin("and", w.bin("ashr", r, w.bin("sub", bits, 1)), 1), 0)
                else:
                    mask = w.bin("sub", w.bin("shl", 1, bits), 1)
                    zf = w.cmp("eq", w.bin("and", r, mask), 0)
                    if c == 2:
                        t = zf
                    else:
                        cf = w.cmp("ne", self.get_cf(), 0)
                        t = cf if c == 1 else w.op(f"or i1 {cf}, {zf}")
                if op is None:
                    t = w.op(f"select i1 {w.cmp('ne', w.load_cpu(L.LF_OP), LF_NONE)}, i1 {t}, i1 {plain}")
        else:
            f = self.materialise()

            def bit(flag):
                return w.cmp("ne", w.bin("and", f, flag), 0)
            if c == 0:
                t = bit(L.FLAG_OF)
            elif c == 5:
                t = bit(L.FLAG_PF)
            else:
                t = w.op(f"xor i1 {bit(L.FLAG_SF)}, {bit(L.FLAG_OF)}")
                if c == 7:
                    t = w.op(f"or i1 {bit(L.FLAG_ZF)}, {t}")
        if cc & 1:
            t = w.op(f"xor i1 {t}, true")
        return t

    def pick_undefined(self, intel, amd):
        w = self.w
        policy = w.load_cpu(L.UNDEFINED_FLAGS)
        return w.select(w.cmp("eq", policy, L.UNDEF_INTEL), intel,
                        w.select(w.cmp("eq", policy, L.UNDEF_AMD), amd, 0))

    def result_flags(self, r, size, cf, of, af):
        """flags.set_result_flags over every arithmetic flag: the record is
        dropped unread (flags.set_flag_bits)."""
        w = self.w
        bits = size * 8
        res = w.bin("and", r, _mask(size))
        zf = w.select(w.cmp("eq", res, 0), L.FLAG_ZF, 0)
        sf = w.bin("shl", w.bin("and", w.bin("ashr", res, bits - 1), 1), 7)
        pf = w.bin("shl", w.op(f"call i64 @parity(i64 {res})"), 2)
        f = w.bin("or", w.bin("or", zf, sf), pf)
        f = w.bin("or", f, cf)                              # FLAG_CF is bit 0
        f = w.bin("or", f, w.bin("shl", of, 11))
        f = w.bin("or", f, w.bin("shl", af, 4))
        w.set_const(L.LF_OP, LF_NONE)
        old = w.bin("or", w.load_cpu(L.EFLAGS), L.FLAG_RESERVED1)
        w.store_cpu(L.EFLAGS, w.bin("or", w.bin("and", old, _i64(~FLAGS_ARITH)), f))

    def shift(self, kind, x, count, size):
        """shift.shl / shr / sar by a constant count (1-31)."""
        w = self.w
        bits = size * 8

        def msb(v):
            return w.bin("and", w.bin("ashr", v, bits - 1), 1)

        def nxt(v):
            return w.bin("and", w.bin("ashr", v, bits - 2), 1)
        if kind == F.SHIFT_SHL:
            wide = w.bin("shl", x, count)
            r = w.bin("and", wide, _mask(size))
            cf = w.bin("and", w.bin("ashr", wide, bits), 1)
            if count >= bits:
                cf = self.pick_undefined(cf, cf)
            of = w.bin("xor", msb(r), cf)
            if count != 1:
                of = self.pick_undefined(w.bin("xor", msb(x), nxt(x)), of)
        elif kind == F.SHIFT_SHR:
            r = w.bin("ashr", x, count)
            cf = w.bin("and", w.bin("ashr", x, count - 1), 1)
            if count >= bits:
                cf = self.pick_undefined(cf, cf)
            of = msb(x)
            if count != 1:
                of = self.pick_undefined(of, w.bin("xor", msb(r), nxt(r)))
        else:
            s = w.select(w.cmp("ne", msb(x), 0), w.bin("sub", x, 1 << bits), x)
            r = w.bin("and", w.bin("ashr", s, count), _mask(size))
            cf = w.bin("and", w.bin("ashr", s, count - 1), 1)
            of = "0"
        self.result_flags(r, size, cf, of, self.pick_undefined(0, 1))
        return r

    # --- instructions ------------------------------------------------------------------
    def effective_address(self, insn):
        w = self.w
        ea = _i64(insn.disp)
        if insn.base >= 0:
            ea = w.bin("add", ea, w.load_cpu(insn.base))
        if insn.index >= 0:
            ea = w.bin("add", ea, w.bin("shl", w.load_cpu(insn.index), insn.scale))
        return w.bin("and", ea, 0xFFFFFFFF)

    def segment_ok(self, seg, writable, k):
        w = self.w
        bit = (BLOCK_ENV_WRITABLE if writable else BLOCK_ENV_READABLE) << seg
        w.bail_if(w.cmp("eq", w.bin("and", "%env", bit), 0), k)

    def instruction(self, k, insn):
        """The IR of instruction k; returns its target EIP (an IR value)."""
        w = self.w
        op, a, b, s0, s1 = insn.op, insn.a, insn.b, insn.s0, insn.s1
        target = str(insn.next_eip)
        ea = mpa = None
        if insn.flags & F.FAST_HAS_MEM:
            ea = self.effective_address(insn)
            size = s0 if a == F.OPD_MEM else s1
            w.bail_if(w.cmp("sgt", w.bin("add", ea, size - 1), 0xFFFFFFFF), k)
            if op == F.F_LEA:
                mpa = "0"
            elif insn.flags & F.FAST_MEM_WRITE:
                self.segment_ok(insn.seg, True, k)
                mpa = self.physical(ea, size, True, k)
            else:
                self.segment_ok(insn.seg, False, k)
                mpa = self.physical(ea, size, False, k)

        def source(code, size):
            if code < 8:
                return self.get_reg(code, size)
            if code == F.OPD_IMM:
                return _i64(insn.imm & _mask(size))
            if code == F.OPD_ONE:
                return "1"
            return self.ram_read(mpa, size)

        def put(code, size, value):
            if code < 8:
                self.set_reg(code, size, value)
            else:
                self.ram_write(mpa, size, value)

        if op in (F.F_MOV, F.F_MOVZX, F.F_MOVSX):
            v = source(b, s1)
            if op == F.F_MOVSX:
                t = f"i{s1 * 8}"
                v = w.bin("and", w.op(f"sext {t} {w.op(f'trunc i64 {v} to {t}')} to i64"), 0xFFFFFFFF)
            put(a, s0, v)
        elif op in (F.F_ADD, F.F_SUB, F.F_CMP, F.F_AND, F.F_OR, F.F_XOR, F.F_TEST):
            x = source(a, s0)
            y = source(b, s1)
            kind, instr = {F.F_ADD: (LF_ADD, "add"), F.F_SUB: (LF_SUB, "sub"), F.F_CMP: (LF_SUB, "sub"),
                           F.F_AND: (LF_LOGIC, "and"), F.F_TEST: (LF_LOGIC, "and"),
                           F.F_OR: (LF_LOGIC, "or"), F.F_XOR: (LF_LOGIC, "xor")}[op]
            r = w.bin(instr, x, y)
            self.record(kind, x, y, r, s0)
            if op not in (F.F_CMP, F.F_TEST):
                put(a, s0, w.bin("and", r, _mask(s0)))
        elif op in (F.F_INC, F.F_DEC):
            x = source(a, s0)
            self.keep_carry()
            r = w.bin("add" if op == F.F_INC else "sub", x, 1)
            self.record(LF_INC if op == F.F_INC else LF_DEC, x, "1", r, s0)
            put(a, s0, w.bin("and", r, _mask(s0)))
        elif op == F.F_SHIFT:
            x = source(a, s0)
            count = (1 if b == F.OPD_ONE else insn.imm & _mask(s1)) & 0x1F
            r = x if count == 0 else self.shift(insn.shift, x, count, s0)
            put(a, s0, r)
        elif op == F.F_LEA:
            self.set_reg(a, 4, ea)
        elif op == F.F_JCC:
            taken = self.condition(insn.opcode & 15)
            target = w.select(taken, _i64((insn.next_eip + insn.imm) & 0xFFFFFFFF), insn.next_eip)
        elif op == F.F_JMP:
            target = str((insn.next_eip + insn.imm) & 0xFFFFFFFF)
        elif op == F.F_JMPI:
            target = source(a, 4)
        elif op == F.F_NOP:
            pass
        else:
            w.bail_if(w.op("xor i1 %stack_ok, true"), k)
            if op in (F.F_PUSH, F.F_CALL, F.F_CALLI):
                sp = w.bin("and", w.bin("sub", w.load_cpu(L.ESP), 4), 0xFFFFFFFF)
                spa = self.physical(sp, 4, True, k)
                if op == F.F_CALL:
                    v = str(insn.next_eip)
                    target = str((insn.next_eip + insn.imm) & 0xFFFFFFFF)
                elif op == F.F_CALLI:
                    v = str(insn.next_eip)
                    target = source(a, 4)
                elif a < 8:
                    v = self.get_reg(a, 4)
                else:
                    v = _i64(insn.imm & _mask(s0))
                self.ram_write(spa, 4, v)
                w.store_cpu(L.ESP, sp)
            else:
                sp = w.bin("and", w.load_cpu(L.ESP), 0xFFFFFFFF)
                w.bail_if(w.cmp("sgt", w.bin("add", sp, 3), 0xFFFFFFFF), k)
                spa = self.physical(sp, 4, False, k)
                v = self.ram_read(spa, 4)
                w.store_cpu(L.ESP, w.bin("and", w.bin("add", sp, 4), 0xFFFFFFFF))
                if op == F.F_RET:
                    target = v
                else:
                    self.set_reg(a, 4, v)
        if mpa is not None:
            w.store_cpu(L.EA, ea)
        return target

    def loops(self):
        """Whether the block may jump back to its own start (a loop the
        block then runs again itself, while its length fits the budget)."""
        last, start = self.insns[-1], self.insns[0].eip
        back = (last.next_eip + last.imm) & 0xFFFFFFFF
        return last.op in (F.F_JCC, F.F_JMP) and back == start

    def source_text(self):
        w = self.w
        count = len(self.insns)
        w.emit("br label %top")
        w.label("top")
        w.emit("%done = phi i64 [ 0, %entry ], [ %done.next, %again ]")
        target = None
        for k, insn in enumerate(self.insns):
            target = self.instruction(k, insn)
        last = self.insns[-1]
        w.store_cpu(L.NEXT_EIP, target)
        w.store_cpu(L.INSN_EIP, str(last.eip))
        w.emit(f"%done.next = add i64 %done, {count}")
        if self.loops():
            back = w.cmp("eq", target, self.insns[0].eip)
            room = w.cmp("sle", w.bin("add", "%done.next", count), "%left")
            w.emit(f"br i1 {w.op(f'and i1 {back}, {room}')}, label %again, label %out")
        else:
            w.emit("br label %out")
        w.label("again")
        w.emit("br label %top")
        w.label("out")
        w.emit("ret i64 %done.next")
        for k, name in sorted(w.exits.items()):
            w.label(name)
            if k > 0:
                w.emit(f"store i64 {self.insns[k].eip}, i64* {w.cpu_slot(L.NEXT_EIP)}{CPU_TBAA}")
                w.emit(f"store i64 {self.insns[k - 1].eip}, i64* {w.cpu_slot(L.INSN_EIP)}{CPU_TBAA}")
            w.emit(f"ret i64 {w.bin('add', '%done', k)}")
        return _function_text(w.name, w.lines)


def _descriptor(field, word):
    return 8 * (OFFSETS[field] + word)


def _function_text(name, body):
    """The block's function: its prologue loads what the IR needs from the
    Guest's array descriptors (emu/core/guest.py) and from the entry word."""
    head = [f"define i64 @{name}(i8* %g, i64 %env, i64 %left) {{", "entry:"]

    def field(var, arr, word, typ):
        head.append(f"  %{var}.at = getelementptr i8, i8* %g, i64 {_descriptor(arr, word)}")
        head.append(f"  %{var}.p = bitcast i8* %{var}.at to {typ}*")
        head.append(f"  %{var} = load {typ}, {typ}* %{var}.p")
    # descriptor words: 2 nitems, 4 data, 5 shape[0], 6 shape[1]
    field("cpu", "cpu", 4, "i64*")
    field("mem", "mem", 4, "i8*")
    field("mem_size", "mem", 2, "i64")
    field("pm", "pm", 4, "i64*")
    field("pm_size", "pm", 2, "i64")
    field("tlb", "tlb", 4, "i64*")
    field("tlb_rows", "tlb", 5, "i64")
    field("tlb_cols", "tlb", 6, "i64")
    field("dev", "dev", 4, "i64*")
    head += [
        "  %tlb_mask = sub i64 %tlb_rows, 1",
        f"  %a20.p = getelementptr i64, i64* %cpu, i64 {L.A20_MASK}",
        "  %a20 = load i64, i64* %a20.p",
        f"  %rom.p = getelementptr i64, i64* %dev, i64 {ROM_LOCKED}",
        "  %rom = load i64, i64* %rom.p",
        "  %rom_locked = icmp ne i64 %rom, 0",
        f"  %paging.b = and i64 %env, {BLOCK_ENV_PAGING}",
        "  %paging = icmp ne i64 %paging.b, 0",
        f"  %user.b = and i64 %env, {BLOCK_ENV_USER}",
        "  %user = icmp ne i64 %user.b, 0",
        f"  %nowp.b = and i64 %env, {BLOCK_ENV_USER | BLOCK_ENV_WP}",
        "  %supervisor_nowp = icmp eq i64 %nowp.b, 0",
        f"  %stack.b = and i64 %env, {BLOCK_ENV_STACK}",
        "  %stack_ok = icmp ne i64 %stack.b, 0",
    ]
    return "\n".join(head + body + ["}", ""])


def _helpers():
    """IR functions the blocks call (inlined by LLVM): parity, and
    flags.get_eflags."""
    lf = {n: getattr(L, n) for n in ("LF_OP", "LF_A", "LF_B", "LF_R", "LF_SIZE", "EFLAGS")}
    keep = _i64(~FLAGS_ARITH)
    keep_cf = _i64(~FLAGS_ARITH | L.FLAG_CF)
    return f"""
define internal i64 @parity(i64 %v) alwaysinline {{
  %a = and i64 %v, 255
  %b = lshr i64 %a, 4
  %c = xor i64 %a, %b
  %d = lshr i64 %c, 2
  %e = xor i64 %c, %d
  %f = lshr i64 %e, 1
  %g = xor i64 %e, %f
  %h = xor i64 %g, 1
  %r = and i64 %h, 1
  ret i64 %r
}}

define internal void @materialise(i64* %cpu) alwaysinline {{
entry:
  %opp = getelementptr i64, i64* %cpu, i64 {lf['LF_OP']}
  %op = load i64, i64* %opp
  %none = icmp eq i64 %op, {LF_NONE}
  br i1 %none, label %done, label %lazy
lazy:
  %ap = getelementptr i64, i64* %cpu, i64 {lf['LF_A']}
  %a = load i64, i64* %ap
  %bp = getelementptr i64, i64* %cpu, i64 {lf['LF_B']}
  %b = load i64, i64* %bp
  %rp = getelementptr i64, i64* %cpu, i64 {lf['LF_R']}
  %r = load i64, i64* %rp
  %sp = getelementptr i64, i64* %cpu, i64 {lf['LF_SIZE']}
  %size = load i64, i64* %sp
  %bits = shl i64 %size, 3
  %one = shl i64 1, %bits
  %mask = sub i64 %one, 1
  %res = and i64 %r, %mask
  %z = icmp eq i64 %res, 0
  %zf = select i1 %z, i64 {L.FLAG_ZF}, i64 0
  %bm1 = sub i64 %bits, 1
  %s0 = ashr i64 %res, %bm1
  %s1 = and i64 %s0, 1
  %sf = shl i64 %s1, 7
  %p = call i64 @parity(i64 %res)
  %pf = shl i64 %p, 2
  %f0 = or i64 %zf, %sf
  %base = or i64 %f0, %pf
  %x0 = xor i64 %a, %b
  %x1 = xor i64 %x0, %r
  %af = and i64 %x1, 16
  %isadd0 = icmp eq i64 %op, {LF_ADD}
  %isadd1 = icmp eq i64 %op, {LF_INC}
  %isadd = or i1 %isadd0, %isadd1
  %ar = xor i64 %a, %r
  %br = xor i64 %b, %r
  %oa0 = and i64 %ar, %br
  %ab = xor i64 %a, %b
  %os0 = and i64 %ab, %ar
  %o0 = select i1 %isadd, i64 %oa0, i64 %os0
  %o1 = ashr i64 %o0, %bm1
  %o2 = and i64 %o1, 1
  %of = shl i64 %o2, 11
  %iscf0 = icmp eq i64 %op, {LF_ADD}
  %iscf1 = icmp eq i64 %op, {LF_SUB}
  %iscf = or i1 %iscf0, %iscf1
  %c0 = ashr i64 %r, %bits
  %c1 = and i64 %c0, 1
  %cf = select i1 %iscf, i64 %c1, i64 0
  %f1 = or i64 %base, %af
  %f2 = or i64 %f1, %of
  %arith = or i64 %f2, %cf
  %logic = icmp eq i64 %op, {LF_LOGIC}
  %flags = select i1 %logic, i64 %base, i64 %arith
  %kc0 = icmp eq i64 %op, {LF_INC}
  %kc1 = icmp eq i64 %op, {LF_DEC}
  %kc = or i1 %kc0, %kc1
  %keep = select i1 %kc, i64 {keep_cf}, i64 {keep}
  %ep = getelementptr i64, i64* %cpu, i64 {lf['EFLAGS']}
  %e = load i64, i64* %ep
  %e1 = and i64 %e, %keep
  %e2 = or i64 %e1, %flags
  store i64 %e2, i64* %ep
  store i64 {LF_NONE}, i64* %opp
  br label %done
done:
  ret void
}}
""" + _TBAA


class _Engine:
    """llvmlite's MCJIT, one for the process: blocks are added as modules
    and never removed (rows hold their addresses)."""

    def __init__(self):
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self.llvm = llvm
        target = llvm.Target.from_default_triple()
        self.machine = target.create_target_machine(opt=2, codemodel="jitdefault")
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self.machine)

    def compile(self, name, text):
        llvm = self.llvm
        module = llvm.parse_assembly(_helpers() + text)
        module.verify()
        options = llvm.create_pipeline_tuning_options(speed_level=2)
        builder = llvm.create_pass_builder(self.machine, options)
        builder.getModulePassManager().run(module, builder)
        self.engine.add_module(module)
        self.engine.finalize_object()
        return self.engine.get_function_address(name)


_lock = threading.Lock()
_engine = None
_compiled = {}          # (eip, decoded fields ...) -> address
stats = {"compiled": 0, "reused": 0, "refused": 0, "seconds": 0.0}


def block_ir(insns, name="block"):
    """The LLVM IR of a block (a module without the helpers): for reading
    and for tests."""
    return _Compiler(insns, name).source_text()


def _address_of(insns):
    global _engine
    key = (insns[0].eip,) + tuple(i.key for i in insns)
    with _lock:
        address = _compiled.get(key)
        if address is not None:
            stats["reused"] += 1
            return address
        if len(_compiled) >= MAX_BLOCKS:
            return 0
        start = time.perf_counter()
        if _engine is None:
            _engine = _Engine()
        name = f"visor86_block_{len(_compiled)}"
        address = _engine.compile(name, block_ir(insns, name))
        _compiled[key] = address
        stats["compiled"] += 1
        stats["seconds"] += time.perf_counter() - start
        return address


def serve_request(state):
    """Compile the block the fast tier asked for (JIT_REQUEST) and put it in
    its leader's row; a leader with no block to make is not asked for
    again."""
    cpu, ic, pm = state.cpu, state.ic, state.pm
    request = int(cpu[L.JIT_REQUEST])
    cpu[L.JIT_REQUEST] = 0
    idx = (request & 0xFFFF) - 1
    eip = request >> 16
    if not 0 <= idx < L.IC_ENTRIES:
        return
    insns = read_block(ic, pm, idx, eip)
    address = _address_of(insns) if insns else 0
    if not address:
        stats["refused"] += 1
        ic[idx, L.D_HEAT] = L.BLOCK_NEVER
        return
    ic[idx, L.D_BLOCK_KEY] = eip | (len(insns) << 32)
    ic[idx, L.D_BLOCK] = address
