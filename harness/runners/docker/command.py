"""The `docker run` command of one sandbox: its image, limits, mounts and flags (the docker runner's set-up).

Isolation: `--network none`, `--read-only` root, a fresh non-root `--user` per run (from `SANDBOX_UIDS`, so that
concurrent sandboxes share nothing, not even a process count), `--cap-drop ALL`, `no-new-privileges`,
`--pids-limit` and an equal `--ulimit nproc` (a fork bomb's failed forks then cost nothing), `--memory` with an
equal `--memory-swap`, `--cpus`, `--ulimit core=0,nofile`, a private IPC namespace, `--log-driver none` (the
runner reads the streams itself), and `--gpus device=N` for a `cuda:N` job (seen inside as cuda:0).
Mounts, all read-only: the job file, the split's inputs, the calibration inputs, the submission's installed
folder, the harness package, and for a host-built image (`org.harness.python=host`) the host's interpreter and
virtual environment. Never the hidden ground truth, the store or `HARNESS_HOME`: the runner refuses to start
when a mount would expose one of them. Writable: `/out` and `/tmp`, size-capped tmpfs charged to the
container's memory. A submission's build runs under the same isolation (`install`), whose one writable mount is
a fresh staging folder. docker/README.md says more.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from harness.config import Settings, settings
from harness.errors import HarnessError
from harness.sandbox.job import IngestJob
from harness.sandbox.supervisor import MARKER_FD

MIB = 1 << 20
PYTHON_LABEL = "org.harness.python"  # "host": mount the host's interpreter; else the interpreter's path in the image
CONTAINER_LABEL = "org.harness.sandbox"  # on every container this runner starts
SANDBOX_UIDS = range(200_000, 300_000)  # above the usual subordinate-uid ranges of user namespaces (100000+65536)
HARNESS_MOUNT = "/opt/harness"


@dataclass
class DockerLimits:
    """Resource limits of one sandbox; each is a setting (`harness.config`: HARNESS_DOCKER_*)."""

    memory: str = "4g"
    cpus: float | None = None  # default: the job's thread count
    pids: int = 256
    output_bytes: int = 512 * MIB  # the /out tmpfs
    tmp_bytes: int = 256 * MIB  # the /tmp tmpfs
    log_bytes: int = 64 * MIB  # stdout + stderr before the run is stopped
    nofile: int = 1024

    @classmethod
    def from_settings(cls, config: Settings | None = None) -> DockerLimits:
        config = config or settings()
        return cls(
            memory=config.docker_memory,
            cpus=config.docker_cpus,
            pids=config.docker_pids,
            output_bytes=config.docker_output_bytes,
            tmp_bytes=config.docker_tmp_bytes,
            log_bytes=config.docker_log_bytes,
        )


@dataclass(frozen=True)
class SandboxImage:
    name: str
    python: str  # "host" or the interpreter's path inside the image


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


def container_job(job: IngestJob) -> IngestJob:
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


def mounts(image: SandboxImage, job: IngestJob, job_file: Path) -> list[tuple[str, str]]:
    """(host path, container path) pairs, all read-only."""
    import harness

    pairs = [(str(job_file), "/job/job.json"), (job.site_dir, "/submission")]
    if job.inputs_dir:
        pairs.append((job.inputs_dir, "/inputs"))
    if job.calibration_dir:
        pairs.append((job.calibration_dir, "/calibration"))
    pairs.append((str(Path(harness.__file__).resolve().parent), f"{HARNESS_MOUNT}/harness"))
    return checked_mounts(pairs + interpreter_mounts(image), job.inputs_dir)


def interpreter_mounts(image: SandboxImage) -> list[tuple[str, str]]:
    """For a host-built image: the host's interpreter and virtual environment, at their host paths."""
    if image.python != "host":
        return []
    prefixes = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    return [(p, p) for p in sorted(prefixes)]


def checked_mounts(pairs: list[tuple[str, str]], inputs_dir: str | None = None) -> list[tuple[str, str]]:
    """The pairs with resolved host paths, once none would expose a secret and each is readable by the sandbox."""
    resolved = [(str(Path(host).resolve()), target) for host, target in pairs]
    _refuse_exposing_secrets(inputs_dir, [host for host, _ in resolved])
    for host, _ in resolved:
        _readable_by_sandbox(Path(host))
    return resolved


def run_argv(
    image: SandboxImage,
    limits: DockerLimits,
    job: IngestJob,
    name: str,
    job_file: Path,
    inner: list[str] | None = None,
    deadline_s: float = 3600.0,
    docker: str = "docker",
) -> list[str]:
    """The full `docker run` command line of one job (or, with `inner`, of a self-test). `deadline_s`: the
    supervisor ends the container by itself after this long, should the host's runner die."""
    uid = sandbox_uid()
    python = sys.executable if image.python == "host" else image.python
    argv = [docker, "run", "--name", name, "--label", f"{CONTAINER_LABEL}=1", *isolation(limits, job.threads, uid)]
    argv += mount_flags(mounts(image, job, job_file))
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
        argv += ["--gpus", f"device={job.device.partition(':')[2] or '0'}"]
    argv += ["--entrypoint", python, image.name]
    if inner is not None:
        return argv + inner
    supervisor = ["-m", "harness.sandbox.supervisor", "/job/job.json", "--output-limit", str(limits.output_bytes)]
    return argv + supervisor + ["--deadline", f"{deadline_s:.0f}"]


def mount_flags(pairs: list[tuple[str, str]], writable: frozenset[str] = frozenset()) -> list[str]:
    """`--mount` flags of bind mounts, read-only but for the container paths in `writable`."""
    flags = []
    for host, target in pairs:
        if "," in host or "," in target:
            raise HarnessError(f"cannot mount {host} into the sandbox: docker's --mount syntax forbids commas")
        mode = "" if target in writable else ",readonly"
        flags += ["--mount", f"type=bind,source={host},target={target}{mode}"]
    return flags


def sandbox_uid() -> int:
    """A fresh non-root uid for one container (see `SANDBOX_UIDS`)."""
    return random.SystemRandom().choice(SANDBOX_UIDS)


def isolation(limits: DockerLimits, threads: int, uid: int, tmp_bytes: int | None = None) -> list[str]:
    """The flags that lock the container down (see the module docstring); `tmp_bytes`: the /tmp tmpfs's size
    when not the limits' own (a sandboxed install builds there)."""
    cpus = limits.cpus or max(1, threads)
    return [
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
        f"/tmp:rw,nosuid,nodev,size={tmp_bytes or limits.tmp_bytes},mode=1777",
    ]


def quiet(argv: list[str]) -> subprocess.CompletedProcess:
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


def _refuse_exposing_secrets(inputs_dir: str | None, sources: list[str]) -> None:
    """No mount may contain the store, the harness home or the split's hidden ground truth."""
    from harness.config import db_url, harness_home

    secrets = [harness_home()]
    url = db_url()
    if url.startswith("sqlite:///"):
        secrets.append(Path(url.removeprefix("sqlite:///")).resolve())
    if inputs_dir:
        secrets.append(Path(inputs_dir).resolve().parent / "hidden")
    for source in sources:
        for secret in secrets:
            if secret == Path(source) or Path(source) in secret.parents:
                raise HarnessError(
                    f"mounting {source} into the sandbox would expose {secret}",
                    "keep HARNESS_HOME and the store outside the Python environment and the harness package",
                )
