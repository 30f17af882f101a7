"""System instructions (SDM Vol. 3, 2.7; Vol. 2 pages).  Privileged ones
need CPL 0 (#GP(0) otherwise); real mode runs at CPL 0."""
from emu.core.jit import jit
from emu.core.exceptions import raise_fault
from emu.core.flags import get_eflags, set_eflags_raw
from emu.core.memory import read_mem, write_mem, write_linear
from emu.core.operands import read_operand, write_operand, set_reg
from emu.core.isa.segment import write_selector
from emu.core.segments import (protected_mode, read_descriptor, desc_base, desc_limit, desc_attr,
                               set_segment_cache, descriptor_address)
from emu.core.memory import tlb_flush, tlb_flush_page
from emu.core.layout import EFER, EFER_NXE, CR4_PAE, CR4_PGE, CR4_PSE, CR0_WP, SEG_BASE
from emu.core.layout import (FAULT, EA, EAX, EBX, ECX, EDX, ESP, EIP, NEXT_EIP, CPL, EFLAGS, HALTED,
                             EXIT_REASON, EXIT_HALT, CR0, CR2, CR3, CR4, DR0, GDTR_BASE, GDTR_LIMIT,
                             IDTR_BASE, IDTR_LIMIT, ICOUNT, TSC_OFFSET, SYSENTER_CS_MSR,
                             SYSENTER_ESP_MSR, SYSENTER_EIP_MSR, D_REG, D_RM, D_OSIZE, D_ASIZE,
                             D_SEG, D_MOD, D_OPCODE, SEG_SLOTS, SEG_STRIDE, SEG_SEL, SEG_ATTR,
                             LDTR, TR, CS, SS, ATTR_UNUSABLE, ATTR_DB, ATTR_G, CR0_PE, CR0_PG,
                             CR0_TS, CR0_EM, CR0_MP, CR0_NW, CR0_CD, CR0_ET, CR4_TSD, CR4_DE,
                             FLAG_VM, FLAG_IF, FLAG_RF, DESC_SCRATCH, VEC_GP, VEC_UD, VEC_NM,
                             VEC_NP, NO_ERROR_CODE)

# CPUID (SDM Vol. 2, CPUID): what this core implements, and nothing else.
CPUID_SIGNATURE = 0x00000633          # family 6, model 3, stepping 3 (also EDX at reset)
FEATURE_PSE = 1 << 3                   # 4 MiB pages
FEATURE_TSC = 1 << 4                   # RDTSC, CR4.TSD
FEATURE_MSR = 1 << 5                   # RDMSR/WRMSR
FEATURE_CX8 = 1 << 8                   # CMPXCHG8B
FEATURE_SEP = 1 << 11                  # SYSENTER/SYSEXIT
FEATURE_CMOV = 1 << 15                 # CMOVcc
FEATURE_PAE = 1 << 6                   # PAE paging
FEATURE_PGE = 1 << 13                  # global pages
EXT_FEATURE_NX = 1 << 20               # CPUID 80000001H EDX: execute-disable (EFER.NXE)
CPUID_FEATURES = (FEATURE_PSE | FEATURE_TSC | FEATURE_MSR | FEATURE_PAE | FEATURE_CX8
                  | FEATURE_SEP | FEATURE_PGE | FEATURE_CMOV)
MSR_EFER = 0xC0000080
VENDOR_EBX, VENDOR_EDX, VENDOR_ECX = 0x756E6547, 0x49656E69, 0x6C65746E   # "GenuineIntel"

MSR_TSC = 0x10
MSR_SYSENTER_CS = 0x174
MSR_SYSENTER_ESP = 0x175
MSR_SYSENTER_EIP = 0x176

CR0_WRITABLE = 0xE005003F             # PG CD NW AM WP NE ET TS EM MP PE
CR4_WRITABLE = 0xB4                   # TSD PSE PAE PGE: the CR4 features CPUID reports (VME, PVI, DE are #GP)


@jit
def privileged(cpu):
    """True when CPL is 0; otherwise #GP(0) is raised."""
    if cpu[CPL] != 0 or (cpu[EFLAGS] & FLAG_VM):
        raise_fault(cpu, VEC_GP, 0)
        return False
    return True


@jit
def hlt(g, d):
    """HLT: the processor stops until an interrupt (SDM Vol. 2, HLT)."""
    cpu = g.cpu
    if not privileged(cpu):
        return
    cpu[HALTED] = 1


@jit
def ud2(g, d):
    raise_fault(g.cpu, VEC_UD, NO_ERROR_CODE)


@jit
def ud1(g, d):
    raise_fault(g.cpu, VEC_UD, NO_ERROR_CODE)


@jit
def ud0(g, d):
    raise_fault(g.cpu, VEC_UD, NO_ERROR_CODE)


# --- descriptor-table registers ------------------------------------------------------

@jit
def load_table_register(g, d, base_slot):
    """LGDT/LIDT m16&32: with a 16-bit operand size only 24 bits of base."""
    cpu = g.cpu
    if not privileged(cpu):
        return
    amask = 0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF
    limit = read_mem(g, d[D_SEG], cpu[EA], 2)
    base = read_mem(g, d[D_SEG], (cpu[EA] + 2) & amask, 4)
    if cpu[FAULT] >= 0:
        return
    if d[D_OSIZE] == 2:
        base &= 0xFFFFFF
    cpu[base_slot] = base
    cpu[base_slot + 1] = limit


@jit
def store_table_register(g, d, base_slot):
    """SGDT/SIDT: limit then base; with a 16-bit operand size the top byte
    is stored as 0 (as 386 and later processors do)."""
    cpu = g.cpu
    amask = 0xFFFFFFFF if d[D_ASIZE] == 4 else 0xFFFF
    base = cpu[base_slot]
    if d[D_OSIZE] == 2:
        base &= 0xFFFFFF
    if write_mem(g, d[D_SEG], cpu[EA], 2, cpu[base_slot + 1]):
        write_mem(g, d[D_SEG], (cpu[EA] + 2) & amask, 4, base)


@jit
def lgdt(g, d):
    load_table_register(g, d, GDTR_BASE)


@jit
def lidt(g, d):
    load_table_register(g, d, IDTR_BASE)


@jit
def sgdt(g, d):
    store_table_register(g, d, GDTR_BASE)


@jit
def sidt(g, d):
    store_table_register(g, d, IDTR_BASE)


@jit
def store_selector(g, d, seg):
    """SLDT/STR (#UD outside protected mode), stored like MOV r/m, Sreg."""
    cpu = g.cpu
    if not protected_mode(cpu):
        raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
        return
    write_selector(g, d, cpu[SEG_SLOTS + seg * SEG_STRIDE + SEG_SEL])


@jit
def sldt(g, d):
    store_selector(g, d, LDTR)


@jit
def str_(g, d):
    store_selector(g, d, TR)


@jit
def system_selector_operand(g, d):
    """The selector operand of LLDT/LTR: #UD outside protected mode, #GP(0)
    above CPL 0; -1 when refused or the read faulted."""
    cpu = g.cpu
    if not protected_mode(cpu):
        raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
        return -1
    if not privileged(cpu):
        return -1
    sel = read_operand(g, d, 0) & 0xFFFF
    if cpu[FAULT] >= 0:
        return -1
    return sel


@jit
def lldt(g, d):
    """LLDT: a null selector makes LDTR unusable; otherwise a present LDT
    descriptor (type 2) from the GDT."""
    cpu = g.cpu
    sel = system_selector_operand(g, d)
    if sel < 0:
        return
    if (sel & 0xFFFC) == 0:
        set_segment_cache(cpu, LDTR, sel, 0, 0, ATTR_UNUSABLE)
        return
    dsc = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    if (sel & 4) or not read_descriptor(g, sel, dsc):
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return
    attr = desc_attr(dsc[1])
    if (attr & 0x1F) != 0x02:
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return
    if not attr & 0x80:
        raise_fault(cpu, VEC_NP, sel & 0xFFFC)
        return
    set_segment_cache(cpu, LDTR, sel, desc_base(dsc[0], dsc[1]), desc_limit(dsc[0], dsc[1]), attr)


@jit
def ltr(g, d):
    """LTR: an available TSS (type 1 or 9) from the GDT, marked busy."""
    cpu = g.cpu
    sel = system_selector_operand(g, d)
    if sel < 0:
        return
    if (sel & 0xFFFC) == 0:
        raise_fault(cpu, VEC_GP, 0)
        return
    dsc = cpu[DESC_SCRATCH:DESC_SCRATCH + 2]
    if (sel & 4) or not read_descriptor(g, sel, dsc):
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return
    lo = dsc[0]
    hi = dsc[1]
    attr = desc_attr(hi)
    if (attr & 0x1F) != 0x01 and (attr & 0x1F) != 0x09:
        raise_fault(cpu, VEC_GP, sel & 0xFFFC)
        return
    if not attr & 0x80:
        raise_fault(cpu, VEC_NP, sel & 0xFFFC)
        return
    if not write_linear(g, descriptor_address(g, sel) + 4, 4, hi | 0x200, False):
        return
    set_segment_cache(cpu, TR, sel, desc_base(lo, hi), desc_limit(lo, hi), attr | 2)


@jit
def smsw(g, d):
    """SMSW: low 16 bits of CR0 to memory; a 32-bit register gets all of CR0
    (bits 16-31 undefined on older processors; P6 stores CR0)."""
    cpu = g.cpu
    if d[D_MOD] == 3:
        set_reg(cpu, d[D_RM], d[D_OSIZE], cpu[CR0])
    else:
        write_mem(g, d[D_SEG], cpu[EA], 2, cpu[CR0])


@jit
def lmsw(g, d):
    """LMSW: loads PE MP EM TS; it can set PE but never clears it."""
    cpu = g.cpu
    if not privileged(cpu):
        return
    v = read_operand(g, d, 0)
    if cpu[FAULT] >= 0:
        return
    cr0 = cpu[CR0]
    cpu[CR0] = (cr0 & ~0xE) | (v & 0xE) | ((v | cr0) & CR0_PE)


@jit
def clts(g, d):
    cpu = g.cpu
    if privileged(cpu):
        cpu[CR0] &= ~CR0_TS


@jit
def invd(g, d):
    """No caches are modelled: only the privilege check remains."""
    privileged(g.cpu)


@jit
def wbinvd(g, d):
    privileged(g.cpu)


@jit
def invlpg(g, d):
    """INVLPG m: drop the TLB entry of the page holding m (global or not)."""
    cpu = g.cpu
    if not privileged(cpu):
        return
    lin = cpu[SEG_SLOTS + d[D_SEG] * SEG_STRIDE + SEG_BASE] + cpu[EA]
    tlb_flush_page(g, lin)


# --- control and debug registers ----------------------------------------------------------

@jit
def mov_from_cr(g, d):
    cpu = g.cpu
    n = d[D_REG]
    if n == 1 or n > 4:
        raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
        return
    if not privileged(cpu):
        return
    if n == 0:
        v = cpu[CR0]
    elif n == 2:
        v = cpu[CR2]
    elif n == 3:
        v = cpu[CR3]
    else:
        v = cpu[CR4]
    cpu[d[D_RM]] = v & 0xFFFFFFFF


@jit
def mov_to_cr(g, d):
    """MOV CRn, r32 (SDM Vol. 2, MOV—Move to/from Control Registers):
    reserved bits and PG without PE, or NW without CD, are #GP(0)."""
    cpu = g.cpu
    n = d[D_REG]
    if n == 1 or n > 4:
        raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
        return
    if not privileged(cpu):
        return
    v = cpu[d[D_RM]] & 0xFFFFFFFF
    if n == 0:
        if (v & ~CR0_WRITABLE) or ((v & CR0_PG) and not (v & CR0_PE)) \
                or ((v & CR0_NW) and not (v & CR0_CD)):
            raise_fault(cpu, VEC_GP, 0)
            return
        if (v ^ cpu[CR0]) & (CR0_PG | CR0_PE | CR0_WP):
            tlb_flush(g, False)          # a paging-mode change (SDM Vol. 3, 4.10.4.1)
        cpu[CR0] = v | CR0_ET
    elif n == 2:
        cpu[CR2] = v
    elif n == 3:
        # bits 5-11 are reserved without PAE, where they are part of the PDPT address
        cpu[CR3] = v & 0xFFFFFFF8
        tlb_flush(g, (cpu[CR4] & CR4_PGE) != 0)
    else:
        if v & ~CR4_WRITABLE:
            raise_fault(cpu, VEC_GP, 0)
            return
        if (v ^ cpu[CR4]) & (CR4_PSE | CR4_PAE | CR4_PGE):
            tlb_flush(g, False)
        cpu[CR4] = v


@jit
def debug_register_index(cpu, n):
    """DR4/DR5 alias DR6/DR7 (CR4.DE, which makes them #UD, is not offered).
    DR0-DR7 hold values; hardware breakpoints are not implemented yet."""
    if n == 4 or n == 5:
        if cpu[CR4] & CR4_DE:
            raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
            return -1
        return n + 2
    return n


@jit
def mov_from_dr(g, d):
    cpu = g.cpu
    n = debug_register_index(cpu, d[D_REG])
    if n < 0 or not privileged(cpu):
        return
    cpu[d[D_RM]] = cpu[DR0 + n] & 0xFFFFFFFF


@jit
def mov_to_dr(g, d):
    cpu = g.cpu
    n = debug_register_index(cpu, d[D_REG])
    if n < 0 or not privileged(cpu):
        return
    v = cpu[d[D_RM]] & 0xFFFFFFFF
    if n == 6:
        v = (v & 0xE00F) | 0xFFFF0FF0
    elif n == 7:
        v = (v & 0xFFFF2FFF) | 0x400
    cpu[DR0 + n] = v


# --- identification, time, model-specific registers --------------------------------------------

@jit
def cpuid(g, d):
    cpu = g.cpu
    leaf = cpu[EAX] & 0xFFFFFFFF
    a = b = c = dd = 0
    if leaf == 0:
        a = 1
        b = VENDOR_EBX
        dd = VENDOR_EDX
        c = VENDOR_ECX
    elif leaf == 1:
        a = CPUID_SIGNATURE
        dd = CPUID_FEATURES
    elif leaf == 0x80000000:
        a = 0x80000001            # the highest extended leaf
    elif leaf == 0x80000001:
        dd = EXT_FEATURE_NX
    cpu[EAX] = a
    cpu[EBX] = b
    cpu[ECX] = c
    cpu[EDX] = dd


@jit
def rdtsc(g, d):
    """The time-stamp counter is virtual: retired instructions plus an
    offset (WRMSR 10H), so runs are deterministic.  CR4.TSD makes it
    privileged."""
    cpu = g.cpu
    if (cpu[CR4] & CR4_TSD) and cpu[CPL] != 0:
        raise_fault(cpu, VEC_GP, 0)
        return
    t = (cpu[ICOUNT] + cpu[TSC_OFFSET]) & 0xFFFFFFFFFFFFFFFF
    cpu[EAX] = t & 0xFFFFFFFF
    cpu[EDX] = (t >> 32) & 0xFFFFFFFF


@jit
def rdmsr(g, d):
    cpu = g.cpu
    if not privileged(cpu):
        return
    n = cpu[ECX] & 0xFFFFFFFF
    if n == MSR_TSC:
        v = cpu[ICOUNT] + cpu[TSC_OFFSET]
    elif n == MSR_SYSENTER_CS:
        v = cpu[SYSENTER_CS_MSR]
    elif n == MSR_SYSENTER_ESP:
        v = cpu[SYSENTER_ESP_MSR]
    elif n == MSR_SYSENTER_EIP:
        v = cpu[SYSENTER_EIP_MSR]
    elif n == MSR_EFER:
        v = cpu[EFER]
    else:
        raise_fault(cpu, VEC_GP, 0)
        return
    cpu[EAX] = v & 0xFFFFFFFF
    cpu[EDX] = (v >> 32) & 0xFFFFFFFF


@jit
def wrmsr(g, d):
    cpu = g.cpu
    if not privileged(cpu):
        return
    n = cpu[ECX] & 0xFFFFFFFF
    v = ((cpu[EDX] & 0xFFFFFFFF) << 32) | (cpu[EAX] & 0xFFFFFFFF)
    if n == MSR_TSC:
        cpu[TSC_OFFSET] = v - cpu[ICOUNT]
    elif n == MSR_SYSENTER_CS:
        cpu[SYSENTER_CS_MSR] = v & 0xFFFF
    elif n == MSR_SYSENTER_ESP:
        cpu[SYSENTER_ESP_MSR] = v & 0xFFFFFFFF
    elif n == MSR_SYSENTER_EIP:
        cpu[SYSENTER_EIP_MSR] = v & 0xFFFFFFFF
    elif n == MSR_EFER:
        # only NXE exists here: SCE (SYSCALL) and LME (long mode) are not offered
        if v & ~EFER_NXE:
            raise_fault(cpu, VEC_GP, 0)
            return
        if (v ^ cpu[EFER]) & EFER_NXE:
            tlb_flush(g, False)
        cpu[EFER] = v
    else:
        raise_fault(cpu, VEC_GP, 0)


FLAT_CODE_ATTR = 0x9B | ATTR_DB | ATTR_G
FLAT_DATA_ATTR = 0x93 | ATTR_DB | ATTR_G


@jit
def sysenter(g, d):
    """SYSENTER: flat ring-0 CS/SS from SYSENTER_CS (SS = CS + 8), ESP and
    EIP from their MSRs; clears VM, IF, RF.  #GP(0) in real mode or when
    SYSENTER_CS is null (SDM Vol. 2, SYSENTER)."""
    cpu = g.cpu
    cs = cpu[SYSENTER_CS_MSR] & 0xFFFC
    if not (cpu[CR0] & CR0_PE) or cs == 0:
        raise_fault(cpu, VEC_GP, 0)
        return
    f = get_eflags(cpu)
    set_eflags_raw(cpu, f & ~(FLAG_VM | FLAG_IF | FLAG_RF))
    set_segment_cache(cpu, CS, cs, 0, 0xFFFFFFFF, FLAT_CODE_ATTR)
    set_segment_cache(cpu, SS, cs + 8, 0, 0xFFFFFFFF, FLAT_DATA_ATTR)
    cpu[CPL] = 0
    cpu[ESP] = cpu[SYSENTER_ESP_MSR] & 0xFFFFFFFF
    cpu[NEXT_EIP] = cpu[SYSENTER_EIP_MSR] & 0xFFFFFFFF


@jit
def sysexit(g, d):
    """SYSEXIT: back to flat ring 3: CS = SYSENTER_CS + 16, SS = + 24 (RPL
    3), ESP = ECX, EIP = EDX.  Only at CPL 0 in protected mode."""
    cpu = g.cpu
    cs = cpu[SYSENTER_CS_MSR] & 0xFFFC
    if not protected_mode(cpu) or cpu[CPL] != 0 or cs == 0:
        raise_fault(cpu, VEC_GP, 0)
        return
    set_segment_cache(cpu, CS, (cs + 16) | 3, 0, 0xFFFFFFFF, FLAT_CODE_ATTR | 0x60)
    set_segment_cache(cpu, SS, (cs + 24) | 3, 0, 0xFFFFFFFF, FLAT_DATA_ATTR | 0x60)
    cpu[CPL] = 3
    cpu[ESP] = cpu[ECX] & 0xFFFFFFFF
    cpu[NEXT_EIP] = cpu[EDX] & 0xFFFFFFFF


# --- x87 without an FPU -----------------------------------------------------------------------------

@jit
def wait(g, d):
    """WAIT/FWAIT: #NM when CR0.MP and CR0.TS are both set; else nothing (no FPU)."""
    cpu = g.cpu
    if (cpu[CR0] & CR0_MP) and (cpu[CR0] & CR0_TS):
        raise_fault(cpu, VEC_NM, NO_ERROR_CODE)


@jit
def esc(g, d):
    """x87 opcodes D8-DF: CPUID reports no FPU.  #NM when CR0.EM or CR0.TS
    (so an OS can emulate the FPU), otherwise #UD."""
    cpu = g.cpu
    if cpu[CR0] & (CR0_EM | CR0_TS):
        raise_fault(cpu, VEC_NM, NO_ERROR_CODE)
    else:
        raise_fault(cpu, VEC_UD, NO_ERROR_CODE)
