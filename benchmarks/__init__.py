"""visor86 benchmarks: `python -m benchmarks` (see RESULTS.md)."""
