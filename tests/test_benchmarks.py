"""The benchmark workloads (benchmarks/workloads/) at their smoke sizes.

Each workload runs on visor86 to its debug exit (status 1) and prints the
result QEMU and the host build give at that size (benchmarks/workloads.py
holds it).  Nothing here looks at time.  The committed images are what the
Makefile builds (when gcc, nasm, ld and make are present), and the harness
runs end to end on one small workload, writing nothing."""
import subprocess

import pytest

from benchmarks import peers
from benchmarks.workloads import WORKLOADS, DIR, EMPTY, Workload, by_name
from tests.peers import needs, require


@pytest.mark.parametrize("w", WORKLOADS, ids=lambda w: w.name)
def test_workload_result_on_visor86(w):
    r = peers.run_visor86(w, w.smoke)
    assert r.result == w.smoke_result, r.output[-300:]
    assert r.instructions > 0
    s = r.stats
    assert s["icache_hits"] + s["icache_misses"] >= r.instructions
    assert s["exits"].get("debug_exit") == 1


def test_work_grows_linearly_with_n():
    # the harness counts the peers' larger runs as a + b*n from two sizes
    w = by_name(["crc32"])[0]
    i1, i2, i3 = (peers.run_visor86(w, n).instructions for n in (1, 2, 4))
    assert i3 - i2 == 2 * (i2 - i1)


def test_serial_workload_sends_every_line():
    w = by_name(["serial"])[0]
    r = peers.run_visor86(w, 5)
    lines = r.output.split(b"\n")
    assert len([l for l in lines if len(l) == 63]) == 5


def test_empty_workload_returns_n():
    r = peers.run_visor86(Workload("empty", "", 1, 1, 1, 1, 1, False), 7)
    assert r.result == 7


def test_committed_images_are_what_the_makefile_builds(tmp_path):
    require("gcc", "nasm", "ld", "make")
    subprocess.run(["make", "-s", "-C", str(DIR), f"O={tmp_path}"], check=True)
    for elf in sorted(DIR.glob("*.elf")):
        assert (tmp_path / elf.name).read_bytes() == elf.read_bytes(), \
            f"benchmarks/workloads/{elf.name} is stale: run make -C benchmarks/workloads"
    assert EMPTY.is_file()


@needs("qemu-system-i386")
def test_qemu_gives_the_same_result():
    w = by_name(["sort"])[0]
    startup = 0.0
    r = peers.run_qemu(w, w.smoke, startup, repeat=1)
    assert r.result == w.smoke_result


def test_unicorn_gives_the_same_result():
    pytest.importorskip("unicorn")
    w = by_name(["paging"])[0]
    assert peers.run_unicorn(w, w.smoke).result == w.smoke_result


def test_host_build_gives_the_same_result(tmp_path):
    require("gcc", "make")
    peers.build_host(tmp_path)
    w = by_name(["dhry"])[0]
    assert peers.run_native(w, w.smoke, tmp_path, repeat=1).result == w.smoke_result


def test_harness_runs_end_to_end_without_writing(capsys):
    from benchmarks.__main__ import main
    status = main(["--quick", "--no-cold", "--no-write", "--workloads", "crc32", "--peers", "unicorn,bochs",
                   "--iterations", "1000", "--mix", "crc32"])
    out = capsys.readouterr().out
    assert status == 0
    assert "| `crc32`" in out and "bochs" in out and "missing" in out
    assert "decode-cache hit rate" in out


def test_a_missing_peer_is_reported_not_skipped():
    with pytest.raises(peers.Missing):
        peers.bochs_version()
