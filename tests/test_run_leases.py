"""Runs that cannot be stranded: `harness evaluate` killed by SIGTERM or SIGKILL while its ingestion step runs
leaves no process behind, and once the claim's lease has expired the next `evaluate` finishes the run exactly
once; a live lease is respected, and an operator can list and release stuck runs. Real CLI processes on a real
SQLite store, a real (small) submission, the quick profile."""

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

from harness.store.models import Run, utcnow
from harness.store.repo import Lease, LeaseLost, RunOutcome, Store, idempotency_key
from tests.conftest import TINY_CNN, make_submission, run_cli

LEASE_S = 5.0

# The tiny CNN, whose build waits while a flag file exists: the ingestion step is then surely running when the
# test kills the evaluator, and it would go on running (an orphan) if nothing tied it to its parent.
WAITING_CNN = """
    import os
    import time

    FLAG = {flag!r}
""" + TINY_CNN.replace(
    "def build(ctx):\n", "def build(ctx):\n        while os.path.exists(FLAG):\n            time.sleep(0.1)\n"
)


@pytest.fixture()
def leased_env(harness_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    flag = tmp_path / "hold-the-build"
    body = WAITING_CNN.format(flag=str(flag))
    sub = make_submission(tmp_path, "waiter", module_body=body, variants=["fp32", "channels-last"])
    env = {**harness_env, "HARNESS_RUN_LEASE_S": str(LEASE_S)}
    submitted = run_cli("submit", str(sub), env=env)
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    env["TEST_FLAG"] = str(flag)
    return env


def _evaluate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run_cli("evaluate", "-t", "classification", "--profile", "quick", "--json", *args, env=env, timeout=300)


def _start_evaluate(env: dict[str, str], variant: str) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "harness"
    argv = [str(exe), "evaluate", "--track", "classification", "--profile", "quick", "--variant", variant]
    return subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )


def _runs(env: dict[str, str], variant: str | None = None) -> list[Run]:
    return Store(env["HARNESS_DB_URL"]).runs(variant=variant)


def _wait_for_ingestion(env: dict[str, str], evaluator: subprocess.Popen) -> list[psutil.Process]:
    """The evaluator's descendants once its run is `running` and the driver process exists."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert evaluator.poll() is None, evaluator.communicate()[1].decode()[-2000:]
        running = [r for r in _runs(env, "channels-last") if r.status == "running"]
        children = psutil.Process(evaluator.pid).children(recursive=True)
        drivers = [p for p in children if "harness.sandbox.driver" in " ".join(_cmdline(p))]
        if running and drivers:
            time.sleep(1.0)  # inside build(ctx), waiting on the flag
            return psutil.Process(evaluator.pid).children(recursive=True)
        time.sleep(0.2)
    raise AssertionError("the ingestion step never started")


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _gone(processes: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    """Those of `processes` still alive after `timeout` (zombies count as gone: they run nothing)."""
    deadline = time.monotonic() + timeout
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return alive


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(p.info["status"] != psutil.STATUS_ZOMBIE for p in _group_members(pgid))


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, psutil.Error):
            pass
    return members


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_killed_evaluation_leaves_no_process_and_is_finished_exactly_once(leased_env, signum):
    env = leased_env
    first = _evaluate(env, "--variant", "fp32")
    assert first.returncode == 0, first.stderr[-3000:]
    (kept,) = json.loads(first.stdout)
    assert kept["status"] == "ok"

    Path(env["TEST_FLAG"]).touch()
    evaluator = _start_evaluate(env, "channels-last")
    descendants = _wait_for_ingestion(env, evaluator)
    groups = {os.getpgid(p.pid) for p in descendants} - {os.getpgid(evaluator.pid)}
    assert groups, "the ingestion step runs in a process group of its own"
    (claimed,) = _runs(env, "channels-last")
    live = _evaluate(env, "--variant", "channels-last")  # its evaluator renews the lease: the run is not taken
    assert live.returncode == 0 and json.loads(live.stdout) == [], live.stderr[-2000:]
    assert f"being evaluated as run {claimed.id} by another evaluator" in live.stderr
    assert f"harness runs release {claimed.id} --force" in live.stderr

    evaluator.send_signal(signum)  # the evaluator alone, as `kill` or an OOM killer would
    _, stderr = evaluator.communicate(timeout=60)
    assert not _gone(descendants), f"orphans: {[_cmdline(p) for p in _gone(descendants, 0)]}"
    assert not any(_group_alive(g) for g in groups)
    left = _runs(env, "channels-last")
    if signum == signal.SIGTERM:
        assert evaluator.returncode == 143, stderr.decode()[-2000:]
        assert b"SIGTERM" in stderr and left == [], "the claim was released at once, as on Ctrl-C"
    else:
        assert evaluator.returncode == -signal.SIGKILL
        (stranded,) = left
        assert stranded.status == "running" and stranded.lease_owner == claimed.lease_owner
        time.sleep(max(0.0, (stranded.lease_expires_at - utcnow()).total_seconds()) + 0.5)

    Path(env["TEST_FLAG"]).unlink()
    redone = _evaluate(env, "--variant", "channels-last")
    assert redone.returncode == 0, redone.stderr[-3000:]
    (run,) = json.loads(redone.stdout)
    assert run["status"] == "ok", run.get("error")
    again = _evaluate(env)
    assert again.returncode == 0 and json.loads(again.stdout) == [] and "already evaluated" in again.stderr

    rows = _runs(env)
    assert sorted((r.variant, r.status) for r in rows) == [("channels-last", "ok"), ("fp32", "ok")]
    (done,) = [r for r in rows if r.variant == "channels-last"]
    assert done.id == run["run_id"] and done.attempt == (1 if signum == signal.SIGTERM else 2)
    (fp32,) = [r for r in rows if r.variant == "fp32"]
    assert fp32.id == kept["run_id"] and {m.name: m.value for m in fp32.metrics} == kept["metrics"]


def _claim(store: Store, lease: Lease, sub_id: int) -> int | None:
    fields = dict(
        submission_id=sub_id, variant="fp32", track="classification", track_version=1, card_hash="h" * 16,
        dataset="digits/test", dataset_hash="d" * 64, device="cpu", profile="quick", runner="local",
        hardware_class="CPU test", harness_version="0", scorer_version="1", primary_metric="top1",
    )  # fmt: skip
    return store.claim(idempotency_key("lease-test"), lease, **fields).run_id


def test_leases_stuck_runs_and_release(harness_env):
    store = Store(harness_env["HARNESS_DB_URL"])
    sub, _ = store.add_submission(
        name="tiny", track="classification", content_hash="c" * 64, project="p", entry_point="p:build",
        variants=["fp32"], source_path="/s", stored_path="/s", site_path="/s",
    )  # fmt: skip
    zombie, other = Lease.new(60.0), Lease.new(60.0)
    run_id = _claim(store, zombie, sub.id)
    assert run_id is not None and _claim(store, other, sub.id) is None, "a live lease is not taken over"
    assert store.renew_leases(zombie) == 1 and store.renew_leases(other) == 0

    stuck = run_cli("runs", "stuck", "--json", env=harness_env)
    assert stuck.returncode == 0, stuck.stderr
    (row,) = json.loads(stuck.stdout)
    assert row["run_id"] == run_id and row["lease"] == "live" and row["owner"] == zombie.owner
    assert row["pid"] == os.getpid() and row["attempt"] == 1 and row["expires_in_s"] > 50
    refused = run_cli("runs", "release", str(run_id), env=harness_env)
    assert refused.returncode == 2 and f"run {run_id} is held by a live lease" in refused.stderr
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
    missing = run_cli("runs", "release", "999", env=harness_env)
    assert missing.returncode == 2 and "no run with id 999" in missing.stderr

    forced = run_cli("runs", "release", str(run_id), "--force", "--reason", "host lost", env=harness_env)
    assert forced.returncode == 0, forced.stderr
    released = store.get_run(run_id)
    assert released.status == "released" and released.error == "[released] host lost"
    assert run_cli("runs", "stuck", "--json", env=harness_env).stdout.strip() == "[]"
    again = run_cli("runs", "release", str(run_id), env=harness_env)
    assert again.returncode == 2 and "is released, not running" in again.stderr

    assert _claim(store, other, sub.id) == run_id, "the next evaluator takes the released run over"
    assert store.get_run(run_id).attempt == 2 and store.renew_leases(zombie) == 0
    with pytest.raises(LeaseLost):  # the zombie's result never overwrites the new attempt
        store.finish_run(run_id, RunOutcome(status="ok", metrics={"top1": 1.0}), zombie)
    store.finish_run(run_id, RunOutcome(status="ok", metrics={"top1": 0.5}), other)
    (done,) = store.runs()
    assert done.status == "ok" and [m.value for m in done.metrics] == [0.5] and done.lease_expires_at is None


# Sleeps in build(ctx) for the channels-last variant only (`submit` checks fp32): the container is surely running
# when the test kills the evaluator. A flag file would not do: the sandbox sees none of the host's files.
SLEEPING_CNN = "\n    import time\n" + TINY_CNN.replace(
    "def build(ctx):\n", "def build(ctx):\n        if ctx.variant == 'channels-last':\n            time.sleep(300)\n"
)


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_the_sandbox_container_does_not_outlive_a_killed_evaluator(harness_env, tmp_path, signum):
    from harness.runners.docker import docker_available

    reason = docker_available()
    if reason:
        pytest.skip(f"needs a Docker daemon: {reason}")
    if subprocess.run(["docker", "image", "inspect", "harness-sandbox:local"], capture_output=True).returncode:
        pytest.skip("needs the sandbox image harness-sandbox:local (docker/build-local-image.sh)")
    sub = make_submission(tmp_path, "sleeper", module_body=SLEEPING_CNN, variants=["fp32", "channels-last"])
    env = {**harness_env, "HARNESS_RUN_LEASE_S": str(LEASE_S)}
    assert run_cli("submit", str(sub), env=env).returncode == 0
    exe = Path(sys.executable).parent / "harness"
    argv = [str(exe), "evaluate", "-t", "classification", "--profile", "quick", "--runner", "docker", "-v"]
    evaluator = subprocess.Popen(
        [*argv, "channels-last"], env={**os.environ, **env}, stderr=subprocess.PIPE, start_new_session=True
    )
    container, deadline = None, time.monotonic() + 180
    while container is None and time.monotonic() < deadline:
        assert evaluator.poll() is None, evaluator.communicate()[1].decode()[-2000:]
        for child in psutil.Process(evaluator.pid).children(recursive=True):
            words = _cmdline(child)
            if words[:2] == ["docker", "run"]:
                container = words[words.index("--name") + 1]
        time.sleep(0.2)
    assert container, "the sandbox never started"
    time.sleep(3)  # the container is up, the submission sleeping in build(ctx)
    descendants = psutil.Process(evaluator.pid).children(recursive=True)
    evaluator.send_signal(signum)
    evaluator.communicate(timeout=120)
    assert not _gone(descendants, timeout=30), "the leash and the docker client end with the evaluator"
    listed = ["docker", "ps", "--all", "--quiet", "--filter", f"name=^{container}$"]
    deadline = time.monotonic() + 30  # the daemon removes a stopped container asynchronously; on a busy host it lags
    while subprocess.run(listed, capture_output=True, text=True).stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert subprocess.run(listed, capture_output=True, text=True).stdout.strip() == "", "the container is removed"
