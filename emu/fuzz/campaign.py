"""A differential fuzzing campaign: random single-instruction cases from
the opcode table run in visor86 and in a reference (an "oracle");
results, memory, exceptions and the flags the SDM defines are compared,
the flags it leaves undefined are counted apart; divergences are
minimised and written as replayable JSON cases.

Two oracles:
- host: the case's bytes run natively in 64-bit mode (the classes in
  HOST_CLASSES encode the same there; see native.py), in a forked worker
  so that a faulting case cannot take the campaign down;
- unicorn: Unicorn runs 16-bit (real mode) and 32-bit cases of more
  classes, BCD, stack, near control transfers and strings among them
  (emu/fuzz/unicorn_cases.py).  Where Unicorn, not visor86, departs from
  the SDM the case is counted apart as a Unicorn deviation, with the reason.

An oracle object (HostOracle here, UnicornFuzz there) draws cases, runs
them on both sides, judges the outcomes and reads and writes case files;
the campaign, the report, the minimiser and the replay are shared.
"""
import dataclasses
import json
import random
import time
from dataclasses import dataclass, field

from emu.core import layout as L
from emu.fuzz.cases import (native_rows, make_case, undefined_flags, NATIVE_MODULES, PREFIX_MIX,
                             prefix_length, mix_allowed)
from emu.fuzz.native import Case, NativeExecutor, DATA_BASE, WINDOW, REGS

HOST_CLASSES = tuple(sorted(NATIVE_MODULES))
ORACLES = ("host", "unicorn")
CODE_AT = 0x1000
COMPARED_FLAGS = L.FLAGS_ARITH | L.FLAG_DF
FLAG_NAMES = {L.FLAG_CF: "CF", L.FLAG_PF: "PF", L.FLAG_AF: "AF", L.FLAG_ZF: "ZF", L.FLAG_SF: "SF",
              L.FLAG_OF: "OF", L.FLAG_DF: "DF"}
CASE_FORMAT = "visor86-fuzz-case"
CASE_VERSION = 1
CHUNK = 1000


class FuzzError(Exception):
    """A campaign that cannot run (bad class, unreadable case file): the message says why."""


@dataclass
class Outcome:
    """What one side did with a case."""
    regs: dict
    eflags: int
    mem: bytes
    exception: int | None       # vector, or None when the instruction completed

    def as_json(self):
        return outcome_json(self)


def outcome_json(o):
    """An outcome of either oracle's layout (Outcome, UResult) as JSON."""
    data = {"regs": {r: f"{v:#010x}" for r, v in o.regs.items()}}
    if hasattr(o, "eip"):
        data["eip"] = f"{o.eip:#x}"
    data["eflags"] = f"{o.eflags:#x}"
    data["exception"] = o.exception
    return data


def row_key(row):
    return {"mnemonic": row.mnemonic, "map": row.map, "opcode": row.opcode, "reg": row.reg,
            "operands": row.operands_text}


def find_row(key):
    from emu.spec import table
    for r in table.ROWS:
        if (r.mnemonic, r.map, r.opcode, r.reg) == (key["mnemonic"], key["map"], key["opcode"], key["reg"]):
            return r
    raise FuzzError(f"the opcode table has no row {key['mnemonic']} {key.get('operands', '')} "
                    f"(map {key['map']}, opcode {key['opcode']:#x}, /{key['reg']})")


class Visor86Side:
    """Runs cases in one flat 32-bit machine in batch mode (emu.batch):
    thousands per call of the jitted loop, each from its own registers,
    flags, code and data window.  ``undefined_flags`` is the machine's
    policy for the flags the SDM leaves undefined."""

    def __init__(self, undefined_flags="host"):
        from emu import Machine
        self.m = Machine.flat32(memory_size=4 << 20)
        self.m.undefined_flags = resolve_policy(undefined_flags)
        self.batch_seconds = 0.0          # inside the jitted loop only
        # the first call loads the compiled core: keep it out of the timings
        self.run(Case(b"\x90", {}, 0, b""))
        self.batch_seconds = 0.0

    def run_many(self, cases):
        import numpy as np
        from emu.batch import new_cases
        batch = new_cases(len(cases), WINDOW)
        batch["regs"] = np.array([[c.regs.get(r, 0) for r in REGS] for c in cases], np.uint32)
        batch["eflags"] = [(c.eflags & 0x0CD5) | 2 for c in cases]
        batch["code_len"] = [len(c.code) for c in cases]
        batch["code"] = np.frombuffer(b"".join(c.code.ljust(15, b"\0") for c in cases),
                                      np.uint8).reshape(-1, 15)
        batch["window"] = np.frombuffer(b"".join(c.mem.ljust(WINDOW, b"\0") for c in cases),
                                        np.uint8).reshape(-1, WINDOW)
        t = time.perf_counter()
        out = self.m.run_cases(batch, code_at=CODE_AT, window_at=DATA_BASE)
        self.batch_seconds += time.perf_counter() - t
        outcomes = []
        for regs, eflags, kind, vector, window in zip(out["regs"].tolist(), out["eflags"].tolist(),
                                                       out["exit"].tolist(), out["vector"].tolist(),
                                                       out["window"]):
            exception = None if kind == L.EXIT_NONE else (vector if kind == L.EXIT_EXCEPTION else -1)
            outcomes.append(Outcome(dict(zip(REGS, regs)), eflags, window.tobytes(), exception))
        return outcomes

    def run(self, case):
        return self.run_many([case])[0]


def step_case(m, case):
    """Run ``case`` in flat machine ``m`` one step the slow way, without
    batch mode (Machine.step from Python): the Exit."""
    m.memory.write(CODE_AT, case.code + b"\x90")
    m.memory.write(DATA_BASE, case.mem.ljust(WINDOW, b"\0"))
    for r in REGS:
        setattr(m.cpu, r, case.regs.get(r, 0))
    m.cpu.eflags = (case.eflags & 0x0CD5) | 2
    m.cpu.eip = CODE_AT
    return m.step()


def resolve_policy(undefined_flags):
    """The policy name for Machine.undefined_flags ("host" becomes the host's vendor)."""
    from emu.core.layout import UNDEF_NAMES
    from emu.machine import host_cpu_vendor
    if undefined_flags == "host":
        try:
            return host_cpu_vendor()
        except ValueError as e:
            raise FuzzError(str(e))
    if undefined_flags not in UNDEF_NAMES:
        raise FuzzError(f"--undefined-flags is one of host, {', '.join(UNDEF_NAMES)}; not {undefined_flags!r}")
    return undefined_flags


def flag_differences(ours, ref, defined, names, ref_name):
    """One 'NAME: visor86 x, <ref_name> y' per flag in ``names`` (mask ->
    name) that ``defined`` covers and the two EFLAGS values disagree on."""
    out = []
    for mask, name in names.items():
        if defined & mask and (ours ^ ref) & mask:
            low = mask & -mask
            out.append(f"{name}: visor86 {(ours & mask) // low}, {ref_name} {(ref & mask) // low}")
    return out


def memory_difference(what, base, ours, ref, ref_name):
    """A one-element list naming the first byte where two windows differ, or []."""
    if ours == ref:
        return []
    at = next((i for i in range(min(len(ours), len(ref))) if ours[i] != ref[i]), min(len(ours), len(ref)))
    mine = f"{ours[at]:02x}" if at < len(ours) else "-"
    theirs = f"{ref[at]:02x}" if at < len(ref) else "-"
    return [f"{what}: first difference at {base + at:#x} (visor86 {mine}, {ref_name} {theirs})"]


def compare(row, case, ours, ref):
    """(differences, undefined): the differences from the host in what the
    SDM defines, as short strings whose part before ':' names the field,
    and the mask of flags the SDM leaves undefined for this case."""
    undefined = undefined_flags(row, case)
    diffs = []
    if ref.exception is not None or ours.exception is not None:
        if ref.exception != ours.exception:
            diffs.append(f"exception: visor86 {vector_name(ours.exception)}, host {vector_name(ref.exception)}")
        return diffs, undefined
    for r in REGS:
        if r != "esp" and ours.regs[r] != ref.regs[r]:
            diffs.append(f"{r}: visor86 {ours.regs[r]:#010x}, host {ref.regs[r]:#010x}")
    diffs += flag_differences(ours.eflags, ref.eflags, COMPARED_FLAGS & ~undefined, FLAG_NAMES, "host")
    diffs += memory_difference("memory", DATA_BASE, ours.mem, ref.mem, "host")
    return diffs, undefined


def vector_name(v):
    names = {0: "#DE", 1: "#DB", 5: "#BR", 6: "#UD", 13: "#GP", 14: "#PF", 12: "#SS",
             -1: "a non-exception exit"}
    return "no exception" if v is None else names.get(v, f"vector {v}")


def signature(diffs):
    """The fields that differ: a minimised case must keep the same ones."""
    return tuple(sorted(d.split(":")[0] for d in diffs))


@dataclass
class Verdict:
    """An oracle's judgement of one case."""
    diffs: list = field(default_factory=list)   # what visor86 does differently, in what the SDM defines
    undefined: int = 0                          # flags the SDM leaves undefined here
    deviation: str | None = None    # the oracle departs from the SDM here (the SDM wins): not compared
    skipped: str | None = None      # the oracle could not run the case: not compared


class HostOracle:
    """The host CPU as the reference: the case's bytes run natively in
    64-bit mode, where the classes in HOST_CLASSES encode as in 32-bit
    mode, in a forked worker (native.py)."""
    name = "host"
    title = "the host CPU"
    short = "host"
    classes = HOST_CLASSES
    modes = (32,)
    windows = {"mem": WINDOW}       # what the minimiser may zero, and its size
    has_deviations = False

    def __init__(self, native=None, side=None, undefined_flags="host"):
        self._native, self._side, self._own = native, side, None
        self._rows = {}
        self.undefined_flags = resolve_policy(undefined_flags)

    @property
    def native(self):
        if self._native is None:
            self._native = self._own = NativeExecutor()
        return self._native

    @property
    def side(self):
        if self._side is None:
            self._side = Visor86Side(self.undefined_flags)
        return self._side

    @property
    def batch_seconds(self):
        """Time inside the jitted batch loop so far."""
        return self.side.batch_seconds

    def close(self):
        """Give back the native executor if this oracle made it."""
        if self._own is not None:
            self._own.close()
            self._own = self._native = None

    def describe(self, modes):
        return self.title

    def prepare(self, modes):
        """Make the executor and the machine now, so that their start is not timed."""
        return self.native, self.side

    def draw(self, rng, klass, mode):
        if klass not in self._rows:
            self._rows[klass] = native_rows({klass})
        row = rng.choice(self._rows[klass])
        return row, make_case(rng, row)

    def mode_of(self, case):
        return 32

    def label(self, klass, mode):
        return klass

    def reference(self, cases):
        return [Outcome(r.regs, r.eflags, r.mem, r.exception) for r in self.native.run(cases)]

    def visor86(self, cases):
        return self.side.run_many(cases)

    def judge(self, row, case, ours, ref):
        diffs, undefined = compare(row, case, ours, ref)
        return Verdict(diffs, undefined)

    def case_from_json(self, data, path, row, case):
        """Check a loaded case for this oracle; the case to run."""
        if data.get("mode", 32) != 32:
            raise FuzzError(f"{path}: the host oracle runs 32-bit cases, this one is for mode {data['mode']}")
        why = host_unsafe(row, case)
        if why:
            raise FuzzError(f"{path}: the host CPU cannot run this case safely: {why}")
        return case


def make_oracle(name, **kw):
    """The oracle called ``name`` ('host' or 'unicorn'); keyword arguments
    go to its constructor (native, side, undefined_flags)."""
    if name == "host":
        return HostOracle(**kw)
    if name == "unicorn":
        from emu.fuzz.unicorn_cases import UnicornFuzz
        return UnicornFuzz(**kw)
    raise FuzzError(f"unknown oracle {name!r}: the oracles are {', '.join(ORACLES)}")


def oracle_classes(name):
    if name == "unicorn":
        from emu.fuzz.unicorn_cases import UNICORN_CLASSES
        return UNICORN_CLASSES
    make_oracle(name)
    return HOST_CLASSES


@dataclass
class ClassStats:
    cases: int = 0
    divergences: int = 0
    # flag name -> [cases where the SDM leaves it undefined, of those where visor86 agrees]
    undefined: dict = field(default_factory=dict)
    deviations: dict = field(default_factory=dict)   # reason -> cases where the oracle departs from the SDM
    skipped: dict = field(default_factory=dict)      # reason -> cases the oracle could not run

    def add_undefined(self, undefined, ours, ref):
        if ours.exception is not None or ref.exception is not None:
            return
        for bit, name in FLAG_NAMES.items():
            if undefined & bit:
                n = self.undefined.setdefault(name, [0, 0])
                n[0] += 1
                n[1] += not ((ours.eflags ^ ref.eflags) & bit)

    def merge(self, other):
        self.cases += other.cases
        self.divergences += other.divergences
        for name, (n, agree) in other.undefined.items():
            mine = self.undefined.setdefault(name, [0, 0])
            mine[0] += n
            mine[1] += agree
        for mine, theirs in ((self.deviations, other.deviations), (self.skipped, other.skipped)):
            for why, n in theirs.items():
                mine[why] = mine.get(why, 0) + n


@dataclass
class Divergence:
    klass: str
    row: object
    case: Case
    ours: Outcome
    ref: Outcome
    diffs: list
    oracle: str = "host"
    mode: int = 32
    policy: str = "intel"           # visor86's undefined-flags policy (Machine.undefined_flags)

    def as_json(self, minimised_from=None):
        data = {"format": CASE_FORMAT, "version": CASE_VERSION, "oracle": self.oracle, "mode": self.mode,
                "undefined_flags": self.policy,
                "class": self.klass, "row": row_key(self.row), "code": self.case.code.hex(),
                "disassembly": disassemble(self.case.code, self.mode), **case_json(self.case),
                "visor86": outcome_json(self.ours), self.oracle: outcome_json(self.ref),
                "differences": self.diffs}
        if minimised_from is not None:
            data["minimised_from"] = {"code": minimised_from.code.hex(),
                                      "regs": {r: f"{v:#010x}" for r, v in minimised_from.regs.items()},
                                      "eflags": f"{minimised_from.eflags:#x}"}
        return data


def case_json(case):
    """The inputs of a case (either oracle's layout) as JSON fields."""
    data = {"regs": {r: f"{v:#010x}" for r, v in case.regs.items()}, "eflags": f"{case.eflags:#x}",
            "mem": case.mem.hex()}
    if hasattr(case, "stack"):
        data["stack"] = case.stack.hex()
    return data


def disassemble(code, mode=32):
    import capstone
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16 if mode == 16 else capstone.CS_MODE_32)
    insn = next(md.disasm(code, CODE_AT), None)
    return f"{insn.mnemonic} {insn.op_str}".strip() if insn else "(capstone cannot decode it)"


def check_classes(classes, oracle="host"):
    """The classes as a tuple, or FuzzError naming the ones ``oracle`` does not run."""
    known = oracle_classes(oracle)
    classes = tuple(classes)
    if not classes:
        raise FuzzError(f"no instruction classes given: the {oracle} oracle's classes are {', '.join(known)}")
    bad = [c for c in classes if c not in known]
    if bad:
        message = (f"unknown instruction class {', '.join(bad)} for the {oracle} oracle: its classes are "
                   f"{', '.join(known)}")
        others = [o for o in ORACLES if o != oracle and all(c in oracle_classes(o) for c in bad)]
        if others:
            message += f" (the {others[0]} oracle runs {', '.join(bad)}: --oracle {others[0]})"
        raise FuzzError(message)
    return classes


def check_modes(modes, oracle="host"):
    """The modes (16, 32) as a tuple, or FuzzError when ``oracle`` cannot run one."""
    own = make_oracle(oracle).modes
    modes = tuple(modes) if modes else own
    bad = [m for m in modes if m not in own]
    if bad:
        if oracle == "host":
            raise FuzzError("the host oracle runs 32-bit cases only (64-bit mode encodes them the same); "
                            "16-bit code needs --oracle unicorn")
        raise FuzzError(f"the {oracle} oracle runs modes {', '.join(map(str, own))}, not "
                        f"{', '.join(map(str, bad))}")
    return modes


def generate(classes, seed, chunk, size, oracle="host", modes=None):
    """Chunk ``chunk`` of a campaign: ``size`` (class, row, case) triples,
    the same for the same seed whatever the number of jobs."""
    oracle = make_oracle(oracle) if isinstance(oracle, str) else oracle
    modes = tuple(modes) if modes else oracle.modes
    rng = random.Random(f"{seed}-{chunk}")
    out = []
    for _ in range(size):
        c = rng.choice(classes)
        mode = modes[0] if len(modes) == 1 else rng.choice(modes)
        row, case = oracle.draw(rng, c, mode)
        out.append((c, row, case))
    return out


@dataclass
class ChunkResult:
    stats: dict
    divergences: list
    visor86_seconds: float
    oracle_seconds: float
    batch_seconds: float = 0.0      # of visor86_seconds, inside the jitted batch loop (host oracle)


def run_chunk(classes, seed, chunk, size, native=None, side=None, oracle="host", modes=None,
              undefined_flags="host"):
    """Generate chunk ``chunk`` and run it on both sides: a ChunkResult.
    Only the calls into each side are timed."""
    if isinstance(oracle, str):
        ora = make_oracle(oracle, native=native, side=side, undefined_flags=undefined_flags) \
            if oracle == "host" else make_oracle(oracle, undefined_flags=undefined_flags)
        own = True
    else:
        ora, own = oracle, False
    modes = tuple(modes) if modes else ora.modes
    try:
        triples = generate(classes, seed, chunk, size, ora, modes)
        cases = [c for _, _, c in triples]
        ora.prepare(modes)
        t = time.perf_counter()
        refs = ora.reference(cases)
        oracle_seconds = time.perf_counter() - t
        in_batch = getattr(ora, "batch_seconds", 0.0)
        t = time.perf_counter()
        ours = ora.visor86(cases)
        visor86_seconds = time.perf_counter() - t
        batch_seconds = getattr(ora, "batch_seconds", 0.0) - in_batch
    finally:
        if own:
            ora.close()
    stats = {ora.label(c, m): ClassStats() for c in classes for m in modes}
    divergences = []
    for (klass, row, case), mine, ref in zip(triples, ours, refs):
        mode = ora.mode_of(case)
        s = stats[ora.label(klass, mode)]
        s.cases += 1
        v = ora.judge(row, case, mine, ref)
        if v.skipped:
            s.skipped[v.skipped] = s.skipped.get(v.skipped, 0) + 1
            continue
        if v.deviation:
            s.deviations[v.deviation] = s.deviations.get(v.deviation, 0) + 1
            continue
        s.add_undefined(v.undefined, mine, ref)
        if v.diffs:
            s.divergences += 1
            divergences.append(Divergence(klass, row, case, mine, ref, v.diffs, ora.name, mode,
                                          ora.undefined_flags))
    return ChunkResult(stats, divergences, visor86_seconds, oracle_seconds, batch_seconds)


def minimise(div, native, side):
    """A host divergence minimised with this native executor and visor86 side (see minimise_with)."""
    return minimise_with(div, HostOracle(native, side))


def minimise_with(div, oracle):
    """The simplest case that still diverges in the same fields: without
    the operand-size prefix, no flags set, the data (and stack) windows
    zeroed but for the blocks that matter, registers 0 or 1 -- each change
    kept only when the divergence stays."""
    want = signature(div.diffs)
    best = div

    def attempt(case):
        nonlocal best
        ref = oracle.reference([case])[0]
        ours = oracle.visor86([case])[0]
        v = oracle.judge(div.row, case, ours, ref)
        if v.diffs and not v.skipped and not v.deviation and signature(v.diffs) == want:
            best = dataclasses.replace(best, case=case, ours=ours, ref=ref, diffs=v.diffs)
            return True
        return False

    case = best.case
    mix = prefix_length(case.code) - (1 if 0x66 in case.code[:prefix_length(case.code)] else 0)
    if mix > 0:
        # the LOCK/REP/segment prefixes first: all of them, else one at a time
        rest = bytes(b for b in case.code[:prefix_length(case.code)] if b == 0x66) + \
            case.code[prefix_length(case.code):]
        if not attempt(dataclasses.replace(case, code=rest)):
            for i in range(prefix_length(case.code)):
                c = best.case.code
                if i < prefix_length(c) and c[i] != 0x66:
                    attempt(dataclasses.replace(best.case, code=c[:i] + c[i + 1:]))
    case = best.case
    if case.code[:1] == b"\x66":
        code = case.code[1:]
        if any(o.kind in (L.K_IMM, L.K_REL) and o.size == L.SZ_V for o in div.row.operands):
            # the immediate (last in the bytes) changes size with the prefix gone:
            # 16 -> 32 bits in 32-bit code, 32 -> 16 bits in 16-bit code
            code = code + b"\0\0" if div.mode == 32 else code[:-2]
        attempt(dataclasses.replace(case, code=code))
    if best.case.eflags:
        attempt(dataclasses.replace(best.case, eflags=0))
    for name, size in oracle.windows.items():
        if any(getattr(best.case, name)) and not attempt(dataclasses.replace(best.case, **{name: bytes(size)})):
            # zero what the instruction does not need, in ever smaller blocks
            for block in (128, 32, 8):
                for at in range(0, size, block):
                    data = getattr(best.case, name).ljust(size, b"\0")
                    if any(data[at:at + block]):
                        zeroed = data[:at] + bytes(block) + data[at + block:]
                        attempt(dataclasses.replace(best.case, **{name: zeroed}))
    for r in REGS:
        for simple in (0, 1):
            c = best.case
            if r == "esp" or c.regs.get(r) == simple:
                continue
            if attempt(dataclasses.replace(c, regs=dict(c.regs, **{r: simple}))):
                break
    return best


@dataclass
class Report:
    classes: tuple
    seed: int
    cases: int = 0
    stats: dict = field(default_factory=dict)
    divergences: list = field(default_factory=list)
    visor86_seconds: float = 0.0
    oracle_seconds: float = 0.0
    wall_seconds: float = 0.0
    oracle: str = "host"
    modes: tuple = (32,)
    labels: tuple = ()              # the table's rows in order (default: the classes)
    batch_seconds: float = 0.0      # of visor86_seconds, inside the jitted batch loop
    undefined_flags: str = "intel"  # visor86's policy for the flags the SDM leaves undefined

    @property
    def host_seconds(self):         # the name from before there were two oracles
        return self.oracle_seconds

    def add(self, chunk):
        for c, s in chunk.stats.items():
            self.stats.setdefault(c, ClassStats()).merge(s)
            self.cases += s.cases
        self.divergences += chunk.divergences
        self.visor86_seconds += chunk.visor86_seconds
        self.oracle_seconds += chunk.oracle_seconds
        self.batch_seconds += chunk.batch_seconds

    def totals(self, what):
        """reason -> cases, over all classes, for 'deviations' or 'skipped'."""
        out = {}
        for s in self.stats.values():
            for why, n in getattr(s, what).items():
                out[why] = out.get(why, 0) + n
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def rates(self):
        """(visor86 cases/s, oracle cases/s), each over the time spent in that side's calls."""
        return (self.cases / max(self.visor86_seconds, 1e-9), self.cases / max(self.oracle_seconds, 1e-9))

    def text(self, examples=None):
        ora = make_oracle(self.oracle)
        mine, theirs = self.rates()
        deviations, skipped = self.totals("deviations"), self.totals("skipped")
        lines = [f"emu fuzz: {self.cases} cases (seed {self.seed}) against {ora.describe(self.modes)} in "
                 f"{self.wall_seconds:.1f} s",
                 f"  visor86 {mine:,.0f} cases/s, {ora.short} {theirs:,.0f} cases/s "
                 f"(per process, the same cases; only the calls into each side are timed)"]
        if self.batch_seconds:
            lines.append(f"  visor86 {self.cases / self.batch_seconds:,.0f} cases/s inside the jitted batch "
                         f"loop (the rest is Python building the case table and reading the outcomes)")
        if ora.has_deviations:
            lines.append(f"  compared {self.cases - sum(deviations.values()) - sum(skipped.values())}; "
                         f"{ora.short} deviations from the SDM {sum(deviations.values())}; "
                         f"not compared {sum(skipped.values())}")
        deviate = f" {'deviate':>8}" if ora.has_deviations else ""
        lines += ["", f"  {'class':<10} {'cases':>8} {'diverge':>8}{deviate}   undefined flags "
                      f"({self.undefined_flags} policy): agreement with "
                      f"{ora.title if ora.name != 'host' else 'the host'}"]
        for c in self.labels or self.classes:
            s = self.stats.get(c, ClassStats())
            agree = ", ".join(f"{name} {a / n:.1%} of {n}" for name, (n, a) in sorted(s.undefined.items()))
            dev = f" {sum(s.deviations.values()):>8}" if ora.has_deviations else ""
            lines.append(f"  {c:<10} {s.cases:>8} {s.divergences:>8}{dev}   {agree or '-'}")
        if deviations:
            lines += ["", f"{ora.short} deviations (where {ora.short} departs from the SDM; the SDM wins, "
                          f"these are not visor86 divergences):"]
            lines += [f"  {n:>8}  {why}" for why, n in deviations.items()]
        if skipped:
            lines += ["", "not compared:"] + [f"  {n:>8}  {why}" for why, n in skipped.items()]
        shown = examples if examples is not None else self.divergences[:10]
        if shown:
            lines += ["", f"{len(self.divergences)} divergences; examples (minimised):"]
            for d in shown:
                where = d.klass if d.oracle == "host" else f"{d.klass}/{d.mode}"
                lines.append(f"  [{where}] {d.case.code.hex():<24} {disassemble(d.case.code, d.mode):<32} "
                             + "; ".join(d.diffs))
        else:
            lines += ["", "no divergences in results, memory, exceptions or defined flags"]
        return "\n".join(lines)


_WORKER = {}


def _chunk_job(args):
    """A chunk in a worker process, which keeps its oracle (executor, machines)."""
    classes, seed, chunk, size, oracle, modes, policy = args
    if (oracle, policy) not in _WORKER:
        _WORKER[oracle, policy] = make_oracle(oracle, undefined_flags=policy)
    return run_chunk(classes, seed, chunk, size, oracle=_WORKER[oracle, policy], modes=modes)


def campaign(classes=None, cases=10_000, seed=0, jobs=1, progress=None, minimise_limit=20, oracle="host",
             modes=None, undefined_flags="host"):
    """Run ``cases`` cases of ``classes`` (default: all the oracle runs) in
    ``modes`` (16, 32; default: all the oracle runs) against ``oracle``;
    returns (report, minimised divergences: at most ``minimise_limit``,
    one for each instruction, mode and set of fields).  ``undefined_flags``
    is visor86's policy for the flags the SDM leaves undefined
    (Machine.undefined_flags); the report measures their agreement."""
    policy = resolve_policy(undefined_flags)
    classes = check_classes(oracle_classes(oracle) if classes is None else classes, oracle)
    modes = check_modes(modes, oracle)
    if cases < 1:
        raise FuzzError("a campaign needs at least one case")
    ora = make_oracle(oracle, undefined_flags=policy)
    report = Report(classes, seed, oracle=oracle, modes=modes,
                    labels=tuple(ora.label(c, m) for c in classes for m in modes), undefined_flags=policy)
    sizes = [min(CHUNK, cases - k) for k in range(0, cases, CHUNK)]
    start = time.perf_counter()
    work = [(classes, seed, i, n, oracle, modes, policy) for i, n in enumerate(sizes)]
    try:
        if jobs > 1:
            import concurrent.futures
            import multiprocessing
            with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) \
                    as pool:
                for result in pool.map(_chunk_job, work):
                    report.add(result)
                    if progress:
                        progress(report)
        else:
            for w in work:
                report.add(run_chunk(*w[:4], oracle=ora, modes=modes))
                if progress:
                    progress(report)
        report.wall_seconds = time.perf_counter() - start
        picked, seen = [], set()
        for d in report.divergences:
            key = (d.mode, d.row.mnemonic, d.row.opcode, signature(d.diffs))
            if key not in seen and len(picked) < minimise_limit:
                seen.add(key)
                picked.append(d)
        minimised = [(minimise_with(d, ora), d) for d in picked]
    finally:
        ora.close()
    return report, minimised


def write_cases(minimised, directory):
    """Each minimised divergence as ``directory/<class>-<mnemonic>-<n>.json``
    (Unicorn's: ``unicorn<mode>-<class>-<mnemonic>-<n>.json``); the paths."""
    import pathlib
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (small, original) in enumerate(minimised):
        prefix = "" if small.oracle == "host" else f"{small.oracle}{small.mode}-"
        path = directory / f"{prefix}{small.klass}-{small.row.mnemonic.lower()}-{i}.json"
        path.write_text(json.dumps(small.as_json(minimised_from=original.case), indent=2) + "\n")
        paths.append(path)
    return paths


def load_case(path):
    """(class, row, case) from a JSON case file of either oracle; FuzzError says what is wrong."""
    _, klass, row, case, _ = _load(path)
    return klass, row, case


def _load(path):
    """(oracle, class, row, case, undefined-flags policy) from a JSON case file."""
    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except OSError as e:
        raise FuzzError(f"cannot read the case {path}: {e.strerror}")
    except (ValueError, UnicodeDecodeError) as e:
        raise FuzzError(f"{path} is not a JSON case file: {e}")
    if not isinstance(data, dict) or data.get("format") != CASE_FORMAT:
        raise FuzzError(f"{path} is not a visor86 fuzz case (expected \"format\": \"{CASE_FORMAT}\")")
    if data.get("version") != CASE_VERSION:
        raise FuzzError(f"{path} is a version {data.get('version')} case; this visor86 reads version "
                        f"{CASE_VERSION}")
    name = data.get("oracle", "host")
    if name not in ORACLES:
        raise FuzzError(f"{path} is a case for the oracle {name!r}; this visor86 knows {', '.join(ORACLES)}")
    try:
        row = find_row(data["row"])
        case = Case(bytes.fromhex(data["code"]), {r: int(v, 16) & 0xFFFFFFFF for r, v in data["regs"].items()},
                    int(data["eflags"], 16), bytes.fromhex(data.get("mem", "")))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FuzzError(f"{path} is missing or has a malformed field: {e}")
    if not 1 <= len(case.code) <= 15:
        raise FuzzError(f"{path}: an instruction is 1 to 15 bytes, this one {len(case.code)}")
    if set(case.regs) - set(REGS):
        raise FuzzError(f"{path}: unknown registers {sorted(set(case.regs) - set(REGS))}")
    if len(case.mem) > WINDOW:
        raise FuzzError(f"{path}: the data window is {WINDOW} bytes, the case has {len(case.mem)}")
    policy = data.get("undefined_flags", "intel")
    try:
        resolve_policy(policy)
    except FuzzError:
        raise FuzzError(f"{path}: unknown undefined_flags {policy!r} (intel, amd or zero)")
    ora = make_oracle(name)
    return name, data.get("class", "?"), row, ora.case_from_json(data, path, row, case), policy


def encoding_problem(row, code, prefixes=(b"\x66",)):
    """Why ``code`` is not an encoding of ``row`` as the generators make
    them, or None: at most one byte of each group in ``prefixes``, in that
    order, then the opcode, then the ModRM byte with the row's /reg."""
    at = 0
    for group in prefixes:
        if at < len(code) and code[at] in group:
            at += 1
    opcode = (b"\x0f" if row.map else b"") + bytes([row.opcode])
    if code[at:at + len(opcode)] != opcode:
        allowed = " then ".join("/".join(f"{p:02x}" for p in group) for group in prefixes)
        return f"the bytes are not {row.mnemonic}'s opcode {opcode.hex()} (after an optional {allowed} prefix)"
    if row.needs_modrm:
        if len(code) <= at + len(opcode):
            return "the ModRM byte is missing"
        if row.reg >= 0 and (code[at + len(opcode)] >> 3) & 7 != row.reg:
            return f"the ModRM reg field is not /{row.reg}"
    return None


def host_unsafe(row, case):
    """Why the case's bytes must not run natively (None if they may): a
    case file is input, and its bytes run on the host, so they must be one
    instruction of a host-safe row, encoded the way the generator does."""
    import capstone
    if row not in native_rows(NATIVE_MODULES):
        return f"{row.mnemonic} {row.operands_text} is not an instruction the host oracle runs"
    code = case.code
    mix = 0
    while mix < len(code) and mix < 4 and code[mix] in PREFIX_MIX:
        mix += 1
    if mix and not mix_allowed(row):
        return (f"a LOCK, REP or segment prefix before {row.mnemonic} 0f {row.opcode:02x} (F3 makes it "
                f"POPCNT, TZCNT or LZCNT on current CPUs)")
    code = code[mix:]
    why = encoding_problem(row, code)
    if why:
        return why
    if row.needs_modrm:
        modrm = code[(1 if code[:1] == b"\x66" else 0) + (2 if row.map else 1)]
        if modrm >> 6 == 0 and modrm & 7 == 5:
            return "ModRM mod=00 rm=101 is RIP-relative in 64-bit mode"
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    code = case.code
    insns = list(md.disasm(code, 0))
    if len(insns) != 1 or insns[0].size != len(code):
        return "the bytes are not exactly one instruction in 64-bit mode"
    return None


@dataclass
class Replay:
    """A case file run again."""
    oracle: str
    title: str
    diffs: list
    ours: object
    ref: object
    deviation: str | None = None
    skipped: str | None = None


def replay_case(path):
    """Run a case file in visor86 and in the oracle it names again: a Replay."""
    name, _, row, case, policy = _load(path)
    ora = make_oracle(name, undefined_flags=policy)
    try:
        ref = ora.reference([case])[0]
        ours = ora.visor86([case])[0]
    finally:
        ora.close()
    v = ora.judge(row, case, ours, ref)
    return Replay(name, ora.title, v.diffs, ours, ref, v.deviation, v.skipped)


def replay(path):
    """Run a case file in visor86 and in its oracle again: (differences, ours, oracle's)."""
    r = replay_case(path)
    return r.diffs, r.ours, r.ref
