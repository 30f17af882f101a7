"""Optimise and generate machine code for each hot-path function once.

numba compiles every ``@jit`` function into a code library of its own.  When
it finalises a library it links in a copy of every callee's library, runs
LLVM's module optimisation over the whole copy and generates machine code for
all of it.  The hot path is ~440 functions deep in each other (``run`` reaches
270 of them), so each callee is optimised and compiled again inside every
caller above it: the cold compile spent ~55 s in module optimisation and ~50 s
in code generation, nearly all of it on copies that were thrown away.

Here a function compiled *because another one is being compiled* (a nested
compile, under a root compile of one of our dispatchers) is finalised
*partially*: its own functions only, no linking, no module passes; its
machine code calls its callees' code in the same JIT engine by symbol.  The
root (the function Python called) links the transitive closure of partial
libraries, runs the full module optimisation once and generates its machine
code once; that is the code that runs and the code the disk cache keeps.
Partial libraries are never written to the disk cache (their code is not
self-contained); a later Python call of such a function in the same process
works (its callees are in the same engine), and in a new process it compiles
as a root.

This relies on numba internals (``CPUCodeLibrary.finalize``,
``_linking_libraries``, the ``numba:compile`` event); ``install()`` leaves
numba alone when they are missing.
"""
from numba.core import event

_state = {"depth": 0, "ours": False}


def is_partial(library):
    """True for a library finalised partially (never cache it)."""
    return getattr(library, "_visor86_partial", False)


def _link_closure(libraries):
    """``libraries`` plus, through every partial one, the libraries it
    would have linked itself (in order, each once)."""
    out, seen, todo = [], set(), list(libraries)
    todo.reverse()
    while todo:
        lib = todo.pop()
        if id(lib) in seen:
            continue
        seen.add(id(lib))
        out.append(lib)
        if is_partial(lib):
            todo.extend(reversed(lib._linking_libraries))
    return out


class _CompileDepth(event.Listener):
    """Counts nested dispatcher compiles and remembers whether the root is
    one of ours (only their nested compiles are finalised partially)."""

    def on_start(self, ev):
        if _state["depth"] == 0:
            data = ev.data if isinstance(ev.data, dict) else {}
            _state["ours"] = getattr(data.get("dispatcher"), "_visor86_hot", False)
        _state["depth"] += 1

    def on_end(self, ev):
        _state["depth"] -= 1


def install():
    """Patch numba's CPU code library once (idempotent)."""
    try:
        from numba.core.codegen import CPUCodeLibrary
        from numba.core.compiler_lock import require_global_compiler_lock
        full_finalize = CPUCodeLibrary.finalize
    except (ImportError, AttributeError):
        return
    if getattr(full_finalize, "visor86_partial_finalize", False):
        return                       # installed already
    if not all(
            hasattr(CPUCodeLibrary, n) for n in
            ("_finalize_final_module", "_verify_declare_only_symbols", "_raise_if_finalized")):
        return

    def finalize(self):
        partial = _state["ours"] and _state["depth"] >= 2
        if not partial:
            if any(is_partial(lib) for lib in self._linking_libraries):
                self._linking_libraries = _link_closure(self._linking_libraries)
            return full_finalize(self)
        require_global_compiler_lock()
        self._raise_if_finalized()
        self._visor86_partial = True
        for lib in self._linking_libraries:     # finalised when added (add_linking_library)
            self._reload_init.update(lib._reload_init)
        # The module declares its callees (numba's own ones too), which
        # numba's check refuses in a self-contained library; here the engine
        # resolves them by symbol.
        self._verify_declare_only_symbols = lambda: None
        self._final_module.verify()
        self._finalize_final_module()

    finalize.visor86_partial_finalize = True
    CPUCodeLibrary.finalize = finalize
    event.register("numba:compile", _CompileDepth())


def mark_hot(dispatcher):
    """Mark ``dispatcher`` as one of ours (its nested compiles go partial)."""
    dispatcher._visor86_hot = True
    return dispatcher


__all__ = ["install", "is_partial", "mark_hot"]
