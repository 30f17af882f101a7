"""80286 real-mode conformance vectors (captured from a real CPU) through
the public Machine API; see tests/conformance/singlestep.py for what is
compared and where the i386+ SDM is followed instead of the 286.

VISOR86_CONFORMANCE_LIMIT tests per opcode file (default 400; 0 = all).
The full report: python -m tests.conformance.report
"""
import os

import pytest

from tests.conformance.singlestep import opcode_files, run_file, stem_of

LIMIT = int(os.environ.get("VISOR86_CONFORMANCE_LIMIT", "400"))
FILES = opcode_files()


def test_vectors_are_present():
    assert len(FILES) >= 30, "the conformance data under ../shared/tests/singlestep/80286 is missing"


@pytest.mark.parametrize("path", FILES, ids=[stem_of(p) for p in FILES])
def test_opcode_file(path):
    r = run_file(path, LIMIT)
    by_design = sum(r.by_design.values())
    print(f"{r.stem}: {r.passed}/{r.run} passed, {by_design} differ from the 286 by design")
    assert r.run > 0
    assert not r.failures, (f"{r.stem}: {r.passed}/{r.run} passed; first failures:\n"
                            + "\n".join(r.failures[:5]))
