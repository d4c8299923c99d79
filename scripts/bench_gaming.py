"""Each timing cheat of tests/test_timing_integrity.py beside its honest twin, through the real CLI, as a table:
what happened to it (refused at submit, failed with the check that caught it, or ranked) and its ranked latency
against the twin's.

    .venv/bin/python scripts/bench_gaming.py [--keep DIR]

Submits the twin and every cheat into a fresh store (HARNESS_HOME and the store in a temporary folder, or DIR),
runs `harness evaluate --track classification --json` once, reads `harness leaderboard --json`, and prints one
Markdown row per cheat. docs/BENCHMARKS.md holds the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_submission, run_cli  # noqa: E402
from tests.test_timing_integrity import CHEATS, HONEST, _body  # noqa: E402


def evaluate_all(root: Path) -> tuple[dict, dict]:
    env = {"HARNESS_HOME": str(root / "home"), "HARNESS_DB_URL": f"sqlite:///{root / 'harness.db'}"}
    outcome: dict[str, dict] = {}
    for name, body in [("honest", HONEST)] + [(cheat, _body(cheat)) for cheat in CHEATS]:
        done = run_cli("submit", str(make_submission(root / "src", name, module_body=body)), env=env)
        if done.returncode != 0:
            lines = [line.strip() for line in done.stderr.splitlines() if "[" in line and "fix:" not in line]
            outcome[name] = {"status": "refused at submit", "error": (lines or [done.stderr.strip()])[0]}
    done = run_cli("evaluate", "--track", "classification", "--json", env=env, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"evaluate failed: {done.stderr}")
    for run in json.loads(done.stdout):
        outcome.setdefault(run["submission"], run)
    board = run_cli("leaderboard", "--track", "classification", "--json", env=env)
    return outcome, {row["submission"]: row for row in json.loads(board.stdout)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the store and outputs in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        outcome, board = evaluate_all(root)
    honest = board["honest"]["latency"]["ranked_ms"]
    e2e = (outcome["honest"].get("latency_e2e") or {}).get("p50_ms")
    print(f"honest twin: ranked {honest:.3f} ms, end to end {e2e} ms")
    print("| cheat | outcome | ranked latency | cheat / twin |")
    print("|---|---|---|---|")
    for cheat in sorted(CHEATS):
        run = outcome[cheat]
        if cheat in board:
            ranked = board[cheat]["latency"]["ranked_ms"]
            print(f"| {cheat} | ranked | {ranked:.3f} ms | {ranked / honest:.2f} |")
        else:
            error = (run.get("error") or "").splitlines()[0][:140]
            print(f"| {cheat} | {run['status']}: {error} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
