"""The Ray runner: each (submission, variant) job is one Ray task on a cluster, asking for the track's GPUs.

    harness evaluate --track T --runner ray [--address HOST:PORT]

The task runs the same ingestion step as the local runner (or the docker runner, where the track card says
so) on whichever worker Ray picks, and hands back the files the step wrote (predictions, measurements or the
error) as bytes, so no shared filesystem is needed. The driver scores and writes the store, as with any
runner. A task whose worker process or node dies is retried by Ray (`max_retries`); the driver stores each
claimed run once, whatever the number of attempts.

Inside a task the step runs under an *attempt process* (`python -m harness.runners.ray_runner ATTEMPT.json`)
that dies with the Ray worker (Linux parent-death signal) and then kills the ingestion step: a lost worker
never leaves a submission running beside the retry.

Options (keyword arguments, or environment variables read on the driver):

- `address` (`RAY_ADDRESS`; default: a new local Ray instance): the cluster to join, `--address` on the CLI.
- `num_gpus` (`HARNESS_RAY_NUM_GPUS`; default 1 with `--device cuda`, else 0): GPUs per task.
- `num_cpus` (`HARNESS_RAY_NUM_CPUS`; default the job's thread count): CPUs per task, so that timed runs do
  not share cores.
- `resources` (`HARNESS_RAY_RESOURCES`, JSON such as `{"fake_gpu": 1}`): custom resources per task.
- `max_retries` (`HARNESS_RAY_MAX_RETRIES`; default 3): retries of a task whose worker died.
- `inner` (`HARNESS_RAY_INNER`; default the track card's runner): `local`, `docker` or `module:Class`.
- `files` (`HARNESS_RAY_FILES`; default `auto`): `auto` lets a worker use the driver's submission and dataset
  folders where it sees them and copies shipped through Ray's object store elsewhere; `ship` always uses the
  copies; `shared` never ships (a shared filesystem holds everything).
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
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.runners import IngestResult
from harness.runners.ingest import IngestJob

FILE_MODES = ("auto", "ship", "shared")
STAGED_FIELDS = ("site_dir", "inputs_dir", "calibration_dir")
ATTEMPT_RESULT = "attempt-result.json"


@dataclass
class RemoteIngestResult(IngestResult):
    """An `IngestResult` that also says where it ran: the worker's fingerprint is the run's environment."""

    environment: dict[str, Any] | None = None


def _option(value: Any, variable: str, default: Any, kind: type) -> Any:
    if value is not None:
        return value
    raw = os.environ.get(variable)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise HarnessError(
            f"{variable}={raw!r} is not a valid {kind.__name__}", f"unset it or give a {kind.__name__}"
        ) from exc


def _resources(value: dict[str, float] | str | None) -> dict[str, float]:
    raw = value if value is not None else os.environ.get("HARNESS_RAY_RESOURCES", "")
    if isinstance(raw, dict):
        return {str(k): float(v) for k, v in raw.items()}
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("not an object")
        return {str(k): float(v) for k, v in parsed.items()}
    except (ValueError, TypeError) as exc:
        raise HarnessError(
            f"HARNESS_RAY_RESOURCES={raw!r} is not a JSON object of resource amounts ({exc})",
            "e.g. HARNESS_RAY_RESOURCES='{\"fake_gpu\": 1}'",
        ) from exc


class RayRunner:
    """Runs ingestion steps as Ray tasks; `run_many` dispatches a whole queue at once."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_gpus: float | None = None,
        num_cpus: float | None = None,
        resources: dict[str, float] | str | None = None,
        max_retries: int | None = None,
        inner: str | None = None,
        inner_options: dict[str, Any] | None = None,
        files: str | None = None,
        **_: Any,
    ):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_gpus = _option(num_gpus, "HARNESS_RAY_NUM_GPUS", None, float)
        self.num_cpus = _option(num_cpus, "HARNESS_RAY_NUM_CPUS", None, float)
        self.resources = _resources(resources)
        self.max_retries = _option(max_retries, "HARNESS_RAY_MAX_RETRIES", 3, int)
        self.inner = inner or os.environ.get("HARNESS_RAY_INNER") or None
        self.inner_options = dict(inner_options or {})
        self.files = files or os.environ.get("HARNESS_RAY_FILES") or "auto"
        if self.files not in FILE_MODES:
            raise HarnessError(f"unknown Ray file mode `{self.files}`", f"use one of: {', '.join(FILE_MODES)}")
        if self.inner == "ray":
            raise HarnessError("the Ray runner cannot run its tasks through itself", "use local or docker as inner")
        self.expected_hardware_class: str | None = None
        self._track_runner = "local"
        self._staged: dict[str, tuple[str, Any]] = {}
        self._task: Any = None

    @property
    def trusted(self) -> bool:
        return self._inner_name() == "local"

    def _inner_name(self, track_runner: str | None = None) -> str:
        if self.inner:
            return self.inner
        runner = track_runner or self._track_runner
        return runner if runner in ("local", "docker") else "local"

    # cluster --------------------------------------------------------------------------------------------

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise HarnessError(
                "the Ray runner needs the `ray` package, which is not installed here",
                "pip install 'harness[ray]' (or pip install 'ray[default]')",
            ) from exc
        if not ray.is_initialized():
            _ray_messages_to_stderr()
            try:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a new local instance"
                raise HarnessError(
                    f"cannot join the Ray cluster at {where}: {exc}",
                    "start one with `ray start --head`, or pass its address with --address HOST:PORT",
                ) from exc
        if self._task is None:
            self._task = ray.remote(_ingest_task)
        return ray

    def _task_resources(self, device: str, threads: int) -> dict[str, Any]:
        num_gpus = self.num_gpus if self.num_gpus is not None else (1.0 if device.startswith("cuda") else 0.0)
        num_cpus = self.num_cpus if self.num_cpus is not None else float(max(1, threads))
        return {"num_gpus": num_gpus, "num_cpus": num_cpus, "resources": dict(self.resources)}

    def _check_feasible(self, ray: Any, request: dict[str, Any]) -> None:
        """A request no node can meet would wait forever in Ray's queue: refuse it up front instead."""
        wanted = {"CPU": request["num_cpus"], "GPU": request["num_gpus"], **request["resources"]}
        feasible = False
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            have = node.get("Resources", {})
            if all(have.get(key, 0.0) >= amount for key, amount in wanted.items() if amount > 0):
                feasible = True
                break
        if not feasible:
            asked = ", ".join(f"{k}={v:g}" for k, v in wanted.items() if v > 0)
            raise HarnessError(
                f"no node of the Ray cluster offers what each task asks for ({asked})",
                "add such a node, or change HARNESS_RAY_NUM_GPUS / HARNESS_RAY_NUM_CPUS / HARNESS_RAY_RESOURCES",
            )

    def environment(self, card: Any, device: str, threads: int) -> dict[str, Any]:
        """The fingerprint of a worker that would run this track's tasks (the runs' hardware class).

        `api.evaluate` calls this first, with the track's card, instead of fingerprinting the driver, which
        may have no GPU at all. Every task's result is later checked against this hardware class."""
        self._track_runner = card.runner
        ray = self._ray()
        request = self._task_resources(device, threads)
        self._check_feasible(ray, request)
        probe = ray.remote(_fingerprint_task).options(**request, max_retries=self.max_retries)
        env = ray.get(probe.remote(device, threads))
        if device.startswith("cuda") and not env.get("gpu_name"):
            raise HarnessError(
                f"--device {device} was asked for, but the Ray worker that would run the tasks has no CUDA device",
                "give the tasks a GPU (HARNESS_RAY_NUM_GPUS=1) on a cluster with GPU nodes, or use --device cpu",
            )
        from harness.measure.environment import hardware_class

        self.expected_hardware_class = hardware_class(env)
        return env

    # staging --------------------------------------------------------------------------------------------

    def _stage(self, ray: Any, path: str) -> tuple[str, list[Any]]:
        """A content key and (in a list, so Ray does not fetch it eagerly) the object holding the folder."""
        if path not in self._staged:
            if self.files == "shared":
                self._staged[path] = ("", [])
            else:
                archive = _pack(Path(path))
                key = hashlib.sha256(archive).hexdigest()[:24]
                self._staged[path] = (key, [ray.put(archive)])
        return self._staged[path]

    # running --------------------------------------------------------------------------------------------

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult:
        for _, result in self.run_many([(0, job)], time_limit_s):
            if isinstance(result, Exception):
                return IngestResult(False, Path(job.out_dir), f"[ray] the task was lost: {result}")
            return result
        raise AssertionError("run_many yielded nothing for one job")

    def run_many(
        self, jobs: Sequence[tuple[Any, IngestJob]], time_limit_s: float
    ) -> Iterator[tuple[Any, IngestResult | Exception]]:
        """Submit every job as a Ray task at once; yield `(key, result)` as tasks finish, in any order.

        The result is an exception (not raised) when Ray gave the task up: its worker died more often than
        `max_retries` allows, or its node vanished. A bug in the task itself is raised. Closing the iterator
        early cancels the tasks still queued or running."""
        ray = self._ray()
        from ray.exceptions import RayError, RayTaskError

        pending: dict[Any, tuple[Any, IngestJob]] = {}
        checked: set[str] = set()
        try:
            for key, job in jobs:
                request = self._task_resources(job.device, job.threads)
                signature = json.dumps(request, sort_keys=True)
                if signature not in checked:
                    self._check_feasible(ray, request)
                    checked.add(signature)
                staged = {f: self._stage(ray, getattr(job, f)) for f in STAGED_FIELDS if getattr(job, f)}
                inner = self._inner_name(_card_runner(job.track))
                task = self._task.options(**request, max_retries=self.max_retries, retry_exceptions=False)
                ref = task.remote(asdict(job), time_limit_s, inner, self.inner_options, staged, self.files)
                pending[ref] = (key, job)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    key, job = pending.pop(ref)
                    try:
                        payload = ray.get(ref)
                    except RayTaskError:
                        raise
                    except RayError as exc:
                        yield key, exc
                        continue
                    yield key, self._result(job, payload)
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass  # already finished or its worker is gone: nothing left to stop

    def _result(self, job: IngestJob, payload: dict[str, Any]) -> RemoteIngestResult:
        out_dir = Path(job.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in payload["files"].items():
            (out_dir / name).write_bytes(data)
        result = RemoteIngestResult(
            ok=payload["ok"],
            out_dir=out_dir,
            error=payload["error"],
            unavailable=payload["unavailable"],
            log_tail=payload["log_tail"],
            wall_s=payload["wall_s"],
            environment=payload["environment"],
        )
        if self.expected_hardware_class and payload["environment"]:
            from harness.measure.environment import hardware_class

            found = hardware_class(payload["environment"])
            if found != self.expected_hardware_class:
                result.ok = False
                result.unavailable = False
                result.error = (
                    f"[ray] the task ran on a worker of hardware class `{found}`, but this evaluation's runs are "
                    f"keyed to `{self.expected_hardware_class}`: pin the tasks to one kind of worker with "
                    "HARNESS_RAY_RESOURCES, or evaluate each kind separately"
                )
        return result


def _ray_messages_to_stderr() -> None:
    """Ray prints cluster events (such as "a worker died") on the driver's stdout, where `--json` output goes:
    send them to stderr. Ray has no switch for this, so its printer is wrapped where it exists."""
    try:
        from ray._private import worker as ray_worker
    except ImportError:
        return
    printer = getattr(ray_worker, "print_to_stdstream", None)
    if printer is None or getattr(printer, "harness_wrapped", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        printer({**data, "is_err": True}, ignore_prefix)

    to_stderr.harness_wrapped = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = to_stderr


def _card_runner(track: str) -> str | None:
    from harness.tracks.base import get_card

    try:
        return get_card(track).runner
    except HarnessError:
        return None


# Worker side --------------------------------------------------------------------------------------------


def _work_root() -> Path:
    root = Path(tempfile.gettempdir()) / "harness-ray"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _pack(folder: Path) -> bytes:
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


def _local_paths(job: IngestJob, staged: dict[str, tuple[str, list[Any]]], files: str) -> None:
    for field, (key, holder) in staged.items():
        path = getattr(job, field)
        if files == "shared" or (files == "auto" and _visible(field, path)):
            if not _visible(field, path):
                raise FileNotFoundError(f"{field} {path} is not visible on this worker (HARNESS_RAY_FILES=shared)")
            continue
        setattr(job, field, str(_unpacked(key, holder)))


def _ingest_task(
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
    _local_paths(job, staged, files)
    if job.device.startswith("cuda") and ray.get_gpu_ids():
        job.device = "cuda:0"  # Ray narrowed CUDA_VISIBLE_DEVICES to the GPUs it gave this task
    attempt_dir = Path(tempfile.mkdtemp(prefix="attempt-", dir=_work_root()))
    try:
        job.out_dir = str(attempt_dir / "out")
        spec = {"job": asdict(job), "time_limit_s": time_limit_s, "inner": inner, "inner_options": inner_options}
        (attempt_dir / "attempt.json").write_text(json.dumps(spec))
        proc = subprocess.run(
            [sys.executable, "-m", "harness.runners.ray_runner", str(attempt_dir / "attempt.json")],
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


def _fingerprint_task(device: str, threads: int) -> dict[str, Any]:
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


def _inner_runner(name: str, options: dict[str, Any]) -> Any:
    if ":" in name:
        import importlib

        module, attr = name.split(":", 1)
        return getattr(importlib.import_module(module), attr)(**options)
    from harness.runners import get_runner

    return get_runner(name, **options)


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
        result = _inner_runner(spec["inner"], spec["inner_options"]).run(job, spec["time_limit_s"])
        environment = _host_fingerprint(job.device, job.threads)
    except SystemExit:
        shutil.rmtree(attempt_dir, ignore_errors=True)  # our worker is gone: nobody else will clean up
        raise
    outcome = {
        "ok": result.ok,
        "error": result.error,
        "unavailable": result.unavailable,
        "log_tail": result.log_tail,
        "wall_s": result.wall_s,
        "environment": environment,
    }
    tmp = attempt_dir / f".{ATTEMPT_RESULT}"
    tmp.write_text(json.dumps(outcome, default=str))
    os.replace(tmp, attempt_dir / ATTEMPT_RESULT)
    return 0


if __name__ == "__main__":
    sys.exit(attempt_main(Path(sys.argv[1])))
