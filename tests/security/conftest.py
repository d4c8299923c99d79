"""Fixtures of the security suite: a reachable Docker daemon with the sandbox image, and sandbox limits small
enough that the attacks hit them in seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("HARNESS_DOCKER_IMAGE", "harness-sandbox:local")

# Limits of the sandbox during the suite: a 1.5 GiB memory cap still fits torch and the tiny models.
SANDBOX_ENV = {
    "HARNESS_DOCKER_IMAGE": IMAGE,
    "HARNESS_DOCKER_MEMORY": "1536m",
    "HARNESS_DOCKER_PIDS": "64",
    "HARNESS_DOCKER_OUTPUT_MB": "64",
    "HARNESS_DOCKER_TMP_MB": "64",
    "HARNESS_DOCKER_LOG_MB": "8",
}


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The sandbox image, built with docker/build-local-image.sh when it is missing; skips without a daemon."""
    from harness.runners.docker import docker_available

    reason = docker_available()
    if reason:
        pytest.skip(f"docker tests need a Docker daemon: {reason} (start one with scripts/start_docker.sh)")
    present = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0
    if not present:
        build = subprocess.run(
            [str(ROOT / "docker" / "build-local-image.sh"), IMAGE],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHON": sys.executable},
        )
        assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    return IMAGE


def sandbox_containers() -> list[str]:
    """Containers this runner started that still exist (none may be left behind)."""
    from harness.runners.docker import CONTAINER_LABEL

    proc = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label={CONTAINER_LABEL}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.split()


class LoopbackServer:
    """A TCP server on the host's loopback (tests never bind beyond it) that counts who reached it: what a
    sandboxed step (or a build) that tries to phone home would reach."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()
