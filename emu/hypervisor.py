"""Many guests in one process: the Hypervisor runs Machines on host
threads (the jitted loop releases the GIL), schedules them fairly by
weight with optional caps and guaranteed shares, and meters each one.

    from emu import Hypervisor
    hv = Hypervisor(threads=2)
    hv.create("a", kernel="firmware/kernels/timer.elf", weight=2)
    hv.create("b", kernel="firmware/kernels/timer.elf", cap=2_000_000)
    hv.run()                          # until every guest has ended
    hv.metrics()["a"]["instructions"]

Scheduling: each guest has a virtual runtime, the instructions it retired
divided by its weight.  A free thread always takes the runnable guest with
the least virtual runtime and runs it for one slice; a guest's virtual
runtime grows only while it runs, so every runnable guest is picked again
before any other can get more than a slice ahead of it in weighted terms:
starvation is impossible by construction.  A guest that becomes runnable
again (resumed) starts at the least virtual runtime of the others, so
sleeping earns no burst.  A cap (instructions per second of host time
while runnable) makes a guest wait when it is ahead of its budget; a share
(a fraction of all instructions) raises its weight against the others so
that it gets at least that fraction while it wants to run.
"""
import ctypes
import json
import mmap
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from emu.core.memory import PM_DIRTY

# "pausing" and "stopping": asked while the guest is in a slice, which it finishes first
STATES = ("ready", "running", "pausing", "paused", "stopping", "stopped", "exited")
DEFAULT_SLICE = 50_000            # instructions per turn: about 10 ms of guest time here
PAGE = 4096


class HypervisorError(Exception):
    """A request the hypervisor cannot carry out: the message says why."""


@dataclass
class Guest:
    """One guest of a Hypervisor: its machine, scheduling parameters and meters."""
    name: str
    machine: object
    weight: float = 1.0
    cap: float | None = None          # instructions per second of host time, None: no cap
    share: float | None = None        # guaranteed fraction of all instructions, None: none
    max_instructions: int | None = None
    state: str = "ready"
    exit: object = None               # the Exit that ended it, once exited
    vruntime: float = 0.0
    cpu_seconds: float = 0.0          # host CPU time of its slices
    slices: int = 0
    started: float | None = None      # host time it first ran
    runnable_seconds: float = 0.0     # host time spent ready or running (for the cap)
    _since: float | None = None
    _start_insns: int = 0
    _held: int = 0                    # clone/save in progress: not scheduled
    serial: bytearray = field(default_factory=bytearray)

    @property
    def instructions(self):
        return self.machine.instructions_retired - self._start_insns

    def _mark_runnable(self, now):
        if self._since is None:
            self._since = now

    def _mark_idle(self, now):
        if self._since is not None:
            self.runnable_seconds += now - self._since
            self._since = None

    def _runnable_time(self, now):
        return self.runnable_seconds + (now - self._since if self._since is not None else 0.0)

    def metrics(self, now=None):
        """The meters as a dict (plain numbers and strings: JSON-ready)."""
        m = self.machine
        now = time.monotonic() if now is None else now
        pm = m._state.pm
        ports = {f"{name}_in": i for name, (i, _) in m.board.io_bytes().items()}
        ports.update({f"{name}_out": o for name, (_, o) in m.board.io_bytes().items()})
        ports.update({f"python:{name}": n for name, n in m.io_bytes.items()})
        ports["com1_tx"] = m.com1.tx_bytes
        ports["com1_rx"] = m.com1.rx_bytes
        ports["com2_tx"] = m.com2.tx_bytes
        ports["com2_rx"] = m.com2.rx_bytes
        wall = self._runnable_time(now)
        return {
            "name": self.name, "state": self.state, "weight": self.weight, "cap": self.cap,
            "share": self.share, "instructions": self.instructions,
            "mips": self.instructions / wall / 1e6 if wall > 0 else 0.0,
            "exits": dict(m.exit_counts), "io_bytes": ports,
            "memory_bytes": m.memory_size,
            "resident_pages": resident_pages(m._state.mem),
            "dirty_pages": int(np.count_nonzero(pm & PM_DIRTY)),
            "host_cpu_seconds": round(self.cpu_seconds, 6), "slices": self.slices,
            "exit": None if self.exit is None else self.exit.kind,
        }


def resident_pages(array):
    """Pages of ``array`` the host kernel has in memory (mincore(2)): what
    a guest's RAM really costs.  -1 where mincore is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mincore = libc.mincore
    except (OSError, AttributeError):
        return -1
    addr = array.ctypes.data
    start = addr - addr % mmap.PAGESIZE
    length = addr + array.nbytes - start
    pages = (length + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    if mincore(ctypes.c_void_p(start), ctypes.c_size_t(length), vec) != 0:
        return -1
    return int(np.count_nonzero(np.frombuffer(vec, np.uint8) & 1))


class Hypervisor:
    """Runs many Machines concurrently on ``threads`` host threads."""

    def __init__(self, threads=None, slice_instructions=DEFAULT_SLICE):
        import os
        threads = threads or os.cpu_count() or 1
        if not isinstance(threads, int) or threads < 1:
            raise HypervisorError(f"threads must be a positive int, not {threads!r}")
        if not isinstance(slice_instructions, int) or slice_instructions < 1:
            raise HypervisorError(f"slice_instructions must be a positive int, not {slice_instructions!r}")
        self.threads = threads
        self.slice = slice_instructions
        self.guests = {}
        self._lock = threading.Condition()
        self._workers = []
        self._closing = False
        self._errors = []
        self._started = False

    # --- guests ---------------------------------------------------------------------------

    def add(self, name, machine, *, weight=1, cap=None, share=None, max_instructions=None, serial=None):
        """Take ``machine`` as guest ``name``; returns its Guest.  Its COM1
        output goes to ``serial`` (a callable taking bytes), else it is kept
        in ``guest.serial``."""
        from emu.machine import Machine
        if not isinstance(name, str) or not name:
            raise HypervisorError(f"a guest needs a non-empty name, not {name!r}")
        if not isinstance(machine, Machine):
            raise HypervisorError(f"guest {name}: expected an emu.Machine, not {type(machine).__name__}")
        if not (isinstance(weight, (int, float)) and weight > 0):
            raise HypervisorError(f"guest {name}: weight must be a positive number, not {weight!r}")
        if cap is not None and not (isinstance(cap, (int, float)) and cap > 0):
            raise HypervisorError(f"guest {name}: cap is instructions per second (> 0), not {cap!r}")
        if share is not None and not (isinstance(share, (int, float)) and 0 < share < 1):
            raise HypervisorError(f"guest {name}: share is a fraction between 0 and 1, not {share!r}")
        with self._lock:
            if name in self.guests:
                raise HypervisorError(f"there is already a guest named {name}")
            shares = sum(g.share or 0 for g in self.guests.values()) + (share or 0)
            if shares >= 1:
                raise HypervisorError(f"guest {name}: the guaranteed shares would add up to {shares:.2f}; "
                                      f"they must stay below 1")
            g = Guest(name, machine, float(weight), cap, share, max_instructions)
            g._start_insns = machine.instructions_retired
            g.vruntime = self._min_vruntime()
            machine.com1.sink = serial if serial is not None else g.serial.extend
            self.guests[name] = g
            g._mark_runnable(time.monotonic())
            self._lock.notify_all()
        if self._started:
            self.start()              # the workers end when nothing is left to run
        return g

    def create(self, name, *, kernel=None, image=None, snapshot=None, memory=64 << 20, cmdline="",
               **schedule):
        """Make a guest from a Multiboot ``kernel``, a disk or floppy ``image``
        (booted with the BIOS) or a ``snapshot`` file; ``schedule`` takes
        weight, cap, share and max_instructions."""
        from emu.machine import Machine
        given = [x for x in (kernel, image, snapshot) if x is not None]
        if len(given) != 1:
            raise HypervisorError(f"guest {name}: give exactly one of kernel=, image= or snapshot=")
        try:
            if kernel is not None:
                m = Machine.from_multiboot(kernel, memory_size=memory, cmdline=cmdline)
            elif image is not None:
                m = Machine.pc(image, memory_size=memory)
            else:
                m = Machine.load(snapshot)
        except (OSError, ValueError) as e:
            raise HypervisorError(f"guest {name}: {e}")
        return self.add(name, m, **schedule)

    def _guest(self, name):
        try:
            return self.guests[name]
        except KeyError:
            raise HypervisorError(f"no guest named {name!r}; the guests are {', '.join(self.guests) or 'none'}")

    def pause(self, name):
        """Stop giving the guest slices (it finishes the one it is in)."""
        with self._lock:
            g = self._guest(name)
            if g.state in ("ready", "running"):
                g.state = "paused" if g.state == "ready" else "pausing"
                if g.state == "paused":
                    g._mark_idle(time.monotonic())

    def resume(self, name):
        with self._lock:
            g = self._guest(name)
            if g.state in ("paused", "pausing"):
                if g.state == "paused":
                    g.vruntime = max(g.vruntime, self._min_vruntime())
                    g._mark_runnable(time.monotonic())
                g.state = "ready" if g.state == "paused" else "running"
                self._lock.notify_all()
        if self._started:
            self.start()              # the workers end when nothing is left to run

    def stop(self, name):
        """End the guest for good (after its current slice)."""
        with self._lock:
            g = self._guest(name)
            if g.state in ("ready", "paused"):
                g.state = "stopped"
                g._mark_idle(time.monotonic())
            elif g.state in ("running", "pausing"):
                g.state = "stopping"
            self._lock.notify_all()

    def _holding(self, name):
        """A context in which guest ``name`` is between slices and stays there."""
        import contextlib

        @contextlib.contextmanager
        def hold():
            with self._lock:
                g = self._guest(name)
                g._held += 1
                while g.state in ("running", "pausing", "stopping"):
                    self._lock.wait(timeout=0.1)
            try:
                yield g
            finally:
                with self._lock:
                    g._held -= 1
                    self._lock.notify_all()
        return hold()

    def clone(self, name, new_name, **schedule):
        """A new guest ``new_name`` in exactly the state of guest ``name``
        (copy-on-write RAM, Machine.clone), taken between two of its slices;
        ``schedule`` as for add (default: the original's weight, cap, share)."""
        with self._holding(name) as g:
            machine = g.machine.clone()
        for key in ("weight", "cap", "share"):
            schedule.setdefault(key, getattr(g, key))
        return self.add(new_name, machine, **schedule)

    def save(self, name, path):
        """Save guest ``name`` to a snapshot file between two of its slices
        (Machine.save); ``create(snapshot=path)`` brings it back."""
        with self._holding(name) as g:
            return g.machine.save(path)

    def list(self):
        """(name, state, instructions) of every guest."""
        with self._lock:
            return [(g.name, g.state, g.instructions) for g in self.guests.values()]

    def metrics(self):
        """Every guest's meters: {name: dict} (see Guest.metrics)."""
        now = time.monotonic()
        with self._lock:
            guests = list(self.guests.values())
        return {g.name: g.metrics(now) for g in guests}

    def metrics_json(self):
        return json.dumps({"time": time.time(), "guests": self.metrics()}, indent=1)

    # --- scheduling -----------------------------------------------------------------------

    def _min_vruntime(self):
        live = [g.vruntime for g in self.guests.values() if g.state in ("ready", "running")]
        return min(live) if live else 0.0

    def _effective_weight(self, g, total):
        if g.share is None:
            return g.weight
        others = total - g.weight
        shares = sum(x.share or 0 for x in self.guests.values() if x.state in ("ready", "running"))
        # weight / (weight + others) >= share, with every guaranteed share counted
        need = g.share * others / max(1e-9, 1 - shares)
        return max(g.weight, need)

    def _pick(self, now):
        """The ready guest with the least virtual runtime that is not over its
        cap, or (None, seconds until a capped guest may run again)."""
        best, wait = None, None
        for g in self.guests.values():
            if g.state != "ready" or g._held:
                continue
            if g.cap is not None:
                allowed = g.cap * g._runnable_time(now)
                if g.instructions >= allowed and g.slices > 0:
                    due = max(g.instructions / g.cap - g._runnable_time(now), 0.001)
                    wait = due if wait is None else min(wait, due)
                    continue
            if best is None or g.vruntime < best.vruntime:
                best = g
        return best, wait

    def _worker(self):
        while True:
            with self._lock:
                while True:
                    if self._closing:
                        return
                    g, wait = self._pick(time.monotonic())
                    if g is not None:
                        break
                    if not self._busy():
                        return
                    self._lock.wait(timeout=wait if wait is not None else 0.05)
                g.state = "running"
                if g.started is None:
                    g.started = time.monotonic()
                budget = self.slice
                if g.max_instructions is not None:
                    budget = min(budget, g.max_instructions - g.instructions)
            t_cpu = time.thread_time()
            try:
                e = g.machine.run(max_instructions=max(budget, 0))
            except Exception as err:       # a bug, never a guest's doing: keep it, end the guest
                self._errors.append((g.name, err))
                e = None
            dt = time.thread_time() - t_cpu
            with self._lock:
                g.cpu_seconds += dt
                g.slices += 1
                total = sum(x.weight for x in self.guests.values() if x.state in ("ready", "running"))
                g.vruntime += max(e.instructions if e is not None else 0, 1) / self._effective_weight(g, total)
                now = time.monotonic()
                ended = e is None or e.kind != "budget" or (
                    g.max_instructions is not None and g.instructions >= g.max_instructions)
                if g.state == "stopping" or ended:
                    g.state = "stopped" if g.state == "stopping" else "exited"
                    g.exit = e
                    g._mark_idle(now)
                elif g.state == "pausing":
                    g.state = "paused"
                    g._mark_idle(now)
                else:
                    g.state = "ready"
                self._lock.notify_all()

    def _busy(self):
        return any(g.state in ("ready", "running", "pausing", "stopping") for g in self.guests.values())

    def start(self):
        """Start the worker threads (they end when no guest is left to run)."""
        with self._lock:
            self._closing = False
            self._started = True
            self._workers = [w for w in self._workers if w.is_alive()]
            for i in range(self.threads - len(self._workers)):
                w = threading.Thread(target=self._worker, name=f"visor86-worker-{i}", daemon=True)
                w.start()
                self._workers.append(w)

    def wait(self, timeout=None):
        """Wait until every guest has exited or stopped (or paused guests are
        all that is left); False if ``timeout`` seconds passed first."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._busy():
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(timeout=0.1 if left is None else min(left, 0.1))
        self._raise_errors()
        return True

    def run(self, timeout=None):
        """start() and wait(): run every guest to its end."""
        self.start()
        return self.wait(timeout)

    def shutdown(self):
        """Stop every guest and the worker threads."""
        with self._lock:
            now = time.monotonic()
            for g in self.guests.values():
                if g.state in ("ready", "paused"):
                    g.state = "stopped"
                    g._mark_idle(now)
                elif g.state in ("running", "pausing"):
                    g.state = "stopping"
            self._lock.notify_all()
        for w in self._workers:
            w.join()
        with self._lock:
            self._closing = True
            self._lock.notify_all()

    def _raise_errors(self):
        if self._errors:
            name, err = self._errors[0]
            raise HypervisorError(f"guest {name}: visor86 failed running it: {err!r}") from err


# --- emu host / emu top -------------------------------------------------------------------

CONFIG_KEYS = {"name", "kernel", "image", "snapshot", "memory", "cmdline", "weight", "cap", "share",
               "max_instructions", "serial"}
TOP_KEYS = {"threads", "slice", "guest"}


def parse_size(text):
    """'64M', '1G', '65536' -> bytes."""
    if isinstance(text, int):
        return text
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = str(text).strip().upper().rstrip("B").rstrip("I")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def load_config(path):
    """(threads, slice, [guest dicts]) from an `emu host` TOML file, paths
    made relative to the file; HypervisorError says what is wrong."""
    import pathlib
    import tomllib
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise HypervisorError(f"cannot read {path}: {e.strerror}")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise HypervisorError(f"{path} is not valid TOML: {e}")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise HypervisorError(f"{path}: unknown settings {', '.join(sorted(unknown))} (the file takes "
                              f"threads, slice and [[guest]] tables)")
    guests = data.get("guest", [])
    if not isinstance(guests, list) or not guests:
        raise HypervisorError(f"{path}: no guests: add a [[guest]] table with a name and a kernel, "
                              f"image or snapshot")
    out = []
    for i, g in enumerate(guests, 1):
        unknown = set(g) - CONFIG_KEYS
        if unknown:
            raise HypervisorError(f"{path}: guest {i}: unknown settings {', '.join(sorted(unknown))} "
                                  f"(known: {', '.join(sorted(CONFIG_KEYS))})")
        if "name" not in g:
            raise HypervisorError(f"{path}: guest {i} has no name")
        g = dict(g)
        for key in ("kernel", "image", "snapshot"):
            if key in g:
                g[key] = str((path.parent / g[key]).resolve())
        if "memory" in g:
            try:
                g["memory"] = parse_size(g["memory"])
            except ValueError:
                raise HypervisorError(f"{path}: guest {g['name']}: memory {g['memory']!r} is not a size "
                                      f"like 64M")
        out.append(g)
    return data.get("threads"), data.get("slice", DEFAULT_SLICE), out


def format_table(metrics, title=None):
    """The `emu top` table of a metrics dict ({name: Guest.metrics()})."""
    lines = [title] if title else []
    lines.append(f"{'GUEST':<14} {'STATE':<9} {'WEIGHT':>6} {'MIPS':>7} {'INSTRUCTIONS':>14} {'CPU s':>7} "
                 f"{'EXITS':>7} {'SERIAL':>8} {'RESIDENT':>9} {'DIRTY':>7}  END")
    for name, m in sorted(metrics.items()):
        resident = m["resident_pages"] * PAGE // 1024
        lines.append(f"{name[:14]:<14} {m['state']:<9} {m['weight']:>6g} {m['mips']:>7.2f} "
                     f"{m['instructions']:>14,} {m['host_cpu_seconds']:>7.2f} "
                     f"{sum(m['exits'].values()):>7} {m['io_bytes'].get('com1_tx', 0):>8} "
                     f"{resident:>7}Ki {m['dirty_pages']:>7}  {m['exit'] or ''}")
    return "\n".join(lines)
