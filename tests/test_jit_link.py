"""emu/core/jit.py and jit_link.py: how the hot path is compiled.

A function compiled inside another's compile is finalised partially (its own
code only, not optimised with its callees, never written to the disk cache);
the function Python calls links the whole closure once.  Calls with constant
arguments compile one specialisation per type, not per value.  These run in a
subprocess with an empty numba cache so that what is cached can be checked."""
import json
import os
import subprocess
import sys
import textwrap

MODULE = textwrap.dedent("""
    import numpy as np
    from emu.core.jit import jit

    @jit
    def leaf(a, i):
        return a[i & 7] * 3 + 1

    @jit
    def middle(a, i):
        return leaf(a, i) + leaf(a, 5) + leaf(a, 6) + abs(i)

    @jit
    def top(a, n):
        s = 0
        for i in range(n):
            s += middle(a, i)
        return s

    def reference(a, n):
        leaf = lambda i: int(a[i & 7]) * 3 + 1
        return sum(leaf(i) + leaf(5) + leaf(6) + abs(i) for i in range(n))
""")

PROBE = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import chain
    from emu.core import jit_link
    a = np.arange(8, dtype=np.int64) * 7
    out = {"top": int(chain.top(a, 100)), "want_top": chain.reference(a, 100)}
    out["middle"] = int(chain.middle(a, 3))
    out["want_middle"] = chain.reference(a, 4) - chain.reference(a, 3)
    out["top_partial"] = [jit_link.is_partial(c.library) for c in chain.top.overloads.values()]
    out["middle_partial"] = [jit_link.is_partial(c.library) for c in chain.middle.overloads.values()]
    out["leaf_overloads"] = len(chain.leaf.overloads)
    out["cached"] = sorted(f.split(".")[1].split("-")[0] for d, _, fs in os.walk(sys.argv[2]) for f in fs
                           if f.endswith(".nbi"))
    print(json.dumps(out))
""")


def probe(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_DISABLE_JIT", None)
    r = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), str(tmp_path / "cache")],
                       env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_nested_compiles_are_partial_uncached_and_still_callable(tmp_path):
    (tmp_path / "chain.py").write_text(MODULE)
    first = probe(tmp_path)
    assert first["top"] == first["want_top"]
    assert first["top_partial"] == [False]          # the root links its closure
    assert first["middle_partial"] == [True]        # compiled inside top's compile
    assert first["middle"] == first["want_middle"]  # callable from Python all the same
    assert first["cached"] == ["top"]               # partial code never reaches the disk
    assert first["leaf_overloads"] == 1             # leaf(a, i), leaf(a, 5), leaf(a, 6): one type

    second = probe(tmp_path)                         # a new process: top loads from disk
    assert second["top"] == second["want_top"]
    assert second["middle_partial"] == [False]      # Python called it first: a root now
    assert second["middle"] == second["want_middle"]
    assert second["cached"] == ["middle", "top"]
