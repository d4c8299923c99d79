"""Regression gates: decide whether a candidate run is worse than a baseline run beyond measurement noise.

A pure library (no database): `gate` (harness.gate.decide) takes two run records as dicts and returns a
`GateResult`; `render` turns it into a report; `harness.gate.results` reads and writes results files;
`harness.gate.stats` holds the latency interval's statistics. The CLI verbs `harness gate` and `harness
export` are thin layers over it; docs/GATE.md describes the rules.
"""

from harness.gate.decide import EXIT_CODES, Check, GateResult, gate
from harness.gate.render import FORMATS, render
from harness.gate.results import export_results, load_results_file, select_run
from harness.gate.stats import METHODS, LatencyInterval, latency_blocks, latency_ratio_interval, latency_verdict

__all__ = [
    "EXIT_CODES",
    "FORMATS",
    "METHODS",
    "Check",
    "GateResult",
    "LatencyInterval",
    "export_results",
    "gate",
    "latency_blocks",
    "latency_ratio_interval",
    "latency_verdict",
    "load_results_file",
    "render",
    "select_run",
]
