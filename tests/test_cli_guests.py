"""`emu snapshot`, `emu restore`, `emu clone` (emu/cli_guests.py): a guest
saved mid-run and restored in another process prints the rest of its
output; clones run side by side; bad files and arguments are refused."""
import os
import subprocess
import sys

from emu.cli import main as cli_main
from tests.test_kernels_qemu import KERNELS

ROOT = KERNELS.parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
EXPECTED = (KERNELS / "timer.expected").read_bytes()


def emu(*args):
    return subprocess.run([sys.executable, "-m", "emu.cli", *map(str, args)], capture_output=True, env=ENV,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_snapshot_then_restore_in_another_process_prints_the_rest(tmp_path):
    snap = tmp_path / "timer.snap"
    a = emu("snapshot", "--kernel", KERNELS / "timer.elf", "--max-instructions", 300_000, "-o", snap)
    assert a.returncode == 0, a.stderr.decode()
    assert b"saved to" in a.stderr and snap.is_file()
    again = tmp_path / "again.snap"
    b = emu("restore", snap, "--save-snapshot", again)
    assert b.returncode == 1                                # the kernel's debug-exit status
    assert a.stdout and b.stdout and a.stdout + b.stdout == EXPECTED
    c = emu("restore", again)                               # after the end: it stays stopped in its cli; hlt
    assert c.stdout == b""


def test_clone_runs_k_clones_that_all_print_the_same(tmp_path, capfdbinary):
    snap = tmp_path / "timer.snap"
    assert cli_main(["snapshot", "--kernel", str(KERNELS / "timer.elf"), "--max-instructions", "300000",
                     "-o", str(snap)]) == 0
    first = capfdbinary.readouterr().out
    assert cli_main(["clone", str(snap), "--count", "5", "--max-instructions", "2000000", "--show", "3"]) == 0
    cap = capfdbinary.readouterr()
    assert first + cap.out == EXPECTED                      # clone 3's output, the rest of the run
    err = cap.err.decode()
    assert "5 clones of" in err and "identical output in all clones: yes" in err
    assert err.count("debug_exit") == 5


def test_bad_input_is_refused_with_a_message(tmp_path, capsys):
    junk = tmp_path / "junk.snap"
    junk.write_bytes(b"not a snapshot at all" * 10)
    assert cli_main(["restore", str(junk)]) == 2
    assert "not a visor86 snapshot" in capsys.readouterr().err
    assert cli_main(["clone", str(junk), "--count", "2"]) == 2
    assert "not a visor86 snapshot" in capsys.readouterr().err
    assert cli_main(["clone", str(tmp_path / "missing.snap"), "--count", "0"]) == 2
    assert "--count must be at least 1" in capsys.readouterr().err
    assert cli_main(["migrate", "--listen", "1234", "--to", "127.0.0.1:1"]) == 2
    assert "either --listen" in capsys.readouterr().err
    assert cli_main(["migrate", "--to", "localhost"]) == 2
    assert "expected" in capsys.readouterr().err
    assert cli_main(["snapshot", "--max-instructions", "5", "-o", str(tmp_path / "x")]) == 2
    assert "nothing to boot" in capsys.readouterr().err
