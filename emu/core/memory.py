"""Guest memory access: segmentation checks, paging, physical RAM.

Every guest-controlled address is checked against the RAM array's length
before it is used as an index: physical addresses outside RAM read as all
ones and ignore writes (an unassigned hole), so no guest can reach host
memory.  Writes to a page that holds decoded instructions bump the page's
generation, which invalidates its icache entries (self-modifying code).
"""
import numpy as np

from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.layout import (CR0, CR2, CR3, CR4, CR0_PG, CR0_WP, CR4_PSE, A20_MASK, CPL, CS, SS,
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

@jit
def phys_read8(g, pa):
    if pa < g.mem.shape[0]:
        return np.int64(g.mem[pa])
    return 0xFF


@jit
def phys_read(g, pa, size):
    mem = g.mem
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


# --- paging (32-bit, 4 KiB and 4 MiB pages; SDM Vol. 3, 4.3) -----------------

@jit
def access_allowed(cpu, rights, write, user, lin, err):
    """U/S and R/W of the combined entries (SDM Vol. 3, 4.6): user accesses
    need U/S; writes need R/W for users, and for the supervisor when
    CR0.WP is set.  A refusal is #PF with P = 1 and CR2 = lin."""
    if (user and not (rights & PTE_US)) or \
            (write and not (rights & PTE_RW) and (user or (cpu[CR0] & CR0_WP))):
        cpu[CR2] = lin
        raise_fault(cpu, VEC_PF, err | 1)
        return False
    return True


@jit
def page_walk(g, lin, access, user):
    """Translate a linear address; returns the physical address, or -1 with
    #PF raised (CR2 = lin).  Sets accessed and dirty bits as hardware does."""
    cpu = g.cpu
    write = access == ACCESS_WRITE
    pde_addr = (cpu[CR3] & 0xFFFFF000) + ((lin >> 22) << 2)
    pde = phys_read(g, pde_addr, 4)
    err = (2 if write else 0) | (4 if user else 0)
    if not pde & PTE_P:
        cpu[CR2] = lin
        raise_fault(cpu, VEC_PF, err)
        return -1
    if (pde & PTE_PS) and (cpu[CR4] & CR4_PSE):
        if not access_allowed(cpu, pde, write, user, lin, err):
            return -1
        newpde = pde | PTE_A | (PTE_D if write else 0)
        if newpde != pde:
            phys_write(g, pde_addr, 4, newpde)
        return ((pde & 0xFFC00000) | (lin & 0x3FFFFF)) & cpu[A20_MASK]
    pte_addr = (pde & 0xFFFFF000) + (((lin >> 12) & 0x3FF) << 2)
    pte = phys_read(g, pte_addr, 4)
    if not pte & PTE_P:
        cpu[CR2] = lin
        raise_fault(cpu, VEC_PF, err)
        return -1
    if not access_allowed(cpu, pde & pte, write, user, lin, err):
        return -1
    if not pde & PTE_A:
        phys_write(g, pde_addr, 4, pde | PTE_A)
    newpte = pte | PTE_A | (PTE_D if write else 0)
    if newpte != pte:
        phys_write(g, pte_addr, 4, newpte)
    return ((pte & 0xFFFFF000) | (lin & PAGE_MASK)) & cpu[A20_MASK]


@jit
def translate(g, lin, access, user):
    cpu = g.cpu
    if cpu[CR0] & CR0_PG:
        return page_walk(g, lin & 0xFFFFFFFF, access, user)
    return lin & cpu[A20_MASK]


@jit
def user_access(cpu):
    return cpu[CPL] == 3


# --- linear ---------------------------------------------------------------------

@jit
def read_linear(g, lin, size, access, user):
    """Read ``size`` bytes at a linear address; -1 with a fault pending if
    paging refuses (value is then meaningless)."""
    lin &= 0xFFFFFFFF
    if ((lin & PAGE_MASK) + size) <= 0x1000:
        pa = translate(g, lin, access, user)
        if pa < 0:
            return 0
        return phys_read(g, pa, size)
    v = 0
    for i in range(size):
        pa = translate(g, (lin + i) & 0xFFFFFFFF, access, user)
        if pa < 0:
            return 0
        v |= phys_read8(g, pa) << (8 * i)
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
        phys_write(g, pa, size, value)
        return True
    last = (lin + size - 1) & 0xFFFFFFFF
    pa1 = translate(g, lin, ACCESS_WRITE, user)
    if pa1 < 0:
        return False
    pa2 = translate(g, last & 0xFFFFF000, ACCESS_WRITE, user)
    if pa2 < 0:
        return False
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
