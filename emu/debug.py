"""Seeing inside a machine: a page-walk explainer and a disassembler view.

``m.page_walk(vaddr)`` follows CR3 to the physical address the way the MMU
does (SDM Vol. 3, chapter 4: 32-bit paging with 4 KiB and 4 MiB pages, PAE
with 4 KiB and 2 MiB pages, NX), and tells at each level which entry it read
and which bits decided the outcome, or which #PF it would raise.  It reads
guest memory and changes nothing (no accessed or dirty bits are set, the TLB
is not consulted).  ``m.disassemble(addr, n)`` lists instructions.
"""
from dataclasses import dataclass, field

from emu.core import layout as L

P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100
NX_BIT = 1 << 63
PAE_ADDR = 0x0000000FFFFFF000
PAE_RESERVED = 0x7FFFFFF000000000
PDPTE_RESERVED = 0x1E6
PSE_RESERVED = 0x3FE000
PAE_LARGE_RESERVED = 0x1FE000
FLAG_NAMES = ((P, "P"), (RW, "R/W"), (US, "U/S"), (PWT, "PWT"), (PCD, "PCD"), (A, "A"), (D, "D"),
              (PS, "PS"), (G, "G"))


def flag_text(entry):
    names = [n for bit, n in FLAG_NAMES if entry & bit]
    if entry & NX_BIT:
        names.append("XD")
    return " ".join(names) or "-"


@dataclass
class Level:
    name: str          # "PDE", "PTE", "PDPTE"
    address: int       # physical address of the entry
    entry: int
    note: str          # what this level decided


@dataclass
class PageWalk:
    """The translation of one linear address, level by level."""
    linear: int
    mode: str
    levels: list = field(default_factory=list)
    physical: int | None = None
    fault: int | None = None          # #PF error code, when the access would fault
    reason: str = ""

    def __str__(self):
        out = [f"page walk of {self.linear:#010x} ({self.mode})"]
        for lv in self.levels:
            width = 16 if self.mode.startswith("PAE") else 8
            out.append(f"  {lv.name:<6} at {lv.address:#011x} = {lv.entry:#0{width + 2}x}  "
                       f"[{flag_text(lv.entry)}]  {lv.note}")
        if self.fault is not None:
            out.append(f"  -> #PF, error code {self.fault:#x}: {self.reason}")
        else:
            out.append(f"  -> physical {self.physical:#011x}" + (f" ({self.reason})" if self.reason else ""))
        return "\n".join(out)

    def _repr_html_(self):
        rows = "".join(f"<tr><td>{lv.name}</td><td><code>{lv.address:#x}</code></td>"
                       f"<td><code>{lv.entry:#x}</code></td><td>{flag_text(lv.entry)}</td>"
                       f"<td>{lv.note}</td></tr>" for lv in self.levels)
        end = (f"#PF error code {self.fault:#x}: {self.reason}" if self.fault is not None
               else f"physical <code>{self.physical:#x}</code>")
        return (f"<b>page walk of <code>{self.linear:#010x}</code></b> ({self.mode})"
                f"<table><tr><th>level</th><th>at</th><th>entry</th><th>flags</th><th>why</th></tr>"
                f"{rows}</table>&rarr; {end}")


class _Reader:
    def __init__(self, machine):
        self.mem = machine._state.mem

    def read(self, pa, size):
        # outside RAM reads as all ones, as the MMU sees it
        v = 0
        for i in range(size):
            a = pa + i
            v |= (int(self.mem[a]) if a < len(self.mem) else 0xFF) << (8 * i)
        return v


def page_walk(machine, linear, access="read", user=None):
    """Explain the translation of ``linear`` for an access ("read", "write"
    or "fetch") at the current privilege (``user`` overrides it)."""
    if access not in ("read", "write", "fetch"):
        raise ValueError(f"access must be 'read', 'write' or 'fetch', not {access!r}")
    c = machine._state.cpu
    linear &= 0xFFFFFFFF
    cr0, cr3, cr4 = int(c[L.CR0]), int(c[L.CR3]), int(c[L.CR4])
    nxe = bool(int(c[L.EFER]) & L.EFER_NXE)
    a20 = int(c[L.A20_MASK])
    if user is None:
        user = int(c[L.CPL]) == 3
    write, fetch = access == "write", access == "fetch"
    if not cr0 & L.CR0_PG:
        return PageWalk(linear, "paging off", physical=linear & a20, reason="CR0.PG = 0: linear = physical")
    pae = bool(cr4 & L.CR4_PAE)
    walk = PageWalk(linear, "PAE paging" if pae else "32-bit paging")
    err = (2 if write else 0) | (4 if user else 0) | (16 if fetch and pae and nxe else 0)
    mem = _Reader(machine)

    def fault(code, why):
        walk.fault = code
        walk.reason = why
        return walk

    def rights(entries, large_entry=None):
        combined = P | RW | US
        for e in entries:
            combined &= e
        xd = pae and nxe and any(e & NX_BIT for e in entries)
        if user and not combined & US:
            return fault(err | 1, "a user access to a supervisor page (U/S = 0 at some level)")
        if write and not combined & RW and (user or cr0 & L.CR0_WP):
            why = "a write to a read-only page" + ("" if user else " with CR0.WP = 1")
            return fault(err | 1, why)
        if fetch and xd:
            return fault(err | 1, "an instruction fetch from an execute-disable page (XD = 1, EFER.NXE = 1)")
        return None

    if pae:
        idx = [(linear >> 30) & 3, (linear >> 21) & 0x1FF, (linear >> 12) & 0x1FF]
        at = (cr3 & 0xFFFFFFE0) + idx[0] * 8
        pdpte = mem.read(at, 8)
        walk.levels.append(Level("PDPTE", at, pdpte, f"index {idx[0]} (bits 31:30)"))
        if not pdpte & P:
            return fault(err, "the PDPTE is not present")
        if pdpte & (PDPTE_RESERVED | PAE_RESERVED | NX_BIT):
            return fault(err | 9, "a reserved bit is set in the PDPTE")
        reserved = PAE_RESERVED if nxe else PAE_RESERVED | NX_BIT
        at = (pdpte & PAE_ADDR) + idx[1] * 8
        pde = mem.read(at, 8)
        walk.levels.append(Level("PDE", at, pde, f"index {idx[1]} (bits 29:21)"))
        if not pde & P:
            return fault(err, "the PDE is not present")
        if pde & reserved or (pde & PS and pde & PAE_LARGE_RESERVED):
            return fault(err | 9, "a reserved bit is set in the PDE")
        if pde & PS:
            walk.levels[-1].note += "; PS = 1: a 2 MiB page"
            if rights([pde]):
                return walk
            walk.physical = ((pde & 0xFFFE00000) | (linear & 0x1FFFFF)) & a20
            walk.reason = "2 MiB page + offset (bits 20:0)"
            return walk
        at = (pde & PAE_ADDR) + idx[2] * 8
        pte = mem.read(at, 8)
        walk.levels.append(Level("PTE", at, pte, f"index {idx[2]} (bits 20:12)"))
        if not pte & P:
            return fault(err, "the PTE is not present")
        if pte & reserved:
            return fault(err | 9, "a reserved bit is set in the PTE")
        if rights([pde, pte]):
            return walk
        walk.physical = ((pte & PAE_ADDR) | (linear & 0xFFF)) & a20
        walk.reason = "4 KiB page + offset (bits 11:0)"
        return walk
    at = (cr3 & 0xFFFFF000) + (linear >> 22) * 4
    pde = mem.read(at, 4)
    walk.levels.append(Level("PDE", at, pde, f"index {linear >> 22} (bits 31:22)"))
    if not pde & P:
        return fault(err, "the PDE is not present")
    if pde & PS and cr4 & L.CR4_PSE:
        walk.levels[-1].note += "; PS = 1 with CR4.PSE: a 4 MiB page"
        if pde & PSE_RESERVED:
            return fault(err | 9, "a reserved bit (13-21) is set in the 4 MiB PDE")
        if rights([pde]):
            return walk
        walk.physical = ((pde & 0xFFC00000) | (linear & 0x3FFFFF)) & a20
        walk.reason = "4 MiB page + offset (bits 21:0)"
        return walk
    at = (pde & 0xFFFFF000) + ((linear >> 12) & 0x3FF) * 4
    pte = mem.read(at, 4)
    walk.levels.append(Level("PTE", at, pte, f"index {(linear >> 12) & 0x3FF} (bits 21:12)"))
    if not pte & P:
        return fault(err, "the PTE is not present")
    if rights([pde, pte]):
        return walk
    walk.physical = ((pte & 0xFFFFF000) | (linear & 0xFFF)) & a20
    walk.reason = "4 KiB page + offset (bits 11:0)"
    return walk


@dataclass
class Disassembly:
    lines: list      # (linear address, bytes, text)

    def __str__(self):
        return "\n".join(f"{a:08x}  {b.hex():<20} {t}" for a, b, t in self.lines)

    def _repr_html_(self):
        return "<pre>" + str(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


def disassemble(machine, linear, count=10, bits=None):
    """``count`` instructions from a linear address (translated through the
    page tables as a fetch would be), decoded by capstone in the current
    code size unless ``bits`` (16 or 32) says otherwise."""
    import capstone
    c = machine._state.cpu
    if bits is None:
        bits = 32 if int(c[L.SEG_SLOTS + L.CS * L.SEG_STRIDE + L.SEG_ATTR]) & L.ATTR_DB else 16
    if bits not in (16, 32):
        raise ValueError(f"bits must be 16 or 32, not {bits!r}")
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32 if bits == 32 else capstone.CS_MODE_16)
    lines = []
    at = linear & 0xFFFFFFFF
    for _ in range(count):
        code = bytearray()
        for i in range(15):
            w = page_walk(machine, at + i, "fetch", user=False)
            if w.fault is not None:
                break
            pa = w.physical
            code.append(int(machine._state.mem[pa]) if pa < len(machine._state.mem) else 0xFF)
        insn = next(md.disasm(bytes(code), at), None)
        if insn is None:
            lines.append((at, bytes(code[:1]), "(bad)" if code else "(not mapped)"))
            at += 1
            continue
        lines.append((at, bytes(insn.bytes), f"{insn.mnemonic} {insn.op_str}".strip()))
        at += insn.size
    return Disassembly(lines)
