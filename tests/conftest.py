"""Test-wide settings.

Hypothesis runs derandomized by default: the same examples on every run, so
CI is deterministic (a property test cannot pass on one commit and fail on
the next by luck).  Set VISOR86_HYPOTHESIS_EXPLORE=1 to search with fresh
random examples, as a fuzzing session; a failure it finds is printed with
the example to add as a regression test."""
import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("VISOR86_HYPOTHESIS_EXPLORE") == "1" else "deterministic")
