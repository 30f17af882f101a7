"""Run the 80286 SingleStepTests vectors through visor86's public API.

Each test: load the initial registers and RAM into a real-mode Machine,
run the instruction and the HLT after it (or the exception handler's HLT),
and compare registers and RAM with the state captured from the real CPU.
FLAGS are compared under the metadata's mask of defined flags.

Where the 286 and the i386+ SDM differ we follow the SDM and mask the
difference, saying so here:
- FLAGS bits 12-15 (IOPL, NT, bit 15): the test generator's initial values
  are random, a real-mode 286 keeps them clear, and a 386+ in real mode
  lets POPF/IRET set IOPL and NT.  We clear them in the initial state (as
  the suite's README asks) and do not compare them.
- LOCK before an instruction that is not a read-modify-write of memory is
  #UD on the i386 and later (SDM Vol. 2, LOCK); the 286 runs it.
- A word access that crosses offset FFFFh of SS is #SS on the i386 in real
  mode (SDM Vol. 3, 20.1.4 / Vol. 2 "Real-Address Mode Exceptions"); the
  286 raises #GP.
- A string instruction that faults on an element: the 286 has already
  stepped rSI/rDI/rCX, the i386+ leaves them at the faulting element so the
  instruction restarts (SDM Vol. 2, REP).
- AAM 0: the 286 changes SF/ZF/PF before raising #DE; on the i386+ a fault
  leaves EFLAGS as they were (SDM Vol. 3, 6.5 "faults").
- IDIV whose quotient does not fit (e.g. -29600 / 103 in AL): #DE on the
  i386+ (SDM Vol. 2, IDIV); this 286 stores a value and goes on.
Tests hit by these are counted apart ("differs by design") and not failed.
"""
import pathlib
from dataclasses import dataclass, field

from tests.conformance.moo import load_moo, load_metadata, load_revoked

DATA = pathlib.Path(__file__).resolve().parents[3] / "shared" / "tests" / "singlestep" / "80286"
REAL_MODE = DATA / "v1_real_mode"
FLAGS_COMPARED = 0x0FFF
MEMORY_SIZE = 16 << 20


BY_DESIGN = "by design"
STRING_OPCODES = {0x6C, 0x6D, 0x6E, 0x6F, 0xA4, 0xA5, 0xA6, 0xA7, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF}
PREFIX_BYTES = {0x26, 0x2E, 0x36, 0x3E, 0xF0, 0xF2, 0xF3}


@dataclass
class FileResult:
    stem: str
    run: int = 0
    passed: int = 0
    by_design: dict = field(default_factory=dict)
    skipped_revoked: int = 0
    failures: list = field(default_factory=list)

    @property
    def rate(self):
        return self.passed / self.run if self.run else 1.0


def opcode_files():
    return sorted(REAL_MODE.glob("*.MOO.gz"))


def stem_of(path):
    return path.name[:-len(".MOO.gz")]


def select(tests, limit):
    """Every n-th test, so a limited run still spans the whole file."""
    if not limit or limit >= len(tests):
        return tests
    step = len(tests) / limit
    return [tests[int(i * step)] for i in range(limit)]


def set_initial_state(m, regs):
    cpu = m.cpu
    for name in ("ax", "bx", "cx", "dx", "sp", "bp", "si", "di"):
        setattr(cpu, "e" + name, regs[name])
    for name in ("cs", "ss", "ds", "es"):
        setattr(cpu, name, regs[name])
    cpu.fs = cpu.gs = 0
    cpu.eip = regs["ip"]
    cpu.eflags = (regs["flags"] & FLAGS_COMPARED) | 2


def split_prefixes(code):
    i = 0
    while i < len(code) and code[i] in PREFIX_BYTES:
        i += 1
    return code[:i], code[i] if i < len(code) else None


def our_first_event(m):
    """The exception visor86 raises for the instruction, without delivering it."""
    s = m.snapshot()
    m.deliver_exceptions = False
    e = m.step()
    m.deliver_exceptions = True
    m.restore(s)
    return e.vector if e.kind == "exception" else None


def design_difference(m, t):
    """The 286-vs-i386 difference (see the module docstring) a test falls
    under, or None."""
    prefixes, opcode = split_prefixes(t.code)
    if opcode == 0xD4 and t.exception and t.exception[0] == 0:
        return "AAM 0 leaves EFLAGS unchanged on i386+"
    idiv = opcode in (0xF6, 0xF7) and len(t.code) > len(prefixes) + 1 \
        and ((t.code[len(prefixes) + 1] >> 3) & 7) == 7
    if 0xF0 not in prefixes and not (t.exception and t.exception[0] == 13) \
            and not (idiv and not t.exception):
        return None
    ours = our_first_event(m)
    if 0xF0 in prefixes and ours == 6:
        return "LOCK on a non-lockable form is #UD on i386+"
    if t.exception and t.exception[0] == 13 and ours == 12:
        return "real-mode SS limit violation is #SS on i386+, #GP on the 286"
    if idiv and not t.exception and ours == 0:
        return "IDIV quotient overflow is #DE on i386+"
    if t.exception and t.exception[0] == 13 and opcode in STRING_OPCODES:
        return "a faulting string element leaves rSI/rDI/rCX unstepped on i386+"
    return None


def run_test(m, t, flags_mask, result=None):
    """Returns None when the test passes (or differs from the 286 by design,
    counted in ``result``), else a description of the differences."""
    set_initial_state(m, t.initial_regs)
    for addr, value in t.initial_ram:
        m.memory.write_u8(addr, value)
    why = design_difference(m, t)
    if why is not None:
        if result is not None:
            result.by_design[why] = result.by_design.get(why, 0) + 1
        for addr, _ in t.initial_ram:
            m.memory.write_u8(addr, 0)
        return BY_DESIGN
    exit_ = m.run(max_instructions=8)
    problems = []
    if exit_.kind != "halt":
        problems.append(f"ended with {exit_!r}, expected the HLT")
    expected = dict(t.initial_regs)
    expected.update(t.final_regs)
    for name in ("ax", "bx", "cx", "dx", "sp", "bp", "si", "di", "cs", "ss", "ds", "es"):
        ours = getattr(m.cpu, name)
        if ours != expected[name]:
            problems.append(f"{name}={ours:04x} expected {expected[name]:04x}")
    # after the HLT, IP is one past it
    if m.cpu.ip != expected["ip"]:
        problems.append(f"ip={m.cpu.ip:04x} expected {expected['ip']:04x}")
    mask = flags_mask & FLAGS_COMPARED
    if (m.cpu.flags & mask) != (expected["flags"] & mask):
        problems.append(f"flags={m.cpu.flags:04x} expected {expected['flags']:04x} (mask {mask:04x})")
    # the FLAGS image an exception pushed: at SS:SP+4 of the handler's stack
    # (the EXCP chunk's address is one byte low when SP was odd)
    flag_addr = ((expected["ss"] << 4) + ((expected["sp"] + 4) & 0xFFFF)) if t.exception else -1
    for addr, value in t.final_ram:
        ours = m.memory.read_u8(addr)
        if addr in (flag_addr, flag_addr + 1):
            byte_mask = (mask >> (8 * (addr - flag_addr))) & 0xFF
            ours &= byte_mask
            value &= byte_mask
        if ours != value:
            problems.append(f"[{addr:06x}]={ours:02x} expected {value:02x}")
    # leave RAM as found (all zeros) for the next test
    for addr, _ in t.initial_ram:
        m.memory.write_u8(addr, 0)
    for addr, _ in t.final_ram:
        m.memory.write_u8(addr, 0)
    if not problems:
        return None
    exc = f" exception {t.exception[0]}" if t.exception else ""
    return f"#{t.index} {t.name!r} bytes {t.code.hex()}{exc}: " + "; ".join(problems)


def run_file(path, limit=0, machine=None):
    from emu import Machine
    stem = stem_of(path)
    masks = load_metadata(REAL_MODE)
    flags_mask = masks.get(stem, masks.get(stem.split(".")[0], 0xFFFF))
    revoked = load_revoked(DATA / "revocation_list.txt")
    m = machine or Machine(memory_size=MEMORY_SIZE)
    result = FileResult(stem)
    for t in select(load_moo(path).tests, limit):
        if t.hash in revoked:
            result.skipped_revoked += 1
            continue
        result.run += 1
        problem = run_test(m, t, flags_mask, result)
        if problem is BY_DESIGN:
            result.run -= 1
        elif problem is None:
            result.passed += 1
        else:
            result.failures.append(problem)
    return result
