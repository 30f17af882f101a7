"""`emu fuzz --decode` (issue 7, item 6): visor86's decoder over many byte
strings per call (emu/core/decode_batch.py), compared with capstone and, for
host-safe strings, with the host CPU; the report's classes; the CLI; and
that hostile input cannot make the jitted entry read or write outside its
arrays."""

import numpy as np
import pytest

from emu import Machine
from emu.cli import main as cli_main
from tests.planted import planted_copy, run_emu
from emu.core import layout as L
from emu.core.decode_batch import decode_many, CODE_AT, DECODED, BAD_INPUT
from emu.fuzz import decode as fd
from emu.fuzz.decode import (Visor86Decoder, DecodeInputError, campaign, generate,
                             parse_opcode)



@pytest.fixture(scope="module")
def dec():
    return Visor86Decoder()


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


# (bytes, mode, length, why: SDM Vol. 2 unless said otherwise)
KNOWN_LENGTHS = [
    ("01 c8", 32, 2, "ADD Ev,Gv: opcode + ModRM mod=11 (2.1, table 2-2)"),
    ("b8 78 56 34 12", 32, 5, "MOV r32, imm32 (B8+rd id)"),
    ("66 b8 34 12", 32, 4, "66h makes the immediate 16 bits (2.1.1, operand-size prefix)"),
    ("b8 34 12", 16, 3, "16-bit code: MOV r16, imm16"),
    ("66 b8 78 56 34 12", 16, 6, "66h in 16-bit code: a 32-bit immediate"),
    ("8b 84 88 44 33 22 11", 32, 7, "ModRM mod=10 r/m=100: SIB, then disp32 (tables 2-2, 2-3)"),
    ("8b 04 25 78 56 34 12", 32, 7, "SIB base=101 with mod=00: no base, disp32 (table 2-3 note)"),
    ("8b 05 78 56 34 12", 32, 6, "mod=00 r/m=101: disp32 alone (table 2-2)"),
    ("8b 44 24 08", 32, 4, "[esp+disp8]: SIB + disp8"),
    ("67 8b 46 10", 32, 4, "67h: 16-bit addressing, [bp+disp8] (table 2-1)"),
    ("67 8b 06 34 12", 32, 5, "67h: 16-bit mod=00 r/m=110 is disp16 alone (table 2-1)"),
    ("8b 87 34 12", 16, 4, "16-bit code: [bx+disp16] (table 2-1)"),
    ("67 8b 84 88 44 33 22 11", 16, 8, "67h in 16-bit code: 32-bit addressing with SIB and disp32"),
    ("a1 78 56 34 12", 32, 5, "MOV eAX, moffs32: the offset is address-sized"),
    ("67 a1 34 12", 32, 4, "67h shrinks moffs to 16 bits"),
    ("69 c0 78 56 34 12", 32, 6, "IMUL Gv,Ev,Iz"),
    ("6b c0 05", 32, 3, "IMUL Gv,Ev,Ib"),
    ("f6 c0 05", 32, 3, "F6 /0 TEST Eb,Ib has an immediate"),
    ("f6 d0", 32, 2, "F6 /2 NOT Eb has none"),
    ("c8 10 00 01", 32, 4, "ENTER Iw,Ib"),
    ("9a 78 56 34 12 08 00", 32, 7, "CALL ptr16:32"),
    ("66 9a 34 12 08 00", 32, 6, "66h: CALL ptr16:16"),
    ("0f b6 c0", 32, 3, "0F map: MOVZX Gv,Eb"),
    ("0f 84 78 56 34 12", 32, 6, "Jcc rel32"),
    ("0f 84 34 12", 16, 4, "16-bit code: Jcc rel16"),
    ("66 0f ba e0 05", 32, 5, "0F BA /4 BT Ev,Ib"),
    ("0f c7 0f", 32, 3, "0F C7 /1 CMPXCHG8B m64"),
    ("f0 0f c7 0f", 32, 4, "LOCK CMPXCHG8B m64 (LOCK)"),
    ("f0 01 00", 32, 3, "LOCK ADD m32, r32: a memory destination (LOCK)"),
    ("f3 a5", 32, 2, "REP MOVSD"),
    ("2e 3e 26 64 65 36 90", 32, 7, "six segment overrides and NOP (2.1.1)"),
    ("3e" * 14 + "90", 32, 15, "14 prefixes and NOP: exactly 15 bytes (2.3.11)"),
    ("0f 20 c0", 32, 3, "MOV r32, CR0"),
    ("0f 20 80", 32, 3, "MOV r32, CR0 with mod=10: the mod bits are ignored, no displacement "
                        "(MOV--Move to/from Control Registers)"),
    ("0f 22 44", 32, 3, "MOV CR0, r32 with mod=01 r/m=100: no SIB, no displacement (same page)"),
    ("0f 21 05", 32, 3, "MOV r32, DR0 with mod=00 r/m=101: no disp32 (MOV--Move to/from Debug Registers)"),
    ("0f 23 bc", 16, 3, "MOV DR7, r32 in 16-bit code with mod=10: no disp16 (same page)"),
]


@pytest.mark.parametrize("code, mode, length, why", KNOWN_LENGTHS, ids=[k[0] for k in KNOWN_LENGTHS])
def test_the_batch_decoder_knows_the_lengths(dec, code, mode, length, why):
    # padded with bytes the instruction must not take (a wrong length shows)
    s = h(code)
    padded = (s + b"\x90" * 15)[:15] if len(s) < 15 else s
    for data in (s, padded):
        (a,) = dec.decode([data], mode)
        assert (a.status, a.length) == ("ok", length), why


def test_a_whole_batch_decodes_as_the_strings_do_one_by_one(dec):
    strings = [h(c) for c, mode, _, _ in KNOWN_LENGTHS if mode == 32]
    batch = dec.decode(strings)
    assert batch == [dec.decode([s])[0] for s in strings]
    assert [a.length for a in batch] == [n for _, mode, n, _ in KNOWN_LENGTHS if mode == 32]


@pytest.mark.parametrize("code, why", [
    ("0f 04", "0F 04 is not an opcode (appendix A)"),
    ("0f 38 00 c0", "0F 38 00 (PSHUFB) is SSSE3, which visor86 does not have"),
    ("fe 10", "FE /2 is undefined (table A-6)"),
    ("0f ba 18 05", "0F BA /0-/3 are undefined (table A-6)"),
    ("8d c0", "LEA with a register operand (M: memory only)"),
    ("c4 c0", "LES with a register operand; a VEX prefix on later CPUs"),
    ("f0 01 c8", "LOCK with a register destination (LOCK: #UD)"),
    ("f0 8b 00", "LOCK on MOV, which it may not prefix (LOCK: #UD)"),
    ("f0 90", "LOCK NOP"),
])
def test_undefined_encodings_are_ud(dec, code, why):
    (a,) = dec.decode([h(code)])
    assert a.status == "ud", why


def test_ud0_ud1_ud2_decode_as_the_instructions_that_raise_ud(dec):
    """UD2 is 0F 0B; UD1 is 0F B9 /r and UD0 0F FF /r (Vol. 2, UD): the
    decoder gives their rows and lengths, executing them raises #UD."""
    a, b, c = dec.decode([h("0f 0b"), h("0f b9 c0"), h("0f ff 44 24 08")])
    assert (a.row.mnemonic, a.length) == ("UD2", 2)
    assert (b.row.mnemonic, b.length) == ("UD1", 3)
    assert (c.row.mnemonic, c.length) == ("UD0", 5)
    (short,) = dec.decode([h("0f ff")])
    assert short.status == "past_end"      # the ModRM UD0 needs is not there


def test_mov_cr_with_a_memory_looking_modrm_runs_as_the_register_form():
    """SDM Vol. 2, MOV--Move to/from Control Registers: "the 2 bits in the mod
    field are ignored" (the AMD manual: always treated as mod = 11), so
    0F 20 80 is MOV EAX, CR0 in three bytes and the next instruction follows."""
    m = Machine.flat32(memory_size=1 << 20)
    m.memory.write(0x1000, h("0f 20 80" "40"))       # mov eax, cr0 ; inc eax
    m.cpu.eip = 0x1000
    m.step()
    assert m.cpu.eip == 0x1003 and m.cpu.eax == m.cpu.cr0
    m.step()
    assert m.cpu.eax == m.cpu.cr0 + 1


def test_strings_of_prefixes_and_truncated_instructions_run_past_the_end(dec):
    cases = [h("66"), h("0f"), h("b8 00 00"), h("8b 84 88"), h("3e" * 13 + "b8 00"), h("3e" * 15)]
    assert [a.status for a in dec.decode(cases)] == ["past_end"] * len(cases)


@pytest.mark.parametrize("bad, message", [
    (b"", "string 0 is 0 bytes long"),
    (b"\x90" * 16, "string 0 is 16 bytes long"),
    ("90", "string 0 is a str, not bytes"),
    (None, "string 0 is a NoneType, not bytes"),
])
def test_the_python_api_refuses_strings_that_are_not_1_to_15_bytes(dec, bad, message):
    with pytest.raises(DecodeInputError, match=message):
        dec.decode([bad])
    with pytest.raises(DecodeInputError, match="string 1"):
        dec.decode([b"\x90", bad])
    with pytest.raises(DecodeInputError, match="mode 64"):
        dec.decode([b"\x90"], 64)


def _arrays(n, fill=0x7777):
    return [np.full(n, fill, np.int64) for _ in range(3)]


def test_the_jitted_entry_checks_every_offset_and_length():
    """Hostile offsets (negative, past the code array, empty, longer than
    15) give BAD_INPUT for that string and touch nothing; the guest memory
    past the 15-byte code window keeps its canary."""
    g = Machine.flat32(memory_size=64 << 10)._state
    g.mem[CODE_AT + 15:CODE_AT + 64] = 0xA5
    code = np.frombuffer(b"\x01\xc8" + b"\x90" * 30, np.uint8).copy()
    offsets = np.array([0, 2, -5, 2, 2, 40, 2, 2, 2 + 16, 2 + 17], np.int64)
    # strings: [0:2] ok, [2:-5] bad, [-5:2] bad, [2:2] empty, [2:40] past the end,
    # [40:2] reversed, [2:2] empty, [2:18] 16 bytes, [18:19] ok
    n = len(offsets) - 1
    length, row, vector = _arrays(n + 4)
    assert decode_many(g, code, offsets, n, 1, length, row, vector) == n
    assert vector[:n].tolist() == [DECODED] + [BAD_INPUT] * 7 + [DECODED]
    assert length[:n].tolist() == [2] + [0] * 7 + [1]
    assert vector[n:].tolist() == [0x7777] * 4          # past count: untouched
    assert (g.mem[CODE_AT + 15:CODE_AT + 64] == 0xA5).all()


def test_the_jitted_entry_refuses_arrays_that_do_not_fit_together():
    g = Machine.flat32(memory_size=64 << 10)._state
    code = np.zeros(8, np.uint8)
    offsets = np.array([0, 1, 2], np.int64)
    for count, sizes in ((3, (3, 3, 3)), (2, (1, 2, 2)), (2, (2, 2, 1)), (-1, (2, 2, 2))):
        arrays = [np.full(k, 0x7777, np.int64) for k in sizes]
        assert decode_many(g, code, offsets, count, 1, *arrays) == -1
        assert all((a == 0x7777).all() for a in arrays)
    tiny = g._replace(mem=np.zeros(CODE_AT + 8, np.uint8))   # no room for a 15-byte code window
    arrays = _arrays(2)
    assert decode_many(tiny, code, offsets, 2, 1, *arrays) == -1


def test_the_decoder_never_reads_past_the_string():
    """The code segment ends at the string's last byte: a lone 66h is an
    incomplete instruction even when the bytes after it in guest memory
    would complete one."""
    g = Machine.flat32(memory_size=64 << 10)._state
    g.mem[CODE_AT:CODE_AT + 16] = 0x90
    arrays = _arrays(1)
    decode_many(g, np.array([0x66], np.uint8), np.array([0, 1], np.int64), 1, 1, *arrays)
    assert arrays[2][0] == L.VEC_GP and arrays[0][0] == 0


def test_parse_opcode_keys():
    assert parse_opcode(h("f0 66 0f ba e0 05")).key == "0F BA /4"
    assert parse_opcode(h("0f 38 00 c0")).key == "0F 38 00"
    assert parse_opcode(h("c6 f8 00")).key == "C6 /7"
    assert parse_opcode(h("66 90")).key == "90"
    assert parse_opcode(h("f0 f2")) is None


def test_the_same_seed_gives_the_same_strings():
    a = generate(4, 0, 500)
    assert a == generate(4, 0, 500)
    assert a != generate(5, 0, 500) and a != generate(4, 1, 500)
    assert generate(4, 0, 500, mode=16) != a
    assert all(1 <= len(s) <= 15 for _, s, _ in a)
    assert {k for k, _, _ in a} == {"random", "table", "opcode", "host"}
    assert {k for k, _, _ in generate(4, 0, 500, mode=16)} == {"random", "table", "opcode"}


def _counts_add_up(report, cases):
    assert report.strings == cases
    assert sum(report.counts.values()) == cases
    assert sum(report.strategies.values()) == cases
    disagreeing = sum(n for c, n in report.counts.items() if c not in (fd.AGREE, fd.AGREE_INVALID))
    assert sum(sum(keys.values()) for keys in report.reasons.values()) == disagreeing
    for (cat, reason), keys in report.reasons.items():
        assert all((cat, reason, key) in report.examples for key in keys)


@pytest.mark.parametrize("mode", [16, 32])
def test_a_decode_campaign_finds_no_disagreement_on_implemented_instructions(mode):
    report = campaign(4000, seed=11, mode=mode, host_cases=0)
    _counts_add_up(report, 4000)
    assert report.host is None
    assert report.counts[fd.AGREE] > 2500
    assert not report.bug_candidates and not report.failed
    # the explained classes are there, with capstone's view as the example
    assert report.counts[fd.NOT_IMPLEMENTED] > 0 and report.counts[fd.CAPSTONE_ACCEPTS] > 0
    text = report.text()
    assert "no disagreement on an instruction visor86 implements" in text
    assert "not implemented in visor86 (capstone knows it)" in text and "mmx" in text
    assert "LOCK on an instruction or form it may not prefix" in text


def test_the_same_seed_gives_the_same_report():
    a = campaign(3000, seed=21, host_cases=0).summary()
    assert a == campaign(3000, seed=21, host_cases=0).summary()
    assert a != campaign(3000, seed=22, host_cases=0).summary()


def test_host_safe_strings_agree_with_the_host_cpu():
    """Strings built host-safe (one instruction of the differential
    fuzzer's classes with ES/SS/DS, LOCK and REP prefixes mixed in) run on
    the host CPU and in visor86: LOCK where the SDM forbids it is #UD on both
    (SIGILL on the host), results and flags agree elsewhere."""
    report = campaign(6000, seed=3, host_cases=100)
    hs = report.host
    assert hs.cases == 100 and hs.refused == 0
    assert hs.completed + hs.ud + hs.other_exceptions + len(hs.divergences) == hs.cases
    assert not hs.divergences, hs.lines()
    assert hs.completed > 20 and hs.ud > 5
    assert "host CPU: 100 host-safe strings" in report.text()


def test_a_tampered_host_case_is_refused_and_never_runs():
    rng = __import__("random").Random(1)
    hc = fd.host_case(rng)
    assert fd.host_unsafe_mix(hc) is None
    from emu.fuzz.native import Case
    for bad in (b"\x0f\x05", b"\x64" + hc.case.code, b"\xcd\x80", hc.case.code + b"\x0f\x05"):
        tampered = fd.HostCase(hc.row, Case(bad, hc.case.regs, hc.case.eflags, hc.case.mem), hc.plain)
        assert fd.host_unsafe_mix(tampered)
    checker = fd.HostChecker()
    try:
        stats = fd.HostStats()
        checker.run([tampered], stats)
        assert (stats.refused, stats.cases) == (1, 0)
    finally:
        checker.close()


def test_cli_decode_mode_exit_status(capsys):
    assert cli_main(["fuzz", "--decode", "--cases", "800", "--seed", "2", "--quiet", "--host", "0"]) == 0
    out = capsys.readouterr().out
    assert "800 byte strings (seed 2, 32-bit code)" in out and "strings/s" in out
    assert cli_main(["fuzz", "--decode", "--mode", "16", "--cases", "300", "--quiet"]) == 0
    assert "16-bit code" in capsys.readouterr().out
    assert cli_main(["fuzz", "--decode", "--cases", "0"]) == 2
    assert "at least one string" in capsys.readouterr().err
    assert cli_main(["fuzz", "--host", "5"]) == 2
    assert "--host goes with --decode" in capsys.readouterr().err
    assert cli_main(["fuzz", "--decode", "--classes", "alu"]) == 2
    assert cli_main(["fuzz", "--decode", "--host", "-1", "--cases", "10"]) == 2
    for mode in ("64", "both"):
        assert cli_main(["fuzz", "--decode", "--mode", mode]) == 2
        assert "--decode takes --mode 16 or 32" in capsys.readouterr().err
    assert cli_main(["fuzz", "--decode", "--oracle", "unicorn"]) == 2


def test_cli_exit_status_1_when_the_decoder_gets_a_length_wrong(tmp_path):
    """A copy of visor86 without the rule that MOV CRn/DRn ignore the mod
    bits (the bug this fuzzer found): `emu fuzz --decode` fails and names
    0F 20-0F 23 as bug candidates."""
    tree = planted_copy(tmp_path, "emu/core/decode.py", "        modrm |= 0xC0\n", "        pass\n")
    r = run_emu(tree, "fuzz", "--decode", "--cases", "3000", "--seed", "1", "--host", "0", "--quiet", timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "visor86 bug candidates (one example per opcode and reason)" in r.stdout
    forms = ("0F 20: MOV Rd,Cd", "0F 21: MOV Rd,Dd", "0F 22: MOV Cd,Rd", "0F 23: MOV Dd,Rd")
    assert sum(f"[length differs] {form}" in r.stdout for form in forms) >= 3, r.stdout
    bugs = [line for line in r.stdout.splitlines() if line.startswith("  [")]
    assert all("0F 2" in line for line in bugs), bugs      # nothing else is blamed
