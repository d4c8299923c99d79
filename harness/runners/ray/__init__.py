"""The Ray runner: each (submission, variant) job is one Ray task on a cluster, asking for the track's GPUs.

    harness evaluate --track T --runner ray [--address HOST:PORT]

The task runs the same ingestion step as the local runner (or the docker runner, where the track card says
so) on whichever worker Ray picks, and hands back the files the step wrote (predictions, measurements or the
error) as bytes, so no shared filesystem is needed. The driver scores and writes the store, as with any
runner. A task whose worker process or node dies is retried by Ray (`max_retries`); the driver stores each
claimed run once, whatever the number of attempts.

Inside a task the step runs under an *attempt process* (`python -m harness.runners.ray.worker ATTEMPT.json`)
that dies with the Ray worker (Linux parent-death signal) and then kills the ingestion step (on its leash,
`harness.runners.leash`): a lost worker never leaves a submission running beside the retry. When the driver
(`harness evaluate`) dies, even by SIGKILL: a local instance it started dies with it (Ray ties its processes to
the driver), and with the workers the attempt processes and their ingestion steps (seen here: only Ray's own
dashboard and runtime-env agents lingered); on a cluster it joined, Ray ends the dead driver's tasks and their
workers (Ray's behaviour, not tested here). Either way the runs' leases expire and the next `evaluate` takes them
over.

Options (keyword arguments, or the settings of `harness.config` read on the driver):

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

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.config import settings
from harness.errors import HarnessError
from harness.runners.base import BaseRunner, IngestResult
from harness.runners.ray.worker import STAGED_FIELDS, fingerprint_task, ingest_task, pack, peak_task
from harness.sandbox.job import IngestJob

FILE_MODES = ("auto", "ship", "shared")


class RayRunner(BaseRunner):
    """Runs ingestion steps as Ray tasks; `run_many` dispatches a whole queue at once."""

    name = "ray"
    remote = True

    def __init__(
        self,
        address: str | None = None,
        num_gpus: float | None = None,
        num_cpus: float | None = None,
        resources: dict[str, float] | None = None,
        max_retries: int | None = None,
        inner: str | None = None,
        inner_options: dict[str, Any] | None = None,
        files: str | None = None,
    ):
        config = settings()
        self.address = address or config.ray_address or None
        self.num_gpus = num_gpus if num_gpus is not None else config.ray_num_gpus
        self.num_cpus = num_cpus if num_cpus is not None else config.ray_num_cpus
        self.resources = {
            str(k): float(v) for k, v in (resources if resources is not None else config.ray_resources).items()
        }
        self.max_retries = max_retries if max_retries is not None else config.ray_max_retries
        self.inner = inner or config.ray_inner or None
        self.inner_options = dict(inner_options or {})
        self.files = files or config.ray_files
        if self.files not in FILE_MODES:
            raise HarnessError(f"unknown Ray file mode `{self.files}`", f"use one of: {', '.join(FILE_MODES)}")
        if self.inner == "ray":
            raise HarnessError("the Ray runner cannot run its tasks through itself", "use local or docker as inner")
        self.expected_hardware_class: str | None = None
        self._track_runner = "local"
        self._staged: dict[str, tuple[str, Any]] = {}
        self._task: Any = None

    @property
    def trusted(self) -> bool:  # type: ignore[override]
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
            self._task = ray.remote(ingest_task)
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
        probe = ray.remote(fingerprint_task).options(**request, max_retries=self.max_retries)
        env = ray.get(probe.remote(device, threads))
        if device.startswith("cuda") and not env.get("gpu_name"):
            raise HarnessError(
                f"--device {device} was asked for, but the Ray worker that would run the tasks has no CUDA device",
                "give the tasks a GPU (HARNESS_RAY_NUM_GPUS=1) on a cluster with GPU nodes, or use --device cpu",
            )
        from harness.measure.environment import hardware_class

        self.expected_hardware_class = hardware_class(env)
        return env

    def peak(self, device: str, threads: int) -> dict[str, Any]:
        """Measured on a worker that runs this track's tasks, with the tasks' resources."""
        ray = self._ray()
        request = self._task_resources(device, threads)
        probe = ray.remote(peak_task).options(**request, max_retries=self.max_retries)
        return ray.get(probe.remote(device, threads))

    # staging --------------------------------------------------------------------------------------------

    def _stage(self, ray: Any, path: str) -> tuple[str, list[Any]]:
        """A content key and (in a list, so Ray does not fetch it eagerly) the object holding the folder."""
        if path not in self._staged:
            if self.files == "shared":
                self._staged[path] = ("", [])
            else:
                archive = pack(Path(path))
                key = hashlib.sha256(archive).hexdigest()[:24]
                self._staged[path] = (key, [ray.put(archive)])
        return self._staged[path]

    # running --------------------------------------------------------------------------------------------

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult:
        for _, result in self.run_many([(0, job)], time_limit_s):
            if isinstance(result, Exception):
                return IngestResult(False, Path(job.out_dir), f"[ray] the task was lost: {result}")
            return result
        raise HarnessError("the Ray runner returned nothing for a job")

    def run_many(
        self, jobs: Iterable[tuple[Any, IngestJob]], time_limit_s: float
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
                ref = task.remote(job.to_dict(), time_limit_s, inner, self.inner_options, staged, self.files)
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

    def _result(self, job: IngestJob, payload: dict[str, Any]) -> IngestResult:
        out_dir = Path(job.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in payload["files"].items():
            (out_dir / name).write_bytes(data)
        result = IngestResult.from_dict(payload, out_dir)
        if self.expected_hardware_class and result.environment:
            from harness.measure.environment import hardware_class

            found = hardware_class(result.environment)
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
    from harness.tracks import get_card

    try:
        return get_card(track).runner
    except HarnessError:
        return None
