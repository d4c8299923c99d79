"""Runners execute the ingestion step of one job somewhere (a local process, a container, a Ray task)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # importing the driver here would make `python -m harness.runners.ingest` warn (runpy)
    from harness.runners.ingest import IngestJob

LOG_TAIL_CHARS = 8000
# Measurement details the sandbox reports beside the checked figures (metrics, latency samples, complexity):
# stored with the run as information (`runs.details`), never ranked.
INFORMATIONAL_MEASUREMENTS = (
    "throughput",
    "clocks",
    "device_timing",
    "numerics",
    "peak_memory_accuracy_bytes",
    "peak_rss_bytes",
    "variant_info",
)


@dataclass
class IngestResult:
    """What came back from the sandbox: a status, the output folder, and the captured log tail."""

    ok: bool
    out_dir: Path
    error: str | None = None
    unavailable: bool = False
    log_tail: str = ""
    wall_s: float = 0.0

    def measurements(self) -> dict[str, Any]:
        return json.loads((self.out_dir / "measurements.json").read_text())


class Runner(Protocol):
    name: str
    trusted: bool  # True when submission code runs without isolation

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult: ...


def get_runner(name: str, **options: Any) -> Runner:
    from harness.errors import HarnessError

    if name == "local":
        from harness.runners.local import LocalRunner

        return LocalRunner(**options)
    if name == "docker":
        from harness.runners.docker import DockerRunner

        return DockerRunner(**options)
    if name == "ray":
        from harness.runners.ray_runner import RayRunner

        return RayRunner(**options)
    raise HarnessError(f"unknown runner `{name}`", "use --runner local, docker or ray")


def read_outcome(
    out_dir: Path, returncode: int | None, timed_out: bool, log_tail: str, wall_s: float, time_limit_s: float
) -> IngestResult:
    """Turn what the ingestion step left behind into an `IngestResult` with a specific reason."""
    error_file = out_dir / "error.json"
    if timed_out:
        return IngestResult(
            False,
            out_dir,
            f"timeout: the ingestion step ran past its {time_limit_s:.0f} s limit",
            log_tail=log_tail,
            wall_s=wall_s,
        )
    if error_file.exists():
        try:
            error = json.loads(error_file.read_text())
            message = f"[{error.get('stage', '?')}] {error.get('message', '?')}"
            unavailable = bool(error.get("unavailable"))
        except (ValueError, OSError):
            message, unavailable = "the ingestion step wrote an unreadable error file", False
        return IngestResult(False, out_dir, message, unavailable=unavailable, log_tail=log_tail, wall_s=wall_s)
    if returncode == 0 and (out_dir / "measurements.json").exists():
        return IngestResult(True, out_dir, log_tail=log_tail, wall_s=wall_s)
    if returncode is not None and returncode < 0:
        import signal

        name = (
            signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
        )
        reason = "out of memory (killed by SIGKILL)" if name == "SIGKILL" else f"killed by {name}"
        return IngestResult(False, out_dir, f"crash: the ingestion step was {reason}", log_tail=log_tail, wall_s=wall_s)
    if returncode == 137:
        return IngestResult(
            False,
            out_dir,
            "out of memory: the ingestion step was killed (exit 137)",
            log_tail=log_tail,
            wall_s=wall_s,
        )
    return IngestResult(
        False,
        out_dir,
        f"crash: the ingestion step exited with code {returncode} and no result",
        log_tail=log_tail,
        wall_s=wall_s,
    )
