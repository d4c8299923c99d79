"""The docker runner: the ingestion step of one job in a locked-down container, whose output is not trusted.

The container's first process is the sandbox's supervisor (`harness.sandbox.supervisor`); the runner reads
its frames and the log (`session`), stops the container at its time limit or on an output flood, classifies
how the step ended (`harness.runners.base.classify`), and hands back the phase markers as the host timed
them, for `harness.verify`'s timing check. A sandbox that docker cannot start at all raises `HarnessError`:
that is a fault of the set-up, not of the submission, and the queue should stop rather than fail every run.
The isolation is described in `command`; a submission's build runs in the same sandbox (`install`,
`DockerRunner.installer`); docker/README.md says how to build the image. The `docker run` client
runs on a leash (`harness.runners.leash`): when the evaluator dies, even by SIGKILL, the container is removed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from harness.config import settings
from harness.errors import HarnessError
from harness.runners.base import BaseRunner, IngestResult, StepExit, classify, kill_group
from harness.runners.docker.command import (
    CONTAINER_LABEL,
    DockerLimits,
    SandboxImage,
    container_job,
    docker_available,
    inspect_image,
    quiet,
    run_argv,
)
from harness.runners.docker.install import INSTALL_TIME_LIMIT_S, SandboxInstaller
from harness.runners.docker.session import SessionRecord, read_frames, read_log
from harness.runners.leash import leashed
from harness.sandbox.job import IngestJob

MIB = 1 << 20
DEADLINE_GRACE_S = 30.0  # the supervisor's own deadline: the time limit plus this

__all__ = ["CONTAINER_LABEL", "DockerLimits", "DockerRunner", "SandboxImage", "SessionRecord", "docker_available"]


class DockerRunner(BaseRunner):
    name = "docker"
    trusted = False

    def __init__(
        self, image: str | SandboxImage | None = None, limits: DockerLimits | None = None, docker: str = "docker"
    ):
        """`image`: a name (inspected now: a missing daemon or image is reported before any run is claimed),
        or an already inspected `SandboxImage`; default the setting HARNESS_DOCKER_IMAGE."""
        self.docker = docker
        self.limits = limits or DockerLimits.from_settings()
        self.image = (
            image if isinstance(image, SandboxImage) else inspect_image(image or settings().docker_image, docker)
        )
        self.last_session: SessionRecord | None = None

    def command(
        self, job: IngestJob, name: str, job_file: Path, inner: list[str] | None = None, deadline_s: float = 3600.0
    ) -> list[str]:
        return run_argv(self.image, self.limits, job, name, job_file, inner, deadline_s, self.docker)

    def installer(self, time_limit_s: float = INSTALL_TIME_LIMIT_S) -> SandboxInstaller:
        """The `harness.submission.Installer` that builds a submission in this runner's sandbox (`install`)."""
        return SandboxInstaller(self.image, self.limits, time_limit_s, self.docker)

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult:
        out_dir = Path(job.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        name = f"harness-{uuid.uuid4().hex[:16]}"
        staging = Path(tempfile.mkdtemp(prefix="harness-docker-"))
        session = SessionRecord()
        try:
            job_file = staging / "job.json"
            container_job(job).dump(job_file)
            job_file.chmod(0o644)
            argv = self.command(job, name, job_file, deadline_s=time_limit_s + DEADLINE_GRACE_S)
            self._run_container(argv, name, out_dir, time_limit_s, session)
        finally:
            quiet([self.docker, "rm", "--force", "--volumes", name])
            shutil.rmtree(staging, ignore_errors=True)
        self.last_session = session
        if session.ready is None and not session.timed_out:
            # The supervisor speaks before any submission code runs: without it, the set-up is at fault.
            raise HarnessError(
                f"docker could not start the sandbox (exit {session.docker_returncode}): {session.tail_text()[-600:]}",
                "run `python -m harness.runners.docker selftest` to see the problem",
            )
        job.dump(out_dir / "job.json")  # the host's view of the job, beside what came back
        return self._outcome(job, session, time_limit_s)

    def _run_container(
        self, argv: list[str], name: str, out_dir: Path, time_limit_s: float, session: SessionRecord
    ) -> None:
        session.started = time.monotonic()
        # On a leash: should the evaluator die (SIGKILL included), the leash removes the container, which would
        # otherwise outlive its `docker run` client, and kills the client.
        cleanup = [self.docker, "rm", "--force", "--volumes", name]
        proc = subprocess.Popen(
            leashed(argv, cleanup),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        readers = [
            threading.Thread(
                target=read_frames, args=(proc.stdout, session, out_dir, self.limits.output_bytes), daemon=True
            ),
            threading.Thread(target=read_log, args=(proc.stderr, session, self.limits.log_bytes), daemon=True),
        ]
        for reader in readers:
            reader.start()
        deadline = session.started + time_limit_s
        try:
            while proc.poll() is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    session.timed_out = True
                    break
                if session.flooded.wait(timeout=min(0.2, remaining)):
                    break
            if proc.poll() is None:
                quiet([self.docker, "kill", name])
            proc.wait(timeout=120)
        except BaseException:
            quiet([self.docker, "kill", name])  # Ctrl-C or SIGTERM: never leave the submission running
            kill_group(proc)
            raise
        finally:
            for reader in readers:
                reader.join(timeout=60)
        session.wall_s = time.monotonic() - session.started
        session.docker_returncode = proc.returncode
        state = quiet([self.docker, "inspect", "--format", "{{json .State}}", name])
        try:
            session.state = json.loads(state.stdout) if state.returncode == 0 else {}
        except ValueError:
            session.state = {}

    def _outcome(self, job: IngestJob, session: SessionRecord, time_limit_s: float) -> IngestResult:
        tail = session.tail_text()
        exit_frame = session.exit or {}
        times = [exit_frame.get(k) for k in ("ingestion_s", "cleanup_s")]
        if all(isinstance(t, float) for t in times):
            tail += f"\n[sandbox] exit {exit_frame.get('returncode')} after {times[0]:.1f} s; clean-up {times[1]:.1f} s"
        returncode = exit_frame.get("returncode")
        oom = bool(exit_frame.get("oom_kills") or session.state.get("OOMKilled"))
        step = StepExit(
            returncode if isinstance(returncode, int) else None,
            timed_out=session.timed_out,
            time_limit_s=time_limit_s,
            flooded_mib=self.limits.log_bytes // MIB if session.flooded.is_set() else None,
            oom=self.limits.memory if oom else None,
            oom_known=True,
            lost=_lost(session),
        )
        if session.exit is None and oom:
            step.returncode = -9  # the supervisor itself went down at the memory limit
        result = classify(Path(job.out_dir), step, tail, session.wall_s)
        marks, delay = session.phase_times()
        result.marks = marks
        result.host_timings = _host_timings(session, delay)
        return result


def _lost(session: SessionRecord) -> str | None:
    """Why the step's outcome never reached the host, if it did not."""
    if session.exit is None:
        reason = session.protocol_error or f"container exit code {session.state.get('ExitCode', '?')}"
        return f"crash: the sandbox stopped before the ingestion step finished ({reason})"
    if not isinstance(session.exit.get("returncode"), int):
        return "crash: the sandbox's supervisor reported no exit status"
    if session.output_error:
        return f"output: {session.output_error}"
    if not session.output_seen:
        return "crash: the sandbox's output never reached the host"
    return None


def _host_timings(session: SessionRecord, marker_delay: float | None) -> dict[str, float]:
    timings = {"host_wall_s": session.wall_s}
    if session.ready is not None:
        timings["host_container_start_s"] = session.ready - session.started
    first = [arrival for name, arrival, _ in session.marks if name == "first-batch"]
    if first:
        timings["host_first_batch_s"] = first[0] - session.started
    if marker_delay is not None:
        timings["host_marker_delay_max_s"] = marker_delay
    return timings
