"""The run record: one typed record of a finished (or failed) run, as `harness evaluate --json`, `harness show
--json` and results files (`harness export`) carry it, and as `harness gate` reads it back.

`RunRecord.from_row` makes it from the store; `to_dict` gives its JSON; `validate_record` checks a record read
from a results file (which may come from another machine or an older harness) and names the faulty field.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import PredictionError

# Fields every run record must carry, with the type a results file must hold there.
REQUIRED_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str, int),
    "track": (str,),
    "track_version": (str, int),
    "hardware_class": (str,),
    "status": (str,),
    "metrics": (dict,),
    "primary_metric": (str,),
    "higher_is_better": (bool,),
}
LATENCY_LIST_FIELDS = ("samples_ms", "repeat_medians_ms")
# Errors quote what a results file holds cut short: a field may hold a megabyte.
_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = _BRIEF.maxlong = 80


@dataclass
class RunRecord:
    run_id: int
    submission: str
    submission_hash: str
    variant: str
    track: str
    track_version: int
    status: str
    error: str | None
    primary_metric: str
    higher_is_better: bool
    metrics: dict[str, float]
    params: int | None
    macs: dict[str, int]
    macs_std: dict[str, float]
    bytes: int | None
    latency: dict[str, Any] | None  # device latency (model only)
    latency_e2e: dict[str, Any] | None
    device: str
    profile: str
    runner: str
    dataset: str
    dataset_hash: str
    hardware_class: str
    harness_version: str
    scorer_version: str
    environment: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    log_tail: str | None = None  # failed runs only
    # The primary metric's confidence interval [low, high] (details["confidence"] says how it was made).
    primary_interval: list[float] | None = None
    ranked_latency: str = "device"  # which of `latency` ("device") and `latency_e2e` ("e2e") the track ranks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, run: Any, higher_is_better: bool, with_samples: bool = False) -> RunRecord:
        """The record of a stored `Run` row (with its submission, metrics, latencies and environment loaded)."""
        latencies = {row.kind: row for row in run.latencies}
        return cls(
            **{name: getattr(run, name) for name in _RUN_COLUMNS},
            run_id=run.id,
            submission=run.submission.name,
            submission_hash=run.submission.content_hash,
            higher_is_better=higher_is_better,
            metrics={m.name: m.value for m in run.metrics},
            macs=run.macs or {},
            macs_std=run.macs_std or {},
            latency=latency_dict(latencies["device"], with_samples) if "device" in latencies else None,
            latency_e2e=latency_dict(latencies["e2e"], with_samples) if "e2e" in latencies else None,
            environment=run.environment.data if run.environment else {},
            details=run.details or {},
            started_at=run.started_at.isoformat() if run.started_at else None,
            finished_at=run.finished_at.isoformat() if run.finished_at else None,
            log_tail=run.log_tail if run.status != "ok" else None,
            primary_interval=(
                [run.primary_ci_low, run.primary_ci_high]
                if run.primary_ci_low is not None and run.primary_ci_high is not None
                else None
            ),
            ranked_latency=(run.details or {}).get("ranked_latency", "device"),
        )


# Columns of a run row that the record carries as they are.
_RUN_COLUMNS = (
    "variant", "track", "track_version", "status", "error", "primary_metric", "params", "bytes", "device", "profile",
    "runner", "dataset", "dataset_hash", "hardware_class", "harness_version", "scorer_version",
)  # fmt: skip
_LATENCY_COLUMNS = (
    "p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "std_ms", "cv", "repeats", "iterations", "ranked_ms",
    "batch_size", "noisy", "timer",
)  # fmt: skip


def ranked_summary(record: dict[str, Any]) -> dict[str, Any] | None:
    """The latency summary a run record's track ranks: the device one (`latency`) or the end-to-end one."""
    return record.get("latency_e2e") if record.get("ranked_latency") == "e2e" else record.get("latency")


def latency_dict(row: Any, with_samples: bool = False) -> dict[str, Any]:
    """A stored latency summary row as the record's `latency` object."""
    data = {name: getattr(row, name) for name in _LATENCY_COLUMNS}
    for name in ("noise_reasons", "repeat_medians_ms", "repeat_sizes"):
        data[name] = list(getattr(row, name) or [])
    if with_samples:
        import numpy as np

        data["samples_ms"] = np.frombuffer(row.samples, dtype="<f4").astype(np.float64).tolist()
    return data


def brief(value: Any) -> str:
    """A bounded `repr` of a value read from a stranger's file (strings, numbers and lists cut to 80 characters)."""
    return _BRIEF.repr(value)


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits: no float holds it
        return False


def validate_record(run: Any, where: str) -> None:
    """Check one run record read from a file; `where` names it in errors (e.g. "results.json: runs[2]")."""
    if not isinstance(run, dict):
        raise PredictionError(f"{where}: a run must be a JSON object, got {type(run).__name__}")
    for key, types in REQUIRED_FIELDS.items():
        if key not in run:
            raise PredictionError(
                f"{where}: missing field {key!r}", hint="export runs with `harness export` or `evaluate --json`"
            )
        value = run[key]
        # bool is an int in Python; only higher_is_better may be one.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(t.__name__ for t in types)
            raise PredictionError(f"{where}: field {key!r} is {brief(value)}, expected {expected}")
    for name, value in run["metrics"].items():
        if not _finite(value):
            raise PredictionError(
                f"{where}: metrics.{brief(str(name))[1:-1]} is {brief(value)}, expected a finite number"
            )
    if run.get("ranked_latency", "device") not in ("device", "e2e"):
        raise PredictionError(
            f"{where}: field 'ranked_latency' is {brief(run['ranked_latency'])}, expected device or e2e"
        )
    interval = run.get("primary_interval")
    if interval is not None and not (
        isinstance(interval, list) and len(interval) == 2 and all(_finite(v) for v in interval)
    ):
        raise PredictionError(f"{where}: field 'primary_interval' is {brief(interval)}, expected [low, high] or null")
    for field_name in ("latency", "latency_e2e"):
        latency = run.get(field_name)
        if latency is None:
            continue
        if not isinstance(latency, dict):
            raise PredictionError(f"{where}: field {field_name!r} is {brief(latency)}, expected an object or null")
        _validate_latency(latency, where if field_name == "latency" else f"{where} (latency_e2e)")


def _validate_latency(latency: dict[str, Any], where: str) -> None:
    for key in LATENCY_LIST_FIELDS:
        values = latency.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            raise PredictionError(f"{where}: latency.{key} is {type(values).__name__}, expected a list")
        for index, value in enumerate(values):
            if not _finite(value) or value <= 0:
                raise PredictionError(
                    f"{where}: latency.{key}[{index}] is {brief(value)}, expected a finite positive number"
                )
    sizes = latency.get("repeat_sizes")
    if sizes is not None and not (
        isinstance(sizes, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)
    ):
        raise PredictionError(f"{where}: latency.repeat_sizes is {brief(sizes)}, expected a list of integers")
    repeats = latency.get("repeats")
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 0):
        raise PredictionError(f"{where}: latency.repeats is {brief(repeats)}, expected an integer >= 0")


def finite_or_none(value: Any) -> Any:
    """`value` with every non-finite float (NaN, ±Infinity) replaced by None: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(item) for item in value]
    return value
