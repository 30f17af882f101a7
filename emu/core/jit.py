"""The one jit decorator of the hot path.

Every jitted function in ``emu/core`` and ``devices/chips`` is compiled with
``cache=True`` (so a warm start loads machine code from disk) and
``nogil=True`` (so several guests run on several host threads at once).

numba's on-disk cache is keyed by the source file of each function only: a
change in a callee's module does not invalidate the caller's cached code.
To keep the cache honest we point numba at a cache directory named after a
hash of every hot-path source file, so any edit to the core starts a fresh
cache instead of loading stale machine code.
"""
import hashlib
import os
import pathlib

import numba

_HOT_DIRS = ("emu/core", "devices/chips")


def _hot_sources_digest():
    root = pathlib.Path(__file__).resolve().parents[2]
    h = hashlib.sha256(numba.__version__.encode())
    for d in _HOT_DIRS:
        for p in sorted((root / d).rglob("*.py")):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _cache_dir():
    base = os.environ.get("VISOR86_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "visor86")
    return os.path.join(base, "numba-" + _hot_sources_digest())


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = _cache_dir()


def jit(fn):
    """Compile ``fn`` for the hot path (cached, GIL released, no NRT).

    ``_nrt=False`` turns off numba's reference counting: every call that is
    not inlined would otherwise incref and decref each array of the Guest
    tuple with atomic operations (measured: a NOP took 270 ns with NRT,
    78 ns without).  The price is that hot code cannot allocate arrays;
    it works on the state arrays (use cpu slots or views for scratch)."""
    return numba.njit(cache=True, nogil=True, _nrt=False)(fn)
