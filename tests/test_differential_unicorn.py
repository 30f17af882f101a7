"""Differential test against Unicorn for what the host CPU cannot run:
16-bit code (real mode), BCD, stack and near control transfers, string
instructions with REP, and 32-bit forms that 64-bit mode lacks (82h,
INC/DEC 40h-4Fh, XLAT, PUSHA ...).  Results, memory, the stack, EIP and
the flags the SDM defines must agree (the same generator, visor86 side
and comparison as `emu fuzz --oracle unicorn`: emu/fuzz/unicorn_cases.py).

Where Unicorn and the SDM disagree the SDM wins; unicorn_deviation()
names those cases with the reason, and they are skipped.

VISOR86_DIFF_CASES cases per group and mode (default 3000 in CI).
"""
import os
import random

import pytest

from emu.fuzz.unicorn_cases import rows_for, make_case, unicorn_deviation, compare, Visor86UnicornSide
from emu.fuzz.unicorn_oracle import UnicornOracle

CASES = int(os.environ.get("VISOR86_DIFF_CASES", "3000"))
SEED = int(os.environ.get("VISOR86_DIFF_SEED", "2026"))

GROUPS = {
    "alu": {"alu"}, "shift": {"shift"}, "muldiv": {"muldiv"}, "bcd": {"bcd"},
    "bits+move": {"bits", "move", "flagctl"}, "stack": {"stack"}, "control": {"control"},
    "string": {"string"},
}


@pytest.mark.parametrize("bits", [32, 16], ids=["32-bit", "16-bit"])
@pytest.mark.parametrize("group", list(GROUPS))
def test_agrees_with_unicorn(group, bits):
    rows = rows_for(GROUPS[group], bits)
    rng = random.Random(f"{SEED}-{group}-{bits}")
    oracle = UnicornOracle(bits)
    side = Visor86UnicornSide(bits)
    mismatches = []
    deviations = {}
    compared = 0
    for _ in range(CASES):
        row = rng.choice(rows)
        case = make_case(rng, row, bits)
        ref = oracle.run(case)
        if ref.exception == -1:
            continue                 # Unicorn touched memory outside the windows: not a comparison
        ours = side.run(case)
        why = unicorn_deviation(row, ref, ours)
        if why:
            deviations[why] = deviations.get(why, 0) + 1
            continue
        compared += 1
        problems, _ = compare(row, case, ours, ref)
        if problems:
            mismatches.append(f"{row.mnemonic} {row.operands_text} [{case.code.hex()}] "
                              f"regs={ {k: hex(v) for k, v in case.regs.items()} } flags={case.eflags:#x}: "
                              + "; ".join(problems))
    print(f"{group} {bits}-bit: {compared - len(mismatches)}/{compared} agree with Unicorn; "
          f"not compared (Unicorn deviates from the SDM): {deviations}")
    assert compared > CASES // 2
    assert not mismatches, f"{len(mismatches)} of {compared} differ:\n" + "\n".join(mismatches[:8])
