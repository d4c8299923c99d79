"""The measurements the sandbox reports, as one typed record: written by the driver (`to_json`), read back on
the host without trusting it (`from_json`: types and ranges checked, sizes capped, latency statistics
recomputed from the raw samples, never taken from the sandbox)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

MIB = 1 << 20
MAX_MEASUREMENTS_BYTES = 64 * MIB
MAX_SAMPLES = 2_000_000
MAX_MESSAGE_CHARS = 2000
TIMERS = ("perf_counter_ns", "cuda-events", "cuda-graph")
# Details reported beside the checked figures: stored with the run as information (`runs.details`), never ranked.
INFORMATIONAL = (
    "throughput",
    "clocks",
    "device_timing",
    "numerics",
    "peak_memory_accuracy_bytes",
    "peak_rss_bytes",
    "variant_info",
    "macs_by_family",
    "steps_ms",
    "timed_inputs",
    "macs_outside_forward",
)


class Rejected(Exception):
    """What the sandbox wrote breaks a rule; the message is the run's failure reason."""


@dataclass
class Complexity:
    params: int
    bytes: int
    dtypes: dict[str, int]
    macs: dict[str, int]
    macs_std: dict[str, float]


@dataclass
class Measurements:
    complexity: Complexity
    environment: dict[str, Any]
    timings: dict[str, float]
    latency: dict[str, dict[str, Any]] | None = None  # "device", "e2e": LatencySummary.to_dict()
    crosscheck: dict[str, Any] | None = None
    peak_memory_bytes: int | None = None
    output_error: str | None = None  # check mode: what `check` reports about the outputs
    info: dict[str, Any] = field(default_factory=dict)  # INFORMATIONAL entries

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "complexity": vars(self.complexity),
            "environment": self.environment,
            "timings": self.timings,
        }
        for key in ("latency", "crosscheck", "peak_memory_bytes", "output_error"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return {**data, **{k: v for k, v in self.info.items() if k in INFORMATIONAL and v is not None}}

    @classmethod
    def from_json(cls, raw: Any, mode: str, batch_size: int) -> Measurements:
        """Keep what the host uses, with checked types (`Rejected` names the fault); in evaluate mode the
        cross-check and both latency summaries must be present, and the summaries are recomputed."""
        data = mapping(raw, "(top level)")
        complexity = mapping(data.get("complexity"), "complexity")
        macs = mapping(complexity.get("macs", {}), "complexity.macs")
        macs_std = mapping(complexity.get("macs_std", {}), "complexity.macs_std")
        measured = cls(
            complexity=Complexity(
                params=number(complexity.get("params"), "complexity.params", integer=True),
                bytes=number(complexity.get("bytes"), "complexity.bytes", integer=True),
                dtypes=small(complexity.get("dtypes", {}), "complexity.dtypes"),
                macs={str(k)[:40]: number(v, f"complexity.macs.{k}", integer=True) for k, v in macs.items()},
                macs_std={str(k)[:40]: number(v, f"complexity.macs_std.{k}") for k, v in macs_std.items()},
            ),
            environment=small(mapping(data.get("environment", {}), "environment"), "environment"),
            timings={
                str(k)[:60]: number(v, f"timings.{k}") for k, v in mapping(data.get("timings", {}), "timings").items()
            },
        )
        if data.get("peak_memory_bytes") is not None:
            measured.peak_memory_bytes = number(data["peak_memory_bytes"], "peak_memory_bytes", integer=True)
        if data.get("output_error") is not None:
            measured.output_error = str(data["output_error"])[:MAX_MESSAGE_CHARS]
        for key in INFORMATIONAL:
            value = data.get(key)
            if value is not None:
                measured.info[key] = (
                    value if isinstance(value, int) and not isinstance(value, bool) else small(value, key)
                )
        if mode == "evaluate":
            measured.crosscheck = _crosscheck(data.get("crosscheck"))
            latency = mapping(data.get("latency"), "latency")
            measured.latency = {kind: _summary(latency.get(kind), kind, batch_size) for kind in ("device", "e2e")}
        return measured


def profile_from_json(raw: Any) -> dict[str, Any]:
    """Profile mode's result: milliseconds per layer type (checked), the top operators (small, as given)."""
    data = mapping(raw, "(top level)")
    layers = mapping(data.get("layers"), "layers")
    return {
        **{k: small(v, k) for k, v in data.items() if k == "top_ops"},
        "layers": {str(k)[:40]: number(v, f"layers.{k}") for k, v in layers.items()},
    }


def _crosscheck(raw: Any) -> dict[str, Any]:
    crosscheck = mapping(raw, "crosscheck")
    if not isinstance(crosscheck.get("consistent"), bool):
        raise Rejected("[tampered] measurements.json: `crosscheck.consistent` is not a boolean")
    clean = {
        "images": number(crosscheck.get("images", 0), "crosscheck.images", integer=True),
        "consistent": crosscheck["consistent"],
        "reduced_precision": crosscheck.get("reduced_precision") is True,
        "reason": str(crosscheck["reason"])[:MAX_MESSAGE_CHARS] if crosscheck.get("reason") else None,
    }
    if crosscheck.get("checks") is not None:
        clean["checks"] = small(crosscheck["checks"], "crosscheck.checks")
    return clean


def _summary(raw: Any, kind: str, batch_size: int) -> dict[str, Any]:
    """A latency summary recomputed from its raw samples; only the samples and their split are taken."""
    from harness.measure.latency import summarize

    summary = mapping(raw, f"latency.{kind}")
    samples = summary.get("samples_ms")
    sizes = summary.get("repeat_sizes")
    if not isinstance(samples, list) or not samples or len(samples) > MAX_SAMPLES:
        raise Rejected(f"[tampered] measurements.json: `latency.{kind}.samples_ms` is not a list of samples")
    if (
        not isinstance(sizes, list)
        or not sizes
        or sum(number(n, "repeat_sizes", True, 1) for n in sizes) != len(samples)
    ):
        raise Rejected(f"[tampered] measurements.json: `latency.{kind}.repeat_sizes` do not add up to the samples")
    values = [number(v, f"latency.{kind}.samples_ms") for v in samples]
    repeats, start = [], 0
    for size in sizes:
        repeats.append(values[start : start + size])
        start += size
    timer = summary.get("timer")
    recomputed = summarize(kind, batch_size, repeats, timer if timer in TIMERS else "?")
    reasons = summary.get("noise_reasons", [])
    # Noise found inside the sandbox (CPU load, other GPU processes) is kept as information.
    for reason in reasons[:8] if isinstance(reasons, list) else []:
        if isinstance(reason, str) and reason[:200] not in recomputed.noise_reasons:
            recomputed.noise_reasons.append(reason[:200])
    recomputed.noisy = bool(recomputed.noise_reasons)
    warmup = summary.get("warmup_iterations")
    if warmup is not None:
        recomputed.warmup_iterations = number(warmup, f"latency.{kind}.warmup_iterations", integer=True)
    if isinstance(summary.get("warmup_settled"), bool):
        recomputed.warmup_settled = summary["warmup_settled"]
    recomputed.untimed_s = float(number(summary.get("untimed_s", 0.0), f"latency.{kind}.untimed_s"))
    recomputed.pending_s = float(number(summary.get("pending_s", 0.0), f"latency.{kind}.pending_s"))
    return recomputed.to_dict()


def number(value: Any, where: str, integer: bool = False, minimum: float = 0.0) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < minimum:
        want = "an integer" if integer else "a finite number"
        raise Rejected(f"[tampered] measurements.json: `{where}` is {str(value)[:40]}, expected {want} >= {minimum:g}")
    return value


def small(value: Any, where: str, max_chars: int = 65536) -> Any:
    """Free-form information (environment, dtypes) is stored as given, but never more than `max_chars` of it."""
    if not isinstance(value, dict | list) or len(json.dumps(value)) > max_chars:
        raise Rejected(f"[tampered] measurements.json: `{where}` is not a small JSON object")
    return value


def mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Rejected(f"[tampered] measurements.json: `{where}` is not an object")
    return value
