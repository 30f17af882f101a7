"""Guest memory access: segmentation checks, paging, physical RAM.

Every guest-controlled address is checked against the RAM array's length
before it is used as an index: physical addresses outside RAM read as all
ones and ignore writes (an unassigned hole), so no guest can reach host
memory — unless a device written in Python claimed the range (MMIO): then
the access aborts the instruction with an MMIO exit, Python serves it, and
the instruction runs again and finds the served value.  Writes to a page that holds decoded instructions bump the page's
generation, which invalidates its icache entries (self-modifying code).
"""
import numpy as np

from emu.core.jit import jit, jit_inline
from emu.core.exceptions import raise_fault
from devices.chips.layout import MMIO_COUNT, MMIO_TABLE, MMIO_MAX, ROM_LOCKED
from emu.core.layout import (MMIO_ADDR, MMIO_SIZE, MMIO_DIR, MMIO_DATA, MMIO_READ_READY,
                             MMIO_READ_VALUE, MMIO_WRITE_DONE, VEC_MMIO_EXIT, FAULT, FAULT_ERR)
from emu.core.layout import (WATCH_COUNT, WATCH_FIRST, WATCH_STRIDE, WATCH_MAX, WATCH_HIT_ADDR,
                             WATCH_HIT_SIZE, WATCH_HIT_KIND, WATCH_READ, WATCH_WRITE,
                             EXIT_REASON, EXIT_NONE, EXIT_WATCH)
from emu.core.layout import (CR0, CR2, CR3, CR4, CR0_PG, CR0_WP, CR4_PSE, CR4_PAE, CR4_PGE, EFER,
                             EFER_NXE, A20_MASK, CPL, CS, SS,
                             SEG_SLOTS, SEG_STRIDE, SEG_BASE, SEG_LIMIT, SEG_ATTR, ATTR_UNUSABLE,
                             ATTR_DB, CR0_PE, VEC_GP, VEC_SS, VEC_PF)

PAGE_SHIFT = 12
PAGE_MASK = 0xFFF
PM_CODE = 1          # page holds decoded instructions
PM_DIRTY = 2         # written since the dirty log was last cleared
PM_GEN_ONE = 256     # generation counter lives above the flag bits

ACCESS_READ = 0
ACCESS_WRITE = 1
ACCESS_EXEC = 2

PTE_P = 1
PTE_RW = 2
PTE_US = 4
PTE_A = 0x20
PTE_D = 0x40
PTE_PS = 0x80


# --- physical ---------------------------------------------------------------

BIOS_ROM = 0xF0000            # the 64 KiB system BIOS, F0000-FFFFF ...
BIOS_ALIAS = 0xFFFF0000       # ... and again at the top of the 4 GiB space (the reset vector)
BIOS_ALIAS_SHIFT = BIOS_ALIAS - BIOS_ROM


@jit
def phys_read8(g, pa):
    if pa < g.mem.shape[0]:
        return np.int64(g.mem[pa])
    if BIOS_ALIAS <= pa < 0x100000000 and g.dev[ROM_LOCKED] and pa - BIOS_ALIAS_SHIFT < g.mem.shape[0]:
        return np.int64(g.mem[pa - BIOS_ALIAS_SHIFT])
    return 0xFF


@jit
def mmio_owner(g, pa):
    """True when ``pa`` (outside RAM) belongs to a Python device's MMIO range."""
    dev = g.dev
    for i in range(min(dev[MMIO_COUNT], MMIO_MAX)):
        if dev[MMIO_TABLE + 2 * i] <= pa < dev[MMIO_TABLE + 2 * i + 1]:
            return True
    return False


@jit
def mmio_read(g, pa, size):
    """A read from a Python device: the value served for this instruction's
    retry, or an MMIO exit (the instruction is aborted and run again)."""
    cpu = g.cpu
    if cpu[MMIO_READ_READY] == pa + 1:
        return cpu[MMIO_READ_VALUE]
    if cpu[FAULT] < 0:
        cpu[MMIO_ADDR] = pa
        cpu[MMIO_SIZE] = size
        cpu[MMIO_DIR] = 0
        cpu[FAULT] = VEC_MMIO_EXIT
        cpu[FAULT_ERR] = -1
    return 0


@jit
def mmio_write(g, pa, size, value):
    cpu = g.cpu
    if cpu[MMIO_WRITE_DONE] == pa + 1:
        return
    if cpu[FAULT] < 0:
        cpu[MMIO_ADDR] = pa
        cpu[MMIO_SIZE] = size
        cpu[MMIO_DIR] = 1
        cpu[MMIO_DATA] = value & ((1 << (8 * size)) - 1)
        cpu[FAULT] = VEC_MMIO_EXIT
        cpu[FAULT_ERR] = -1


@jit
def phys_read(g, pa, size):
    mem = g.mem
    if pa >= mem.shape[0] and g.dev[MMIO_COUNT] > 0 and mmio_owner(g, pa):
        return mmio_read(g, pa, size)
    if pa + size <= mem.shape[0]:
        v = np.int64(mem[pa])
        if size >= 2:
            v |= np.int64(mem[pa + 1]) << 8
            if size >= 4:
                v |= (np.int64(mem[pa + 2]) << 16) | (np.int64(mem[pa + 3]) << 24)
                if size == 8:
                    v |= (np.int64(mem[pa + 4]) << 32) | (np.int64(mem[pa + 5]) << 40) | \
                         (np.int64(mem[pa + 6]) << 48) | (np.int64(mem[pa + 7]) << 56)
        return v
    v = 0
    for i in range(size):
        v |= phys_read8(g, pa + i) << (8 * i)
    return v


@jit
def note_write(g, page):
    """Dirty-log a page and invalidate the decoded instructions it holds."""
    pm = g.pm
    if page < pm.shape[0]:
        m = pm[page]
        if m & PM_CODE:
            m = (m + PM_GEN_ONE) & ~PM_CODE
        pm[page] = m | PM_DIRTY


@jit
def phys_write(g, pa, size, value):
    mem = g.mem
    if (pa >> 16) == (BIOS_ROM >> 16) and g.dev[ROM_LOCKED]:
        return                    # the BIOS ROM ignores writes
    if pa >= mem.shape[0] and g.dev[MMIO_COUNT] > 0 and mmio_owner(g, pa):
        mmio_write(g, pa, size, value)
        return
    if pa + size <= mem.shape[0]:
        for i in range(size):
            mem[pa + i] = (value >> (8 * i)) & 0xFF
        note_write(g, pa >> PAGE_SHIFT)
        if ((pa + size - 1) >> PAGE_SHIFT) != (pa >> PAGE_SHIFT):
            note_write(g, (pa + size - 1) >> PAGE_SHIFT)
    else:
        for i in range(size):
            a = pa + i
            if a < mem.shape[0]:
                mem[a] = (value >> (8 * i)) & 0xFF
                note_write(g, a >> PAGE_SHIFT)


# --- paging (SDM Vol. 3, chapter 4): 32-bit with 4 KiB and 4 MiB pages, PAE
# with 4 KiB and 2 MiB pages, global pages, NX; a software TLB in front ------

PTE_G = 0x100
PTE_NX = -0x8000000000000000      # bit 63 (as int64)
PF_P = 1             # #PF error code bits (SDM Vol. 3, 4.7)
PF_W = 2
PF_U = 4
PF_RSVD = 8
PF_I = 16
PAE_ADDR = 0x0000000FFFFFF000     # MAXPHYADDR = 36
PAE_RESERVED = 0x7FFFFFF000000000 # bits 36-62 (bit 63 too unless EFER.NXE)
PDPTE_RESERVED = 0x1E6            # bits 1, 2, 5-8 of a PAE PDPTE
PSE_RESERVED = 0x3FE000           # bits 13-21 of a 4 MiB PDE (no PSE-36)
PAE_LARGE_RESERVED = 0x1FE000     # bits 13-20 of a 2 MiB PDE

# a TLB entry: (linear page + 1, physical page | T_* rights)
T_USER = 1           # U/S of every level
T_WRITE = 2          # R/W of every level
T_DIRTY = 4          # D already set: writes need no walk
T_GLOBAL = 8
T_NX = 16            # execute-disable
TLB_TAG = 0
TLB_VALUE = 1


@jit
def tlb_flush(g, keep_global):
    """Drop translations: all of them, or all but global pages (MOV CR3 with
    CR4.PGE, SDM Vol. 3, 4.10.4.1)."""
    tlb = g.tlb
    for i in range(tlb.shape[0]):
        if not (keep_global and tlb[i, TLB_VALUE] & T_GLOBAL):
            tlb[i, TLB_TAG] = 0


@jit
def tlb_flush_page(g, lin):
    """INVLPG: drop the translation of one page, global or not."""
    tlb = g.tlb
    vpn = (lin & 0xFFFFFFFF) >> PAGE_SHIFT
    i = vpn & (tlb.shape[0] - 1)
    if tlb[i, TLB_TAG] == vpn + 1:
        tlb[i, TLB_TAG] = 0


@jit
def tlb_fill(g, lin, pa, rights, dirty, global_page, nx):
    tlb = g.tlb
    vpn = lin >> PAGE_SHIFT
    i = vpn & (tlb.shape[0] - 1)
    v = (pa & ~PAGE_MASK)
    if rights & PTE_US:
        v |= T_USER
    if rights & PTE_RW:
        v |= T_WRITE
    if dirty:
        v |= T_DIRTY
    if global_page:
        v |= T_GLOBAL
    if nx:
        v |= T_NX
    tlb[i, TLB_VALUE] = v
    tlb[i, TLB_TAG] = vpn + 1


@jit
def page_fault(cpu, lin, err):
    if cpu[FAULT] < 0:
        cpu[CR2] = lin        # the first fault wins (raise_fault), and its address with it
    raise_fault(cpu, VEC_PF, err)
    return -1


@jit
def access_refused(cpu, rights, write, user, fetch, nx):
    """U/S and R/W of the combined entries (SDM Vol. 3, 4.6): user accesses
    need U/S; writes need R/W for users, and for the supervisor when
    CR0.WP is set; with EFER.NXE, fetches need XD clear."""
    return (user and not (rights & PTE_US)) or \
        (write and not (rights & PTE_RW) and (user or (cpu[CR0] & CR0_WP) != 0)) or \
        (fetch and nx)


@jit
def access_allowed(cpu, rights, write, user, fetch, nx, lin, err):
    """access_refused, where a refusal is #PF with P = 1 and CR2 = lin."""
    if access_refused(cpu, rights, write, user, fetch, nx):
        page_fault(cpu, lin, err | PF_P)
        return False
    return True


@jit
def set_accessed_dirty(g, addr, entry, dirty):
    """Set A (and D) in an entry's low dword as the processor does."""
    new = entry | PTE_A | (PTE_D if dirty else 0)
    if (new & 0xFFFFFFFF) != (entry & 0xFFFFFFFF):
        phys_write(g, addr, 4, new & 0xFFFFFFFF)


@jit
def walk_32(g, lin, write, user, fetch, err):
    """32-bit paging (SDM Vol. 3, 4.3)."""
    cpu = g.cpu
    pde_addr = (cpu[CR3] & 0xFFFFF000) + ((lin >> 22) << 2)
    pde = phys_read(g, pde_addr, 4)
    if not pde & PTE_P:
        return page_fault(cpu, lin, err)
    pge = (cpu[CR4] & CR4_PGE) != 0
    if (pde & PTE_PS) and (cpu[CR4] & CR4_PSE):
        if pde & PSE_RESERVED:
            return page_fault(cpu, lin, err | PF_P | PF_RSVD)
        if not access_allowed(cpu, pde, write, user, False, False, lin, err):
            return -1
        set_accessed_dirty(g, pde_addr, pde, write)
        pa = ((pde & 0xFFC00000) | (lin & 0x3FFFFF)) & cpu[A20_MASK]
        tlb_fill(g, lin, pa, pde, write or (pde & PTE_D) != 0, pge and (pde & PTE_G) != 0, False)
        return pa
    pte_addr = (pde & 0xFFFFF000) + (((lin >> 12) & 0x3FF) << 2)
    pte = phys_read(g, pte_addr, 4)
    if not pte & PTE_P:
        return page_fault(cpu, lin, err)
    if not access_allowed(cpu, pde & pte, write, user, False, False, lin, err):
        return -1
    set_accessed_dirty(g, pde_addr, pde, False)
    set_accessed_dirty(g, pte_addr, pte, write)
    pa = ((pte & 0xFFFFF000) | (lin & PAGE_MASK)) & cpu[A20_MASK]
    tlb_fill(g, lin, pa, pde & pte, write or (pte & PTE_D) != 0, pge and (pte & PTE_G) != 0, False)
    return pa


@jit
def walk_pae(g, lin, write, user, fetch, err):
    """PAE paging (SDM Vol. 3, 4.4): PDPTE, PDE (2 MiB pages), PTE, 64-bit
    entries, XD in bit 63 when EFER.NXE.  The PDPTEs are read at walk
    time rather than cached at MOV CR3."""
    cpu = g.cpu
    nxe = (cpu[EFER] & EFER_NXE) != 0
    reserved = PAE_RESERVED if nxe else (PAE_RESERVED | PTE_NX)
    pdpte = phys_read(g, (cpu[CR3] & 0xFFFFFFE0) + ((lin >> 30) << 3), 8)
    if not pdpte & PTE_P:
        return page_fault(cpu, lin, err)
    if pdpte & (PDPTE_RESERVED | PAE_RESERVED | PTE_NX):
        return page_fault(cpu, lin, err | PF_P | PF_RSVD)
    pde_addr = (pdpte & PAE_ADDR) + (((lin >> 21) & 0x1FF) << 3)
    pde = phys_read(g, pde_addr, 8)
    if not pde & PTE_P:
        return page_fault(cpu, lin, err)
    if pde & reserved:
        return page_fault(cpu, lin, err | PF_P | PF_RSVD)
    pge = (cpu[CR4] & CR4_PGE) != 0
    if pde & PTE_PS:
        if pde & PAE_LARGE_RESERVED:
            return page_fault(cpu, lin, err | PF_P | PF_RSVD)
        nx = nxe and (pde & PTE_NX) != 0
        if not access_allowed(cpu, pde, write, user, fetch, nx, lin, err):
            return -1
        set_accessed_dirty(g, pde_addr, pde, write)
        pa = ((pde & 0xFFFE00000) | (lin & 0x1FFFFF)) & cpu[A20_MASK]
        tlb_fill(g, lin, pa, pde, write or (pde & PTE_D) != 0, pge and (pde & PTE_G) != 0, nx)
        return pa
    pte_addr = (pde & PAE_ADDR) + (((lin >> 12) & 0x1FF) << 3)
    pte = phys_read(g, pte_addr, 8)
    if not pte & PTE_P:
        return page_fault(cpu, lin, err)
    if pte & reserved:
        return page_fault(cpu, lin, err | PF_P | PF_RSVD)
    nx = nxe and ((pde | pte) & PTE_NX) != 0
    if not access_allowed(cpu, pde & pte, write, user, fetch, nx, lin, err):
        return -1
    set_accessed_dirty(g, pde_addr, pde, False)
    set_accessed_dirty(g, pte_addr, pte, write)
    pa = ((pte & PAE_ADDR) | (lin & PAGE_MASK)) & cpu[A20_MASK]
    tlb_fill(g, lin, pa, pde & pte, write or (pte & PTE_D) != 0, pge and (pte & PTE_G) != 0, nx)
    return pa


@jit
def page_walk(g, lin, access, user):
    """Translate a linear address through the page tables; returns the
    physical address, or -1 with #PF raised (CR2 = lin).  Sets accessed and
    dirty bits as hardware does and fills the TLB."""
    cpu = g.cpu
    write = access == ACCESS_WRITE
    fetch = access == ACCESS_EXEC
    pae = (cpu[CR4] & CR4_PAE) != 0
    err = (PF_W if write else 0) | (PF_U if user else 0)
    if fetch and pae and (cpu[EFER] & EFER_NXE):
        err |= PF_I
    if pae:
        return walk_pae(g, lin, write, user, fetch, err)
    return walk_32(g, lin, write, user, fetch, err)


@jit
def plain_table_entry(g, addr):
    """The 32-bit paging entry at physical ``addr``, or -1 when reading it
    or setting its A and D bits could be more than plain RAM: outside RAM
    (holes, MMIO, the ROM alias), in the locked BIOS ROM, or on a page
    holding decoded code (the write would invalidate it)."""
    if addr + 4 > g.mem.shape[0] or ((addr >> 16) == (BIOS_ROM >> 16) and g.dev[ROM_LOCKED]):
        return -1
    page = addr >> PAGE_SHIFT
    if page >= g.pm.shape[0] or g.pm[page] & PM_CODE:
        return -1
    return phys_read(g, addr, 4)


@jit
def quiet_walk(g, lin, write, user, keep_vpn):
    """page_walk for the fast tier and compiled blocks (which leave faults,
    devices and self-modifying code to the generic path): the walk, its A
    and D bits and its TLB fill, when 32-bit paging maps ``lin`` for the
    access through entries in plain RAM (plain_table_entry) and the fill
    does not evict ``keep_vpn``'s translation (the code page the caller
    runs on); else -1, and nothing has changed.  Checked first, then
    walked by walk_32, so both leave the same state."""
    cpu = g.cpu
    if cpu[CR4] & CR4_PAE:
        return -1
    vpn = lin >> PAGE_SHIFT
    mask = g.tlb.shape[0] - 1
    if vpn != keep_vpn and (vpn & mask) == (keep_vpn & mask):
        return -1
    pde = plain_table_entry(g, (cpu[CR3] & 0xFFFFF000) + ((lin >> 22) << 2))
    if pde < 0 or not pde & PTE_P:
        return -1
    rights = pde
    if (pde & PTE_PS) and (cpu[CR4] & CR4_PSE):
        if pde & PSE_RESERVED:
            return -1
    else:
        pte = plain_table_entry(g, (pde & 0xFFFFF000) + (((lin >> 12) & 0x3FF) << 2))
        if pte < 0 or not pte & PTE_P:
            return -1
        rights &= pte
    if access_refused(cpu, rights, write, user, False, False):
        return -1
    return walk_32(g, lin, write, user, False, 0)


@jit
def translate(g, lin, access, user):
    """Linear to physical.  Kept tiny so LLVM inlines it: with paging off it
    is one mask; the TLB and the walk live in translate_paged."""
    cpu = g.cpu
    if not cpu[CR0] & CR0_PG:
        return lin & cpu[A20_MASK]
    return translate_paged(g, lin, access, user)


@jit_inline
def tlb_lookup(g, lin, access, user):
    """The physical address of ``lin`` (32 bits) from the TLB when its entry
    grants the access, else -1: a miss, U/S for a user access, W (or a
    supervisor write with CR0.WP clear) for a write, whose entry must also
    be dirty (a write through a clean entry walks again to set D), XD for a
    fetch."""
    tlb = g.tlb
    vpn = lin >> PAGE_SHIFT
    i = vpn & (tlb.shape[0] - 1)
    if tlb[i, TLB_TAG] != vpn + 1:
        return -1
    e = tlb[i, TLB_VALUE]
    if user and not (e & T_USER):
        return -1
    if access == ACCESS_WRITE:
        if not (e & T_DIRTY) or not ((e & T_WRITE) or (not user and not g.cpu[CR0] & CR0_WP)):
            return -1
    elif access == ACCESS_EXEC and e & T_NX:
        return -1
    return (e & ~PAGE_MASK) | (lin & PAGE_MASK)


@jit
def translate_paged(g, lin, access, user):
    lin &= 0xFFFFFFFF
    pa = tlb_lookup(g, lin, access, user)
    if pa >= 0:
        return pa
    return page_walk(g, lin, access, user)


@jit
def user_access(cpu):
    return cpu[CPL] == 3


# --- linear ---------------------------------------------------------------------

@jit
def watch_check(g, lin, size, kind):
    """A data access that succeeded: when it overlaps a watchpoint of its
    kind, the run ends once the instruction retires (EXIT_WATCH; a faulting
    instruction's hit is dropped by the run loop).  Like the debug
    registers' data breakpoints (SDM Vol. 3, 17.3.1.2) this is a trap:
    the access has happened.  The first hit of an instruction is kept."""
    cpu = g.cpu
    if cpu[EXIT_REASON] != EXIT_NONE:
        return
    end = lin + size
    for i in range(min(cpu[WATCH_COUNT], WATCH_MAX)):
        w = WATCH_FIRST + WATCH_STRIDE * i
        if (cpu[w + 2] & kind) and lin < cpu[w + 1] and cpu[w] < end:
            cpu[EXIT_REASON] = EXIT_WATCH
            cpu[WATCH_HIT_ADDR] = lin
            cpu[WATCH_HIT_SIZE] = size
            cpu[WATCH_HIT_KIND] = kind
            return


@jit
def read_linear(g, lin, size, access, user):
    """Read ``size`` bytes at a linear address; -1 with a fault pending if
    paging refuses (value is then meaningless)."""
    lin &= 0xFFFFFFFF
    if ((lin & PAGE_MASK) + size) <= 0x1000:
        pa = translate(g, lin, access, user)
        if pa < 0:
            return 0
        if g.cpu[WATCH_COUNT] > 0 and access == ACCESS_READ:
            watch_check(g, lin, size, WATCH_READ)
        return phys_read(g, pa, size)
    v = 0
    for i in range(size):
        pa = translate(g, (lin + i) & 0xFFFFFFFF, access, user)
        if pa < 0:
            return 0
        v |= phys_read8(g, pa) << (8 * i)
    if g.cpu[WATCH_COUNT] > 0 and access == ACCESS_READ:
        watch_check(g, lin, size, WATCH_READ)
    return v


@jit
def write_linear(g, lin, size, value, user):
    """Write at a linear address.  Translates every page first, so a write
    that faults on its second page changes nothing."""
    lin &= 0xFFFFFFFF
    if ((lin & PAGE_MASK) + size) <= 0x1000:
        pa = translate(g, lin, ACCESS_WRITE, user)
        if pa < 0:
            return False
        if g.cpu[WATCH_COUNT] > 0:
            watch_check(g, lin, size, WATCH_WRITE)
        phys_write(g, pa, size, value)
        return True
    last = (lin + size - 1) & 0xFFFFFFFF
    pa1 = translate(g, lin, ACCESS_WRITE, user)
    if pa1 < 0:
        return False
    pa2 = translate(g, last & 0xFFFFF000, ACCESS_WRITE, user)
    if pa2 < 0:
        return False
    if g.cpu[WATCH_COUNT] > 0:
        watch_check(g, lin, size, WATCH_WRITE)
    for i in range(size):
        a = (lin + i) & 0xFFFFFFFF
        if (a >> PAGE_SHIFT) == (lin >> PAGE_SHIFT):
            phys_write(g, pa1 + i, 1, value >> (8 * i))
        else:
            phys_write(g, pa2 + (a & PAGE_MASK), 1, value >> (8 * i))
    return True


# --- segmented (SDM Vol. 3, 5.3 limit checking, 5.4-5.5 type checking) ---------

@jit
def segment_fault(cpu, seg):
    if seg == SS:
        raise_fault(cpu, VEC_SS, 0)
    else:
        raise_fault(cpu, VEC_GP, 0)


@jit
def segment_check(cpu, seg, off, size, access):
    """Limit and type checks of an access to seg:off; raises #GP(0) (#SS(0)
    for SS) and returns False when it is not allowed."""
    s = SEG_SLOTS + seg * SEG_STRIDE
    attr = cpu[s + SEG_ATTR]
    limit = cpu[s + SEG_LIMIT]
    if cpu[CR0] & CR0_PE:
        if attr & ATTR_UNUSABLE:
            segment_fault(cpu, seg)
            return False
        typ = attr & 0xF
        if attr & 0x10:
            if typ & 8:          # code: never writable, readable if bit 1
                if access == ACCESS_WRITE or (access == ACCESS_READ and not typ & 2):
                    segment_fault(cpu, seg)
                    return False
            elif access == ACCESS_WRITE and not typ & 2:
                segment_fault(cpu, seg)
                return False
    last = off + size - 1
    if (attr & 0x1C) == 0x14:    # expand-down data segment: valid offsets are above the limit
        upper = 0xFFFFFFFF if attr & ATTR_DB else 0xFFFF
        if off <= limit or last > upper:
            segment_fault(cpu, seg)
            return False
    elif last > limit:
        segment_fault(cpu, seg)
        return False
    return True


@jit
def read_mem(g, seg, off, size):
    cpu = g.cpu
    if not segment_check(cpu, seg, off, size, ACCESS_READ):
        return 0
    base = cpu[SEG_SLOTS + seg * SEG_STRIDE + SEG_BASE]
    return read_linear(g, base + off, size, ACCESS_READ, cpu[CPL] == 3)


@jit
def write_mem(g, seg, off, size, value):
    cpu = g.cpu
    if not segment_check(cpu, seg, off, size, ACCESS_WRITE):
        return False
    base = cpu[SEG_SLOTS + seg * SEG_STRIDE + SEG_BASE]
    return write_linear(g, base + off, size, value, cpu[CPL] == 3)


@jit
def check_write(g, seg, off, size):
    """Probe that seg:off is writable (segment and page) without writing:
    instructions that write several places check first so that a fault
    leaves nothing half done."""
    cpu = g.cpu
    if not segment_check(cpu, seg, off, size, ACCESS_WRITE):
        return False
    lin = (cpu[SEG_SLOTS + seg * SEG_STRIDE + SEG_BASE] + off) & 0xFFFFFFFF
    if cpu[CR0] & CR0_PG:
        user = cpu[CPL] == 3
        if translate(g, lin, ACCESS_WRITE, user) < 0:
            return False
        last = (lin + size - 1) & 0xFFFFFFFF
        if (last >> PAGE_SHIFT) != (lin >> PAGE_SHIFT):
            if translate(g, last, ACCESS_WRITE, user) < 0:
                return False
    return True


@jit
def fetch_code(g, eip, size):
    """Read instruction bytes at CS:eip (execute access)."""
    cpu = g.cpu
    if not segment_check(cpu, CS, eip, size, ACCESS_EXEC):
        return 0
    base = cpu[SEG_SLOTS + CS * SEG_STRIDE + SEG_BASE]
    return read_linear(g, base + eip, size, ACCESS_EXEC, cpu[CPL] == 3)
