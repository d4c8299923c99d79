"""The docker runner: the ingestion step of one job in a locked-down container, whose output is not trusted.

Isolation (the `docker run` flags)
    `--network none`, `--read-only` root, a non-root `--user` of its own (a fresh uid per run, from
    `SANDBOX_UIDS`, so that concurrent sandboxes share nothing, not even a process count), `--cap-drop ALL`,
    `--security-opt no-new-privileges`, `--pids-limit` and an equal `--ulimit nproc` (the rlimit is checked
    early in fork, so a fork bomb's failed forks cost nothing, while a failed fork that only the pids cgroup
    refuses has already copied the whole address space), `--memory` with an equal `--memory-swap` (no
    swap), `--cpus`, `--ulimit core=0,nofile`, a private IPC namespace, `--log-driver none` (the runner reads the
    container's streams itself, so a flood of output never reaches the daemon's log files on disk), and
    `--gpus device=N` for a `cuda:N` job (the container sees that one GPU as cuda:0).

Mounts
    Read-only: the job file (`/job/job.json`), the split's inputs (images and index.json: `/inputs`), the
    calibration inputs (`/calibration`), the submission's installed site folder (`/submission`), the harness
    package (`/opt/harness/harness`, so the driver in the sandbox is the same code as the scorer outside),
    and, for an image labelled `org.harness.python=host` (the local recipe, `docker/build-local-image.sh`),
    the host's interpreter and virtual environment at their host paths. Nothing else of the host: not the
    hidden ground truth, not the store, not `HARNESS_HOME`; the runner refuses to start when a mount would
    expose one of them.
    Writable: `/out` and `/tmp`, tmpfs mounts with size caps. tmpfs pages are charged to the container's
    memory cgroup, so neither can outgrow `--memory` either, and nothing is written to the host's disk.

Getting the results out
    `docker cp` cannot read tmpfs mounts, so the container's first process is a small supervisor of the harness
    (`python -m harness.runners.docker supervise`), PID 1 of the container. It runs the ingestion driver as its
    child (the child's stdout and stderr go to the container's stderr), waits for it, kills every other
    process left in the container (`kill(-1, SIGKILL)`, which spares only PID 1), and then writes to the
    container's stdout a few JSON frames (the child's exit status, the cgroup's OOM-kill count) followed by a
    tar stream of the regular files in `/out`. The container's stdout belongs to the supervisor alone: the
    child never inherits it, the supervisor makes itself non-dumpable so that `/proc/1/fd` is closed to the
    sandbox's user, and as PID 1 of its namespace it cannot be killed from inside. It runs the driver at nice
    19, which inside the container's own CPU cgroup only ranks the submission below the supervisor (a fork
    bomb cannot starve the clean-up); and it ends the container by itself past the time limit plus
    `DEADLINE_GRACE_S`, should the runner on the host be gone. The host extracts only the driver's own files
    (`OUTPUT_FILES`, regular files), within the output cap.

Limits and the reasons they give
    wall time (`docker kill`; "timeout"), memory ("out of memory": the supervisor's count of the cgroup's OOM
    kills, or docker's `State.OOMKilled` when the supervisor itself went down), output on stdout/stderr beyond
    `log_bytes` (stopped; "output flood"; only the last `LOG_TAIL_CHARS` are ever kept in memory), a crash
    (the exit status or signal). A sandbox that docker cannot start at all raises `HarnessError`: that is a
    fault of the set-up, not of the submission, and the queue should stop rather than fail every run.

What the host re-checks before anything is scored or stored
    `measurements.json` (size, types, ranges), the latency statistics (recomputed on the host from the raw
    samples, never taken from the sandbox), `predictions.npz` (declared member sizes and array headers before
    anything is loaded; the split's ids in order; one valid record per input: type, shape, dtype, finite,
    inside the image), and `error.json` (types, length). A measurements file that breaks these rules fails
    the run as "tampered"; bad predictions fail it as "[outputs]".

Timing integrity
    1. The harness's clock is captured before any submission code is imported (`harness.measure.latency`), so
       a submission that patches `time.perf_counter_ns` or `time.perf_counter` changes nothing.
    2. The performance pass is also timed outside the submission's reach. The driver writes phase names
       (`perf-start`, `device:measure`, `device:end`, `e2e:measure`, `e2e:end`, `perf-end`) to a pipe held by
       the supervisor, which stamps each as it reads it with the kernel's monotonic clock (the host's clock:
       containers do not get a clock of their own) and relays it at once as a frame; the runner also stamps
       each frame on arrival. The supervisor's stamps are used when they agree with the host's (none may
       postdate its frame's arrival), since they are free of the delays of the way out through docker; else
       the host's arrival times. The samples of each latency summary must account for at least
       `MIN_SAMPLE_FRACTION` of the span so measured in which they were taken (less a small allowance for the
       timing loop itself), and all samples together may not exceed the measured performance pass. A mismatch
       fails the run as "tampered". This catches every way of under-reporting time that was actually spent:
       a patched or replaced harness clock, a fake `torch.cuda.Event`, a rewritten samples list.
    Limits of the check: the submission runs in the driver's process, so code written against the harness's
    internals could also write forged phase names into the same pipe. The names must arrive exactly once each
    and in order, which turns that into a deliberate attack on this check rather than an accident, and the
    run's log and timings keep the evidence. Complexity (params, MACs, bytes) is measured in the same process
    and has the same limit.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

from harness.errors import HarnessError
from harness.runners import INFORMATIONAL_MEASUREMENTS, LOG_TAIL_CHARS, IngestResult
from harness.runners.ingest import IngestJob

MIB = 1 << 20
DEFAULT_IMAGE = "harness-sandbox:local"
PYTHON_LABEL = "org.harness.python"  # "host": mount the host's interpreter; else the interpreter's path in the image
CONTAINER_LABEL = "org.harness.sandbox"  # on every container this runner starts
SANDBOX_UIDS = range(200_000, 300_000)  # above the usual subordinate-uid ranges of user namespaces (100000+65536)
HARNESS_MOUNT = "/opt/harness"
MARKER_FD = 3
FRAME_PREFIX = b"HARNESS-SUPERVISOR "
MAX_FRAME_BYTES = 4096
DEADLINE_GRACE_S = 30.0  # the supervisor's own deadline: the time limit plus this
MAX_MARKERS = 64
# What the driver writes into /out; anything else stays in the sandbox. Add a name here when the driver learns
# to write another file.
OUTPUT_FILES = ("predictions.npz", "measurements.json", "error.json")
PHASES = ("perf-start", "device:measure", "device:end", "e2e:measure", "e2e:end", "perf-end")

# Timing check: samples must cover this share of the host-measured span, less a fixed slack for marker
# delivery and a per-iteration allowance for the timing loop itself (list append, clock reads).
MIN_SAMPLE_FRACTION = 0.5
TIMING_SLACK_S = 0.1
CLOCK_SKEW_S = 0.05  # a supervisor's stamp may precede its frame's arrival on the host, never follow it by more
PER_ITERATION_ALLOWANCE_S = 50e-6
MAX_MEASUREMENTS_BYTES = 64 * MIB
MAX_SAMPLES = 2_000_000
MAX_MESSAGE_CHARS = 2000


class Rejected(Exception):
    """The sandbox's output breaks a rule; the message is the run's failure reason."""


@dataclass
class DockerLimits:
    """Resource limits of one sandbox. Each can be set by an environment variable (in brackets)."""

    memory: str = "4g"  # HARNESS_DOCKER_MEMORY, docker's syntax (512m, 4g)
    cpus: float | None = None  # HARNESS_DOCKER_CPUS; default: the job's thread count
    pids: int = 256  # HARNESS_DOCKER_PIDS
    output_bytes: int = 512 * MIB  # HARNESS_DOCKER_OUTPUT_MB: the /out tmpfs
    tmp_bytes: int = 256 * MIB  # HARNESS_DOCKER_TMP_MB: the /tmp tmpfs
    log_bytes: int = 64 * MIB  # HARNESS_DOCKER_LOG_MB: stdout + stderr before the run is stopped
    nofile: int = 1024

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> DockerLimits:
        env = os.environ if environ is None else environ
        limits = cls()

        def number(name: str, kind: type) -> Any:
            text = env[name]
            try:
                value = kind(text)
            except ValueError:
                raise HarnessError(f"{name}={text!r} is not a number", f"e.g. {name}=256") from None
            if value <= 0:
                raise HarnessError(f"{name}={text!r} must be positive")
            return value

        if env.get("HARNESS_DOCKER_MEMORY"):
            limits.memory = env["HARNESS_DOCKER_MEMORY"]
        if env.get("HARNESS_DOCKER_CPUS"):
            limits.cpus = number("HARNESS_DOCKER_CPUS", float)
        if env.get("HARNESS_DOCKER_PIDS"):
            limits.pids = number("HARNESS_DOCKER_PIDS", int)
        for var, attr in (
            ("HARNESS_DOCKER_OUTPUT_MB", "output_bytes"),
            ("HARNESS_DOCKER_TMP_MB", "tmp_bytes"),
            ("HARNESS_DOCKER_LOG_MB", "log_bytes"),
        ):
            if env.get(var):
                setattr(limits, attr, number(var, int) * MIB)
        return limits


@dataclass(frozen=True)
class SandboxImage:
    name: str
    python: str  # "host" or the interpreter's path inside the image


@dataclass
class SessionRecord:
    """What the host saw of one container: supervisor frames with arrival times, streams, limits hit."""

    started: float = 0.0  # host monotonic clock when `docker run` was started
    ready: float | None = None  # when the supervisor's first frame arrived
    marks: list[tuple[str, float, float | None]] = field(default_factory=list)  # name, arrival, supervisor stamp
    exit: dict[str, Any] | None = None
    output_seen: bool = False
    output_error: str | None = None
    protocol_error: str | None = None
    log_bytes: int = 0
    log_tail: bytearray = field(default_factory=bytearray)
    flooded: threading.Event = field(default_factory=threading.Event)
    timed_out: bool = False
    docker_returncode: int | None = None
    state: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def phase_times(self) -> tuple[list[tuple[str, float]], float | None]:
        """(name, time) of each marker, on the supervisor's clock when it agrees with the host's, and the
        largest delay between a stamp and its arrival (None when the host's arrival times were used)."""
        stamps = [(name, at) for name, _, at in self.marks if at is not None]
        delays = [arrival - at for _, arrival, at in self.marks if at is not None]
        if self.marks and len(stamps) == len(self.marks) and all(-CLOCK_SKEW_S <= d <= 60 for d in delays):
            return stamps, max(delays)
        return [(name, arrival) for name, arrival, _ in self.marks], None

    def tail_text(self) -> str:
        return bytes(self.log_tail).decode("utf-8", "replace")[-LOG_TAIL_CHARS:]


def docker_available(docker: str = "docker") -> str | None:
    """None when a Docker daemon answers; else the reason it does not (for skips and messages)."""
    if shutil.which(docker) is None:
        return f"the `{docker}` CLI is not installed"
    try:
        proc = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{docker} info` failed: {exc}"
    if proc.returncode != 0:
        return "no Docker daemon is reachable: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return None


def inspect_image(image: str, docker: str = "docker") -> SandboxImage:
    reason = docker_available(docker)
    if reason:
        raise HarnessError(reason, "start one with scripts/start_docker.sh (as root), or use --runner local")
    proc = subprocess.run(
        [docker, "image", "inspect", "--format", "{{json .Config.Labels}}", image],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise HarnessError(
            f"docker image `{image}` not found",
            "build it: docker/build-local-image.sh (no registry needed), or docker build -f docker/Dockerfile.gpu; "
            "or choose one with HARNESS_DOCKER_IMAGE",
        )
    labels = json.loads(proc.stdout or "null") or {}
    python = labels.get(PYTHON_LABEL)
    if not python:
        raise HarnessError(
            f"docker image `{image}` has no label {PYTHON_LABEL}",
            "build the sandbox image with docker/build-local-image.sh or docker/Dockerfile.gpu",
        )
    return SandboxImage(image, python)


class DockerRunner:
    name = "docker"
    trusted = False

    def __init__(
        self,
        image: str | SandboxImage | None = None,
        limits: DockerLimits | None = None,
        docker: str = "docker",
        **_: object,
    ):
        """`image`: a name (inspected now: a missing daemon or image is reported before any run is claimed),
        or an already inspected `SandboxImage`; default `HARNESS_DOCKER_IMAGE` or harness-sandbox:local."""
        self.docker = docker
        self.limits = limits or DockerLimits.from_env()
        if isinstance(image, SandboxImage):
            self.image = image
        else:
            self.image = inspect_image(image or os.environ.get("HARNESS_DOCKER_IMAGE") or DEFAULT_IMAGE, docker)
        self.last_session: SessionRecord | None = None

    # the container ------------------------------------------------------------------------------------

    def container_job(self, job: IngestJob) -> IngestJob:
        """The job as the sandbox sees it: container paths, the one visible GPU, the marker pipe."""
        device = job.device
        if device.startswith("cuda"):
            device = "cuda:0" if ":" in device else "cuda"
        return replace(
            job,
            site_dir="/submission",
            inputs_dir="/inputs" if job.inputs_dir else None,
            calibration_dir="/calibration" if job.calibration_dir else None,
            out_dir="/out",
            device=device,
            marker_fd=MARKER_FD,
        )

    def mounts(self, job: IngestJob, job_file: Path) -> list[tuple[str, str]]:
        """(host path, container path) pairs, all read-only."""
        import harness

        pairs = [(str(job_file), "/job/job.json"), (job.site_dir, "/submission")]
        if job.inputs_dir:
            pairs.append((job.inputs_dir, "/inputs"))
        if job.calibration_dir:
            pairs.append((job.calibration_dir, "/calibration"))
        pairs.append((str(Path(harness.__file__).resolve().parent), f"{HARNESS_MOUNT}/harness"))
        if self.image.python == "host":
            prefixes = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
            pairs.extend((p, p) for p in sorted(prefixes))
        resolved = [(str(Path(host).resolve()), target) for host, target in pairs]
        _refuse_exposing_secrets(job, [host for host, _ in resolved])
        for host, _ in resolved:
            _readable_by_sandbox(Path(host))
        return resolved

    def command(
        self,
        job: IngestJob,
        name: str,
        job_file: Path,
        inner: list[str] | None = None,
        deadline_s: float = 3600.0,
    ) -> list[str]:
        """The full `docker run` command line for one job (or, with `inner`, for a self-test). `deadline_s`:
        the supervisor ends the container by itself after this long, should the host's runner die."""
        limits = self.limits
        uid = random.SystemRandom().choice(SANDBOX_UIDS)
        cpus = limits.cpus or max(1, job.threads)
        python = sys.executable if self.image.python == "host" else self.image.python
        argv = [
            self.docker,
            "run",
            "--name",
            name,
            "--label",
            f"{CONTAINER_LABEL}=1",
            "--network",
            "none",
            "--read-only",
            "--user",
            f"{uid}:{uid}",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--pids-limit",
            str(limits.pids),
            "--memory",
            limits.memory,
            "--memory-swap",
            limits.memory,
            "--cpus",
            f"{cpus:g}",
            "--ulimit",
            f"nproc={limits.pids}:{limits.pids}",
            "--ulimit",
            "core=0",
            "--ulimit",
            f"nofile={limits.nofile}:{limits.nofile}",
            "--ipc",
            "private",
            "--log-driver",
            "none",
            "--hostname",
            "sandbox",
            "--workdir",
            "/tmp",
            "--tmpfs",
            f"/out:rw,nosuid,nodev,noexec,size={limits.output_bytes},mode=0700,uid={uid},gid={uid}",
            "--tmpfs",
            f"/tmp:rw,nosuid,nodev,size={limits.tmp_bytes},mode=1777",
        ]
        for host, target in self.mounts(job, job_file):
            if "," in host or "," in target:
                raise HarnessError(f"cannot mount {host} into the sandbox: docker's --mount syntax forbids commas")
            argv += ["--mount", f"type=bind,source={host},target={target},readonly"]
        env = {
            "HOME": "/tmp",
            "USER": "sandbox",
            "PYTHONPATH": HARNESS_MOUNT,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "OMP_NUM_THREADS": str(job.threads),
            "XDG_CACHE_HOME": "/tmp/.cache",
            "TORCH_HOME": "/tmp/.torch",
        }
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        if job.device.startswith("cuda"):
            index = job.device.partition(":")[2] or "0"
            argv += ["--gpus", f"device={index}"]
        argv += ["--entrypoint", python, self.image.name]
        if inner is not None:
            return argv + inner
        return argv + [
            "-m",
            "harness.runners.docker",
            "supervise",
            "/job/job.json",
            "--output-limit",
            str(limits.output_bytes),
            "--deadline",
            f"{deadline_s:.0f}",
        ]

    # one run ------------------------------------------------------------------------------------------

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult:
        out_dir = Path(job.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        name = f"harness-{uuid.uuid4().hex[:16]}"
        staging = Path(tempfile.mkdtemp(prefix="harness-docker-"))
        session = SessionRecord()
        try:
            job_file = staging / "job.json"
            self.container_job(job).dump(job_file)
            job_file.chmod(0o644)
            argv = self.command(job, name, job_file, deadline_s=time_limit_s + DEADLINE_GRACE_S)
            self._run_container(argv, name, out_dir, time_limit_s, session)
        finally:
            _quiet([self.docker, "rm", "--force", "--volumes", name])
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
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        readers = [
            threading.Thread(target=_read_frames, args=(proc.stdout, session, out_dir, self.limits), daemon=True),
            threading.Thread(target=_read_log, args=(proc.stderr, session, self.limits.log_bytes), daemon=True),
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
                _quiet([self.docker, "kill", name])
            proc.wait(timeout=120)
        except BaseException:
            _quiet([self.docker, "kill", name])  # Ctrl-C: never leave the submission running
            proc.kill()
            raise
        finally:
            for reader in readers:
                reader.join(timeout=60)
        session.wall_s = time.monotonic() - session.started
        session.docker_returncode = proc.returncode
        state = _quiet([self.docker, "inspect", "--format", "{{json .State}}", name])
        try:
            session.state = json.loads(state.stdout) if state.returncode == 0 else {}
        except ValueError:
            session.state = {}

    def _outcome(self, job: IngestJob, session: SessionRecord, time_limit_s: float) -> IngestResult:
        out_dir = Path(job.out_dir)
        tail = session.tail_text()
        if session.exit is not None:
            times = [session.exit.get(k) for k in ("ingestion_s", "cleanup_s")]
            if all(isinstance(t, float) for t in times):
                code = session.exit.get("returncode")
                tail += f"\n[sandbox] exit {code} after {times[0]:.1f} s; clean-up {times[1]:.1f} s"

        def failed(message: str, unavailable: bool = False) -> IngestResult:
            return IngestResult(False, out_dir, message, unavailable=unavailable, log_tail=tail, wall_s=session.wall_s)

        oom_message = (
            f"out of memory: the ingestion step was killed at the sandbox's memory limit ({self.limits.memory})"
        )
        if session.flooded.is_set():
            return failed(
                f"output flood: the ingestion step wrote more than {self.limits.log_bytes // MIB} MiB to "
                "stdout/stderr; the sandbox was stopped"
            )
        if session.timed_out:
            return failed(f"timeout: the ingestion step ran past its {time_limit_s:.0f} s limit")
        if session.exit is None:
            if session.state.get("OOMKilled"):
                return failed(oom_message)
            reason = session.protocol_error or f"container exit code {session.state.get('ExitCode', '?')}"
            return failed(f"crash: the sandbox stopped before the ingestion step finished ({reason})")
        returncode = session.exit.get("returncode")
        if not isinstance(returncode, int):
            return failed("crash: the sandbox's supervisor reported no exit status")
        if returncode != 0 and (session.exit.get("oom_kills") or session.state.get("OOMKilled")):
            return failed(oom_message)
        if session.output_error:
            return failed(f"output: {session.output_error}")
        if not session.output_seen:
            return failed("crash: the sandbox's output never reached the host")
        error = read_error_file(out_dir / "error.json")
        if error is not None:
            return failed(*error)
        if returncode == 0 and (out_dir / "measurements.json").is_file():
            try:
                verify_output(job, out_dir, session, self.limits)
            except Rejected as exc:
                return failed(str(exc))
            return IngestResult(True, out_dir, log_tail=tail, wall_s=session.wall_s)
        if returncode < 0:
            try:
                signame = signal.Signals(-returncode).name
            except ValueError:
                signame = f"signal {-returncode}"
            return failed(f"crash: the ingestion step was killed by {signame}")
        return failed(f"crash: the ingestion step exited with code {returncode} and no result")


def _quiet(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(argv, -1, "", str(exc))


def _readable_by_sandbox(path: Path) -> None:
    """The sandbox's user is nobody on the host: a mounted folder must be readable by others. Folders the
    harness made itself (installed sites are staged with mkdtemp, mode 0700) are opened up; others refused."""
    from harness.config import harness_home

    mode = path.stat().st_mode
    wanted = 0o005 if path.is_dir() else 0o004
    if mode & wanted == wanted:
        return
    if harness_home() in path.parents:
        path.chmod(stat.S_IMODE(mode) | wanted | (wanted << 3))
        return
    raise HarnessError(
        f"{path} is not readable by the sandbox's user (mode {stat.S_IMODE(mode):o})",
        f"chmod o+r{'x' if path.is_dir() else ''} {path}",
    )


def _refuse_exposing_secrets(job: IngestJob, sources: list[str]) -> None:
    """No mount may contain the store, the harness home or the split's hidden ground truth."""
    from harness.config import db_url, harness_home

    secrets = [harness_home()]
    url = db_url()
    if url.startswith("sqlite:///"):
        secrets.append(Path(url.removeprefix("sqlite:///")).resolve())
    if job.inputs_dir:
        secrets.append(Path(job.inputs_dir).resolve().parent / "hidden")
    for source in sources:
        for secret in secrets:
            if secret == Path(source) or Path(source) in secret.parents:
                raise HarnessError(
                    f"mounting {source} into the sandbox would expose {secret}",
                    "keep HARNESS_HOME and the store outside the Python environment and the harness package",
                )


# the host's side of the streams ----------------------------------------------------------------------


def _read_frames(stream: IO[bytes], session: SessionRecord, out_dir: Path, limits: DockerLimits) -> None:
    """The supervisor's frames: ready, mark, exit, then `output` followed by a tar stream of /out."""
    try:
        while True:
            line = stream.readline(MAX_FRAME_BYTES)
            if not line:
                return
            now = time.monotonic()
            if not line.startswith(FRAME_PREFIX) or not line.endswith(b"\n"):
                session.protocol_error = "the supervisor's stream was garbled"
                return
            try:
                frame = json.loads(line[len(FRAME_PREFIX) :])
                event = frame["event"]
            except (ValueError, KeyError, TypeError):
                session.protocol_error = "the supervisor sent an unreadable frame"
                return
            if event == "ready":
                session.ready = now
            elif event == "mark":
                at = frame.get("at")
                session.marks.append((str(frame.get("name", "?")), now, at if isinstance(at, float) else None))
            elif event == "exit":
                session.exit = frame
            elif event == "output":
                session.output_seen = True
                session.output_error = extract_output(stream, out_dir, limits.output_bytes)
                return
    finally:
        _drain(stream)


def _read_log(stream: IO[bytes], session: SessionRecord, max_bytes: int) -> None:
    """Count everything, keep only the tail; past `max_bytes` raise the flood flag (and keep draining)."""
    keep = LOG_TAIL_CHARS * 4  # bytes: a UTF-8 character is at most 4
    while True:
        chunk = stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16)
        if not chunk:
            return
        session.log_bytes += len(chunk)
        session.log_tail += chunk
        if len(session.log_tail) > 2 * keep:
            del session.log_tail[:-keep]
        if session.log_bytes > max_bytes:
            session.flooded.set()


def _drain(stream: IO[bytes]) -> None:
    while stream.read(1 << 16):
        pass


def extract_output(stream: IO[bytes], out_dir: Path, max_bytes: int) -> str | None:
    """Unpack the supervisor's tar stream into `out_dir`: the driver's files (`OUTPUT_FILES`, regular files at
    the top level), at most `max_bytes` in all. Returns a reason when the stream was refused."""
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = PurePosixPath(member.name)
                if len(name.parts) != 1 or name.name not in OUTPUT_FILES:
                    continue
                total += member.size
                if total > max_bytes:
                    return f"the sandbox's output exceeds {max_bytes // MIB} MiB"
                target = out_dir / name.name
                source = tar.extractfile(member)
                if source is None:
                    continue
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
                with os.fdopen(fd, "wb") as fh:
                    shutil.copyfileobj(source, fh, 1 << 20)
    except (tarfile.TarError, OSError) as exc:
        return f"the sandbox's output could not be unpacked ({exc})"
    return None


# checks of what came back ------------------------------------------------------------------------------


def read_error_file(path: Path) -> tuple[str, bool] | None:
    """(reason, unavailable) from the driver's error.json, or None when there is none."""
    if not path.is_file():
        return None
    try:
        if path.stat().st_size > MAX_MEASUREMENTS_BYTES:
            raise ValueError("too large")
        error = json.loads(path.read_text())
        if not isinstance(error, dict):
            raise ValueError("not an object")
        stage = str(error.get("stage", "?"))[:40]
        message = str(error.get("message", "?"))[:MAX_MESSAGE_CHARS]
        return f"[{stage}] {message}", error.get("unavailable") is True
    except (OSError, ValueError):
        return "the ingestion step wrote an unreadable error file", False


def verify_output(job: IngestJob, out_dir: Path, session: SessionRecord, limits: DockerLimits) -> None:
    """Re-check everything the sandbox wrote; rewrite measurements.json with the host's own figures."""
    path = out_dir / "measurements.json"
    if path.stat().st_size > MAX_MEASUREMENTS_BYTES:
        raise Rejected(f"[tampered] measurements.json is larger than {MAX_MEASUREMENTS_BYTES // MIB} MiB")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Rejected(f"[tampered] measurements.json is not valid JSON ({exc})") from exc
    measurements = sanitize_measurements(raw, job)
    timings = measurements["timings"]
    if session.ready is not None:
        timings["host_container_start_s"] = session.ready - session.started
    first = [arrival for name, arrival, _ in session.marks if name == "first-batch"]
    if first:
        timings["host_first_batch_s"] = first[0] - session.started
    timings["host_wall_s"] = session.wall_s
    if job.mode == "evaluate":
        marks, delay = session.phase_times()
        timings.update(check_timing(marks, measurements["latency"]))
        if delay is not None:
            timings["host_marker_delay_max_s"] = delay
        verify_predictions(job, out_dir / "predictions.npz", limits.output_bytes)
    path.write_text(json.dumps(measurements))


def _number(value: Any, where: str, integer: bool = False, minimum: float = 0.0) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < minimum:
        want = "an integer" if integer else "a finite number"
        raise Rejected(f"[tampered] measurements.json: `{where}` is {str(value)[:40]}, expected {want} >= {minimum:g}")
    return value


def _small(value: Any, where: str, max_chars: int = 65536) -> Any:
    """Free-form information (environment, dtypes) is stored as given, but never more than `max_chars` of it."""
    if not isinstance(value, dict | list) or len(json.dumps(value)) > max_chars:
        raise Rejected(f"[tampered] measurements.json: `{where}` is not a small JSON object")
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Rejected(f"[tampered] measurements.json: `{where}` is not an object")
    return value


def sanitize_measurements(raw: Any, job: IngestJob) -> dict[str, Any]:
    """Keep what the host uses, with checked types; recompute the latency statistics from the raw samples."""
    from harness.measure.latency import summarize

    data = _mapping(raw, "(top level)")
    complexity = _mapping(data.get("complexity"), "complexity")
    macs = _mapping(complexity.get("macs", {}), "complexity.macs")
    macs_std = _mapping(complexity.get("macs_std", {}), "complexity.macs_std")
    clean: dict[str, Any] = {
        "complexity": {
            "params": _number(complexity.get("params"), "complexity.params", integer=True),
            "bytes": _number(complexity.get("bytes"), "complexity.bytes", integer=True),
            "dtypes": _small(complexity.get("dtypes", {}), "complexity.dtypes"),
            "macs": {str(k)[:40]: _number(v, f"complexity.macs.{k}", integer=True) for k, v in macs.items()},
            "macs_std": {str(k)[:40]: _number(v, f"complexity.macs_std.{k}") for k, v in macs_std.items()},
        },
        "environment": _small(_mapping(data.get("environment", {}), "environment"), "environment"),
        "timings": {
            str(k)[:60]: _number(v, f"timings.{k}") for k, v in _mapping(data.get("timings", {}), "timings").items()
        },
    }
    if "peak_memory_bytes" in data and data["peak_memory_bytes"] is not None:
        clean["peak_memory_bytes"] = _number(data["peak_memory_bytes"], "peak_memory_bytes", integer=True)
    for key in INFORMATIONAL_MEASUREMENTS:
        if data.get(key) is not None:
            value = data[key]
            clean[key] = value if isinstance(value, int) and not isinstance(value, bool) else _small(value, key)
    if job.mode != "evaluate":
        return clean
    crosscheck = _mapping(data.get("crosscheck"), "crosscheck")
    if not isinstance(crosscheck.get("consistent"), bool):
        raise Rejected("[tampered] measurements.json: `crosscheck.consistent` is not a boolean")
    clean["crosscheck"] = {
        "images": _number(crosscheck.get("images", 0), "crosscheck.images", integer=True),
        "consistent": crosscheck["consistent"],
    }
    latency = _mapping(data.get("latency"), "latency")
    clean["latency"] = {}
    for kind in ("device", "e2e"):
        summary = _mapping(latency.get(kind), f"latency.{kind}")
        samples = summary.get("samples_ms")
        sizes = summary.get("repeat_sizes")
        if not isinstance(samples, list) or not samples or len(samples) > MAX_SAMPLES:
            raise Rejected(f"[tampered] measurements.json: `latency.{kind}.samples_ms` is not a list of samples")
        if (
            not isinstance(sizes, list)
            or not sizes
            or sum(_number(n, "repeat_sizes", True, 1) for n in sizes) != len(samples)
        ):
            raise Rejected(f"[tampered] measurements.json: `latency.{kind}.repeat_sizes` do not add up to the samples")
        values = [_number(v, f"latency.{kind}.samples_ms") for v in samples]
        repeats, start = [], 0
        for size in sizes:
            repeats.append(values[start : start + size])
            start += size
        timer = summary.get("timer")
        recomputed = summarize(
            kind, job.batch_size, repeats, timer if timer in ("perf_counter_ns", "cuda-events", "cuda-graph") else "?"
        )
        reasons = summary.get("noise_reasons", [])
        # Noise found inside the sandbox (CPU load, other GPU processes) is kept as information.
        for reason in reasons[:8] if isinstance(reasons, list) else []:
            if isinstance(reason, str) and reason[:200] not in recomputed.noise_reasons:
                recomputed.noise_reasons.append(reason[:200])
        recomputed.noisy = bool(recomputed.noise_reasons)
        clean["latency"][kind] = recomputed.to_dict()
    return clean


def check_timing(marks: list[tuple[str, float]], latency: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Bound the in-sandbox latency samples by the host's clock; return the host-measured spans."""
    names = [name for name, _ in marks if name != "first-batch"]
    if names != list(PHASES) or len(marks) - len(names) > 1:
        shown = ", ".join(name for name, _ in marks[:12]) or "none"
        raise Rejected(
            "[tampered] the performance pass's timing markers did not reach the host once each and in order "
            f"(got: {shown})"
        )
    at = dict(marks)
    spans: dict[str, float] = {}
    total_samples_s = 0.0
    for kind in ("device", "e2e"):
        host_s = at[f"{kind}:end"] - at[f"{kind}:measure"]
        samples = latency[kind]["samples_ms"]
        samples_s = sum(samples) / 1000.0
        total_samples_s += samples_s
        floor = MIN_SAMPLE_FRACTION * host_s - TIMING_SLACK_S - len(samples) * PER_ITERATION_ALLOWANCE_S
        if samples_s < floor:
            raise Rejected(
                f"[tampered] the {kind} latency samples add up to {samples_s:.3f} s, but {host_s:.3f} s passed on "
                f"the host's clock while they were taken ({len(samples)} iterations)"
            )
        spans[f"host_{kind}_measure_s"] = host_s
    perf_s = at["perf-end"] - at["perf-start"]
    if total_samples_s > 1.5 * perf_s + 1.0:
        raise Rejected(
            f"[tampered] the latency samples add up to {total_samples_s:.3f} s, more than the {perf_s:.3f} s "
            "the performance pass took on the host's clock"
        )
    spans["host_performance_s"] = perf_s
    return spans


class _Shape:
    """Stands in for an image where only its size matters (validate_outputs reads `.shape`)."""

    def __init__(self, height: int, width: int):
        self.shape = (height, width, 3)


def verify_predictions(job: IngestJob, path: Path, max_bytes: int) -> None:
    """Load predictions.npz without trusting it: sizes first, then the split's ids, then every record."""
    from harness.contract import validate_outputs
    from harness.datasets import read_index
    from harness.errors import HarnessError as _Fault
    from harness.predictions import load_predictions

    if not path.is_file():
        raise Rejected("[outputs] the sandbox wrote measurements but no predictions.npz")
    check_npz(path, max_bytes)
    try:
        predictions = load_predictions(path, job.kind)
    except _Fault as exc:
        raise Rejected(f"[outputs] {exc.message}") from exc
    inputs = Path(job.inputs_dir or "")
    index = read_index(inputs)
    if predictions.ids != list(index["ids"]):
        raise Rejected(
            f"[outputs] predictions.npz holds {len(predictions.ids)} ids that are not the split's "
            f"{len(index['ids'])} ids in order"
        )
    if job.kind == "classification":
        images: list[Any] = [_Shape(1, 1)] * len(predictions.ids)
    else:
        from PIL import Image

        images = []
        for name in index["files"]:
            with Image.open(inputs / name) as img:
                images.append(_Shape(img.height, img.width))
    try:
        validate_outputs(job.kind, predictions.records, images, job.num_classes, set(job.label_ids or []) or None)
    except _Fault as exc:
        raise Rejected(f"[outputs] predictions.npz: {exc.message}") from exc
    except (ValueError, TypeError) as exc:
        raise Rejected(f"[outputs] predictions.npz: {exc}") from exc


def check_npz(path: Path, max_bytes: int) -> None:
    """Refuse an npz whose members would unpack to more than `max_bytes`, or whose array headers claim more
    data than the member holds (numpy allocates by the header before reading)."""
    import numpy as np

    fmt = np.lib.format
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                total += info.file_size
                if total > max_bytes:
                    raise Rejected(f"[outputs] predictions.npz unpacks to more than {max_bytes // MIB} MiB")
                with archive.open(info) as member:
                    version = fmt.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = fmt.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = fmt.read_array_header_2_0(member)
                    else:
                        raise Rejected(
                            f"[outputs] predictions.npz: member {info.filename[:60]} has npy version {version}"
                        )
                    if dtype.hasobject:
                        raise Rejected("[outputs] predictions.npz holds Python objects")
                    if math.prod(shape) * dtype.itemsize > info.file_size:
                        raise Rejected(
                            f"[outputs] predictions.npz: member {info.filename[:60]} is shorter than its header"
                        )
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise Rejected(f"[outputs] predictions.npz is not a valid npz file ({exc})") from exc


# the supervisor, PID 1 inside the container ---------------------------------------------------------------


class _Frames:
    def __init__(self) -> None:
        self.stream = sys.stdout.buffer
        self.lock = threading.Lock()

    def send(self, event: str, **fields: Any) -> None:
        line = FRAME_PREFIX + json.dumps({"event": event, **fields}).encode() + b"\n"
        with self.lock:
            self.stream.write(line)
            self.stream.flush()


def _make_undumpable() -> None:
    """PR_SET_DUMPABLE=0: /proc/1/{fd,mem,environ} become root's, so the sandbox's user cannot reach them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _oom_kills() -> int:
    """The container's memory cgroup's OOM-kill count (cgroup v2 or v1)."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return 0


def _relay_markers(read_fd: int, frames: _Frames) -> None:
    sent = 0
    with os.fdopen(read_fd, "rb") as pipe:
        for line in pipe:
            if sent < MAX_MARKERS:
                frames.send("mark", name=line[:64].decode("ascii", "replace").strip(), at=time.monotonic())
            sent += 1


def _yield_to_supervisor() -> None:
    """Run the driver (and all it forks) at nice 19. Inside the container's own CPU cgroup this only ranks the
    sandbox's processes below the supervisor, so that a fork bomb that saturates the container's CPU quota
    cannot starve the supervisor's clean-up; against the rest of the host the container competes as a whole."""
    os.nice(19)


def _kill_everything_else() -> None:
    """As PID 1: SIGKILL every process the sandbox's user owns (kill(-1) spares PID 1), and reap them."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _write_tar(out_dir: Path, stream: IO[bytes], max_bytes: int) -> None:
    total = 0
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(out_dir):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue  # a symlink, a FIFO's peer, ...: never followed
                with os.fdopen(fd, "rb") as fh:
                    info = os.fstat(fh.fileno())
                    if not stat.S_ISREG(info.st_mode) or total + info.st_size > max_bytes:
                        continue
                    total += info.st_size
                    member = tarfile.TarInfo(os.path.relpath(path, out_dir))
                    member.size = info.st_size
                    member.mode = 0o644
                    tar.addfile(member, fh)


def supervise(job_path: str, output_limit: int, deadline_s: float, out_dir: str = "/out") -> int:
    """Run the ingestion driver as a child and hand its output folder to the host (see the module docstring).
    Past `deadline_s` the supervisor exits, which ends the container, even if no runner is left to stop it."""
    _make_undumpable()
    started = time.monotonic()
    deadline = threading.Timer(deadline_s, os._exit, args=(124,))
    deadline.daemon = True  # must not keep the supervisor alive once its work is done
    deadline.start()
    frames = _Frames()
    frames.send("ready")
    read_fd, write_fd = os.pipe()
    if read_fd == MARKER_FD:
        moved = os.dup(read_fd)
        os.close(read_fd)
        read_fd = moved
    if write_fd != MARKER_FD:
        os.dup2(write_fd, MARKER_FD)
        os.close(write_fd)
    child = subprocess.Popen(
        [sys.executable, "-m", "harness.runners.ingest", job_path],
        stdin=subprocess.DEVNULL,
        stdout=2,
        stderr=2,
        pass_fds=(MARKER_FD,),
        cwd=out_dir,
        preexec_fn=_yield_to_supervisor,
    )
    os.close(MARKER_FD)
    relay = threading.Thread(target=_relay_markers, args=(read_fd, frames), daemon=True)
    relay.start()
    returncode = child.wait()
    exited = time.monotonic()
    _kill_everything_else()
    relay.join(timeout=10)
    frames.send(
        "exit",
        returncode=returncode,
        oom_kills=_oom_kills(),
        ingestion_s=exited - started,
        cleanup_s=time.monotonic() - exited,
    )
    frames.send("output")
    with frames.lock:
        _write_tar(Path(out_dir), frames.stream, output_limit)
        frames.stream.flush()
    return 0


# self-test ------------------------------------------------------------------------------------------------

SELFTEST_CODE = """
import json, os, socket, sys
report = {"uid": os.getuid(), "python": sys.version.split()[0]}
import numpy, PIL, torch
import harness.runners.ingest
report["torch"] = torch.__version__
report["harness"] = os.path.dirname(harness.runners.ingest.__file__)
try:
    open("/etc/harness-selftest", "w")
    report["root_read_only"] = False
except OSError:
    report["root_read_only"] = True
open("/out/probe", "w").write("x")
report["out_writable"] = True
report["interfaces"] = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
print(json.dumps(report))
"""


def selftest(image: str | None = None) -> dict[str, Any]:
    """Start one sandbox exactly as a run would (flags and mounts) and check it from inside."""
    runner = DockerRunner(image=image)
    with tempfile.TemporaryDirectory(prefix="harness-selftest-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        job = IngestJob(
            mode="check",
            site_dir=str(site),
            entry_name="selftest",
            track="selftest",
            kind="classification",
            variant="fp32",
            device="cpu",
            out_dir=str(Path(tmp) / "out"),
        )
        job_file = Path(tmp) / "job.json"
        job.dump(job_file)
        job_file.chmod(0o644)
        name = f"harness-selftest-{uuid.uuid4().hex[:8]}"
        argv = runner.command(job, name, job_file, inner=["-c", SELFTEST_CODE])
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        finally:
            _quiet([runner.docker, "rm", "--force", name])
    if proc.returncode != 0:
        raise HarnessError(f"the sandbox self-test failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = []
    if report["uid"] == 0:
        problems.append("runs as root")
    if not report["root_read_only"]:
        problems.append("the root filesystem is writable")
    if report["interfaces"] != ["lo"]:
        problems.append(f"network interfaces {report['interfaces']}")
    if problems:
        raise HarnessError("the sandbox is not locked down: " + "; ".join(problems))
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness.runners.docker", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sup = commands.add_parser("supervise", help="(inside the container) run the ingestion driver as PID 1's child")
    sup.add_argument("job")
    sup.add_argument("--output-limit", type=int, default=512 * MIB)
    sup.add_argument("--deadline", type=float, default=3600.0, help="seconds; then the container ends")
    test = commands.add_parser("selftest", help="start one sandbox as a run would and check it from inside")
    test.add_argument("--image", default=None)
    args = parser.parse_args(argv)
    if args.command == "supervise":
        return supervise(args.job, args.output_limit, args.deadline)
    try:
        report = selftest(args.image)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"sandbox ok: {json.dumps(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
