"""The store under interruption and concurrency: Ctrl-C leaves it consistent and the next evaluate resumes;
two evaluators at once never corrupt it nor run a job twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import make_submission, run_cli

SLOW_BODY = """
    import time
    from pathlib import Path
    import torch
    from torch import nn
    from harness.contract import ClassifierPredictor

    MARKER = Path({marker!r})

    class Slow(ClassifierPredictor):
        def predict(self, images):
            if len(images) > 2 and not MARKER.exists():
                MARKER.touch()  # the first accuracy batch of the first evaluation: interrupted while it sleeps
                time.sleep(60)
            return super().predict(images)

    def build(ctx):
        torch.manual_seed(0)
        model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, ctx.num_classes or 10))
        return Slow(model, (0.5,) * 3, (0.5,) * 3)
"""


def _db(env: dict[str, str]) -> str:
    return env["HARNESS_DB_URL"].removeprefix("sqlite:///")


def _rows(db: str, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_ctrl_c_leaves_store_consistent_and_evaluate_resumes(harness_env, tmp_path):
    marker = tmp_path / "inside-the-accuracy-pass"
    sub = make_submission(tmp_path, "slow", module_body=SLOW_BODY.format(marker=str(marker)))
    assert run_cli("submit", str(sub), env=harness_env).returncode == 0
    db = _db(harness_env)
    exe = Path(sys.executable).parent / "harness"
    proc = subprocess.Popen(
        [str(exe), "evaluate", "--track", "classification"],
        env={**os.environ, **harness_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background (`make test &`) inherits SIGINT ignored, and Python keeps an
        # ignored SIGINT ignored: the CLI must get it as a terminal's Ctrl-C would deliver it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # the run claimed and its accuracy pass under way (not a guess by time)
        if marker.exists() and _rows(db, "select count(*) from runs where status='running'")[0][0] == 1:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError("the evaluation never reached its accuracy pass")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert _rows(db, "select count(*) from runs") == [(0,)], "an interrupted run must not stay in the store"
    assert _rows(db, "select count(*) from metrics") == [(0,)]
    assert _rows(db, "pragma integrity_check") == [("ok",)]

    resumed = run_cli("evaluate", "--track", "classification", "--json", env=harness_env)
    assert resumed.returncode == 0, resumed.stderr
    (run,) = json.loads(resumed.stdout)
    assert run["status"] == "ok" and run["submission"] == "slow", run["error"]


def test_two_evaluators_at_once(harness_env, tmp_path):
    for name in ("alpha", "beta", "gamma"):
        assert run_cli("submit", str(make_submission(tmp_path, name)), env=harness_env).returncode == 0
    exe = Path(sys.executable).parent / "harness"
    procs = [
        subprocess.Popen(
            [str(exe), "evaluate", "--track", "classification", "--json"],
            env={**os.environ, **harness_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    stored = [run for out, _ in outputs for run in json.loads(out)]
    assert sorted(r["submission"] for r in stored) == ["alpha", "beta", "gamma"], "each job exactly once"
    db = _db(harness_env)
    assert _rows(db, "select count(*), count(distinct idempotency_key) from runs where status='ok'") == [(3, 3)]
    assert _rows(db, "pragma integrity_check") == [("ok",)]
