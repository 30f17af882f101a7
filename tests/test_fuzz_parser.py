"""The fuzzing example (examples/fuzz_parser.py): resetting the parser guest
to a snapshot for every input, it finds the planted overflow; the guest
image is built reproducibly from its committed source."""
import pathlib
import runpy
import subprocess

import pytest

from tests.peers import require

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = runpy.run_path(str(ROOT / "examples" / "fuzz_parser.py"))


def records(packet):
    """(type, length) of each record of a packet, as far as it goes."""
    out, at = [], 4
    for _ in range(packet[3]):
        if at + 2 > len(packet):
            break
        out.append((packet[at], packet[at + 1]))
        at += 2 + packet[at + 1]
    return out


def test_the_parser_guest_accepts_and_rejects_as_documented():
    parser = EXAMPLE["GuestParser"]()
    for seed in EXAMPLE["SEEDS"]:
        assert parser.parse(seed)[0] == "accept"
    assert parser.parse(b"VZ\x02\x01\x02\x00")[0] == "reject"                   # version 2
    assert parser.parse(b"VZ\x01\x01\x01\x04\x01\x00\x00\x00\x00")[0] == "reject"  # trailing byte
    assert parser.parse(b"VZ\x01\x01\x02\x10" + b"A" * 16)[0] == "accept"       # a full name is fine
    assert parser.parse(b"VZ\x01\x01\x02\x29" + b"A" * 41)[0] == "reject"       # over the (wrong) limit
    verdict, e = parser.parse(b"VZ\x01\x01\x02\x14" + b"A" * 16 + b"\xff\xff\xff\xff")
    assert verdict == "crash" and e.kind == "exception"                          # the planted bug
    # resets are exact: the same input, the same run, however often
    runs = {parser.parse(EXAMPLE["SEEDS"][1])[1] for _ in range(50)}
    assert len(runs) == 1


@pytest.mark.parametrize("seed", [1, 2])
def test_a_short_seeded_campaign_finds_the_planted_crash(seed, tmp_path, capsys):
    out = tmp_path / "crash.bin"
    assert EXAMPLE["main"](["--seed", str(seed), "--iterations", "20000", "--out", str(out)]) == 0
    crash = out.read_bytes()
    assert crash[:3] == b"VZ\x01"
    # the crashing input has a NAME record longer than the 16-byte buffer
    assert any(t == 2 and 16 < n <= 40 for t, n in records(crash))
    text = capsys.readouterr().out
    assert "crash:" in text and "resets/s" in text
    # the same seed finds the same crash
    again = EXAMPLE["fuzz"](20000, seed)
    assert again["crash"] == crash


def test_the_parser_image_is_built_from_its_source(tmp_path):
    require("nasm")
    subprocess.run(["make", "-s", "-C", str(ROOT / "firmware" / "fuzz"), f"O={tmp_path}"], check=True)
    assert (tmp_path / "parser.bin").read_bytes() == (ROOT / "firmware" / "fuzz" / "parser.bin").read_bytes()
