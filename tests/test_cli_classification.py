"""The classification flow as a user runs it: check, submit, evaluate, leaderboard, show — through the real CLI."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.conftest import make_submission, run_cli


def _db_path(env: dict[str, str]) -> str:
    return env["HARNESS_DB_URL"].removeprefix("sqlite:///")


def test_check_submit_evaluate_leaderboard(harness_env, tmp_path):
    sub = make_submission(tmp_path, "tiny", variants=["fp32", "bf16"])

    checked = run_cli("check", str(sub), "--json", env=harness_env)
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["name"] == "tiny" and report["track"] == "classification" and report["ok"] is True
    # Conv 3->8 3x3 at 32x32 (221,184) + conv 8->16 3x3 at 16x16 (294,912) + linear 16->50 (800): the track's
    # default data (shapetex) has 50 classes.
    assert report["macs"]["32x32"] == 3 * 8 * 9 * 32 * 32 + 8 * 16 * 9 * 16 * 16 + 16 * 50
    assert report["params"] == (3 * 8 * 9 + 8) + (8 * 16 * 9 + 16) + (16 * 50 + 50)
    assert report["violations"] == []

    first = run_cli("submit", str(sub), "--json", env=harness_env)
    assert first.returncode == 0, first.stderr
    again = run_cli("submit", str(sub), "--json", env=harness_env)
    assert json.loads(first.stdout)[0]["created"] is True
    assert json.loads(again.stdout)[0]["created"] is False, "same content must be recognised, not duplicated"

    evaluated = run_cli("evaluate", "--track", "classification", "--json", env=harness_env)
    assert evaluated.returncode == 0, evaluated.stderr
    runs = json.loads(evaluated.stdout)
    assert {r["variant"] for r in runs} == {"fp32", "bf16"}
    for run in runs:
        assert run["status"] == "ok", run["error"]
        assert 0.0 <= run["metrics"]["top1"] <= run["metrics"]["top5"] <= 1.0
        assert run["params"] == report["params"]
        lat = run["latency"]
        assert lat["repeats"] == 3 and lat["p50_ms"] > 0 and lat["p50_ms"] <= lat["p99_ms"]
        assert isinstance(lat["noisy"], bool) and isinstance(lat["noise_reasons"], list)
        assert run["environment"]["torch"] and run["dataset_hash"] and run["submission_hash"]
    assert "local runner trusts" in evaluated.stderr

    # Nothing left to do: a second evaluate stores nothing new.
    repeat = run_cli("evaluate", "--track", "classification", "--json", env=harness_env)
    assert json.loads(repeat.stdout) == []

    board = run_cli("leaderboard", "--track", "classification", "--json", env=harness_env)
    rows = json.loads(board.stdout)
    assert [r["rank"] for r in rows] == [1, 2]
    text = run_cli("leaderboard", "--track", "classification", env=harness_env)
    assert "tiny" in text.stdout and "top1" in text.stdout

    shown = run_cli("show", str(runs[0]["run_id"]), "--json", env=harness_env)
    assert json.loads(shown.stdout)["run_id"] == runs[0]["run_id"]


def test_evaluation_failure_is_stored_with_reason(harness_env, tmp_path):
    """Passes `check` (batches of one or two images) but breaks on the full accuracy batch."""
    body = """
        import torch
        from torch import nn
        from harness.contract import ClassifierPredictor

        class Fragile(ClassifierPredictor):
            def predict(self, images):
                if len(images) > 2:
                    raise RuntimeError("cannot handle batches larger than 2")
                return super().predict(images)

        def build(ctx):
            model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 50))
            return Fragile(model, (0.5,) * 3, (0.5,) * 3)
    """
    sub = make_submission(tmp_path, "fragile", module_body=body)
    assert run_cli("submit", str(sub), env=harness_env).returncode == 0
    evaluated = run_cli("evaluate", "--track", "classification", "--json", env=harness_env)
    assert evaluated.returncode == 0, evaluated.stderr
    (run,) = json.loads(evaluated.stdout)
    assert run["status"] == "failed"
    assert "cannot handle batches larger than 2" in run["error"] and "[predict]" in run["error"]
    with sqlite3.connect(_db_path(harness_env)) as db:
        assert db.execute("select count(*) from metrics").fetchone()[0] == 0
        assert db.execute("select status from runs").fetchall() == [("failed",)]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no_entry_point", "no entry point in the group `harness.submissions`"),
        ("import_fails", "fails to import"),
        ("factory_raises", "build(ctx) raised ValueError: weights are missing"),
        ("wrong_shape", "has 3 classes, the track has 50"),
        ("wrong_dtype", "has dtype <U1, expected a numeric dtype"),
        ("nan_output", "contains NaN or infinite values"),
        ("unknown_track", "unknown track `clasification`"),
        ("over_budget", "exceed max_macs"),
    ],
)
def test_broken_submissions_are_refused_clearly(harness_env, tmp_path, case, expected):
    sub = _broken_submission(tmp_path, case)
    # `submit` runs the same check first; `check` itself is exercised on two of the cases.
    verbs = ("check", "submit") if case in ("factory_raises", "over_budget") else ("submit",)
    for verb in verbs:
        result = run_cli(verb, str(sub), env=harness_env)
        assert result.returncode != 0, f"{verb} accepted {case}"
        assert expected in result.stdout + result.stderr, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    with sqlite3.connect(_db_path(harness_env)) as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        if "submissions" in tables:
            assert db.execute("select count(*) from submissions").fetchone()[0] == 0
            assert db.execute("select count(*) from runs").fetchone()[0] == 0


def _broken_submission(tmp_path, case):
    wrap = (
        "from harness.contract import ClassScores, ClassifierPredictor, wrap_classifier\n"
        "from torch import nn\nimport numpy as np\n"
    )
    linear = "nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, {n}))"
    if case == "no_entry_point":
        return make_submission(tmp_path, case, with_entry_group=False)
    if case == "import_fails":
        return make_submission(tmp_path, case, module_body="import a_module_that_does_not_exist\n")
    if case == "factory_raises":
        return make_submission(
            tmp_path, case, module_body="def build(ctx):\n    raise ValueError('weights are missing')\n"
        )
    if case == "wrong_shape":
        return make_submission(
            tmp_path, case, module_body=wrap + f"def build(ctx):\n    return wrap_classifier({linear.format(n=3)})\n"
        )
    if case in ("wrong_dtype", "nan_output"):
        value = "np.array(['a'] * 50)" if case == "wrong_dtype" else "np.full(50, np.nan, dtype=np.float32)"
        body = wrap + (
            "class Bad(ClassifierPredictor):\n"
            "    def postprocess(self, raw, images):\n"
            f"        return [ClassScores(logits={value}) for _ in images]\n"
            f"def build(ctx):\n    return Bad({linear.format(n=50)}, (0.5,) * 3, (0.5,) * 3)\n"
        )
        return make_submission(tmp_path, case, module_body=body)
    if case == "unknown_track":
        return make_submission(tmp_path, case, track="clasification")
    if case == "over_budget":
        body = wrap + (
            "def build(ctx):\n"
            "    return wrap_classifier(nn.Sequential(nn.Conv2d(3, 256, 3, padding=1),"
            " nn.Conv2d(256, 256, 3, padding=1),"
            " nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 50)))\n"
        )
        return make_submission(tmp_path, case, module_body=body)
    raise AssertionError(case)


def test_missing_dataset_path(harness_env, tmp_path):
    result = run_cli(
        "evaluate",
        "--track",
        "classification",
        "--dataset",
        "cifar10",
        "--data-dir",
        str(tmp_path / "nope"),
        env=harness_env,
    )
    assert result.returncode == 2
    assert f"dataset path {tmp_path / 'nope'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_track_and_flag(harness_env):
    result = run_cli("evaluate", "--track", "small-objects", env=harness_env)
    assert (
        result.returncode == 2 and "unknown track `small-objects`" in result.stderr and "small-object" in result.stderr
    )
    result = run_cli("evaluate", "--track", "classification", "--profile", "fastest", env=harness_env)
    assert result.returncode == 2 and "unknown profile `fastest`" in result.stderr
    result = run_cli("evaluate", "--trak", "classification", env=harness_env)
    assert result.returncode == 2 and "--trak" in result.stderr


def test_read_only_store(harness_env, tmp_path):
    sub = make_submission(tmp_path, "tiny")
    assert run_cli("submit", str(sub), env=harness_env).returncode == 0
    db = _db_path(harness_env)
    env = dict(harness_env)
    import os

    os.chmod(db, 0o444)
    os.chmod(tmp_path, 0o555)
    try:
        if os.access(db, os.W_OK):
            pytest.skip("running as a user who can write read-only files (root): see test_locked_store")
        result = run_cli("evaluate", "--track", "classification", env=env)
    finally:
        os.chmod(tmp_path, 0o755)
        os.chmod(db, 0o644)
    assert result.returncode == 2 and "read-only" in result.stderr


def test_read_only_store_via_uri(harness_env, tmp_path):
    """As root, file modes do not stop writes; SQLite's read-only open mode does, for any user."""
    sub = make_submission(tmp_path, "tiny")
    assert run_cli("submit", str(sub), env=harness_env).returncode == 0
    db = _db_path(harness_env)
    env = {**harness_env, "HARNESS_DB_URL": f"sqlite:///file:{db}?mode=ro&uri=true"}
    result = run_cli("evaluate", "--track", "classification", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "read-only" in result.stderr and "Traceback" not in result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from runs").fetchone()[0] == 0


def test_locked_store(harness_env, tmp_path):
    sub = make_submission(tmp_path, "tiny")
    assert run_cli("submit", str(sub), env=harness_env).returncode == 0
    db = _db_path(harness_env)
    holder = sqlite3.connect(db, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        env = {**harness_env, "HARNESS_DB_BUSY_TIMEOUT_MS": "500"}
        result = run_cli("evaluate", "--track", "classification", env=env)
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "locked" in result.stderr and "Traceback" not in result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from runs").fetchone()[0] == 0


def test_the_local_runner_gets_the_same_output_checks(harness_env, tmp_path):
    """The local runner trusts the code to run, not what it writes: a rewritten measurements.json fails the run."""
    from tests.conftest import TAMPERING_CNN, assert_tampering_caught

    sub = make_submission(tmp_path, "tamper", module_body=TAMPERING_CNN)
    assert run_cli("submit", str(sub), env=harness_env).returncode == 0
    assert_tampering_caught(run_cli("evaluate", "--track", "classification", "--json", env=harness_env))
