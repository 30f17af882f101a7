"""emu.Hypervisor: many guests on host threads, scheduled fairly by weight
with caps and guaranteed shares, paused/resumed/stopped, metered; hostile
guests next to well-behaved ones change nothing for the latter."""
import hashlib
import json
import random
import time

import pytest

from emu import Hypervisor, Machine
from emu.hypervisor import HypervisorError
from tests.test_isolation import hostile_machine
from tests.test_kernels_qemu import KERNELS, MANIFEST

SPIN = b"\xeb\xfe"                      # jmp $: runs forever


def spinner():
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(0x1000, SPIN)
    m.cpu.eip = 0x1000
    return m


def run_until(hv, total):
    """Start the guests and stop them all once they retired ``total`` instructions between them."""
    hv.start()
    deadline = time.monotonic() + 120
    while sum(i for _, _, i in hv.list()) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    hv.shutdown()
    return {name: insns for name, _, insns in hv.list()}


def test_kernels_run_concurrently_with_their_own_output():
    hv = Hypervisor(threads=2, slice_instructions=20_000)
    names = sorted(MANIFEST)
    for n in names:
        hv.create(n, kernel=str(KERNELS / f"{n}.elf"))
    assert hv.run(timeout=900)
    for n in names:
        g = hv.guests[n]
        assert g.state == "exited" and g.exit.kind == "debug_exit"
        assert g.exit.status == MANIFEST[n]["status"]
        assert bytes(g.serial) == (KERNELS / f"{n}.expected").read_bytes(), n


def test_weights_divide_the_cpu():
    """One thread, two spinning guests of weight 1 and 3: a quarter and three
    quarters of the instructions, within a slice."""
    hv = Hypervisor(threads=1, slice_instructions=10_000)
    hv.add("light", spinner(), weight=1)
    hv.add("heavy", spinner(), weight=3)
    got = run_until(hv, 800_000)
    assert abs(got["heavy"] / (got["light"] + got["heavy"]) - 0.75) < 0.03, got


def test_no_guest_starves_whatever_the_weights():
    hv = Hypervisor(threads=1, slice_instructions=5_000)
    for i in range(8):
        hv.add(f"g{i}", spinner(), weight=10 ** (i % 4))
    got = run_until(hv, 3_000_000)
    assert min(got.values()) > 0, got
    done = sum(got.values())           # past 3M: the poll of run_until lags the core
    for i in range(8):                 # each gets its weight's part, to a few slices
        expect = done * 10 ** (i % 4) / sum(10 ** (j % 4) for j in range(8))
        assert abs(got[f"g{i}"] - expect) < 6 * 5_000 + 0.05 * expect, (i, got)


def test_a_guaranteed_share_holds_against_heavier_guests():
    hv = Hypervisor(threads=1, slice_instructions=10_000)
    hv.add("small", spinner(), weight=1, share=0.5)
    hv.add("big1", spinner(), weight=10)
    hv.add("big2", spinner(), weight=10)
    got = run_until(hv, 1_000_000)
    assert got["small"] / sum(got.values()) >= 0.47, got


def test_a_cap_holds_a_guest_back():
    """A guest capped at 300,000 instructions per second of host time does
    not get ahead of its budget by more than a slice."""
    hv = Hypervisor(threads=2, slice_instructions=10_000)
    g = hv.add("capped", spinner(), cap=300_000)
    free = hv.add("free", spinner())
    hv.start()
    time.sleep(0.6)
    hv.shutdown()
    assert g.instructions <= 300_000 * g.runnable_seconds + 10_000
    assert g.instructions > 0 and free.instructions > g.instructions


def test_pause_resume_stop():
    hv = Hypervisor(threads=1, slice_instructions=10_000)
    a = hv.add("a", spinner())
    b = hv.add("b", spinner())
    hv.start()
    time.sleep(0.1)
    hv.pause("a")
    time.sleep(0.05)
    assert a.state == "paused"
    frozen = a.instructions
    time.sleep(0.1)
    assert a.instructions == frozen and b.state in ("ready", "running")
    hv.resume("a")
    time.sleep(0.1)
    assert a.instructions > frozen
    hv.stop("b")
    time.sleep(0.05)
    assert b.state == "stopped"
    hv.shutdown()
    assert a.state == "stopped"
    assert [(n, s) for n, s, _ in hv.list()] == [("a", "stopped"), ("b", "stopped")]


def test_metrics_as_dict_and_json():
    hv = Hypervisor(threads=1)
    hv.create("timer", kernel=str(KERNELS / "timer.elf"))
    hv.run(timeout=900)
    m = hv.metrics()["timer"]
    assert m["state"] == "exited" and m["exit"] == "debug_exit"
    assert m["instructions"] > 100_000 and m["host_cpu_seconds"] > 0 and m["slices"] >= 2
    assert m["exits"]["debug_exit"] == 1 and m["exits"]["budget"] >= 1
    assert m["io_bytes"]["com1_tx"] == len((KERNELS / "timer.expected").read_bytes())
    io = m["io_bytes"]                          # port bytes per chip, served inside the loop
    assert io["pit_out"] >= 3 and io["pic_master_out"] >= 4 and io["debug_exit_out"] >= 1
    assert io["com1_out"] >= io["com1_tx"]     # THR writes, and the UART's setup
    assert 0 < m["dirty_pages"] and 0 < m["resident_pages"] <= m["memory_bytes"] // 4096
    data = json.loads(hv.metrics_json())
    assert data["guests"]["timer"]["instructions"] == m["instructions"]


def test_bad_requests_say_what_is_wrong():
    hv = Hypervisor(threads=1)
    hv.add("a", spinner(), share=0.6)
    with pytest.raises(HypervisorError, match="already a guest named a"):
        hv.add("a", spinner())
    with pytest.raises(HypervisorError, match="shares would add up to 1.10"):
        hv.add("b", spinner(), share=0.5)
    with pytest.raises(HypervisorError, match="weight must be a positive number"):
        hv.add("c", spinner(), weight=0)
    with pytest.raises(HypervisorError, match="no guest named 'zz'"):
        hv.pause("zz")
    with pytest.raises(HypervisorError, match="exactly one of kernel="):
        hv.create("d")
    with pytest.raises(HypervisorError, match="guest e:"):
        hv.create("e", kernel="/nonexistent.elf")
    with pytest.raises(HypervisorError, match="expected an emu.Machine"):
        hv.add("f", object())


def test_hostile_guests_next_to_well_behaved_ones_on_threads():
    """Isolation under attack, concurrently: hostile guests (random code,
    random page tables, port floods and wild stores) share two host threads
    with kernels; each kernel's output and memory are exactly as alone."""
    expected = {}
    for n in ("timer", "paging"):
        alone = Machine.from_multiboot(KERNELS / f"{n}.elf")
        e = alone.run(max_instructions=5_000_000)
        assert e.kind == "debug_exit" and e.status == MANIFEST[n]["status"]
        expected[n] = (e.kind, e.status, alone.com1.read(),
                       hashlib.sha256(alone.memory.read(0, alone.memory_size)).hexdigest())
    hv = Hypervisor(threads=2, slice_instructions=20_000)
    rng = random.Random(7)
    for i in range(9):
        hv.add(f"hostile{i}", hostile_machine(rng, i % 3), max_instructions=400_000)
    for n in expected:
        hv.add(n, Machine.from_multiboot(KERNELS / f"{n}.elf"))
    assert hv.run(timeout=900)
    hostile = sum(g.instructions for name, g in hv.guests.items() if name.startswith("hostile"))
    assert hostile > 1_000_000
    for n, want in expected.items():
        g = hv.guests[n]
        got = (g.exit.kind, g.exit.status, bytes(g.serial),
               hashlib.sha256(g.machine.memory.read(0, g.machine.memory_size)).hexdigest())
        assert got == want, n


def test_emu_host_runs_a_config_and_emu_top_shows_it(tmp_path, capsys):
    from emu.cli import main as cli_main
    config = tmp_path / "host.toml"
    config.write_text(f'''threads = 2
slice = 20000

[[guest]]
name = "timer"
kernel = "{KERNELS / 'timer.elf'}"
weight = 2
serial = "file:timer.log"

[[guest]]
name = "exceptions"
kernel = "{KERNELS / 'exceptions.elf'}"
memory = "32M"
''')
    status = tmp_path / "status.json"
    assert cli_main(["host", str(config), "--status", str(status), "--top"]) == 0
    out = capsys.readouterr().out
    assert "GUEST" in out and "timer" in out and "debug_exit" in out
    assert (tmp_path / "timer.log").read_bytes() == (KERNELS / "timer.expected").read_bytes()
    data = json.loads(status.read_text())
    assert data["running"] is False and data["guests"]["exceptions"]["memory_bytes"] == 32 << 20
    assert cli_main(["top", str(status), "--once"]) == 0
    assert "finished" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("threads = 2\n", "no guests"),
    ("[[guest]]\nkernel = 'x.elf'\n", "has no name"),
    ("[[guest]]\nname = 'a'\nkernal = 'x.elf'\n", "unknown settings kernal"),
    ("[[guest]]\nname = 'a'\nkernel = 'missing.elf'\n", "guest a:"),
    ("[[guest]]\nname = 'a'\nkernel = 'k.elf'\nmemory = 'lots'\n", "not a size"),
    ("[[guest]\n", "not valid TOML"),
    ("speed = 3\n[[guest]]\nname = 'a'\n", "unknown settings speed"),
])
def test_emu_host_refuses_a_bad_config_with_a_reason(tmp_path, capsys, text, message):
    from emu.cli import main as cli_main
    config = tmp_path / "host.toml"
    config.write_text(text)
    assert cli_main(["host", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_emu_top_without_a_status_file(tmp_path, capsys):
    from emu.cli import main as cli_main
    assert cli_main(["top", str(tmp_path / "none.json")]) == 2
    assert "emu host CONFIG --status" in capsys.readouterr().err


def test_clone_and_save_a_running_guest(tmp_path):
    """A guest cloned or saved while the hypervisor runs it is taken between
    two slices; the clone and the restored copy end exactly as the original."""
    hv = Hypervisor(threads=2, slice_instructions=20_000)
    # capped so that the 1M-instruction kernel is still running at the clone
    # (uncapped, the core finishes it within the 50 ms)
    hv.create("timer", kernel=str(KERNELS / "timer.elf"), cap=4_000_000)
    hv.start()
    time.sleep(0.05)
    assert hv.guests["timer"].exit is None
    twin = hv.clone("timer", "twin")
    hv.save("timer", tmp_path / "timer.snap")
    hv.create("restored", snapshot=str(tmp_path / "timer.snap"))
    assert hv.wait(timeout=900)
    expected = (KERNELS / "timer.expected").read_bytes()
    original = hv.guests["timer"]
    assert bytes(original.serial) == expected and original.exit.kind == "debug_exit"
    for name in ("twin", "restored"):
        g = hv.guests[name]
        assert g.exit.kind == "debug_exit" and g.exit.status == original.exit.status
        assert expected.endswith(bytes(g.serial)), name       # the rest of the output, nothing repeated
    assert twin.machine.instructions_retired == original.machine.instructions_retired


def test_a_guest_added_after_the_workers_ended_still_runs():
    """The workers end when nothing is left to run; a guest created later
    (here from a snapshot) starts them again, as resume and clone do."""
    hv = Hypervisor(threads=2, slice_instructions=20_000)
    hv.create("first", kernel=str(KERNELS / "timer.elf"))
    assert hv.run(timeout=300)
    for w in hv._workers:
        w.join(timeout=10)
    assert not any(w.is_alive() for w in hv._workers)
    hv.create("late", kernel=str(KERNELS / "timer.elf"))
    assert hv.wait(timeout=300)
    assert hv.guests["late"].state == "exited"
    assert bytes(hv.guests["late"].serial) == bytes(hv.guests["first"].serial)
