"""The MOO reader (format: repository dbalsom/moo, doc/moo_format_v1.md)."""
import gzip

import pytest

from tests.conformance.moo import parse_moo, load_moo, load_metadata, load_revoked, MooFormatError
from tests.conformance.singlestep import REAL_MODE, DATA


def test_reads_a_real_file():
    f = load_moo(REAL_MODE / "F6.6.MOO.gz")
    assert f.cpu_name == "C286" and len(f.tests) == 5000
    t = f.tests[0]
    assert t.index == 0 and t.name.startswith("div") and t.code[-1] == 0xF4
    assert set(t.initial_regs) >= {"ax", "cs", "ip", "flags"} and len(t.hash) == 40
    assert sum(1 for t in f.tests if t.exception) > 0


def test_metadata_masks_group_opcodes_by_reg():
    masks = load_metadata(REAL_MODE)
    assert masks["F6.6"] != 0xFFFF and masks["01"] == 0xFFFF


def test_revocation_list_parses():
    assert isinstance(load_revoked(DATA / "revocation_list.txt"), set)


def test_truncated_file_is_a_clear_error(tmp_path):
    raw = gzip.decompress((REAL_MODE / "98.MOO.gz").read_bytes())[:5000]
    bad = tmp_path / "bad.MOO"
    bad.write_bytes(raw)
    with pytest.raises(MooFormatError, match="truncated"):
        load_moo(bad)


def test_not_a_moo_file():
    with pytest.raises(MooFormatError, match="not a MOO file"):
        parse_moo(b"JSON{}", "x.json")
