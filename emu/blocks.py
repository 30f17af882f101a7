"""Compiled blocks: hot code of the fast tier as machine code.

The fast tier (emu/core/fastpath.py) interprets one decoded record after
another; most of its time goes to the loop around the work (fetching the
record, unpacking its operand word, dispatching on the operation, checking
the next one).  When an instruction where a run of them starts (a
*leader*: where the fast tier starts, after a jump, after what a block
cannot hold) has started ``JIT_THRESHOLD`` times, the fast tier asks for a
block there (JIT_REQUEST, with the entry conditions in JIT_REQUEST_ENV) and
the run loop exits to Python (EXIT_COMPILE).

A block is the leader and the instructions it reaches by falling through,
by direct jumps (both ways of a Jcc) and by direct calls (the callee, and
the return site), on its page, in the decode cache, 64 at most: loops with
branches inside are one block, and so are calls to functions on the page
(recursion too).  Here they are read
back from the decode cache, written as LLVM IR with every operand, size and
constant folded in and the entry conditions fixed (paging or not, CPL 3,
WP, which segments are flat, the undefined-flags policy), and compiled by
llvmlite (the LLVM that numba uses, so no new dependency) on a thread of
their own while the guest goes on interpreting; ``install_ready`` puts the
address in the leader's icache row (D_BLOCK, with the EIP, the length and
the conditions in D_BLOCK_KEY) at a later stop of Machine.run.  From then
on the fast tier calls it when it reaches the leader under the same
conditions.  (BACKGROUND = False compiles while the run waits.)

A block does exactly what the fast tier does, instruction by instruction:
the same registers, lazy flags record, EA, memory bytes and dirty bits.
The CPU slots it uses are locals, loaded on entry and stored back on the
way out, so a loop keeps them in machine registers and flags nobody reads
are not computed on the way round.  Each instruction first checks what the
fast tier checks (the TLB entry and its rights, RAM bounds, the ROM, pages
holding code) and, when one fails, the block returns the number of
instructions it retired before it, with NEXT_EIP and INSN_EIP set as the
fast tier sets them; the fast tier then goes on from there as if it had
run them itself.  A TLB miss calls memory.quiet_walk as the fast tier
does (a C function: quiet_walk_address), which fills the entry when the
walk can neither fault nor touch more than plain RAM.  So a block never
faults or touches a device: those stay with the generic path.  A RET
whose popped address is a return site of the block goes there; any other
return, an indirect call or jump, or a jump to an instruction the block
does not hold leaves it.  A jump back inside it (to a lower or equal EIP:
every cycle has one) is taken only while a pass through the whole block
still fits the budget (``left``), so ``run(max_instructions)`` stops where
the interpreter stops.

Its validity is the decode cache's: a block lives in the row of its leader,
which every decode clears, and every instruction of it is on the same page
of the same generation (a write to a page holding decoded code bumps the
generation).  The block is keyed by the EIP it was compiled for as well,
since a page can be mapped at two addresses.

Compiled code is shared by every guest of the process (keyed by the EIP,
the conditions and the decoded records) and is never freed, so an address
in a row stays valid; the process stops compiling at MAX_BLOCKS.  None of
it is saved: snapshots hold no icache, so a restored or migrated guest
compiles again.

The IR reads guest memory only at indexes it has checked against the
arrays' sizes (the RAM bound, the TLB mask, the page map size), as the
fast tier does (DESIGN.md: guest isolation)."""
import queue
import threading
import time

from emu.core import layout as L
from emu.core import fastpath as F
from emu.core.blockcall import (BLOCK_ENV_PAGING, BLOCK_ENV_USER, BLOCK_ENV_WP, BLOCK_ENV_STACK,
                                BLOCK_ENV_READABLE, BLOCK_ENV_WRITABLE, BLOCK_ENV_AMD, BLOCK_ENV_ZERO,
                                QUIET_WALK_SIGNATURE, QUIET_WALK_TYPES, quiet_walk_c)
from emu.core.jit import c_function
from emu.core.flags import LF_NONE, LF_ADD, LF_SUB, LF_INC, LF_DEC, LF_LOGIC
from emu.core.guest import OFFSETS
from emu.core.isa.muldiv import MUL_UNDEFINED
from emu.core.memory import (PAGE_SHIFT, PAGE_MASK, PM_CODE, PM_DIRTY, T_USER, T_WRITE, T_DIRTY,
                             TLB_TAG, TLB_VALUE, BIOS_ROM)
from devices.chips.layout import ROM_LOCKED

MAX_INSNS = 64              # instructions in one block
MAX_BLOCKS = 200_000        # blocks compiled by one process
TRANSFERS = (F.F_JCC, F.F_JMP, F.F_CALL, F.F_RET, F.F_JMPI, F.F_CALLI)
STACK_OPS = (F.F_PUSH, F.F_POP, F.F_CALL, F.F_CALLI, F.F_RET)
FLAGS_ARITH = L.FLAGS_ARITH

# type-based alias metadata: the cpu array and the guest's memory, page map
# and TLB are separate numpy arrays (the prologue's loads of cpu slots and the
# write-back need not wait for guest stores)
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


_quiet_walk = []


def quiet_walk_address():
    """The address of blockcall.quiet_walk_c, a C function (made once)."""
    if not _quiet_walk:
        _quiet_walk.append(c_function(quiet_walk_c, QUIET_WALK_TYPES))
    return _quiet_walk[0].address


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

    def jump_target(self):
        return (self.next_eip + self.imm) & 0xFFFFFFFF

    def successors(self):
        """The EIPs this instruction may go on to that a block can follow
        (a call, return or indirect jump leaves the block)."""
        if self.op == F.F_JCC:
            return (self.next_eip, self.jump_target())
        if self.op == F.F_JMP:
            return (self.jump_target(),)
        if self.op == F.F_CALL:
            # the callee, and the return site (a RET in the block that pops
            # its address goes there)
            return (self.jump_target(), self.next_eip)
        if self.op in TRANSFERS:
            return ()
        return (self.next_eip,)

    def takes(self, env):
        """Whether a block made for the entry conditions ``env`` can hold
        this instruction (where the fast tier would always leave it to the
        generic path, the block ends before it)."""
        if self.op == F.F_SHIFT:
            if self.shift not in (F.SHIFT_SHL, F.SHIFT_SHR, F.SHIFT_SAR) \
                    or self.b not in (F.OPD_IMM, F.OPD_ONE):
                return False
        elif not 0 < self.op <= F.F_IMUL1:
            return False
        if self.op in STACK_OPS and not env & BLOCK_ENV_STACK:
            return False
        if self.flags & F.FAST_HAS_MEM and self.op != F.F_LEA:
            flat = BLOCK_ENV_WRITABLE if self.flags & F.FAST_MEM_WRITE else BLOCK_ENV_READABLE
            if not env & (flat << self.seg):
                return False
        return True


def _leader_page(ic, pm, idx, eip):
    """(physical page, generation) of the leader's row when it holds a
    FLAT32 decode of ``eip`` of the page's current generation, else None."""
    row = ic[idx]
    tag = int(row[L.D_TAG])
    if tag & ((1 << L.IC_TAG_SHIFT) - 1) != F.FLAT32 or tag >> L.IC_TAG_SHIFT == 0:
        return None
    pa = (tag >> L.IC_TAG_SHIFT) - 1
    if (pa & PAGE_MASK) != (eip & PAGE_MASK) or (pa >> PAGE_SHIFT) >= pm.shape[0]:
        return None
    gen = int(row[L.D_GEN])
    if gen != int(pm[pa >> PAGE_SHIFT]):
        return None
    return pa & ~PAGE_MASK, gen


def _cached_row(ic, page, gen, leader, at):
    """The icache row holding the decode of ``at`` (on the leader's page,
    of generation ``gen``), or None."""
    off = at & PAGE_MASK
    if (at >> PAGE_SHIFT) != (leader >> PAGE_SHIFT) or off > F.LAST_WHOLE:
        return None
    here = page | off
    r = ic[(here ^ (here >> 13)) & (L.IC_ENTRIES - 1)]
    if int(r[L.D_TAG]) != ((here + 1) << L.IC_TAG_SHIFT) | F.FLAT32 or int(r[L.D_GEN]) != gen:
        return None
    return r


def read_block(ic, pm, idx, eip, env):
    """The instructions of the block led by icache row ``idx`` at ``eip``,
    for the entry conditions ``env`` (BLOCK_ENV_*): the leader first, then
    those reached from it by falling through, by direct jumps and by direct
    calls (_Insn.successors; in the order found, MAX_INSNS at most), each in the cache (tag, mode and
    generation of the leader's page), on the leader's page, and one a block
    can hold.  [] when there is none."""
    where = _leader_page(ic, pm, idx, eip)
    if where is None:
        return []
    page, gen = where
    insns = []
    seen = {eip}
    todo = [eip]
    while todo and len(insns) < MAX_INSNS:
        at = todo.pop(0)
        r = _cached_row(ic, page, gen, eip, at)
        if r is None:
            continue
        insn = _Insn(at, r)
        if not insn.takes(env):
            continue
        insns.append(insn)
        for nxt in insn.successors():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return insns


def still_cached(ic, pm, idx, insns):
    """Whether every instruction of a block is still decoded as it was when
    the block was read (the cache may hold more of the code by now)."""
    where = _leader_page(ic, pm, idx, insns[0].eip)
    if where is None:
        return False
    page, gen = where
    for insn in insns:
        r = _cached_row(ic, page, gen, insns[0].eip, insn.eip)
        if r is None or _Insn(insn.eip, r).key != insn.key:
            return False
    return True


class _Writer:
    """LLVM IR for one block: SSA names, basic blocks, and the CPU slots the
    block uses.  Each slot lives in a local (an ``alloca`` LLVM turns into
    machine registers) loaded on entry and written back to the cpu array on
    the way out, so flags a later instruction replaces are never computed
    on the path that stays in the block."""

    def __init__(self, name):
        self.name = name
        self.lines = []
        self.count = 0
        self.known = {}         # cpu slot -> IR value on the main path
        self.const = {}         # cpu slot -> a Python int known at compile time
        self.exits = set()      # instructions the block may leave before
        self.used = set()       # cpu slots held in locals
        self.written = []       # slots the block stores, in order
        self.insn_stores = 0    # stores of the instruction being written (none before a bail-out)

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

    def bin(self, kind, a, b):
        return self.op(f"{kind} i64 {a}, {b}")

    def cmp(self, pred, a, b):
        return self.op(f"icmp {pred} i64 {a}, {b}")

    def select(self, cond, a, b):
        return self.op(f"select i1 {cond}, i64 {a}, i64 {b}")

    # --- the cpu array, through locals ----------------------------------------------
    def local(self, slot):
        self.used.add(slot)
        return f"%s{slot}"

    def cpu_slot(self, slot):
        return self.op(f"getelementptr i64, i64* %cpu, i64 {slot}")

    def load_cpu(self, slot):
        if slot in self.known:
            return self.known[slot]
        v = self.op(f"load i64, i64* {self.local(slot)}")
        self.known[slot] = v
        return v

    def store_cpu(self, slot, value):
        self.set_local(slot, value)
        self.known[slot] = value
        self.const.pop(slot, None)

    def set_local(self, slot, value):
        """Store into a slot's local without remembering the value (on a
        side path)."""
        self.emit(f"store i64 {value}, i64* {self.local(slot)}")
        self.insn_stores += 1
        if slot not in self.written:
            self.written.append(slot)

    def set_const(self, slot, value):
        self.store_cpu(slot, _i64(value))
        self.const[slot] = value

    def write_back(self, slots):
        """Store the locals of ``slots`` into the cpu array (on a way out);
        EFLAGS with its lazy ZF SF PF folded in."""
        for slot in slots:
            if slot >= L.CPU_SLOTS:
                continue
            v = self.op(f"load i64, i64* {self.local(slot)}")
            if slot == L.EFLAGS and ZSP_LAZY in self.used:
                zsp = self.op(f"load i64, i64* {self.local(ZSP_VALUE)}")
                full = self.op(f"call i64 @zsp(i64 {v}, i64 {zsp})")
                lazy = self.cmp("ne", self.op(f"load i64, i64* {self.local(ZSP_LAZY)}"), 0)
                v = self.select(lazy, full, v)
            self.emit(f"store i64 {v}, i64* {self.cpu_slot(slot)}{CPU_TBAA}")

    # --- control -----------------------------------------------------------------------
    def bail_if(self, cond, k):
        """Leave the block before instruction k when ``cond`` holds (nothing
        of instruction k is done yet, but for TLB fills: the generic path
        makes the same); the label of the way on."""
        if self.insn_stores:
            raise AssertionError(f"instruction {k} of {self.name} bails out after a store")
        go = self.new_label("ok")
        self.exits.add(k)
        self.emit(f"br i1 {cond}, label %bail{k}, label %{go}")
        self.label(go)
        return go


# locals of a block that are not cpu slots: after a shift, ZF SF PF are
# left as the sign-extended result (ZSP_VALUE, ZSP_LAZY = 1) and folded into
# EFLAGS only where it is read or written back, so a loop whose flags the
# next shift replaces does not compute them
ZSP_VALUE = L.CPU_SLOTS
ZSP_LAZY = L.CPU_SLOTS + 1
DONE = L.CPU_SLOTS + 2          # instructions retired so far: what the block returns


def _mask(size):
    return (1 << (size * 8)) - 1


class _Compiler:
    """Writes the IR of one block (see the module's docstring)."""

    def __init__(self, insns, name, env):
        self.insns = insns
        self.w = _Writer(name)
        # the entry conditions the block is made for (the fast tier calls it
        # only under them)
        self.paging = bool(env & BLOCK_ENV_PAGING)
        self.user = bool(env & BLOCK_ENV_USER)
        self.supervisor_nowp = not env & (BLOCK_ENV_USER | BLOCK_ENV_WP)
        self.policy = L.UNDEF_AMD if env & BLOCK_ENV_AMD else \
            L.UNDEF_ZERO if env & BLOCK_ENV_ZERO else L.UNDEF_INTEL

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
        if self.paging:
            vpn = w.bin("lshr", lin, PAGE_SHIFT)
            slot = w.bin("mul", w.bin("and", vpn, "%tlb_mask"), "%tlb_cols")
            tag = self.load_at("%tlb", w.bin("add", slot, TLB_TAG))
            e = self.load_at("%tlb", w.bin("add", slot, TLB_VALUE))
            hit = w.cmp("eq", tag, w.bin("add", vpn, 1))
            need = (T_USER if self.user else 0) | (T_DIRTY if write else 0)
            if write and not self.supervisor_nowp:
                need |= T_WRITE
            if need:
                hit = w.op(f"and i1 {hit}, {w.cmp('eq', w.bin('and', e, need), need)}")
            # a miss (or a right the entry does not give): memory.quiet_walk
            # fills the entry when the generic path's walk would only read
            # and write plain RAM and not fault, else the block leaves
            on_hit, on_miss, join = w.new_label("tlb_hit"), w.new_label("tlb_miss"), w.new_label("mapped")
            w.emit(f"br i1 {hit}, label %{on_hit}, label %{on_miss}")
            w.label(on_hit)
            pa_hit = w.bin("or", w.bin("and", e, _i64(~PAGE_MASK)), w.bin("and", lin, PAGE_MASK))
            w.emit(f"br label %{join}")
            w.label(on_miss)
            walk = f"inttoptr (i64 {quiet_walk_address()} to {QUIET_WALK_SIGNATURE}*)"
            pa_walk = w.op(f"call i64 {walk}(i8* %g, i64 {lin}, i64 {int(write)}, i64 {int(self.user)}, "
                           f"i64 {self.insns[0].eip >> PAGE_SHIFT})")
            walked = w.bail_if(w.cmp("slt", pa_walk, 0), k)
            w.emit(f"br label %{join}")
            w.label(join)
            pa = w.op(f"phi i64 [{pa_hit}, %{on_hit}], [{pa_walk}, %{walked}]")
        else:
            pa = w.bin("and", lin, "%a20")
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

    def ram_pointer(self, pa, size):
        """(IR type, pointer) of ``size`` bytes of guest RAM at ``pa``."""
        w = self.w
        t = f"i{size * 8}"
        at = w.op(f"getelementptr i8, i8* %mem, i64 {pa}")
        if size > 1:
            at = w.op(f"bitcast i8* {at} to {t}*")
        return t, at

    def ram_read(self, pa, size):
        w = self.w
        t, at = self.ram_pointer(pa, size)
        v = w.op(f"load {t}, {t}* {at}, align 1{GUEST_TBAA}")
        return w.op(f"zext {t} {v} to i64")

    def ram_write(self, pa, size, value):
        w = self.w
        t, at = self.ram_pointer(pa, size)
        w.emit(f"store {t} {w.op(f'trunc i64 {value} to {t}')}, {t}* {at}, align 1{GUEST_TBAA}")
        w.insn_stores += 1
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
        eflags_cf = w.bin("and", w.load_cpu(L.EFLAGS), L.FLAG_CF)     # CF is never in ZSP
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
            record = ", ".join("i64 " + w.load_cpu(slot)
                               for slot in (L.LF_OP, L.LF_A, L.LF_B, L.LF_R, L.LF_SIZE))
            w.store_cpu(L.EFLAGS, w.op(f"call i64 @materialise({record}, i64 {self.eflags()})"))
            w.set_const(ZSP_LAZY, 0)
            w.set_const(L.LF_OP, LF_NONE)
        return w.bin("or", self.eflags(), L.FLAG_RESERVED1)

    def eflags(self):
        """The EFLAGS slot as the cpu array would hold it: its local, with ZF
        SF PF from ZSP_VALUE when ZSP_LAZY."""
        w = self.w
        lazy = w.const.get(ZSP_LAZY)
        base = w.load_cpu(L.EFLAGS)
        if lazy == 0:
            return base
        full = w.op(f"call i64 @zsp(i64 {base}, i64 {w.load_cpu(ZSP_VALUE)})")
        if lazy == 1:
            return full
        return w.select(w.cmp("ne", w.load_cpu(ZSP_LAZY), 0), full, base)

    def condition(self, cc):
        """fastpath.branch_taken (flags.condition): an i1."""
        w = self.w
        c = cc >> 1
        if c in (1, 2, 3, 4):
            op = w.const.get(L.LF_OP)
            size = w.const.get(L.LF_SIZE)
            eflags = self.eflags()
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
        """flags.pick_undefined, for the policy the block is made for."""
        return {L.UNDEF_INTEL: intel, L.UNDEF_AMD: amd}.get(self.policy, "0")

    def result_flags(self, r, size, cf, of, af):
        """flags.set_result_flags over every arithmetic flag: the record is
        dropped unread (flags.set_flag_bits)."""
        w = self.w
        t = f"i{size * 8}"
        # ZF SF PF stay the result, sign-extended, until something reads them
        w.store_cpu(ZSP_VALUE, w.op(f"sext {t} {w.op(f'trunc i64 {r} to {t}')} to i64"))
        w.set_const(ZSP_LAZY, 1)
        f = w.bin("or", cf, w.bin("shl", of, 11))            # FLAG_CF is bit 0
        f = w.bin("or", f, w.bin("shl", af, 4))
        w.set_const(L.LF_OP, LF_NONE)
        old = w.bin("or", w.load_cpu(L.EFLAGS), L.FLAG_RESERVED1)
        w.store_cpu(L.EFLAGS, w.bin("or", w.bin("and", old, _i64(~FLAGS_ARITH)), f))

    def signed(self, v, size):
        """muldiv.signed: the low ``size`` bytes of v, sign-extended."""
        t = f"i{size * 8}"
        return self.w.op(f"sext {t} {self.w.op(f'trunc i64 {v} to {t}')} to i64")

    def mul_flags(self, lo, size, overflow):
        """muldiv.mul_flags: CF = OF = overflow; SF ZF AF PF as the policy
        the block is made for (Intel: SF PF from the low half, ZF AF clear;
        AMD: as they were); the record is dropped (flags.set_flag_bits)."""
        w = self.w
        f = w.select(overflow, L.FLAG_CF | L.FLAG_OF, 0)
        if self.policy == L.UNDEF_INTEL:
            f = w.bin("or", f, w.bin("shl", w.bin("and", w.bin("ashr", lo, size * 8 - 1), 1), 7))
            f = w.bin("or", f, w.bin("shl", w.op(f"call i64 @parity(i64 {lo})"), 2))
        elif self.policy == L.UNDEF_AMD:
            f = w.bin("or", f, w.bin("and", self.materialise(), MUL_UNDEFINED))
        w.set_const(L.LF_OP, LF_NONE)
        old = w.bin("or", w.load_cpu(L.EFLAGS), L.FLAG_RESERVED1)     # materialised when read above
        w.store_cpu(L.EFLAGS, w.bin("or", w.bin("and", old, _i64(~FLAGS_ARITH)), f))
        w.set_const(ZSP_LAZY, 0)

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

    def instruction(self, k, insn):
        """The IR of instruction k; returns how it goes on: ("to", eip),
        ("jcc", taken: an i1, eip taken, eip not taken), ("ret", the
        popped address: an IR value) or ("leave", the target: an IR value)."""
        w = self.w
        op, a, b, s0, s1 = insn.op, insn.a, insn.b, insn.s0, insn.s1
        target = insn.next_eip
        ea = mpa = None
        if insn.flags & F.FAST_HAS_MEM:
            ea = self.effective_address(insn)
            size = s0 if a == F.OPD_MEM else s1
            w.bail_if(w.cmp("sgt", w.bin("add", ea, size - 1), 0xFFFFFFFF), k)
            if op == F.F_LEA:
                mpa = "0"
            else:
                mpa = self.physical(ea, size, bool(insn.flags & F.FAST_MEM_WRITE), k)

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
        elif op == F.F_IMUL:
            if insn.flags & F.FAST_IMM3:
                x = source(b, s1)
                y = _i64(insn.imm & _mask((insn.flags >> 24) & 0xF))
            else:
                x = self.get_reg(a, s0)
                y = source(b, s1)
            p = w.bin("mul", self.signed(x, s0), self.signed(y, s0))
            lo = w.bin("and", p, _mask(s0))
            self.set_reg(a, s0, lo)
            self.mul_flags(lo, s0, w.cmp("ne", p, self.signed(lo, s0)))
        elif op == F.F_SETCC:
            put(a, 1, w.op(f"zext i1 {self.condition(insn.opcode & 15)} to i64"))
        elif op == F.F_CMOV:
            v = source(b, s1)               # read whatever the condition
            taken = self.condition(insn.opcode & 15)
            self.set_reg(a, s0, w.select(taken, v, self.get_reg(a, s0)))
        elif op in (F.F_MUL, F.F_IMUL1):
            x = source(a, s0)
            if op == F.F_MUL:
                p = w.bin("mul", self.get_reg(0, s0), x)       # < 2^64: i64 keeps its bits
            else:
                p = w.bin("mul", self.signed(self.get_reg(0, s0), s0), self.signed(x, s0))
            lo = w.bin("and", p, _mask(s0))
            hi = w.bin("and", w.bin("lshr", p, s0 * 8), _mask(s0))
            if s0 == 1:                     # muldiv.store_double
                self.set_reg(0, 2, w.bin("or", lo, w.bin("shl", hi, 8)))
            else:
                self.set_reg(0, s0, lo)
                self.set_reg(2, s0, hi)
            self.mul_flags(lo, s0, w.cmp("ne", hi, 0) if op == F.F_MUL else w.cmp("ne", p, self.signed(lo, s0)))
        elif op == F.F_LEA:
            self.set_reg(a, 4, ea)
        elif op == F.F_JCC:
            taken = self.condition(insn.opcode & 15)
            target = ("jcc", taken, insn.jump_target(), insn.next_eip)
        elif op == F.F_JMP:
            target = insn.jump_target()
        elif op == F.F_JMPI:
            target = ("leave", source(a, 4))
        elif op == F.F_NOP:
            pass
        else:
            if op in (F.F_PUSH, F.F_CALL, F.F_CALLI):
                sp = w.bin("and", w.bin("sub", w.load_cpu(L.ESP), 4), 0xFFFFFFFF)
                spa = self.physical(sp, 4, True, k)
                if op == F.F_CALL:
                    v = str(insn.next_eip)
                    target = insn.jump_target()
                elif op == F.F_CALLI:
                    v = str(insn.next_eip)
                    target = ("leave", source(a, 4))
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
                    target = ("ret", v)
                else:
                    self.set_reg(a, 4, v)
        if mpa is not None:
            w.store_cpu(L.EA, ea)
        return target if isinstance(target, tuple) else ("to", target)

    def go(self, k, eip, at):
        """End instruction k's IR with a branch to ``eip``: to its
        instruction when the block holds it (on a jump back, only while the
        budget has room for a pass through the whole block), else out."""
        w = self.w
        j = at.get(eip)
        if j is None:
            w.set_local(L.NEXT_EIP, str(eip))
            w.emit("br label %out")
            return
        if eip <= self.insns[k].eip:
            # every cycle of the block has a jump back: from one check to the
            # next, at most len(insns) instructions retire
            room = w.cmp("sle", w.bin("add", w.load_cpu(DONE), len(self.insns)), "%left")
            stop = w.new_label("stop")
            w.emit(f"br i1 {room}, label %{self.back_prefix}{j}, label %{stop}")
            w.label(stop)
            w.set_local(L.NEXT_EIP, str(eip))
            w.emit("br label %out")
            return
        w.emit(f"br label %{self.prefix}{j}")

    def source_text(self):
        w = self.w
        insns = self.insns
        at = {insn.eip: k for k, insn in enumerate(insns)}
        self.return_sites = sorted({i.next_eip for i in insns if i.op == F.F_CALL and i.next_eip in at})
        entries = {insns[0].eip: 2}       # the leader: the call, and whatever else
        for insn in insns:
            for eip in insn.successors():
                entries[eip] = entries.get(eip, 0) + 1
        w.emit("br label %i0")
        # a block with a loop is written twice: the first pass ("i") goes
        # round into the second ("l"), which goes round into itself.  Only the
        # first sees the slots as they came in, so in the second the lazy
        # flags record and the like are what the loop leaves (constants, or
        # the registers they copy) instead of values carried round for the
        # ways out
        loops = any(eip in at and eip <= insn.eip for insn in insns for eip in insn.successors())
        self.prefix, self.back_prefix = "i", "l" if loops else "i"
        self.write_pass(at, entries)
        if loops:
            self.prefix = "l"
            self.write_pass(at, entries)
        for k in sorted(w.exits):
            w.label(f"bail{k}")
            w.set_local(L.NEXT_EIP, str(insns[k].eip))
            w.emit("br label %out")
        # the one way out: nothing happened when nothing retired; else the
        # locals the block stores go back to the cpu array
        w.label("out")
        done = w.op(f"load i64, i64* {w.local(DONE)}")
        back = w.new_label("back")
        w.emit(f"br i1 {w.cmp('eq', done, 0)}, label %none, label %{back}")
        w.label("none")
        w.emit("ret i64 0")
        w.label(back)
        w.write_back(w.written)
        w.emit(f"ret i64 {done}")
        return _function_text(w.name, w.lines, sorted(w.used))

    def write_pass(self, at, entries):
        """Every instruction of the block once, labelled prefix + index."""
        w = self.w
        insns = self.insns
        falls_into = None
        for k in sorted(range(len(insns)), key=lambda k: insns[k].eip):
            insn = insns[k]
            if falls_into != insn.eip or entries.get(insn.eip, 0) > 1:
                w.known.clear()         # a join: what was known on one way in is not on the other
                w.const.clear()
            w.label(f"{self.prefix}{k}")
            w.insn_stores = 0
            how = self.instruction(k, insn)
            w.store_cpu(DONE, w.bin("add", w.load_cpu(DONE), 1))       # it retired
            w.store_cpu(L.INSN_EIP, str(insn.eip))
            falls_into = None
            if how[0] == "to":
                self.go(k, how[1], at)
                if how[1] == insn.next_eip:
                    falls_into = how[1]
            elif how[0] == "jcc":
                taken, not_taken = w.new_label("taken"), w.new_label("not_taken")
                w.emit(f"br i1 {how[1]}, label %{taken}, label %{not_taken}")
                w.label(taken)
                self.go(k, how[2], at)
                w.label(not_taken)
                self.go(k, how[3], at)
                falls_into = how[3]
            elif how[0] == "ret":
                # a return to a call site of the block stays in it
                for site in self.return_sites:
                    back, other = w.new_label("return"), w.new_label("not_return")
                    w.emit(f"br i1 {w.cmp('eq', how[1], site)}, label %{back}, label %{other}")
                    w.label(back)
                    self.go(k, site, at)
                    w.label(other)
                w.set_local(L.NEXT_EIP, how[1])
                w.emit("br label %out")
            else:
                w.set_local(L.NEXT_EIP, how[1])
                w.emit("br label %out")


def _descriptor(field, word):
    return 8 * (OFFSETS[field] + word)


def _function_text(name, body, slots):
    """The block's function: its prologue loads what the IR needs from the
    Guest's array descriptors (emu/core/guest.py), and the cpu slots it uses
    into locals."""
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
    ]
    for slot in slots:
        if slot >= L.CPU_SLOTS:          # a local of the block's own (ZSP_*, DONE): starts at 0
            head += [f"  %s{slot} = alloca i64", f"  store i64 0, i64* %s{slot}"]
            continue
        head += [f"  %s{slot} = alloca i64",
                 f"  %s{slot}.p = getelementptr i64, i64* %cpu, i64 {slot}",
                 f"  %s{slot}.0 = load i64, i64* %s{slot}.p{CPU_TBAA}",
                 f"  store i64 %s{slot}.0, i64* %s{slot}"]
    return "\n".join(head + body + ["}", ""])


def _helpers():
    """IR functions the blocks call (inlined by LLVM): parity, and
    flags.get_eflags."""
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

define internal i64 @zsp(i64 %base, i64 %v) alwaysinline {{
  %z = icmp eq i64 %v, 0
  %zf = select i1 %z, i64 {L.FLAG_ZF}, i64 0
  %s = icmp slt i64 %v, 0
  %sf = select i1 %s, i64 {L.FLAG_SF}, i64 0
  %p = call i64 @parity(i64 %v)
  %pf = shl i64 %p, 2
  %a = or i64 %base, %zf
  %b = or i64 %a, %sf
  %c = or i64 %b, %pf
  ret i64 %c
}}

define internal i64 @materialise(i64 %op, i64 %a, i64 %b, i64 %r, i64 %size, i64 %e) alwaysinline {{
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
  %isadd = icmp eq i64 %op, {LF_ADD}
  %isinc = icmp eq i64 %op, {LF_INC}
  %addlike = or i1 %isadd, %isinc
  %ar = xor i64 %a, %r
  %br = xor i64 %b, %r
  %oa0 = and i64 %ar, %br
  %ab = xor i64 %a, %b
  %os0 = and i64 %ab, %ar
  %o0 = select i1 %addlike, i64 %oa0, i64 %os0
  %o1 = ashr i64 %o0, %bm1
  %o2 = and i64 %o1, 1
  %of = shl i64 %o2, 11
  %issub = icmp eq i64 %op, {LF_SUB}
  %iscf = or i1 %isadd, %issub
  %c0 = ashr i64 %r, %bits
  %c1 = and i64 %c0, 1
  %cf = select i1 %iscf, i64 %c1, i64 0
  %f1 = or i64 %base, %af
  %f2 = or i64 %f1, %of
  %arith = or i64 %f2, %cf
  %logic = icmp eq i64 %op, {LF_LOGIC}
  %flags = select i1 %logic, i64 %base, i64 %arith
  %isdec = icmp eq i64 %op, {LF_DEC}
  %kc = or i1 %isinc, %isdec
  %keep = select i1 %kc, i64 {keep_cf}, i64 {keep}
  %e1 = and i64 %e, %keep
  %e2 = or i64 %e1, %flags
  %none = icmp eq i64 %op, {LF_NONE}
  %out = select i1 %none, i64 %e, i64 %e2
  ret i64 %out
}}
""" + _TBAA


PASSES = ("sroa", "instruction_combine", "simplify_cfg", "jump_threading", "new_gvn",
          "dead_store_elimination", "instruction_combine", "simplify_cfg", "sinking")


class _Engine:
    """llvmlite's MCJIT, one for the process, used by the compile thread
    only: blocks are added as modules and never removed (rows hold their
    addresses)."""

    def __init__(self):
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self.llvm = llvm
        self.context = llvm.create_context()
        target = llvm.Target.from_default_triple()
        self.machine = target.create_target_machine(opt=2, codemodel="jitdefault")
        self.engine = llvm.create_mcjit_compiler(self.parse(""), self.machine)

    def parse(self, text):
        return self.llvm.parse_assembly(text, context=self.context)

    def optimised(self, text):
        """The module of ``text`` (with the helpers) after the passes that
        matter for a block: locals to registers, folding, jump threading,
        redundancy and dead-store removal, sinking work into the ways out.
        LLVM's whole -O2 took three times as long (30 ms a block) for code
        no faster."""
        llvm = self.llvm
        module = self.parse(_helpers() + text)
        module.verify()
        builder = llvm.create_pass_builder(self.machine, llvm.create_pipeline_tuning_options(speed_level=1))
        passes = llvm.create_new_module_pass_manager()
        passes.add_always_inliner_pass()
        for name in PASSES:
            getattr(passes, f"add_{name}_pass")()
        passes.run(module, builder)
        return module

    def compile(self, name, text):
        self.engine.add_module(self.optimised(text))
        self.engine.finalize_object()
        return self.engine.get_function_address(name)


BACKGROUND = True       # compile on a thread of its own (False: the run waits for each block)
INSTALL_SLICE = 1 << 20     # while blocks compile, Machine.run stops this often to put them in


class _Job:
    """A block to compile: the compile thread sets ``address`` (0 when it
    could not) and ``error``, then ``done``."""

    def __init__(self, key, insns, env):
        self.key, self.insns, self.env = key, insns, env
        self.address = 0
        self.error = None
        self.done = threading.Event()


_lock = threading.Lock()
_compiled = {}          # (eip, env, decoded fields ...) -> address (0: could not)
_jobs = {}              # key -> _Job not finished
_queue = queue.SimpleQueue()
_thread = None
stats = {"compiled": 0, "reused": 0, "refused": 0, "seconds": 0.0, "errors": []}


def block_ir(insns, env, name="block"):
    """The LLVM IR of a block made for the entry conditions ``env`` (a
    module without the helpers): for reading and for tests."""
    return _Compiler(insns, name, env).source_text()


def _compile_forever():
    """The compile thread: LLVM work of ours happens only here, in an LLVM
    context of its own (numba compiles in the global one on other threads),
    and llvmlite lets the GIL go while LLVM works, so guests keep running."""
    engine = _Engine()
    while True:
        job = _queue.get()
        start = time.perf_counter()
        try:
            name = f"visor86_block_{stats['compiled']}"
            job.address = engine.compile(name, block_ir(job.insns, job.env, name))
        except Exception as error:      # a bug of ours: the guest goes on without the block
            job.error = error
            stats["errors"].append(f"{error!r} (block at {job.insns[0].eip:#x})")
        with _lock:
            _compiled[job.key] = job.address
            del _jobs[job.key]
            if job.address:
                stats["compiled"] += 1
            stats["seconds"] += time.perf_counter() - start
        job.done.set()


def _submit(key, insns, env):
    """The job compiling ``key`` (a running one if there is one)."""
    global _thread
    with _lock:
        job = _jobs.get(key)
        if job is None:
            job = _jobs[key] = _Job(key, insns, env)
            if _thread is None:
                _thread = threading.Thread(target=_compile_forever, name="visor86-blocks", daemon=True)
                _thread.start()
            _queue.put(job)
    return job


def _key(insns, env):
    return (insns[0].eip, env) + tuple(i.key for i in insns)


def _install(ic, idx, eip, env, insns, address):
    ic[idx, L.D_HEAT] = 0
    if not address:
        with _lock:
            stats["refused"] += 1
        ic[idx, L.D_HEAT] = L.BLOCK_NEVER
        return
    ic[idx, L.D_BLOCK_KEY] = eip | (len(insns) << L.BLOCK_KEY_LENGTH) | (env << L.BLOCK_KEY_ENV)
    ic[idx, L.D_BLOCK] = address


def serve_request(state, pending):
    """The fast tier asked for a block (JIT_REQUEST): put it in its leader's
    row when it is compiled already, else have it compiled (in the
    background: its row waits in ``pending`` for install_ready; or here,
    when BACKGROUND is off).  A leader with no block to make is not asked
    for again."""
    cpu, ic, pm = state.cpu, state.ic, state.pm
    request = int(cpu[L.JIT_REQUEST])
    env = int(cpu[L.JIT_REQUEST_ENV])
    cpu[L.JIT_REQUEST] = 0
    idx = (request & 0xFFFF) - 1
    eip = request >> 16
    if not 0 <= idx < L.IC_ENTRIES:
        return
    insns = read_block(ic, pm, idx, eip, env)
    if not insns:
        _install(ic, idx, eip, env, insns, 0)
        return
    key = _key(insns, env)
    with _lock:
        address = _compiled.get(key)
        full = len(_compiled) + len(_jobs) >= MAX_BLOCKS
        if address is not None:
            stats["reused"] += 1
    if address is None and not full:
        job = _submit(key, insns, env)
        if BACKGROUND:
            ic[idx, L.D_HEAT] = L.BLOCK_PENDING
            pending.append((idx, eip, env, key, insns))
            return
        job.done.wait()
        if job.error is not None:
            raise job.error
        address = job.address
    _install(ic, idx, eip, env, insns, address or 0)


def install_ready(state, pending):
    """Put the blocks of ``pending`` the compile thread has finished in
    their rows, when the row still holds the instructions they were made
    from (else they wait for the row to get hot again); returns whether
    some are still compiling."""
    ic, pm = state.ic, state.pm
    waiting = []
    for entry in pending:
        idx, eip, env, key, insns = entry
        with _lock:
            address = _compiled.get(key)
        if address is None:
            waiting.append(entry)
            continue
        if int(ic[idx, L.D_HEAT]) != L.BLOCK_PENDING:
            continue            # decoded again since: the row starts over
        if still_cached(ic, pm, idx, insns):
            _install(ic, idx, eip, env, insns, address)
        else:
            ic[idx, L.D_HEAT] = 0
    pending[:] = waiting
    return bool(waiting)


def cpu_for_snapshot(cpu):
    """A copy of the cpu array without the blocks' host-timed bookkeeping
    (L.JIT_BOOKKEEPING, 0 in the copy), for snapshots and snapshot files."""
    copy = cpu.copy()
    copy[list(L.JIT_BOOKKEEPING)] = 0
    return copy


def wait_for_compiles():
    """Wait until the compile thread has nothing left (for tests and
    benchmarks that want blocks in place)."""
    while True:
        with _lock:
            jobs = list(_jobs.values())
        if not jobs:
            return
        for job in jobs:
            job.done.wait()
