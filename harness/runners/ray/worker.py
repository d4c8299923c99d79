"""The Ray runner's worker side: one task per job, under an attempt process that dies with its Ray worker.

python -m harness.runners.ray.worker ATTEMPT.json     (the attempt process; started by the task)
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

from harness.sandbox.job import IngestJob

STAGED_FIELDS = ("site_dir", "inputs_dir", "calibration_dir")
ATTEMPT_RESULT = "attempt-result.json"


def _work_root() -> Path:
    root = Path(tempfile.gettempdir()) / "harness-ray"
    root.mkdir(parents=True, exist_ok=True)
    return root


def pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def _unpacked(key: str, holder: list[Any]) -> Path:
    """The shipped folder unpacked once per node, keyed by its content; concurrent tasks race safely."""
    import ray

    target = _work_root() / "staged" / key
    if (target / ".harness-staged").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    with tarfile.open(fileobj=io.BytesIO(ray.get(holder[0])), mode="r") as tar:
        tar.extractall(staging, filter="data")
    (staging / ".harness-staged").write_text(key)
    try:
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another task unpacked the same content first
    return target


def _visible(field: str, path: str) -> bool:
    folder = Path(path)
    if field == "site_dir":
        return (folder / ".installed").exists()
    if field in ("inputs_dir", "calibration_dir"):
        return (folder / "index.json").exists()
    return folder.exists()


def local_paths(job: IngestJob, staged: dict[str, tuple[str, list[Any]]], files: str) -> None:
    for field, (key, holder) in staged.items():
        path = getattr(job, field)
        if files == "shared" or (files == "auto" and _visible(field, path)):
            if not _visible(field, path):
                raise FileNotFoundError(f"{field} {path} is not visible on this worker (HARNESS_RAY_FILES=shared)")
            continue
        setattr(job, field, str(_unpacked(key, holder)))


def ingest_task(
    job_fields: dict[str, Any],
    time_limit_s: float,
    inner: str,
    inner_options: dict[str, Any],
    staged: dict[str, tuple[str, list[Any]]],
    files: str,
) -> dict[str, Any]:
    """One Ray task: the ingestion step of one job, under an attempt process; the outputs come back as bytes."""
    import ray

    job = IngestJob(**job_fields)
    local_paths(job, staged, files)
    if job.device.startswith("cuda") and ray.get_gpu_ids():
        job.device = "cuda:0"  # Ray narrowed CUDA_VISIBLE_DEVICES to the GPUs it gave this task
    attempt_dir = Path(tempfile.mkdtemp(prefix="attempt-", dir=_work_root()))
    try:
        job.out_dir = str(attempt_dir / "out")
        spec = {"job": job.to_dict(), "time_limit_s": time_limit_s, "inner": inner, "inner_options": inner_options}
        (attempt_dir / "attempt.json").write_text(json.dumps(spec))
        proc = subprocess.run(
            [sys.executable, "-m", "harness.runners.ray.worker", str(attempt_dir / "attempt.json")],
            cwd=attempt_dir,
            capture_output=True,
            text=True,
        )
        result_file = attempt_dir / ATTEMPT_RESULT
        if not result_file.exists():
            detail = proc.stderr[-4000:]
            raise RuntimeError(f"the attempt process exited with {proc.returncode} and no result:\n{detail}")
        payload = json.loads(result_file.read_text())
        out_dir = Path(job.out_dir)
        payload["files"] = {
            p.name: p.read_bytes() for p in sorted(out_dir.iterdir()) if p.is_file() and p.name != "job.json"
        }
        return payload
    finally:
        shutil.rmtree(attempt_dir, ignore_errors=True)


def peak_task(device: str, threads: int) -> dict[str, Any]:
    from harness.runners.base import measure_peak_here

    return measure_peak_here(device, threads)


def fingerprint_task(device: str, threads: int) -> dict[str, Any]:
    return _host_fingerprint(device, threads)


def _host_fingerprint(device: str, threads: int) -> dict[str, Any]:
    """This node's fingerprint, computed in a child process and cached per boot: the Ray worker itself must not
    hold a CUDA context (it would show up as another GPU process and mark every latency noisy)."""
    import harness

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "unknown-boot"
    digest = hashlib.sha256(
        "\x1f".join([boot, device, str(threads), harness.__version__, sys.executable]).encode()
    ).hexdigest()[:20]
    cache = _work_root() / f"fingerprint-{digest}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    code = (
        "import json, sys\n"
        "from harness.measure.environment import fingerprint\n"
        "print(json.dumps(fingerprint(sys.argv[1], int(sys.argv[2])), default=str))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, device, str(threads)],
        capture_output=True,
        text=True,
        check=True,
        cwd=_work_root(),
    ).stdout
    env = json.loads(out)
    tmp = cache.with_name(f".{cache.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(env))
    os.replace(tmp, cache)
    return env


# Attempt process ----------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the Ray worker that started us dies (SIGKILL included)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the inner runner, which kills the ingestion step


def attempt_main(attempt_file: Path) -> int:
    """Run one attempt of one job with the inner runner; write its outcome beside the attempt file."""
    signal.signal(signal.SIGTERM, _terminate)
    _die_with_parent()
    attempt_dir = attempt_file.parent
    try:
        spec = json.loads(attempt_file.read_text())
        job = IngestJob(**spec["job"])
        from harness.runners import get_runner

        result = get_runner(spec["inner"], **spec["inner_options"]).run(job, spec["time_limit_s"])
        environment = _host_fingerprint(job.device, job.threads)
    except SystemExit:
        shutil.rmtree(attempt_dir, ignore_errors=True)  # our worker is gone: nobody else will clean up
        raise
    outcome = {**result.to_dict(), "environment": environment}
    tmp = attempt_dir / f".{ATTEMPT_RESULT}"
    tmp.write_text(json.dumps(outcome, default=str))
    os.replace(tmp, attempt_dir / ATTEMPT_RESULT)
    return 0


if __name__ == "__main__":
    sys.exit(attempt_main(Path(sys.argv[1])))
