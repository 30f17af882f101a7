"""A copy of visor86 with one rule changed, for the tests that prove a
fuzzer can see bugs: the copy runs as plain Python (NUMBA_DISABLE_JIT), so
nothing is compiled for it."""
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def planted_copy(tmp_path, relpath, old, new):
    """The emu and devices packages copied under tmp_path/patched, with the
    one occurrence of ``old`` in ``relpath`` replaced by ``new``."""
    tree = tmp_path / "patched"
    for d in ("emu", "devices"):
        shutil.copytree(ROOT / d, tree / d, ignore=shutil.ignore_patterns("__pycache__"))
    path = tree / relpath
    source = path.read_text()
    assert source.count(old) == 1, f"{relpath} no longer has exactly one {old!r}"
    path.write_text(source.replace(old, new))
    return tree


def run_emu(tree, *args, timeout=300):
    """`python -m emu.cli ARGS` from the copy; the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_DISABLE_JIT="1")
    return subprocess.run([sys.executable, "-m", "emu.cli", *args], cwd=tree, capture_output=True,
                          text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)
