"""`--runner ray` end to end on a local cluster (head + one worker node, `fake_gpu` standing in for GPUs) and a
PostgreSQL store: same metrics as the local runner, worker loss mid-task, and the bytes-back path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.errors import HarnessError
from harness.runners.ray import RayRunner
from harness.runners.ray.worker import local_paths
from harness.sandbox.job import IngestJob
from harness.store.repo import Store
from harness.tracks import get_card
from tests.conftest import TINY_CNN, make_submission, run_cli
from tests.scale.cluster import GPU_STAND_IN

# The tiny CNN, three seconds slower to build: a window in which its task is surely mid-ingestion.
SLOW_BUILD = TINY_CNN.replace("    def build(ctx):\n", "    def build(ctx):\n        __import__('time').sleep(3)\n")


def _evaluate_json(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def _runs_by_job(url: str) -> dict[tuple[str, str], list]:
    store = Store(url)
    runs: dict[tuple[str, str], list] = {}
    for run in store.runs():
        runs.setdefault((run.submission.name, run.variant), []).append(run)
    store.engine.dispose()
    return runs


@pytest.mark.ray
@pytest.mark.postgres
def test_classification_through_ray_and_postgres_matches_local(ray_cluster, ray_env, pg_env, tmp_path):
    sub = make_submission(tmp_path, "tiny_ray", variants=["fp32"])
    submitted = run_cli("submit", str(sub), "--json", env=pg_env)
    assert submitted.returncode == 0, submitted.stderr

    # `ship`: the worker ignores the driver's folders and unpacks the copies sent through the object store,
    # and the outputs come back as bytes: the multi-host path, without a shared filesystem.
    env = {**pg_env, **ray_env, "HARNESS_RAY_FILES": "ship"}
    args = ("evaluate", "--track", "classification", "--runner", "ray", "--address", ray_cluster.address, "--json")
    ray_runs = _evaluate_json(run_cli(*args, env=env))
    assert [r["runner"] for r in ray_runs] == ["ray"]
    ray_run = ray_runs[0]
    assert ray_run["status"] == "ok", ray_run["error"]

    # The same job on the local runner, into the same store (--force: the idempotency key ignores the runner).
    local_runs = _evaluate_json(run_cli("evaluate", "--track", "classification", "--force", "--json", env=pg_env))
    local_run = local_runs[0]
    assert local_run["status"] == "ok" and local_run["runner"] == "local"

    assert ray_run["metrics"] == local_run["metrics"]
    assert set(ray_run["metrics"]) == {"top1", "top5"} and 0.0 <= ray_run["metrics"]["top1"] <= 1.0
    for field in ("params", "macs", "bytes", "hardware_class", "dataset_hash", "submission_hash"):
        assert ray_run[field] == local_run[field], field
    assert ray_run["environment"]["cpu_model"] == local_run["environment"]["cpu_model"]
    assert ray_run["latency"]["repeats"] == 3 and ray_run["latency"]["p50_ms"] > 0
    assert ray_run["details"]["runner_wall_s"] > 0

    runs = _runs_by_job(pg_env["HARNESS_DB_URL"])
    assert sorted(r.runner for r in runs[("tiny_ray", "fp32")]) == ["local", "ray"]


@pytest.mark.ray
@pytest.mark.postgres
def test_killing_a_worker_mid_task_stores_every_run_once(ray_cluster, ray_env, pg_env, tmp_path):
    sub = make_submission(tmp_path, "slow_ray", module_body=SLOW_BUILD, variants=["fp32", "channels-last"])
    submitted = run_cli("submit", str(sub), "--json", env=pg_env)
    assert submitted.returncode == 0, submitted.stderr

    evaluation, doomed = _evaluate_and_kill_a_worker_mid_task(ray_cluster, {**pg_env, **ray_env})

    out, err = evaluation.communicate(timeout=600)
    assert evaluation.returncode == 0, err[-4000:]
    runs = json.loads(out)
    assert sorted(r["variant"] for r in runs) == ["channels-last", "fp32"]
    assert all(r["status"] == "ok" for r in runs), [r["error"] for r in runs]

    # The attempt and ingestion processes of the killed worker died with it (parent-death signal).
    gone, alive = psutil.wait_procs(doomed, timeout=30)
    assert not alive, [p.cmdline() for p in alive]

    stored = _runs_by_job(pg_env["HARNESS_DB_URL"])
    assert {job: len(rows) for job, rows in stored.items()} == {
        ("slow_ray", "fp32"): 1,
        ("slow_ray", "channels-last"): 1,
    }
    assert len({row.idempotency_key for rows in stored.values() for row in rows}) == 2
    args = ("evaluate", "--track", "classification", "--runner", "ray", "--address", ray_cluster.address, "--json")
    assert _evaluate_json(run_cli(*args, env={**pg_env, **ray_env})) == []


def _evaluate_and_kill_a_worker_mid_task(cluster, env: dict[str, str]) -> tuple[subprocess.Popen, list]:
    """Start `harness evaluate --runner ray`, wait until a task's ingestion step runs, SIGKILL that task's Ray
    worker process; returns the evaluation and the killed worker's descendants (attempt and ingestion)."""
    cmd = [str(Path(sys.executable).parent / "harness"), "evaluate", "--track", "classification"]
    cmd += ["--runner", "ray", "--address", cluster.address, "--json"]
    evaluation = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env}
    )
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and evaluation.poll() is None:
        for worker in cluster.task_workers():
            try:
                family = worker.children(recursive=True)
                if any("harness.sandbox.driver" in " ".join(p.cmdline()) for p in family):
                    os.kill(worker.pid, signal.SIGKILL)
                    return evaluation, family
            except psutil.Error:
                continue
        time.sleep(0.5)
    evaluation.kill()
    raise AssertionError(f"no Ray task reached its ingestion step:\n{evaluation.communicate()[1][-3000:]}")


@pytest.mark.ray
@pytest.mark.postgres
@pytest.mark.slow
def test_a_task_lost_past_its_retries_goes_back_to_the_queue(ray_cluster, ray_env, pg_env, tmp_path):
    sub = make_submission(tmp_path, "lost_ray", module_body=SLOW_BUILD, variants=["fp32"])
    assert run_cli("submit", str(sub), "--json", env=pg_env).returncode == 0

    env = {**pg_env, **ray_env, "HARNESS_RAY_MAX_RETRIES": "0"}
    evaluation, _ = _evaluate_and_kill_a_worker_mid_task(ray_cluster, env)
    out, err = evaluation.communicate(timeout=600)
    assert evaluation.returncode == 0, err[-4000:]
    assert json.loads(out) == []
    said = " ".join(err.split())  # rich wraps long lines on a narrow stderr
    assert "lost_ray [fp32]: skipped (lost by the ray runner (" in said and "); queued again)" in said
    assert _runs_by_job(pg_env["HARNESS_DB_URL"]) == {}, "the claim was released, not left `running`"

    args = ("evaluate", "--track", "classification", "--runner", "ray", "--address", ray_cluster.address, "--json")
    (run,) = _evaluate_json(run_cli(*args, env={**pg_env, **ray_env}))
    assert run["status"] == "ok" and run["submission"] == "lost_ray"


def test_options_are_validated_with_the_fix_named(monkeypatch):
    monkeypatch.setenv("HARNESS_RAY_RESOURCES", "fake_gpu=1")
    with pytest.raises(HarnessError, match="HARNESS_RAY_RESOURCES") as caught:
        RayRunner()
    assert '{"fake_gpu": 1}' in caught.value.hint
    monkeypatch.setenv("HARNESS_RAY_RESOURCES", '{"fake_gpu": 0.5}')
    monkeypatch.setenv("HARNESS_RAY_MAX_RETRIES", "2")
    runner = RayRunner(files="ship")
    assert runner.resources == {"fake_gpu": 0.5} and runner.max_retries == 2 and runner.files == "ship"
    # Per task: one GPU for CUDA jobs unless told otherwise, and the job's threads as CPUs.
    assert runner._task_resources("cuda:1", 4) == {"num_gpus": 1.0, "num_cpus": 4.0, "resources": {"fake_gpu": 0.5}}
    assert runner._task_resources("cpu", 1)["num_gpus"] == 0.0
    with pytest.raises(HarnessError, match="file mode"):
        RayRunner(files="nfs")
    monkeypatch.setenv("HARNESS_RAY_NUM_GPUS", "two")
    with pytest.raises(HarnessError, match="HARNESS_RAY_NUM_GPUS"):
        RayRunner()


def test_shared_file_mode_refuses_folders_the_worker_cannot_see(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / ".installed").write_text("abc")
    job = IngestJob(
        mode="evaluate",
        site_dir=str(site),
        entry_name="tiny",
        track="classification",
        kind="classification",
        variant="fp32",
        device="cpu",
        out_dir=str(tmp_path / "out"),
        inputs_dir=str(tmp_path / "missing-inputs"),
    )
    staged = {"site_dir": ("", []), "inputs_dir": ("", [])}
    with pytest.raises(FileNotFoundError, match="missing-inputs"):
        local_paths(job, staged, "shared")
    job.inputs_dir = None
    local_paths(job, {"site_dir": ("", [])}, "shared")
    assert job.site_dir == str(site)


@pytest.mark.ray
def test_requests_the_cluster_cannot_meet_are_refused_up_front(ray_cluster):
    card = get_card("classification")
    with pytest.raises(HarnessError, match="no node of the Ray cluster offers") as caught:
        RayRunner(address=ray_cluster.address, resources={"tpu_stand_in": 1}).environment(card, "cpu", 1)
    assert "tpu_stand_in=1" in caught.value.message and "HARNESS_RAY_RESOURCES" in caught.value.hint
    with pytest.raises(HarnessError, match="no CUDA device"):
        RayRunner(address=ray_cluster.address, num_gpus=0, resources={GPU_STAND_IN: 1}).environment(card, "cuda", 1)
    runner = RayRunner(address=ray_cluster.address, resources={GPU_STAND_IN: 1})
    env = runner.environment(card, "cpu", 1)
    assert env["threads"] == 1 and env["device"] == "cpu"
    assert runner.expected_hardware_class == f"CPU {env['cpu_model']} / 1 threads"
    assert runner.trusted, "the classification card's runner is local: the ray runner trusts the code too"


@pytest.mark.ray
def test_the_ray_runner_gets_the_same_output_checks(ray_cluster, ray_env, harness_env, tmp_path):
    """Files that come back from a Ray worker are checked on the driver like any runner's."""
    from tests.conftest import TAMPERING_CNN, assert_tampering_caught

    sub = make_submission(tmp_path, "tamper", module_body=TAMPERING_CNN)
    assert run_cli("submit", str(sub), env=harness_env).returncode == 0
    args = ("evaluate", "--track", "classification", "--runner", "ray", "--address", ray_cluster.address, "--json")
    assert_tampering_caught(run_cli(*args, env={**harness_env, **ray_env}))
