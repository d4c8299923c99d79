"""What every runner offers, what it hands back, and the one place where a run's failure gets its reason."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.sandbox.job import IngestJob

LOG_TAIL_CHARS = 8000


@dataclass
class IngestResult:
    """What came back from the sandbox: a status, the output folder, the log tail, and what the runner itself
    saw (the host's times of the driver's phase markers, host-side timings, the machine that ran it)."""

    ok: bool
    out_dir: Path
    error: str | None = None
    unavailable: bool = False
    log_tail: str = ""
    wall_s: float = 0.0
    marks: list[tuple[str, float]] | None = None  # phase markers on the host's clock, when the runner relays them
    host_timings: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] | None = None  # a remote runner's worker fingerprint

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "unavailable": self.unavailable,
            "log_tail": self.log_tail,
            "wall_s": self.wall_s,
            "marks": self.marks,
            "host_timings": self.host_timings,
            "environment": self.environment,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], out_dir: Path) -> IngestResult:
        marks = data.get("marks")
        return cls(
            ok=bool(data["ok"]),
            out_dir=out_dir,
            error=data.get("error"),
            unavailable=bool(data.get("unavailable")),
            log_tail=str(data.get("log_tail") or ""),
            wall_s=float(data.get("wall_s") or 0.0),
            marks=[(str(name), float(at)) for name, at in marks] if marks is not None else None,
            host_timings=dict(data.get("host_timings") or {}),
            environment=data.get("environment"),
        )


@runtime_checkable
class Runner(Protocol):
    """A runner executes the ingestion step of jobs somewhere. Every runner offers all of this; a flag says
    what differs (`trusted`: the submission's code runs without isolation; `remote`: jobs run on other
    machines, so `environment` fingerprints one of them)."""

    name: str
    trusted: bool
    remote: bool

    def environment(self, card: Any, device: str, threads: int) -> dict[str, Any]:
        """The fingerprint of the machine this track's jobs will run on (its hardware class keys the runs)."""

    def peak(self, device: str, threads: int) -> dict[str, Any]:
        """The most MACs per second that machine delivers (harness.measure.peak), measured by the harness."""

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult:
        """One job, start to end."""

    def run_many(
        self, jobs: Iterable[tuple[Any, IngestJob]], time_limit_s: float
    ) -> Iterator[tuple[Any, IngestResult | Exception]]:
        """`(key, result)` per job as jobs finish; the result is an exception when the runner lost the job.
        `jobs` may be lazy: a runner that runs one job at a time takes the next only when it is ready."""


class BaseRunner:
    """Defaults for runners that run one job at a time on this machine."""

    name = "base"
    trusted = False
    remote = False

    def environment(self, card: Any, device: str, threads: int) -> dict[str, Any]:
        from harness.measure.environment import fingerprint

        return fingerprint(device, threads)

    def peak(self, device: str, threads: int) -> dict[str, Any]:
        return measure_peak_here(device, threads)

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult:
        raise TypeError(f"{type(self).__name__} does not define run()")

    def run_many(
        self, jobs: Iterable[tuple[Any, IngestJob]], time_limit_s: float
    ) -> Iterator[tuple[Any, IngestResult | Exception]]:
        for key, job in jobs:
            yield key, self.run(job, time_limit_s)


@dataclass
class StepExit:
    """What a runner saw of how one ingestion step ended, for `classify`."""

    returncode: int | None  # the driver's exit status; negative: killed by that signal
    timed_out: bool = False
    time_limit_s: float = 0.0
    flooded_mib: int | None = None  # the step wrote more than this to stdout/stderr and was stopped
    oom: str | None = None  # the memory limit it was killed at, when it was
    oom_known: bool = False  # the runner reads OOM kills (a cgroup's count): SIGKILL is not a guess at OOM then
    lost: str | None = None  # why the step's outcome never reached the host


def classify(out_dir: Path, step: StepExit, log_tail: str, wall_s: float) -> IngestResult:
    """The result of one ingestion step, with a specific reason when it failed: output flood, timeout, lost,
    out of memory, the driver's own error, a crash. A success still has to pass `harness.verify`."""
    from harness.verify import read_error_file

    def failed(message: str, unavailable: bool = False) -> IngestResult:
        return IngestResult(False, out_dir, message, unavailable=unavailable, log_tail=log_tail, wall_s=wall_s)

    code = step.returncode
    if step.flooded_mib is not None:
        return failed(
            f"output flood: the ingestion step wrote more than {step.flooded_mib} MiB to stdout/stderr; "
            "the sandbox was stopped"
        )
    if step.timed_out:
        return failed(f"timeout: the ingestion step ran past its {step.time_limit_s:.0f} s limit")
    if step.oom and code != 0:
        return failed(f"out of memory: the ingestion step was killed at the sandbox's memory limit ({step.oom})")
    if step.lost:
        return failed(step.lost)
    error = read_error_file(out_dir / "error.json")
    if error is not None:
        return failed(*error)
    if code == 0 and (out_dir / "measurements.json").is_file():
        return IngestResult(True, out_dir, log_tail=log_tail, wall_s=wall_s)
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reason = (
            "out of memory (killed by SIGKILL)" if name == "SIGKILL" and not step.oom_known else f"killed by {name}"
        )
        return failed(f"crash: the ingestion step was {reason}")
    if code == 137:
        return failed("out of memory: the ingestion step was killed (exit 137)")
    return failed(f"crash: the ingestion step exited with code {code} and no result")


def log_tail(data: bytes) -> str:
    return data.decode("utf-8", "replace")[-LOG_TAIL_CHARS:]


def measure_peak_here(device: str, threads: int) -> dict[str, Any]:
    """`harness.measure.peak` in a process of its own on this machine (the harness's code, no submission's)."""
    import json
    import subprocess
    import sys

    from harness.errors import HarnessError

    proc = subprocess.run(
        [sys.executable, "-m", "harness.measure.peak", device, str(threads)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise HarnessError(f"measuring the machine's peak MACs per second failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the process group `proc` leads (a step started on a leash, with everything it started) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
