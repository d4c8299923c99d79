"""Compare the reference submissions' fp32 metrics in the store with the pinned figures.

    .venv/bin/python scripts/check_reference_metrics.py      (the last step of `make demo`)

The pinned figures are `tests/expected_reference_metrics.json`, the same file the suite's self-gate reads. Each
metric is reported as equal, or within the suite's tolerance (other CPUs' kernels may round the last digits of a
score differently), or different; the script exits 1 when any differs beyond the tolerance or is missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

EXPECTED = Path(__file__).resolve().parents[1] / "tests" / "expected_reference_metrics.json"
TOLERANCE = 2e-3  # as tests/test_references_e2e.py


def main() -> int:
    from harness.service.standings import standings

    expected = json.loads(EXPECTED.read_text())
    equal = close = 0
    problems = []
    for track, submissions in expected.items():
        runs = {row["submission"]: row for row in standings(track) if row["variant"] == "fp32"}
        for name, metrics in submissions.items():
            run = runs.get(name)
            if run is None:
                problems.append(f"{track}/{name}: no fp32 run in the standings")
                continue
            for metric, pinned in metrics.items():
                value = run["metrics"].get(metric)
                if value == pinned:
                    equal += 1
                elif value is not None and abs(value - pinned) <= TOLERANCE:
                    close += 1
                    print(f"{track}/{name} {metric}: {value:.6f}, pinned {pinned:.6f} (within {TOLERANCE})")
                else:
                    problems.append(f"{track}/{name} {metric}: {value}, pinned {pinned}")
    total = equal + close + len(problems)
    print(f"reference metrics: {equal} of {total} equal to the pinned figures, {close} within {TOLERANCE}")
    for problem in problems:
        print(f"DIFFERENT {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
