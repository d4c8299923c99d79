"""The reference classifiers' ranked latencies under two versions of the harness, interleaved on one machine:
does a change of the timing protocol move honest figures by more than the noise?

    python scripts/bench_timing_change.py BEFORE_ROOT AFTER_ROOT [--rounds 3] [--profile quick] [--variant fp32]

Each root is a checkout of the harness (e.g. `git worktree add /tmp/before main`); both run with this
interpreter's packages. Each gets a store and a HARNESS_HOME of its own; the reference classifiers are submitted
to both, then every round evaluates them again (`--force`) under BEFORE, then AFTER, so that drift of the
machine falls on both alike. Prints, per submission, the median over rounds of each version's ranked latency,
the ratio AFTER / BEFORE, and the spread of the rounds within each version (the noise).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REFERENCES = ("gtsnet", "mobilenet_v2", "shufflenet_v2_x0_5", "ghostnet")


def harness(root: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "HARNESS_HOME": str(home),
        "HARNESS_DB_URL": f"sqlite:///{home / 'harness.db'}",
    }
    code = "import sys; from harness.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=root)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--variant", default="fp32", help="the variant evaluated (fp32: every reference has it)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="timing-change-"))
    sides = {"before": (args.before.resolve(), work / "before"), "after": (args.after.resolve(), work / "after")}
    for root, home in sides.values():
        home.mkdir()
        for name in REFERENCES:
            done = harness(root, home, "submit", str(root / "submissions" / name))
            if done.returncode != 0:
                raise SystemExit(f"submit {name} under {root} failed:\n{done.stderr}")
    figures: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
    for round_ in range(args.rounds):
        for side, (root, home) in sides.items():
            done = harness(
                root, home, "evaluate", "--track", "classification", "--profile", args.profile,
                "--variant", args.variant, "--force", "--json",
            )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"evaluate under {root} failed:\n{done.stderr}")
            for run in json.loads(done.stdout):
                entry = f"{run['submission']} [{run['variant']}]"
                if run["status"] != "ok":  # e.g. float16 on a CPU: unavailable under both versions
                    print(f"{side} {entry}: {run['status']}: {(run['error'] or '')[:100]}", file=sys.stderr)
                    continue
                figures[side].setdefault(entry, []).append(run["latency"]["ranked_ms"])
            print(f"round {round_ + 1} {side} done", file=sys.stderr)
    print("| submission [variant] | before ms (median, range) | after ms (median, range) | after / before |")
    print("|---|---|---|---|")
    for name in sorted(set(figures["before"]) & set(figures["after"])):
        before, after = figures["before"][name], figures["after"][name]
        b, a = statistics.median(before), statistics.median(after)
        print(
            f"| {name} | {b:.3f} ({min(before):.3f}–{max(before):.3f}) | {a:.3f} ({min(after):.3f}–{max(after):.3f}) "
            f"| {a / b:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
