"""Hostile submissions through `harness evaluate --runner docker`: every attack ends as a failed (or harmlessly
scored) run with its own reason, the honest submission in the same evaluate still succeeds, the store holds
no partial rows, and nothing on the host changed.

All attacks are entry points of one project (`hostile_pkg.py`), stored as `harness submit` stores them but
without its check (`register_unchecked`), and evaluated beside an honest submission that went through the real
`harness submit`, by two `harness evaluate` processes at once on one store, to keep the suite's time low.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import make_submission, run_cli
from tests.security.conftest import SANDBOX_ENV, LoopbackServer, sandbox_containers

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
# Long enough for an honest run (about 10 s on an idle 2-core machine); the endless loop costs exactly this
# much. Raise it on a loaded machine: HARNESS_SECURITY_TIME_LIMIT=120.
TIME_LIMIT_S = os.environ.get("HARNESS_SECURITY_TIME_LIMIT", "60")

# name -> (status, text the error must contain)
EXPECTED = {
    "connect": ("failed", "ConnectionRefusedError"),
    "lookup": ("failed", "gaierror"),
    "search_truth": ("ok", None),
    "write_outside": ("ok", None),
    "write_store": ("ok", None),
    "fork_bomb": ("failed", "Resource temporarily unavailable"),
    "hoard_memory": ("failed", "out of memory"),
    "endless_loop": ("failed", "timeout"),
    "flood_logs": ("failed", "output flood"),
    "flood_output": ("failed", "crash"),
    "nan_logits": ("failed", "`logits` contains NaN or infinite values"),
    "inf_logits": ("failed", "`logits` contains NaN or infinite values"),
    "wrong_shape": ("failed", "`logits` has 7 classes, the track has 10"),
    "wrong_type": ("failed", "is a dict, expected harness.contract.ClassScores"),
    "fewer": ("failed", "predict returned 63 outputs for 64 images"),
    "more": ("failed", "predict returned 65 outputs for 64 images"),
    "patch_time": ("ok", None),
    "patch_harness_clock": ("failed", "[latency] the harness's timers were replaced while it ran"),
    "forge_measurements": ("failed", "[tampered] the device latency samples add up to"),
    "forge_nan_predictions": ("failed", "[outputs] predictions.npz: output 0: `logits` contains NaN"),
    "forge_huge_header": ("failed", "[outputs] predictions.npz: member logits.npy is shorter than its header"),
}


def register_unchecked(project: Path, env: dict[str, str]) -> None:
    """Store every entry point of `project` as `harness submit` does, minus the check. The check would run
    each attack's code once more, on the host (dormant there, but still), and would double the suite's time;
    the check itself is tested with the CLI elsewhere."""
    from harness.service.submit import store_submission
    from harness.store import repo

    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        store_submission(project, repo.Store(env["HARNESS_DB_URL"]))


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file under the roots (and the absence of the rest)."""
    state = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture(scope="module")
def suite(docker_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("security")
    home, db = tmp / "home", tmp / "harness.db"
    env = {"HARNESS_HOME": str(home), "HARNESS_DB_URL": f"sqlite:///{db}", **SANDBOX_ENV}
    prepared = run_cli("datasets", "prepare", "digits", "--json", env=env)
    assert prepared.returncode == 0, prepared.stderr
    split = home / "datasets" / "digits" / "v1" / "test"
    labels_file = split / "hidden" / "labels.json"
    assert labels_file.is_file(), list(split.rglob("*"))[:10]
    canary = tmp / "canary"
    canary.mkdir()
    (canary / "canary.txt").write_text("untouched")
    server = LoopbackServer()
    config = {
        "port": server.port,
        "labels": [str(labels_file)],
        "write": [str(canary / "canary.txt"), str(canary / "new.txt"), str(home / "hostile"), str(split / "hostile")],
        "db": [str(db), str(tmp / "other.db")],
    }
    body = (HERE / "hostile_pkg.py").read_text().replace("__CONFIG__", json.dumps(config))
    names = list(EXPECTED)
    hostile = make_submission(
        tmp, "hostile", module_body=body, entry_points={n: f"hostile_pkg:build_{n}" for n in names}
    )
    honest = make_submission(tmp, "tiny")
    submitted = run_cli("submit", str(honest), "--json", env=env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    register_unchecked(hostile, env)

    watched = [canary, split, home / "sites", home / "submissions", Path(__file__).resolve().parents[2] / "harness"]
    before = snapshot(*watched)
    containers_before = set(sandbox_containers())  # e.g. one a killed daemon left behind: not this run's
    # Two evaluators at once on the one store, each with half of the entries (every half holds attacks and
    # submissions that must still succeed): what an organiser with two workers does, and half the wall time.
    everyone = [*EXPECTED, "tiny"]
    evaluators = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "harness"),
                "evaluate",
                "-t",
                "classification",
                "--dataset",
                "digits",  # this suite is about the sandbox, not the default data: the small digits split
                "--runner",
                "docker",
                "--time-limit",
                TIME_LIMIT_S,
                "--json",
                *[arg for name in half for arg in ("-s", name)],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        for half in (everyone[0::2], everyone[1::2])
    ]
    outputs = [evaluator.communicate(timeout=3600) for evaluator in evaluators]
    after = snapshot(*watched)
    server.close()
    runs = {}
    for evaluator, (stdout, stderr) in zip(evaluators, outputs, strict=True):
        assert evaluator.returncode == 0, stderr[-3000:]
        runs.update({run["submission"]: run for run in json.loads(stdout)})
    assert sorted(runs) == sorted(everyone)
    yield SimpleNamespace(
        runs=runs,
        env=env,
        db=db,
        tmp=tmp,
        labels_file=labels_file,
        before=before,
        containers_before=containers_before,
        after=after,
        server=server,
        probes=[Path(p) for p in config["write"]] + [Path(sys.prefix) / "hostile"],
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_attack_ends_with_its_reason(suite, name):
    status, reason = EXPECTED[name]
    run = suite.runs[name]
    assert run["status"] == status, (run["error"], run["log_tail"])
    if reason:
        assert reason in run["error"], (run["error"], run["log_tail"])
    assert run["runner"] == "docker"


def test_a_full_output_folder_never_reaches_the_hosts_disk(suite):
    """flood_output fills /out and /tmp (tmpfs, 64 MiB each) with `flood.npz`: the driver cannot finish its
    predictions, and the junk does not come back (only the driver's own files do, within the cap)."""
    run = suite.runs["flood_output"]
    assert "No space left on device" in run["log_tail"]
    run_dir = Path(suite.env["HARNESS_HOME"]) / "runs" / str(run["run_id"])
    attempts = sorted(run_dir.iterdir())  # one output folder per attempt at the run
    assert [p.name for p in attempts] == ["attempt-1"], attempts
    names = sorted(p.name for p in attempts[0].iterdir())
    assert "flood.npz" not in names and set(names) <= {"job.json", "predictions.npz"}, names
    assert sum(p.stat().st_size for p in attempts[0].iterdir()) < 64 << 20


def test_honest_submission_in_the_same_evaluate_succeeds(suite):
    run = suite.runs["tiny"]
    assert run["status"] == "ok", run["error"]
    assert 0.0 <= run["metrics"]["top1"] <= 1.0
    assert run["latency"]["p50_ms"] > 0
    timings = run["details"]["timings"]
    # The host's clock bounded the performance pass: both spans were measured and stored with the run.
    assert timings["host_device_measure_s"] > 0 and timings["host_e2e_measure_s"] > 0
    assert timings["host_performance_s"] >= timings["host_device_measure_s"] + timings["host_e2e_measure_s"]


def test_ground_truth_is_unreachable_and_the_score_honest(suite):
    """search_truth predicts the true label of every image it can match to a ground-truth file, else class 0:
    with the labels out of reach its top-1 is exactly the share of class 0 in the split."""
    truth = json.loads(suite.labels_file.read_text())
    share_of_zero = sum(1 for label in truth["labels"] if label == 0) / len(truth["labels"])
    assert suite.runs["search_truth"]["metrics"]["top1"] == pytest.approx(share_of_zero, abs=1e-12)
    assert share_of_zero < 0.2


def test_attacks_on_the_clock_are_harmless_or_caught(suite):
    """patch_time slows the public clocks down 1000x and its model sleeps 2 ms per forward: the harness's
    captured clock still reports at least 2 ms. patch_harness_clock replaces the captured clock (the driver
    finds the replacement); forge_measurements under-reports the time it took (the host's clock catches it; see
    EXPECTED)."""
    latency = suite.runs["patch_time"]["latency"]
    assert latency["p50_ms"] >= 2.0
    assert suite.runs["patch_time"]["latency_e2e"]["p50_ms"] >= 2.0


def test_nothing_reached_the_host(suite):
    assert suite.server.connections == 0
    assert suite.before == suite.after, sorted(set(suite.after.items()) ^ set(suite.before.items()))[:5]
    for probe in suite.probes:
        if probe.name != "canary.txt":
            assert not probe.exists(), probe
    assert (suite.tmp / "canary" / "canary.txt").read_text() == "untouched"
    assert not (suite.tmp / "other.db").exists()
    assert set(sandbox_containers()) - suite.containers_before == set()


def test_store_holds_no_partial_rows(suite):
    con = sqlite3.connect(suite.db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "hostile" not in tables
        statuses = dict(con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
        assert sum(statuses.values()) == len(EXPECTED) + 1
        assert set(statuses) <= {"ok", "failed"}
        ok = sum(1 for status, _ in EXPECTED.values() if status == "ok") + 1
        assert statuses["ok"] == ok
        # Metrics and latency rows belong to finished ok runs only.
        orphans = con.execute(
            "SELECT COUNT(*) FROM metrics JOIN runs ON runs.id = metrics.run_id WHERE runs.status != 'ok'"
        ).fetchone()[0]
        assert orphans == 0
        latency_runs = con.execute("SELECT COUNT(DISTINCT run_id) FROM latency_summaries").fetchone()[0]
        assert latency_runs == ok
    finally:
        con.close()


def test_the_attack_on_the_ground_truth_works_without_the_sandbox(suite):
    """Control: the same search_truth under the local runner (no sandbox) finds the labels and scores 1.0, so
    the honest score above is the sandbox's doing, not a broken attack."""
    evaluated = run_cli(
        "evaluate",
        "-t",
        "classification",
        "--dataset",
        "digits",
        "-s",
        "search_truth",
        "--runner",
        "local",
        "--force",
        "--json",
        env=suite.env,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    (run,) = json.loads(evaluated.stdout)
    assert run["status"] == "ok", run["error"]
    assert run["metrics"]["top1"] == 1.0
