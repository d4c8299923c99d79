"""The submission server end to end, as an organiser and two participants on other machines use it: the real
`harness server` (uvicorn on loopback) checking uploads in the docker sandbox, a watching `harness evaluate
--competition --runner docker --watch` worker, two participants submitting the reference detectors through
`harness submit --server`; their runs finish, `harness status` shows each only their own, the public board shows
both, and the worker stops cleanly on SIGTERM after its current run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.competition_fixtures import bob_submission, smallobj_folder
from tests.conftest import ROOT, run_cli
from tests.security.conftest import SANDBOX_ENV

COMPETITION = "tiny-sprint"


def _bundle(root: Path) -> Path:
    folder = root / "sprint"
    smallobj_folder(folder / "data" / "test")
    (folder / "competition.toml").write_text(
        f"""name = "{COMPETITION}"
title = "Tiny sprint"

[[phases]]
name = "final"
track = "small-object"
dataset = "data/test"
opens = 2026-01-01T00:00:00Z
closes = 2099-01-01T00:00:00Z
public_fraction = 0.5

[phases.quota]
per_day = 3
"""
    )
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _token(output: str) -> str:
    return next(word for word in output.split() if word.startswith("hxt_"))


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_participants_submit_through_the_server_and_a_worker_evaluates(docker_image, tmp_path):
    env = {
        **SANDBOX_ENV,
        "HARNESS_DOCKER_MEMORY": "3g",  # the Faster R-CNN references
        "HARNESS_DOCKER_PIDS": "256",
        "HARNESS_HOME": str(tmp_path / "home"),
        "HARNESS_DB_URL": f"sqlite:///{tmp_path / 'harness.db'}",
    }
    cli_env = {key: value for key, value in env.items()}

    def cli(*args: str, extra: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
        result = run_cli(*args, env={**cli_env, **(extra or {})}, timeout=900)
        if ok:
            assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
        return result

    cli("competition", "create", str(_bundle(tmp_path)))
    tokens = {}
    for name in ("alice", "bob"):
        tokens[name] = _token(cli("participants", "add", name, "--competition", COMPETITION).stdout)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    exe = str(Path(sys.executable).parent / "harness")
    full_env = {**os.environ, **env}
    server = subprocess.Popen(
        [exe, "server", "-c", COMPETITION, "--port", str(port), "--access-log", str(tmp_path / "access.log")],
        env=full_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker_log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [exe, "evaluate", "-c", COMPETITION, "--runner", "docker", "--watch", "--poll", "1", "--variant", "fp32"],
        env=full_env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until(lambda: _healthy(url), 60, "the server")
        # The participants, each with only their token (HARNESS_TOKEN): a local check, an upload, the
        # server's sandboxed check.
        alice = cli(
            "submit", str(ROOT / "submissions" / "fasterrcnn"), "--server", url, "--json",
            extra={"HARNESS_TOKEN": tokens["alice"]},
        )  # fmt: skip
        bob_dir = str(bob_submission(tmp_path))
        bob = cli("submit", bob_dir, "--server", url, "--json", extra={"HARNESS_TOKEN": tokens["bob"]})
        assert json.loads(alice.stdout)["state"] == "queued", alice.stdout
        assert json.loads(bob.stdout)["state"] == "queued", bob.stdout

        def status(name: str) -> dict:
            return json.loads(cli("status", "--server", url, "--json", extra={"HARNESS_TOKEN": tokens[name]}).stdout)

        def finished(name: str) -> bool:
            runs = [run for entry in status(name)["entries"] for run in entry["runs"]]
            return (
                bool(runs)
                and all(run["status"] != "running" for run in runs)
                and len(runs) == len(status(name)["entries"])
            )

        _wait_until(lambda: finished("alice") and finished("bob"), 1200, "the worker's runs")
        mine = {name: status(name) for name in ("alice", "bob")}
        assert {e["entry"] for e in mine["alice"]["entries"]} == {"fasterrcnn_small", "fasterrcnn_default"}
        assert {e["entry"] for e in mine["bob"]["entries"]} == {"bob_frcnn"}
        for info in mine.values():
            for entry in info["entries"]:
                assert [run["status"] for run in entry["runs"]] == ["ok"], entry
                assert 0 < entry["runs"][0]["public_value"] <= 1
        alice_runs = [run["run_id"] for e in mine["alice"]["entries"] for run in e["runs"]]
        refused = httpx.get(f"{url}/v1/runs/{alice_runs[0]}", headers={"Authorization": f"Bearer {tokens['bob']}"})
        assert refused.status_code == 404 and "no run" in refused.json()["error"]

        board = httpx.get(f"{url}/v1/board", headers={"Authorization": f"Bearer {tokens['bob']}"}).json()
        assert {row["participant"] for row in board["rows"]} == {"alice", "bob"}
        assert board["board"] == "public" and all("private" not in row for row in board["rows"])
        assert "hxt_" not in (tmp_path / "access.log").read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker_rc = worker.wait(timeout=300)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        worker_log.close()
    log = (tmp_path / "worker.log").read_text()
    assert worker_rc == 0 and "stopping after the current run" in log, log[-3000:]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
