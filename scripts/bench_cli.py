"""Measure the CLI's start-up time and the harness's own overhead in a quick classification evaluation.

    .venv/bin/python scripts/bench_cli.py [--runs 10] [--submission submissions/gtsnet]

Start-up: wall time of `harness --help` (a fresh process each time), median and min of N runs.
Overhead: one `harness evaluate --track classification --profile quick` of one submission in a fresh
HARNESS_HOME; the wall time outside the model's own work (accuracy-pass predict calls and the timed
performance pass) is the harness's overhead: process start, imports, entry-point loading, image decoding,
output validation, scoring, and the store's writes. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(sys.executable).parent / "harness"


def startup(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(HARNESS), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def overhead(submission: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HARNESS_HOME": home, "HARNESS_DB_URL": f"sqlite:///{home}/h.db"}
        subprocess.run([str(HARNESS), "submit", str(submission)], env=env, check=True, capture_output=True)
        # Materialise the dataset first: a one-off cost, not part of each evaluation.
        subprocess.run(
            [str(HARNESS), "datasets", "prepare", "digits", "--split", "test"], env=env, check=True, capture_output=True
        )
        start = time.perf_counter()
        out = subprocess.run(
            [str(HARNESS), "evaluate", "--track", "classification", "--variant", "fp32", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        wall = time.perf_counter() - start
    (run,) = json.loads(out)
    timings = run["details"]["timings"]
    model = timings["accuracy_predict_s"] + timings["performance_s"]
    return {
        "evaluate_wall_s": wall,
        "runner_wall_s": run["details"]["runner_wall_s"],
        "load_s": timings["load_s"],
        "accuracy_s": timings["accuracy_s"],
        "accuracy_predict_s": timings["accuracy_predict_s"],
        "performance_s": timings["performance_s"],
        "overhead_s": wall - model,
        "top1": run["metrics"]["top1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--submission", type=Path, default=ROOT / "submissions" / "gtsnet")
    args = parser.parse_args()
    times = startup(args.runs)
    print("| measurement | value |\n|---|---|")
    print(f"| `harness --help` median of {args.runs} | {statistics.median(times) * 1000:.0f} ms |")
    print(f"| `harness --help` min of {args.runs} | {min(times) * 1000:.0f} ms |")
    figures = overhead(args.submission)
    for key, value in figures.items():
        print(f"| {key} | {value:.3f} |")
    print(f"\nload average during the run: {os.getloadavg()}")


if __name__ == "__main__":
    main()
