"""Instruction traces: what the CPU did, one line per instruction.

``m.trace(...)`` single-steps the machine and returns TraceRecord objects:
the instruction count, CS:EIP and the linear address, the bytes and their
disassembly (capstone), and the registers and flags the instruction
changed.  Interrupts and exceptions the CPU delivered, and port I/O, are
records of their own.  ``emu run ... --trace FILE`` writes the same as text.
"""
from dataclasses import dataclass, field

from emu.core import layout as L

REGISTERS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
             "cs", "ss", "ds", "es", "fs", "gs", "cr0", "cr2", "cr3", "cr4")
FLAG_BITS = (("CF", 0), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9),
             ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18))
EVENT_KINDS = {0: "exception", 1: "software interrupt", 2: "interrupt", 3: "trap"}
EVENT_EXTERNAL = 2                 # emu.core.faults.EVENT_EXTERNAL: before the instruction
EXCEPTION_NAMES = {0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM",
                   8: "#DF", 10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF",
                   17: "#AC", 18: "#MC"}
IO_MNEMONICS = ("in", "out", "insb", "insw", "insd", "outsb", "outsw", "outsd")


@dataclass
class TraceRecord:
    """One line of a trace.  ``kind`` is "insn", "interrupt", "exception" or "io"."""
    kind: str
    count: int                      # instructions retired before this one
    cs: int = 0
    eip: int = 0
    linear: int = 0
    code: bytes = b""
    text: str = ""
    changes: dict = field(default_factory=dict)     # name -> (before, after)
    vector: int | None = None
    error_code: int | None = None

    def __str__(self):
        if self.kind == "insn":
            changed = " ".join(_change(k, v) for k, v in self.changes.items())
            return (f"{self.count:>9}  {self.cs:04x}:{self.eip:08x}  {self.linear:08x}  "
                    f"{self.code.hex():<20} {self.text:<32} {changed}").rstrip()
        if self.kind == "io":
            return f"{'':>9}  {self.text}"
        name = EXCEPTION_NAMES.get(self.vector, "") if self.kind == "exception" else ""
        err = f" error code {self.error_code:#x}" if self.error_code not in (None, -1) else ""
        return (f"{'':>9}  ---- {self.kind} {name + ' ' if name else ''}vector {self.vector:#04x}{err} "
                f"-> {self.cs:04x}:{self.eip:08x}")


def _change(name, pair):
    before, after = pair
    if name == "flags":
        return f"flags {after}"
    width = 4 if name in ("cs", "ss", "ds", "es", "fs", "gs") else 8
    return f"{name}={after:0{width}x}"


def _flags_text(before, after):
    """The flags an instruction changed, as +ZF -CF."""
    out = []
    for name, bit in FLAG_BITS:
        b, a = before >> bit & 1, after >> bit & 1
        if a != b:
            out.append(("+" if a else "-") + name)
    return " ".join(out)


class Tracer:
    def __init__(self, machine):
        import capstone
        self.m = machine
        self.cs16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)
        self.cs32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)

    def snapshot(self):
        cpu = self.m.cpu
        regs = {r: getattr(cpu, r) for r in REGISTERS}
        regs["eflags"] = cpu.eflags
        return regs

    def fetch(self, linear, n=15):
        """Up to n bytes at a linear address, as an instruction fetch sees them."""
        out = bytearray()
        while len(out) < n:
            at = (linear + len(out)) & 0xFFFFFFFF
            walk = self.m.page_walk(at, "fetch", user=False)
            if walk.physical is None or walk.physical >= self.m.memory.size:
                break
            take = min(n - len(out), 0x1000 - (at & 0xFFF), self.m.memory.size - walk.physical)
            out += self.m.memory.read(walk.physical, take)
        return bytes(out)

    def step(self):
        """Run one instruction; the records it makes and the machine's Exit."""
        m = self.m
        c = m._state.cpu
        before = self.snapshot()
        cs_before = m.cpu.segment("cs")
        events = int(c[L.EVENT_COUNT])
        count = m.instructions_retired
        e = m.step()
        event = None
        if int(c[L.EVENT_COUNT]) != events:
            # an interrupt or exception was delivered during this step
            kind = int(c[L.LAST_EVENT_KIND])
            name = EVENT_KINDS.get(kind, "interrupt")
            err = int(c[L.LAST_EVENT_ERROR])
            event = TraceRecord("exception" if name in ("exception", "trap") else "interrupt", count,
                                cs=m.cpu.cs, eip=m.cpu.eip, vector=int(c[L.LAST_EVENT_VECTOR]),
                                error_code=err if name == "exception" and err >= 0 else None)
            external = kind == EVENT_EXTERNAL
        records = []
        if event is not None and external:
            records.append(event)                  # taken before the instruction ran
            event = None
        if m.instructions_retired != count:
            eip = int(c[L.INSN_EIP])
            # an external interrupt moved CS:EIP to its handler before the instruction ran
            cs = m.cpu.segment("cs") if records else cs_before
            if records:
                records[0].eip = eip                   # the handler's entry
            linear = (cs.base + eip) & 0xFFFFFFFF
            code = self.fetch(linear)
            disasm = self.cs32 if cs.attributes & L.ATTR_DB else self.cs16
            insn = next(disasm.disasm(code, linear), None)
            after = self.snapshot()
            changes = {r: (before[r], after[r]) for r in REGISTERS if before[r] != after[r]}
            text = _flags_text(before["eflags"], after["eflags"])
            if text:
                changes["flags"] = (None, text)
            if insn is None:
                records.append(TraceRecord("insn", count, cs.selector, eip, linear, code[:1], "(bad)", changes))
            else:
                records.append(TraceRecord("insn", count, cs.selector, eip, linear, bytes(insn.bytes),
                                           f"{insn.mnemonic} {insn.op_str}".strip(), changes))
                if insn.mnemonic in IO_MNEMONICS:
                    records.append(self.io_record(insn, before, after, count))
        if event is not None:
            records.append(event)                  # INT n, or a fault of this instruction
        return records, e

    def io_record(self, insn, before, after, count):
        ops = insn.op_str.replace(" ", "").split(",")
        port = None
        if insn.mnemonic in ("in", "out"):
            p = ops[1] if insn.mnemonic == "in" else ops[0]
            port = before["edx"] & 0xFFFF if p == "dx" else int(p, 0)
            reg = ops[0] if insn.mnemonic == "in" else ops[1]
            mask = {"al": 0xFF, "ax": 0xFFFF, "eax": 0xFFFFFFFF}.get(reg, 0xFFFFFFFF)
            if insn.mnemonic == "in":
                return TraceRecord("io", count, text=f"port in  {port:#06x} -> {after['eax'] & mask:#x}")
            return TraceRecord("io", count, text=f"port out {port:#06x} <- {before['eax'] & mask:#x}")
        port = before["edx"] & 0xFFFF
        return TraceRecord("io", count, text=f"port {insn.mnemonic} {port:#06x} (string)")

    def records(self, max_instructions=None, start=None, end=None, cpl=None, first=None):
        """Yield records step by step (for streams).  Only instructions whose
        linear address is in [start, end) and that run at privilege ``cpl``
        are kept, with the events and I/O of their step; ``first`` stops
        after N kept instructions.  ``self.exit`` is the last step's Exit."""
        n_insns = 0
        steps = 0
        self.exit = None
        while max_instructions is None or steps < max_instructions:
            steps += 1
            level = self.m.cpu.cpl
            records, self.exit = self.step()
            insn = next((r for r in records if r.kind == "insn"), None)
            keep = True
            if insn is not None:
                if (start is not None and insn.linear < start) or (end is not None and insn.linear >= end):
                    keep = False
                elif cpl is not None and level != cpl:
                    keep = False
                else:
                    n_insns += 1
            if keep:
                yield from records
            if first is not None and n_insns >= first:
                return
            if self.exit.kind != "budget":
                return

    def run(self, max_instructions=1000, start=None, end=None, cpl=None, first=None, last=None):
        """A list of records (see ``records``); ``last`` keeps the last N instructions."""
        out = list(self.records(max_instructions, start, end, cpl, first))
        if last is not None:
            insns = [i for i, r in enumerate(out) if r.kind == "insn"]
            if len(insns) > last:
                out = out[insns[-last]:]
        return out
