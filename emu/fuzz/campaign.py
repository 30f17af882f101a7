"""A differential fuzzing campaign: random single-instruction cases from
the opcode table run in visor86 and on the host CPU; results, memory,
exceptions and the flags the SDM defines are compared, the flags it leaves
undefined are counted apart; divergences are minimised and written as
replayable JSON cases.

The host oracle runs the case's bytes natively in 64-bit mode (the classes
in HOST_CLASSES encode the same there; see native.py), in a forked worker
so that a faulting case cannot take the campaign down.
"""
import json
import random
import time
from dataclasses import dataclass, field

from emu.core import layout as L
from emu.fuzz.cases import native_rows, make_case, undefined_flags, NATIVE_MODULES
from emu.fuzz.native import Case, NativeExecutor, DATA_BASE, WINDOW, REGS

HOST_CLASSES = tuple(sorted(NATIVE_MODULES))
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
        return {"regs": {r: f"{v:#010x}" for r, v in self.regs.items()}, "eflags": f"{self.eflags:#x}",
                "exception": self.exception}


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
    flags, code and data window."""

    def __init__(self, undefined_flags="host"):
        from emu import Machine
        self.m = Machine.flat32(memory_size=4 << 20)
        self.m.undefined_flags = undefined_flags
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


def compare(row, case, ours, ref):
    """(differences, undefined): the differences in what the SDM defines,
    as short strings whose part before ':' names the field, and the mask
    of flags the SDM leaves undefined for this case."""
    undefined = undefined_flags(row, case)
    diffs = []
    if ref.exception is not None or ours.exception is not None:
        if ref.exception != ours.exception:
            diffs.append(f"exception: visor86 {_vector(ours.exception)}, host {_vector(ref.exception)}")
        return diffs, undefined
    for r in REGS:
        if r != "esp" and ours.regs[r] != ref.regs[r]:
            diffs.append(f"{r}: visor86 {ours.regs[r]:#010x}, host {ref.regs[r]:#010x}")
    defined = COMPARED_FLAGS & ~undefined
    for bit, name in FLAG_NAMES.items():
        if defined & bit and (ours.eflags ^ ref.eflags) & bit:
            diffs.append(f"{name}: visor86 {int(bool(ours.eflags & bit))}, host {int(bool(ref.eflags & bit))}")
    if ours.mem != ref.mem:
        at = next(i for i in range(WINDOW) if ours.mem[i] != ref.mem[i])
        diffs.append(f"memory: first difference at {DATA_BASE + at:#x} "
                     f"(visor86 {ours.mem[at]:02x}, host {ref.mem[at]:02x})")
    return diffs, undefined


def _vector(v):
    names = {0: "#DE", 1: "#DB", 6: "#UD", 13: "#GP", 14: "#PF", 12: "#SS", -1: "a non-exception exit"}
    return "no exception" if v is None else names.get(v, f"vector {v}")


def signature(diffs):
    """The fields that differ: a minimised case must keep the same ones."""
    return tuple(sorted(d.split(":")[0] for d in diffs))


@dataclass
class ClassStats:
    cases: int = 0
    divergences: int = 0
    # flag name -> [cases where the SDM leaves it undefined, of those where visor86 agrees]
    undefined: dict = field(default_factory=dict)

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


@dataclass
class Divergence:
    klass: str
    row: object
    case: Case
    ours: Outcome
    ref: Outcome
    diffs: list
    policy: str = "intel"

    def as_json(self, minimised_from=None):
        data = {"format": CASE_FORMAT, "version": CASE_VERSION, "oracle": "host", "mode": 32,
                "undefined_flags": self.policy,
                "class": self.klass, "row": row_key(self.row), "code": self.case.code.hex(),
                "disassembly": disassemble(self.case.code),
                "regs": {r: f"{v:#010x}" for r, v in self.case.regs.items()},
                "eflags": f"{self.case.eflags:#x}", "mem": self.case.mem.hex(),
                "visor86": self.ours.as_json(), "host": self.ref.as_json(), "differences": self.diffs}
        if minimised_from is not None:
            data["minimised_from"] = {"code": minimised_from.code.hex(),
                                      "regs": {r: f"{v:#010x}" for r, v in minimised_from.regs.items()},
                                      "eflags": f"{minimised_from.eflags:#x}"}
        return data


def disassemble(code):
    import capstone
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
    insn = next(md.disasm(code, CODE_AT), None)
    return f"{insn.mnemonic} {insn.op_str}".strip() if insn else "(capstone cannot decode it)"


def check_classes(classes):
    bad = [c for c in classes if c not in HOST_CLASSES]
    if bad:
        raise FuzzError(f"unknown instruction class {', '.join(bad)}: the classes are {', '.join(HOST_CLASSES)}")
    return tuple(classes)


def generate(classes, seed, chunk, size):
    """Chunk ``chunk`` of a campaign: ``size`` (class, row, case) triples,
    the same for the same seed whatever the number of jobs."""
    rng = random.Random(f"{seed}-{chunk}")
    rows = {c: native_rows({c}) for c in classes}
    out = []
    for _ in range(size):
        c = rng.choice(classes)
        row = rng.choice(rows[c])
        out.append((c, row, make_case(rng, row)))
    return out


@dataclass
class ChunkResult:
    stats: dict
    divergences: list
    visor86_seconds: float          # the visor86 side, Python marshalling included
    host_seconds: float
    batch_seconds: float = 0.0      # of which inside the jitted batch loop


def run_chunk(classes, seed, chunk, size, native=None, side=None, undefined_flags="host"):
    triples = generate(classes, seed, chunk, size)
    cases = [c for _, _, c in triples]
    own = native is None
    native = native or NativeExecutor()
    try:
        t = time.perf_counter()
        refs = [Outcome(r.regs, r.eflags, r.mem, r.exception) for r in native.run(cases)]
        host_seconds = time.perf_counter() - t
    finally:
        if own:
            native.close()
    side = side or Visor86Side(undefined_flags)
    t = time.perf_counter()
    in_batch = side.batch_seconds
    ours = side.run_many(cases)
    visor86_seconds = time.perf_counter() - t
    batch_seconds = side.batch_seconds - in_batch
    stats = {c: ClassStats() for c in classes}
    divergences = []
    for (klass, row, case), mine, ref in zip(triples, ours, refs):
        s = stats[klass]
        s.cases += 1
        diffs, undefined = compare(row, case, mine, ref)
        s.add_undefined(undefined, mine, ref)
        if diffs:
            s.divergences += 1
            divergences.append(Divergence(klass, row, case, mine, ref, diffs, side.m.undefined_flags))
    return ChunkResult(stats, divergences, visor86_seconds, host_seconds, batch_seconds)


def minimise(div, native, side):
    """The simplest case that still diverges in the same fields: without
    the operand-size prefix, no flags set, the data window zeroed but for
    the blocks that matter, registers 0 or 1 -- each change kept only when
    the divergence stays."""
    want = signature(div.diffs)
    best = div

    def attempt(case):
        nonlocal best
        ref = native.run([case])[0]
        ref = Outcome(ref.regs, ref.eflags, ref.mem, ref.exception)
        ours = side.run(case)
        diffs, _ = compare(div.row, case, ours, ref)
        if diffs and signature(diffs) == want:
            best = Divergence(div.klass, div.row, case, ours, ref, diffs, div.policy)
            return True
        return False

    case = best.case
    if case.code[:1] == b"\x66":
        # the immediate (last in the bytes) grows from 16 to 32 bits without the prefix
        imm_v = any(o.kind == L.K_IMM and o.size == L.SZ_V for o in div.row.operands)
        attempt(Case(case.code[1:] + (b"\0\0" if imm_v else b""), case.regs, case.eflags, case.mem))
    if best.case.eflags:
        attempt(Case(best.case.code, best.case.regs, 0, best.case.mem))
    if any(best.case.mem) and not attempt(Case(best.case.code, best.case.regs, best.case.eflags,
                                                bytes(WINDOW))):
        # zero what the instruction does not need, in ever smaller blocks
        for block in (128, 32, 8):
            for at in range(0, WINDOW, block):
                mem = best.case.mem.ljust(WINDOW, b"\0")
                if any(mem[at:at + block]):
                    zeroed = mem[:at] + bytes(block) + mem[at + block:]
                    attempt(Case(best.case.code, best.case.regs, best.case.eflags, zeroed))
    for r in REGS:
        for simple in (0, 1):
            c = best.case
            if r == "esp" or c.regs.get(r) == simple:
                continue
            if attempt(Case(c.code, dict(c.regs, **{r: simple}), c.eflags, c.mem)):
                break
    return best


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


@dataclass
class Report:
    classes: tuple
    seed: int
    undefined_flags: str = "intel"
    cases: int = 0
    stats: dict = field(default_factory=dict)
    divergences: list = field(default_factory=list)
    visor86_seconds: float = 0.0
    host_seconds: float = 0.0
    batch_seconds: float = 0.0
    wall_seconds: float = 0.0

    def add(self, chunk):
        for c, s in chunk.stats.items():
            self.stats.setdefault(c, ClassStats()).merge(s)
            self.cases += s.cases
        self.divergences += chunk.divergences
        self.visor86_seconds += chunk.visor86_seconds
        self.batch_seconds += chunk.batch_seconds
        self.host_seconds += chunk.host_seconds

    def text(self, examples=None):
        lines = [f"emu fuzz: {self.cases} cases (seed {self.seed}) against the host CPU in "
                 f"{self.wall_seconds:.1f} s",
                 f"  per process: visor86 {self.cases / max(self.batch_seconds, 1e-9):,.0f} cases/s in "
                 f"the jitted batch ({self.cases / max(self.visor86_seconds, 1e-9):,.0f} with Python's "
                 f"marshalling), host {self.cases / max(self.host_seconds, 1e-9):,.0f} cases/s", "",
                 f"  {'class':<9} {'cases':>8} {'diverge':>8}   undefined flags ({self.undefined_flags} "
                 f"policy): agreement with the host"]
        for c in self.classes:
            s = self.stats.get(c, ClassStats())
            agree = ", ".join(f"{name} {a / n:.1%} of {n}" for name, (n, a) in sorted(s.undefined.items()))
            lines.append(f"  {c:<9} {s.cases:>8} {s.divergences:>8}   {agree or '-'}")
        shown = examples if examples is not None else self.divergences[:10]
        if shown:
            lines += ["", f"{len(self.divergences)} divergences; examples (minimised):"]
            for d in shown:
                lines.append(f"  [{d.klass}] {d.case.code.hex():<24} {disassemble(d.case.code):<32} "
                             + "; ".join(d.diffs))
        else:
            lines += ["", "no divergences in results, memory, exceptions or defined flags"]
        return "\n".join(lines)


_WORKER = {}


def _chunk_job(args):
    """A chunk in a worker process, which keeps its executor and machine."""
    *args, undefined_flags = args
    if not _WORKER:
        _WORKER["native"] = NativeExecutor()
        _WORKER["side"] = Visor86Side(undefined_flags)
    return run_chunk(*args, native=_WORKER["native"], side=_WORKER["side"])


def campaign(classes=HOST_CLASSES, cases=10_000, seed=0, jobs=1, progress=None, minimise_limit=20,
             undefined_flags="host"):
    """Run ``cases`` cases; returns (report, minimised divergences: at
    most ``minimise_limit``, one for each instruction and set of fields).
    ``undefined_flags`` is visor86's policy for the flags the SDM leaves
    undefined (Machine.undefined_flags); the report measures how often
    they agree with the host's."""
    classes = check_classes(classes)
    policy = resolve_policy(undefined_flags)
    if cases < 1:
        raise FuzzError("a campaign needs at least one case")
    report = Report(classes, seed, policy)
    sizes = [min(CHUNK, cases - k) for k in range(0, cases, CHUNK)]
    start = time.perf_counter()
    work = [(classes, seed, i, n, policy) for i, n in enumerate(sizes)]
    if jobs > 1:
        import concurrent.futures
        import multiprocessing
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(_chunk_job, work):
                report.add(result)
                if progress:
                    progress(report)
    else:
        with NativeExecutor() as native:
            side = Visor86Side(policy)
            for w in work:
                report.add(run_chunk(*w[:-1], native=native, side=side))
                if progress:
                    progress(report)
    report.wall_seconds = time.perf_counter() - start
    picked, seen = [], set()
    for d in report.divergences:
        key = (d.row.mnemonic, d.row.opcode, signature(d.diffs))
        if key not in seen and len(picked) < minimise_limit:
            seen.add(key)
            picked.append(d)
    minimised = []
    if picked:
        with NativeExecutor() as native:
            side = Visor86Side(policy)
            minimised = [(minimise(d, native, side), d) for d in picked]
    return report, minimised


def write_cases(minimised, directory):
    """Each minimised divergence as ``directory/<class>-<mnemonic>-<n>.json``; the paths."""
    import pathlib
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (small, original) in enumerate(minimised):
        path = directory / f"{small.klass}-{small.row.mnemonic.lower()}-{i}.json"
        path.write_text(json.dumps(small.as_json(minimised_from=original.case), indent=2) + "\n")
        paths.append(path)
    return paths


def load_case(path):
    """(class, row, Case) from a JSON case file; FuzzError says what is wrong."""
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
    try:
        row = find_row(data["row"])
        case = Case(bytes.fromhex(data["code"]), {r: int(v, 16) & 0xFFFFFFFF for r, v in data["regs"].items()},
                    int(data["eflags"], 16), bytes.fromhex(data.get("mem", "")))
    except (KeyError, TypeError, ValueError) as e:
        raise FuzzError(f"{path} is missing or has a malformed field: {e}")
    if not 1 <= len(case.code) <= 15:
        raise FuzzError(f"{path}: an instruction is 1 to 15 bytes, this one {len(case.code)}")
    if set(case.regs) - set(REGS):
        raise FuzzError(f"{path}: unknown registers {sorted(set(case.regs) - set(REGS))}")
    if len(case.mem) > WINDOW:
        raise FuzzError(f"{path}: the data window is {WINDOW} bytes, the case has {len(case.mem)}")
    why = host_unsafe(row, case)
    if why:
        raise FuzzError(f"{path}: the host CPU cannot run this case safely: {why}")
    policy = data.get("undefined_flags", "intel")
    try:
        resolve_policy(policy)
    except FuzzError:
        raise FuzzError(f"{path}: unknown undefined_flags {policy!r}")
    return data.get("class", "?"), row, case, policy


def host_unsafe(row, case):
    """Why the case's bytes must not run natively (None if they may): a
    case file is input, and its bytes run on the host, so they must be one
    instruction of a host-safe row, encoded the way the generator does."""
    import capstone
    if row not in native_rows(NATIVE_MODULES):
        return f"{row.mnemonic} {row.operands_text} is not an instruction the host oracle runs"
    code = case.code
    at = 1 if code[:1] == b"\x66" else 0
    opcode = (b"\x0f" if row.map else b"") + bytes([row.opcode])
    if code[at:at + len(opcode)] != opcode:
        return f"the bytes are not {row.mnemonic}'s opcode {opcode.hex()} (after an optional 66 prefix)"
    if row.needs_modrm:
        if len(code) <= at + len(opcode):
            return "the ModRM byte is missing"
        modrm = code[at + len(opcode)]
        if modrm >> 6 == 0 and modrm & 7 == 5:
            return "ModRM mod=00 rm=101 is RIP-relative in 64-bit mode"
        if row.reg >= 0 and (modrm >> 3) & 7 != row.reg:
            return f"the ModRM reg field is not /{row.reg}"
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    insns = list(md.disasm(code, 0))
    if len(insns) != 1 or insns[0].size != len(code):
        return "the bytes are not exactly one instruction in 64-bit mode"
    return None


def replay(path):
    """Run a case file in visor86 and on the host again: (differences, ours, host)."""
    _, row, case, policy = load_case(path)
    with NativeExecutor() as native:
        r = native.run([case])[0]
    ref = Outcome(r.regs, r.eflags, r.mem, r.exception)
    ours = Visor86Side(policy).run(case)
    diffs, _ = compare(row, case, ours, ref)
    return diffs, ours, ref
