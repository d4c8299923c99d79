"""Throwaway services for the scale-out tests: a Ray cluster (head plus one worker node) and PostgreSQL, on loopback.

The Ray nodes use 127.0.0.2 (a loopback address Ray does not rewrite to the machine's public one) and ports of
their own, so nothing else on the machine is touched. Every process started here is stopped by its id.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
RAY_HOST = "127.0.0.2"
GPU_STAND_IN = "fake_gpu"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_range(count: int) -> tuple[int, int]:
    """A block of ports below Linux's ephemeral range, so randomly bound sockets do not land in it."""
    for _ in range(50):
        start = random.randrange(20000, 32000 - count)
        try:
            for port in (start, start + count // 2, start + count - 1):
                with socket.socket() as sock:
                    sock.bind((RAY_HOST, port))
        except OSError:
            continue
        return start, start + count - 1
    raise RuntimeError("no free port range for Ray workers")


def ray_exe() -> str:
    return str(Path(sys.executable).parent / "ray")


@dataclass
class RayCluster:
    """A head node (no GPU stand-in: it only schedules) and a worker node offering `fake_gpu`."""

    temp_dir: Path
    worker_cpus: int = 2
    worker_gpus: int = 2
    address: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        env.pop("RAY_ADDRESS", None)
        for key in [k for k in env if k.startswith("HARNESS_")]:
            del env[key]  # nodes run tasks for many drivers; each driver passes its own settings
        return env

    def _start(self, name: str, args: list[str]) -> None:
        low, high = _port_range(200)
        log = self.temp_dir / f"{name}.log"
        handle = open(log, "w")
        cmd = [
            ray_exe(),
            "start",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address",
            RAY_HOST,
            "--object-store-memory",
            str(100 * 1024 * 1024),
            "--min-worker-port",
            str(low),
            "--max-worker-port",
            str(high),
            "--dashboard-agent-listen-port",
            str(free_port(RAY_HOST)),
            *args,
        ]
        proc = subprocess.Popen(
            cmd, stdout=handle, stderr=subprocess.STDOUT, env=self.env(), cwd=self.temp_dir, start_new_session=True
        )
        handle.close()
        self.processes.append(proc)
        self.logs.append(log)

    def start(self, timeout_s: float = 240) -> RayCluster:
        self.temp_dir.mkdir(parents=True, exist_ok=True)

        def head_args() -> list[str]:
            port = free_port(RAY_HOST)
            self.address = f"{RAY_HOST}:{port}"
            return [
                "--head",
                "--port",
                str(port),
                "--num-cpus",
                "1",
                "--include-dashboard",
                "false",
                "--dashboard-port",
                str(free_port()),
                "--ray-client-server-port",
                str(free_port(RAY_HOST)),
                "--temp-dir",
                str(self.temp_dir / "ray"),
            ]

        def worker_args() -> list[str]:
            resources = json.dumps({GPU_STAND_IN: self.worker_gpus})
            return ["--address", self.address, "--num-cpus", str(self.worker_cpus), "--resources", resources]

        self._start_node("head", head_args, 1, timeout_s)
        self._start_node("worker", worker_args, 2, timeout_s)
        return self

    def _start_node(self, name: str, args: Callable[[], list[str]], count: int, timeout_s: float) -> None:
        """Ray gives a starting node a fixed 30 s to register with the GCS, which a busy machine can miss:
        a node that gave up is cleared away and started again, three times at most."""
        failure = ""
        for _ in range(3):
            self._start(name, args())
            failure = self._wait_for_nodes(count, timeout_s)
            if not failure:
                return
            self._discard(self.processes.pop(), self.logs.pop())
        self.stop()
        raise RuntimeError(failure)

    def _wait_for_nodes(self, count: int, timeout_s: float) -> str:
        """An empty string once `count` nodes are alive, else what went wrong."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for proc, log in zip(self.processes, self.logs, strict=True):
                if proc.poll() is not None:
                    return f"`ray start` exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            if self.alive_nodes() >= count:
                return ""
            time.sleep(2)
        return f"the Ray cluster did not reach {count} node(s) in {timeout_s:.0f} s"

    def _discard(self, proc: subprocess.Popen, log: Path) -> None:
        leftovers = _descendants(proc)
        _signal_group(proc, signal.SIGKILL)  # also reaches its children when `ray start` itself has exited
        proc.wait()
        for child in leftovers:
            try:
                child.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(leftovers, timeout=10)
        log.rename(log.with_suffix(f".failed-{proc.pid}.log"))

    def alive_nodes(self) -> int:
        """Nodes that `ray status` lists as active (it reads the GCS, so it works without the dashboard)."""
        proc = subprocess.run(
            [ray_exe(), "status", "--address", self.address],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=self.temp_dir,
            timeout=60,
        )
        if proc.returncode != 0 or "Active:" not in proc.stdout:
            return 0
        active = proc.stdout.split("Active:", 1)[1].split("Pending:", 1)[0]
        return sum(int(line.split()[0]) for line in active.splitlines() if " node_" in line)

    def descendants(self) -> list[psutil.Process]:
        return [child for proc in self.processes for child in _descendants(proc)]

    def task_workers(self, function: str = "ingest_task") -> list[psutil.Process]:
        """Ray worker processes of this cluster executing `function` right now (Ray titles them `ray::NAME`)."""
        busy = []
        for proc in self.descendants():
            try:
                if proc.cmdline()[:1] and proc.cmdline()[0].startswith(f"ray::{function}"):
                    busy.append(proc)
            except psutil.Error:
                continue
        return busy

    def stop(self) -> None:
        leftovers = self.descendants()
        for proc in self.processes:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5  # a graceful stop may hang on a lost node: then no more waiting
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        for child in leftovers:
            try:
                child.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(leftovers, timeout=10)
        self.processes.clear()


@dataclass
class PostgresServer:
    """A server started by scripts/start_postgres.sh in a folder of its own; one database per test."""

    data_dir: Path
    url: str = ""
    started: bool = False

    def start(self) -> PostgresServer:
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "start_postgres.sh"), str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"start_postgres.sh failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        self.url = proc.stdout.strip().splitlines()[-1]
        self.started = True
        return self

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "start_postgres.sh"), "--stop", str(self.data_dir)],
                capture_output=True,
                timeout=120,
            )
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def create_database(self) -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_libpq_url(self.url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(_libpq_url(self.url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _descendants(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    """Signal the process group `ray start` leads (it was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass
