"""Run every 80286 vector and write docs/conformance-286.md.

    python -m tests.conformance.report [--limit N]
"""
import argparse
import pathlib
import sys
import time

from tests.conformance.singlestep import opcode_files, run_file

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.conformance.report")
    ap.add_argument("--limit", type=int, default=0, help="tests per file (default 0 = all)")
    args = ap.parse_args(argv)
    rows, reasons = [], {}
    total_run = total_pass = 0
    t0 = time.time()
    for path in opcode_files():
        r = run_file(path, args.limit)
        total_run += r.run
        total_pass += r.passed
        for why, n in r.by_design.items():
            reasons[why] = reasons.get(why, 0) + n
        rows.append(f"| {r.stem} | {r.passed} | {r.run} | {100 * r.rate:.2f}% | "
                    f"{sum(r.by_design.values())} | {r.skipped_revoked} |")
        print(rows[-1], file=sys.stderr)
        for f in r.failures[:3]:
            print("   ", f, file=sys.stderr)
    text = ["# 80286 conformance (SingleStepTests, real mode)", "",
            f"Produced by `python -m tests.conformance.report{' --limit %d' % args.limit if args.limit else ''}`"
            f" in {time.time() - t0:.0f} s on {time.strftime('%Y-%m-%d')}.",
            "Vectors from `../shared/tests/singlestep/80286/v1_real_mode` (captured from a Harris 80C286).",
            "FLAGS are compared under the metadata's mask of defined flags.", "",
            f"**{total_pass} of {total_run} tests pass ({100 * total_pass / max(1, total_run):.2f}%).**", "",
            "| opcode file | passed | run | rate | differ by design | revoked |", "|---|---|---|---|---|---|",
            *rows, "", "Tests where the i386+ SDM and the 286 differ are not run against the 286's result "
            "(see tests/conformance/singlestep.py):", ""]
    text += [f"- {why}: {n}" for why, n in sorted(reasons.items())]
    out = ROOT / "docs" / "conformance-286.md"
    out.write_text("\n".join(text) + "\n")
    print(f"wrote {out.relative_to(ROOT)}: {total_pass}/{total_run}", file=sys.stderr)
    return 0 if total_pass == total_run else 1


if __name__ == "__main__":
    sys.exit(main())
