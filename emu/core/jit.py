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
from numba.core import errors, sigutils, types
from numba.core.compiler_lock import global_compiler_lock

from emu.core import jit_link

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
jit_link.install()


def jit(fn):
    """Compile ``fn`` for the hot path (cached, GIL released, no NRT).

    ``_nrt=False`` turns off numba's reference counting: every call that is
    not inlined would otherwise incref and decref each array of the Guest
    tuple with atomic operations (measured: a NOP took 270 ns with NRT,
    78 ns without).  The price is that hot code cannot allocate arrays;
    it works on the state arrays (use cpu slots or views for scratch).
    Nothing takes a hot function's address, so numba builds no C-ABI
    wrapper for it (``no_cfunc_wrapper``: a third fewer LLVM functions)."""
    return _hot_dispatcher(numba.njit(nogil=True, _nrt=False, no_cfunc_wrapper=True)(fn))


def jit_inline(fn):
    """@jit for the small helpers of the fast tier (core/fastpath.py): numba
    inlines them into their caller (``inline='always'``, at numba's IR
    level), where LLVM would leave a call that passes every array argument
    as seven or more machine words."""
    return _hot_dispatcher(numba.njit(nogil=True, _nrt=False, no_cfunc_wrapper=True,
                                      inline="always")(fn))


def c_function(fn, signature):
    """``fn`` compiled as a C function (numba's cfunc: ``.address``), for
    machine code that is not numba's to call (compiled blocks); cached on
    disk as @jit functions are, and loaded without refreshing numba's
    compiler (below), which a cache miss does before it compiles."""
    from numba.core.ccallback import CFunc
    function = CFunc(fn, sigutils.normalize_signature(signature), locals={},
                     options={"nopython": True, "_nrt": False})
    function.enable_caching()
    _load_cache_without_refresh(function)
    load = function._cache.load_overload

    def load_or_refresh(sig, target_context):
        cres = load(sig, target_context)
        if cres is None:
            target_context.refresh()
            target_context.typing_context.refresh()
        return cres

    function._cache.load_overload = load_or_refresh
    function.compile()
    return function


def _hot_dispatcher(dispatcher):
    """How every hot-path dispatcher finds its disk cache, loads, saves and
    compiles (below)."""
    _cache_from_first_compile(dispatcher)
    _compile_once_per_type(dispatcher)
    return jit_link.mark_hot(dispatcher)


def _cache_from_first_compile(dispatcher):
    """Give ``dispatcher`` its disk cache (``cache=True``) when it first
    compiles or loads, not when it is created: locating a function's cache
    took 0.08 s of a warm start over the ~440 hot functions, of which a warm
    start loads half a dozen."""
    compile_now = getattr(dispatcher, "compile", None)
    if compile_now is None:         # NUMBA_DISABLE_JIT: a plain function
        return

    def compile_with_cache(sig):
        with global_compiler_lock:  # once, even if two threads get here
            if dispatcher.__dict__.pop("compile", None) is not None:   # numba's own from now on
                dispatcher.enable_caching()
                _load_cache_without_refresh(dispatcher)
                _save_only_whole_code(dispatcher)
        return compile_now(sig)

    dispatcher.compile = compile_with_cache


def _compile_once_per_type(dispatcher):
    """Type calls from other jitted functions by the arguments' types, not
    their constant values.  numba types a constant argument as a literal
    (``Literal[int](4)``) and compiles a specialisation of the callee per
    value: the hot path had 820 compiles of 440 functions (``raise_fault``
    once per vector, ``get_reg`` once per register).  Specialising on the
    value gains nothing here, since LLVM propagates the constants where it
    inlines.  A callee whose typing needs the literal (a tuple index, say)
    still gets it."""
    typed_by_value = getattr(dispatcher, "get_call_template", None)
    if typed_by_value is None:      # NUMBA_DISABLE_JIT: a plain function
        return

    def get_call_template(args, kws):
        plain = tuple(types.unliteral(a) for a in args)
        plain_kws = {k: types.unliteral(v) for k, v in kws.items()}
        if plain == tuple(args) and plain_kws == kws:
            return typed_by_value(args, kws)
        try:
            return typed_by_value(plain, plain_kws)
        except errors.TypingError:
            return typed_by_value(args, kws)

    dispatcher.get_call_template = get_call_template


def _save_only_whole_code(dispatcher):
    """Keep the disk cache to self-contained machine code: a function
    compiled inside another's compile is finalised partially (see
    jit_link) and calls its callees by symbol, which a new process that
    loads it alone would not have."""
    cache = getattr(dispatcher, "_cache", None)
    save = getattr(cache, "save_overload", None)
    if save is None:
        return

    def save_overload(sig, cres):
        if not jit_link.is_partial(getattr(cres, "library", None)):
            save(sig, cres)

    cache.save_overload = save_overload


def _load_cache_without_refresh(dispatcher):
    """Make ``dispatcher`` load its cached machine code without refreshing
    numba's compiler first.  numba's cache load refreshes the typing and
    lowering registries (it imports and installs every numba
    implementation: 0.3-0.5 s, half of a warm start) in case the entry is
    stale and must be compiled; loaded code needs none of it, and numba's
    compiler refreshes them itself before it compiles.  Left as it is when
    this numba keeps its cache differently."""
    cache = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "_load_overload", None)
    guard = getattr(cache, "_guard_against_spurious_io_errors", None)
    if load is None or guard is None:
        return

    def load_overload(sig, target_context):
        with guard():
            return load(sig, target_context)
        return None      # the guard swallowed an I/O error: compile instead

    cache.load_overload = load_overload
