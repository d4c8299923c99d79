"""Regression gates: decide whether a candidate run is worse than a baseline run beyond measurement noise.

A pure library (no database): it takes two runs as plain dicts, in the shape `harness evaluate --json` emits
and `harness export` writes, and returns a `GateResult` that `render` turns into text, Markdown, JUnit XML or
JSON. The CLI verbs `harness gate` and `harness export` are thin layers over it.

Two checks are made:

- the primary metric, judged exactly: the metric of a fixed model on a fixed split is deterministic, so a
  drop larger than `max_metric_drop` fails with no statistics involved;
- latency, judged on a confidence interval of the ratio candidate / baseline of the ranked latency figure
  (the median of the repeat medians). The check fails only when the whole interval lies above
  `1 + max_latency_increase`, passes when the whole interval lies at or below it, and is inconclusive
  ("too noisy") when the interval straddles it.

Overall status and exit codes: `pass` -> 0, `fail` -> 1, `inconclusive` -> 3 (2 is the CLI's code for a
user error such as a malformed file, see `harness.errors.HarnessError.exit_code`).

Why the latency interval is built the way it is (docs/GATE.md says more): per-iteration samples inside one
repeat are autocorrelated (clock and thermal drift, cache and allocator state), so treating the few thousand
samples of a run as independent makes intervals far too narrow. When a run's samples can be split into its
repeats, the repeats are the independent units: the bootstrap resamples repeats, then samples within each
resampled repeat (a two-stage, "hierarchical" bootstrap), and the rank method compares repeat medians.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from harness import __version__
from harness.errors import HarnessError, PredictionError

# Absolute slack for threshold comparisons. It absorbs float64 rounding (a metric of 0.800 minus 0.795 is
# 0.0050000000000000044, not 0.005) and is far below any real resolution: one image in a million changes
# an accuracy by 1e-6, and a latency ratio is never meaningful to 1e-9.
EPS = 1e-9

EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 3}
FORMATS = ("text", "markdown", "junit", "json")
METHODS = ("bootstrap", "rank")

# Run statuses that mean "evaluated to the end"; anything else is a failed run.
SUCCESS_STATUSES = frozenset({"ok", "success", "succeeded", "done", "completed", "finished"})

# Fields every run record must carry, with the type a results file must hold there.
_REQUIRED_RUN_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str, int),
    "track": (str,),
    "track_version": (str, int),
    "hardware_class": (str,),
    "status": (str,),
    "metrics": (dict,),
    "primary_metric": (str,),
    "higher_is_better": (bool,),
}
_LATENCY_LIST_FIELDS = ("samples_ms", "repeat_medians_ms")

# Exact Mann-Whitney null distributions are enumerated up to this many pairs, then approximated by a normal.
_EXACT_RANK_MAX_PAIRS = 2500


@dataclass
class Check:
    """One judged comparison. `values` holds the figures behind the verdict (for reports and JSON)."""

    name: str
    status: str  # "pass" | "fail" | "inconclusive"
    detail: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateResult:
    """The outcome of `gate`: the overall status, each check, and what was compared with which settings."""

    status: str
    checks: list[Check]
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return _json_safe(data)


@dataclass(frozen=True)
class LatencyInterval:
    """A confidence interval of the latency ratio candidate / baseline, with how it was obtained."""

    low: float
    point: float
    high: float
    baseline_ms: float  # the compared figure of each run: median of repeat medians, or median of samples
    candidate_ms: float
    method: str
    scheme: str  # what the independent units were, in words
    note: str = ""


# --------------------------------------------------------------------------------------------------------
# The latency ratio interval


def latency_ratio_interval(
    baseline_samples: Sequence[float] | Sequence[Sequence[float]],
    candidate_samples: Sequence[float] | Sequence[Sequence[float]],
    confidence: float = 0.99,
    method: str = "bootstrap",
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Confidence interval `(low, point, high)` of the latency ratio candidate / baseline.

    Each side is either a flat sequence of per-iteration samples (treated as independent) or a sequence of
    repeats, each a sequence of samples (repeats treated as independent, samples within one as dependent).
    The compared figure is the median of the repeat medians (the ranked figure), or the median of a flat
    sequence.

    - `bootstrap`: percentile interval of the ratio over `n_boot` two-stage resamples of each run (repeats
      with replacement, then samples with replacement within each chosen repeat). The median of a resample
      is drawn exactly from its order-statistic distribution, so one draw costs O(1), not O(samples).
    - `rank`: Hodges-Lehmann estimate of the shift of log latencies with its distribution-free interval from
      the Mann-Whitney statistic (exact for small samples, normal approximation beyond); computed on the
      repeat medians when both sides have at least two repeats, else on the samples. `point` is then the
      Hodges-Lehmann ratio, not the ratio of medians. When the samples are too few for the confidence asked
      (e.g. 3 against 3 repeats at 99 %), the interval is (0, inf).
    """
    interval = _ratio_interval(
        _as_blocks(baseline_samples, "baseline"),
        _as_blocks(candidate_samples, "candidate"),
        confidence,
        method,
        n_boot,
        seed,
    )
    return interval.low, interval.point, interval.high


def latency_verdict(low: float, high: float, max_latency_increase: float = 0.05) -> str:
    """The latency check's verdict for an interval of the ratio candidate / baseline.

    `fail` when the whole interval lies above `1 + max_latency_increase`, `pass` when it lies at or below,
    `inconclusive` when it straddles the threshold.
    """
    threshold = 1.0 + max_latency_increase
    if low > threshold + EPS:
        return "fail"
    if high <= threshold + EPS:
        return "pass"
    return "inconclusive"


def _as_blocks(samples: Sequence[float] | Sequence[Sequence[float]], side: str) -> list[np.ndarray]:
    if len(samples) == 0:
        raise ValueError(f"{side}: no latency samples")
    first = samples[0]
    nested = isinstance(first, Sequence | np.ndarray) and not isinstance(first, str)
    raw = list(samples) if nested else [samples]
    blocks = [np.asarray(block, dtype=np.float64).reshape(-1) for block in raw]
    for index, block in enumerate(blocks):
        if block.size == 0:
            raise ValueError(f"{side}: repeat {index} has no samples")
        if not np.all(np.isfinite(block)) or np.any(block <= 0):
            raise ValueError(f"{side}: latency samples must be finite and positive")
    return blocks


def _figure(blocks: list[np.ndarray]) -> float:
    """The compared latency figure: median of the repeat medians (of the samples when there is one block)."""
    return float(np.median([np.median(block) for block in blocks]))


def _ratio_interval(
    baseline: list[np.ndarray],
    candidate: list[np.ndarray],
    confidence: float,
    method: str,
    n_boot: int,
    seed: int,
) -> LatencyInterval:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    alpha = 1.0 - confidence
    baseline_ms, candidate_ms = _figure(baseline), _figure(candidate)
    if method == "bootstrap":
        if n_boot < 100:
            raise ValueError(f"n_boot must be at least 100, got {n_boot}")
        rng = np.random.default_rng(seed)
        ratios = _bootstrap_figures(candidate, n_boot, rng) / _bootstrap_figures(baseline, n_boot, rng)
        low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
        return LatencyInterval(
            float(low),
            candidate_ms / baseline_ms,
            float(high),
            baseline_ms,
            candidate_ms,
            method,
            _bootstrap_scheme(baseline, candidate),
        )
    if method == "rank":
        if len(baseline) >= 2 and len(candidate) >= 2:
            x = np.array([np.median(block) for block in baseline])
            y = np.array([np.median(block) for block in candidate])
            scheme = f"repeat medians ({len(x)} baseline, {len(y)} candidate)"
        else:
            x, y = np.concatenate(baseline), np.concatenate(candidate)
            scheme = f"samples treated as independent ({len(x)} baseline, {len(y)} candidate)"
        low, point, high, note = _hodges_lehmann_interval(np.log(x), np.log(y), alpha)
        return LatencyInterval(
            math.exp(low),  # exp(-inf) = 0 and exp(inf) = inf: an unbounded interval stays unbounded
            math.exp(point),
            math.exp(high),
            baseline_ms,
            candidate_ms,
            method,
            scheme,
            note,
        )
    raise ValueError(f"unknown interval method {method!r}; choose one of {', '.join(METHODS)}")


def _bootstrap_scheme(baseline: list[np.ndarray], candidate: list[np.ndarray]) -> str:
    def describe(blocks: list[np.ndarray]) -> str:
        if len(blocks) == 1:
            return f"{blocks[0].size} samples treated as independent"
        return f"{len(blocks)} repeats of {sum(b.size for b in blocks) // len(blocks)} samples (mean)"

    return f"two-stage bootstrap; baseline: {describe(baseline)}; candidate: {describe(candidate)}"


def _bootstrap_figures(blocks: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """`n_boot` draws of `_figure` under the two-stage bootstrap (repeats, then samples within a repeat).

    Resampling n values with replacement and taking the k-th smallest is the same as drawing the k-th
    smallest of n uniforms, U(k) ~ Beta(k, n - k + 1), and mapping it through the empirical quantile function
    x_(ceil(n u)). For an even n the median also needs the next order statistic: given U(k) = u, the other
    n - k uniforms are uniform on (u, 1), so U(k+1) = u + (1 - u) Beta(1, n - k). This gives exactly the
    distribution of the resampled median at O(1) per draw instead of O(n).
    """
    sizes = np.array([block.size for block in blocks])
    padded = np.full((len(blocks), sizes.max()), np.nan)
    for index, block in enumerate(blocks):
        padded[index, : block.size] = np.sort(block)
    if len(blocks) == 1:
        chosen = np.zeros((n_boot, 1), dtype=np.int64)
    else:
        chosen = rng.integers(len(blocks), size=(n_boot, len(blocks)))
    n = sizes[chosen]
    rank = (n + 1) // 2  # 1-based rank of the (lower) median
    u_low = rng.beta(rank, n - rank + 1)
    u_high = u_low + (1.0 - u_low) * rng.beta(1, np.maximum(n - rank, 1))
    low_value = padded[chosen, _quantile_index(u_low, n)]
    high_value = padded[chosen, _quantile_index(u_high, n)]
    medians = np.where(n % 2 == 0, 0.5 * (low_value + high_value), low_value)
    return np.median(medians, axis=1)


def _quantile_index(u: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.clip(np.ceil(u * n).astype(np.int64) - 1, 0, n - 1)


def _hodges_lehmann_interval(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, float, float, str]:
    """Hodges-Lehmann shift of y over x and its Mann-Whitney interval [D(k), D(mn + 1 - k)].

    D(1) <= ... <= D(mn) are the pairwise differences y_j - x_i; k is the largest rank with
    P(U <= k - 1) <= alpha / 2 under the null distribution of the Mann-Whitney U.
    """
    x, y = np.sort(x), np.sort(y)
    pairs = x.size * y.size
    middle = (pairs + 1) // 2
    point = _kth_difference(x, y, middle)
    if pairs % 2 == 0:
        point = 0.5 * (point + _kth_difference(x, y, middle + 1))
    k = _mann_whitney_rank(x.size, y.size, alpha)
    if k < 1:
        note = (
            f"{x.size} against {y.size} observations cannot give a rank interval at "
            f"{100 * (1 - alpha):g} % confidence; measure more repeats or use the bootstrap"
        )
        return -math.inf, point, math.inf, note
    return _kth_difference(x, y, k), point, _kth_difference(x, y, pairs + 1 - k), ""


def _kth_difference(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) of the differences y_j - x_i, for sorted x and y, without forming them.

    Bisects on the value d with count(d) = #{y_j - x_i <= d} (one searchsorted per x_i), keeping
    count(low) < k <= count(high), then snaps to the smallest difference above `low`, which is exact.
    """

    def count(d: float) -> int:
        return int(np.searchsorted(y, x + d, side="right").sum())

    low, high = float(y[0] - x[-1]) - 1.0, float(y[-1] - x[0])
    for _ in range(200):
        mid = 0.5 * (low + high)
        if not low < mid < high:
            break
        if count(mid) >= k:
            high = mid
        else:
            low = mid
    above = np.searchsorted(y, x + low, side="right")
    valid = above < y.size
    return float(np.min(y[above[valid]] - x[valid]))


def _mann_whitney_rank(m: int, n: int, alpha: float) -> int:
    """Largest k with P(U <= k - 1) <= alpha / 2 for the Mann-Whitney U of samples of sizes m and n."""
    pairs = m * n
    if pairs <= _EXACT_RANK_MAX_PAIRS:
        counts = _mann_whitney_counts(m, n)
        total = math.comb(m + n, m)
        cumulative, k = 0, 0
        while k <= pairs and cumulative + counts[k] <= alpha / 2 * total:
            cumulative += counts[k]
            k += 1
        return k
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return max(0, math.floor(pairs / 2 - z * math.sqrt(pairs * (m + n + 1) / 12)))


def _mann_whitney_counts(m: int, n: int) -> list[int]:
    """How many of the C(m+n, m) rankings give U = 0..mn: the coefficients of the Gaussian binomial.

    [m+n choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), multiplied and divided term by term; the
    division by (1 - q^i) is a running sum, which only reads lower degrees, so truncating at mn is safe.
    """
    degree = m * n
    coefficients = [1] + [0] * degree
    for i in range(1, m + 1):
        for d in range(degree, n + i - 1, -1):
            coefficients[d] -= coefficients[d - n - i]
        for d in range(i, degree + 1):
            coefficients[d] += coefficients[d - i]
    return coefficients


# --------------------------------------------------------------------------------------------------------
# The gate


def gate(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    max_metric_drop: float = 0.005,
    max_latency_increase: float = 0.05,
    confidence: float = 0.99,
    allow_cross_hardware: bool = False,
    method: str = "bootstrap",
    n_boot: int = 2000,
    seed: int = 0,
) -> GateResult:
    """Judge `candidate` against `baseline` (run records as dicts); see the module docstring for the rules.

    Raises `HarnessError` for settings out of range, malformed runs, runs of different tracks, and runs of
    a different hardware class or track version unless `allow_cross_hardware` is set.
    """
    _check_settings(max_metric_drop, max_latency_increase, confidence, method, n_boot)
    validate_run(baseline, "baseline run")
    validate_run(candidate, "candidate run")
    notes = _comparability_notes(baseline, candidate, allow_cross_hardware)
    if baseline["status"].lower() not in SUCCESS_STATUSES:
        raise HarnessError(
            f"baseline run {baseline['run_id']} ended with status {baseline['status']!r}; "
            "a failed run cannot serve as a baseline",
            hint="gate against a baseline run that completed (status 'ok')",
        )
    settings = {
        "max_metric_drop": max_metric_drop,
        "max_latency_increase": max_latency_increase,
        "confidence": confidence,
        "method": method,
        "n_boot": n_boot,
        "seed": seed,
    }
    if candidate["status"].lower() not in SUCCESS_STATUSES:
        reason = candidate.get("error") or candidate.get("reason") or ""
        checks = [
            Check(
                "run status",
                "fail",
                f"candidate run {candidate['run_id']} ended with status {candidate['status']!r}"
                + (f": {reason}" if reason else ""),
                {"baseline": baseline["status"], "candidate": candidate["status"]},
            )
        ]
    else:
        checks = [
            _metric_check(baseline, candidate, max_metric_drop),
            _latency_check(baseline, candidate, max_latency_increase, confidence, method, n_boot, seed),
        ]
    statuses = {check.status for check in checks}
    status = "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"
    return GateResult(status, checks, _run_summary(baseline), _run_summary(candidate), settings, notes)


def _check_settings(
    max_metric_drop: float, max_latency_increase: float, confidence: float, method: str, n_boot: int
) -> None:
    if not (math.isfinite(max_metric_drop) and max_metric_drop >= 0):
        raise HarnessError(
            f"max metric drop must be a finite number >= 0, got {max_metric_drop}",
            hint="pass e.g. --max-metric-drop 0.005",
        )
    if not (math.isfinite(max_latency_increase) and max_latency_increase >= 0):
        raise HarnessError(
            f"max latency increase must be a finite fraction >= 0, got {max_latency_increase}",
            hint="pass e.g. --max-latency-increase 0.05 for 5 %",
        )
    if not 0.5 <= confidence < 1.0:
        raise HarnessError(f"confidence must lie in [0.5, 1), got {confidence}", hint="pass e.g. --confidence 0.99")
    if method not in METHODS:
        raise HarnessError(f"unknown interval method {method!r}", hint=f"choose one of {', '.join(METHODS)}")
    if n_boot < 100:
        raise HarnessError(f"n_boot must be at least 100, got {n_boot}", hint="the default is 2000")


def _comparability_notes(baseline: dict[str, Any], candidate: dict[str, Any], allow_cross_hardware: bool) -> list[str]:
    if baseline["track"] != candidate["track"]:
        # Not overridable: different tracks have different data and metrics, so no comparison means anything.
        raise HarnessError(
            f"baseline run {baseline['run_id']} is of track {baseline['track']!r} but candidate run "
            f"{candidate['run_id']} is of track {candidate['track']!r}",
            hint="gate a candidate against a baseline of the same track",
        )
    if baseline["primary_metric"] != candidate["primary_metric"] or bool(baseline["higher_is_better"]) != bool(
        candidate["higher_is_better"]
    ):
        raise HarnessError(
            f"baseline run {baseline['run_id']} ranks by {baseline['primary_metric']!r} but candidate run "
            f"{candidate['run_id']} by {candidate['primary_metric']!r} (or in the other direction)",
            hint="gate runs scored by the same track card",
        )
    notes = []
    for key, what in (("hardware_class", "hardware class"), ("track_version", "track version")):
        if str(baseline[key]) != str(candidate[key]):
            message = (
                f"{what} differs: baseline run {baseline['run_id']} has {baseline[key]!r}, "
                f"candidate run {candidate['run_id']} has {candidate[key]!r}"
            )
            if not allow_cross_hardware:
                raise HarnessError(
                    message,
                    hint="evaluate both on the same hardware class and track version, or pass "
                    "--allow-cross-hardware to compare anyway",
                )
            notes.append(f"{message}; compared anyway (--allow-cross-hardware)")
    versions = baseline.get("harness_version"), candidate.get("harness_version")
    if all(versions) and versions[0] != versions[1]:
        notes.append(f"runs were made by different harness versions ({versions[0]} and {versions[1]})")
    return notes


def _run_summary(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("run_id", "submission", "variant", "track", "track_version", "hardware_class", "status")
    return {key: run.get(key) for key in keys}


def _metric_check(baseline: dict[str, Any], candidate: dict[str, Any], max_drop: float) -> Check:
    name = baseline["primary_metric"]
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        if name not in run["metrics"]:
            raise PredictionError(
                f"{side} run {run['run_id']}: metrics has no {name!r} (its primary metric); "
                f"it has {sorted(run['metrics']) or 'none'}",
                hint="export the run again with `harness export`",
            )
    before, after = float(baseline["metrics"][name]), float(candidate["metrics"][name])
    higher_is_better = bool(baseline["higher_is_better"])
    drop = before - after if higher_is_better else after - before
    values = {
        "baseline": before,
        "candidate": after,
        "change": after - before,
        "change_pct": 100.0 * (after - before) / abs(before) if before != 0 else None,
        "drop": drop,
        "max_drop": max_drop,
        "higher_is_better": higher_is_better,
    }
    movement = f"{name} {before:.4f} -> {after:.4f}"
    if drop > max_drop + EPS:
        detail = f"{movement}: worse by {drop:.4f}, more than the allowed {max_drop:.4f}"
        return Check(f"primary metric {name}", "fail", detail, values)
    if drop > 0:
        detail = f"{movement}: worse by {drop:.4f}, within the allowed {max_drop:.4f}"
    else:
        detail = f"{movement}: not worse"
    return Check(f"primary metric {name}", "pass", detail, values)


def _latency_check(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    max_increase: float,
    confidence: float,
    method: str,
    n_boot: int,
    seed: int,
) -> Check:
    threshold = 1.0 + max_increase
    level = f"{100 * confidence:g} %"
    values: dict[str, Any] = {"unit": "ms", "threshold": threshold, "confidence": confidence}
    sides = []
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        blocks, how = latency_blocks(run)
        if blocks is None:
            p50s = [(r.get("latency") or {}).get("p50_ms") for r in (baseline, candidate)]
            if all(isinstance(p, int | float) and p > 0 for p in p50s):
                values.update(baseline=p50s[0], candidate=p50s[1], change_pct=100 * (p50s[1] / p50s[0] - 1))
            detail = (
                f"inconclusive: {side} run {run['run_id']} has no latency samples ({how}); without them "
                "the noise cannot be estimated, so p50 alone is not judged"
            )
            return Check("latency", "inconclusive", detail, values)
        sides.append((blocks, how))
    (base_blocks, base_how), (cand_blocks, cand_how) = sides
    interval = _ratio_interval(base_blocks, cand_blocks, confidence, method, n_boot, seed)
    values.update(
        baseline=interval.baseline_ms,
        candidate=interval.candidate_ms,
        ratio=interval.point,
        change_pct=100 * (interval.point - 1),
        ci_low=interval.low,
        ci_high=interval.high,
        method=method,
        scheme=interval.scheme,
        baseline_samples=base_how,
        candidate_samples=cand_how,
    )
    verdict = latency_verdict(interval.low, interval.high, max_increase)
    ci = f"{level} CI of the ratio [{interval.low:.3f}, {interval.high:.3f}]"
    if verdict == "fail":
        detail = f"slower beyond noise: {ci} lies wholly above the allowed {threshold:.3f}"
    elif verdict == "pass":
        detail = f"{ci} lies at or below the allowed {threshold:.3f}"
    else:
        detail = (
            f"inconclusive: too noisy: {ci} straddles the allowed {threshold:.3f}; "
            "re-run with more repeats or on a quieter machine"
        )
    if interval.note:
        detail += f" ({interval.note})"
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        latency = run.get("latency") or {}
        if latency.get("noisy"):
            reasons = "; ".join(str(r) for r in latency.get("noise_reasons") or []) or "no reason given"
            detail += f"; {side} run marked noisy: {reasons}"
    return Check("latency", verdict, detail, values)


def latency_blocks(run: dict[str, Any]) -> tuple[list[np.ndarray] | None, str]:
    """A run's latency samples split into its repeats where that can be trusted, and how they were split.

    Samples are split into `latency.repeat_sizes` consecutive blocks when that field exists, else into
    `latency.repeats` equal blocks when the count divides evenly; when `repeat_medians_ms` is present the
    split is accepted only if the block medians reproduce it (a file with sorted or shuffled samples falls
    back to one block of independent samples). With no samples, the repeat medians serve as one-sample
    blocks. Returns `(None, reason)` when there is nothing to compare.
    """
    latency = run.get("latency") or {}
    samples = np.asarray(latency.get("samples_ms") or [], dtype=np.float64)
    medians = np.asarray(latency.get("repeat_medians_ms") or [], dtype=np.float64)
    if samples.size == 0:
        if medians.size >= 2:
            return [medians[i : i + 1] for i in range(medians.size)], f"{medians.size} repeat medians only"
        return None, "latency.samples_ms and latency.repeat_medians_ms are empty"
    sizes = latency.get("repeat_sizes")
    repeats = latency.get("repeats") or medians.size
    if not (isinstance(sizes, list) and sum(sizes) == samples.size and all(s > 0 for s in sizes)):
        sizes = [samples.size // repeats] * repeats if repeats >= 2 and samples.size % repeats == 0 else None
    if sizes is None or len(sizes) < 2:
        return [samples], f"{samples.size} samples, repeat boundaries unknown: treated as independent"
    blocks = np.split(samples, np.cumsum(sizes)[:-1])
    if medians.size and (
        medians.size != len(blocks) or not np.allclose([np.median(b) for b in blocks], medians, rtol=1e-6, atol=0.0)
    ):
        return [samples], (
            f"{samples.size} samples whose split into {len(blocks)} repeats does not reproduce "
            "latency.repeat_medians_ms: treated as independent"
        )
    return blocks, f"{samples.size} samples in {len(blocks)} repeats"


# --------------------------------------------------------------------------------------------------------
# Run records and results files


def validate_run(run: Any, where: str) -> None:
    """Check one run record's shape; `where` names it in errors (e.g. "results.json: runs[2]")."""
    if not isinstance(run, dict):
        raise PredictionError(f"{where}: a run must be a JSON object, got {type(run).__name__}")
    for key, types in _REQUIRED_RUN_FIELDS.items():
        if key not in run:
            raise PredictionError(
                f"{where}: missing field {key!r}",
                hint="export runs with `harness export` or `evaluate --json`",
            )
        value = run[key]
        # bool is an int in Python; only higher_is_better may be one.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(t.__name__ for t in types)
            raise PredictionError(f"{where}: field {key!r} is {value!r}, expected {expected}")
    for name, value in run["metrics"].items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PredictionError(f"{where}: metrics.{name} is {value!r}, expected a finite number")
    latency = run.get("latency")
    if latency is None:
        return
    if not isinstance(latency, dict):
        raise PredictionError(f"{where}: field 'latency' is {latency!r}, expected an object or null")
    for key in _LATENCY_LIST_FIELDS:
        values = latency.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            raise PredictionError(f"{where}: latency.{key} is {type(values).__name__}, expected a list")
        for index, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
                raise PredictionError(
                    f"{where}: latency.{key}[{index}] is {value!r}, expected a finite positive number"
                )
    sizes = latency.get("repeat_sizes")
    if sizes is not None and not (
        isinstance(sizes, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)
    ):
        raise PredictionError(f"{where}: latency.repeat_sizes is {sizes!r}, expected a list of integers")
    repeats = latency.get("repeats")
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 0):
        raise PredictionError(f"{where}: latency.repeats is {repeats!r}, expected an integer >= 0")


def export_results(runs: list[dict[str, Any]], path: str | Path) -> None:
    """Write runs to a results file `{"harness_version", "exported_at", "runs"}` (atomically)."""
    path = Path(path)
    for index, run in enumerate(runs):
        validate_run(run, f"run {index} to export")
    document = {
        "harness_version": __version__,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": runs,
    }
    try:
        text = json.dumps(document, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PredictionError(f"runs to export cannot be written as JSON ({exc})") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a reader never sees half a file.
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_results_file(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a results file written by `export_results`; errors name the path and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PredictionError(
            f"{path}: no such results file", hint="write one with `harness export ... -o FILE`"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictionError(f"{path}: cannot read the results file ({exc})") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PredictionError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint="write results files with `harness export`",
        ) from exc
    if not isinstance(document, dict):
        raise PredictionError(
            f"{path}: a results file must be a JSON object with 'harness_version' and 'runs', "
            f"got {type(document).__name__}"
        )
    if not isinstance(document.get("harness_version"), str):
        raise PredictionError(f"{path}: field 'harness_version' is missing or not a string")
    runs = document.get("runs")
    if not isinstance(runs, list):
        raise PredictionError(f"{path}: field 'runs' is missing or not a list")
    for index, run in enumerate(runs):
        validate_run(run, f"{path}: runs[{index}]")
    return runs


def select_run(
    runs: list[dict[str, Any]],
    source: str,
    run_id: str | int | None = None,
    submission: str | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    """The one run of `runs` matching the given filters; `source` (a file name) appears in errors."""
    matches = [
        run
        for run in runs
        if (run_id is None or str(run["run_id"]) == str(run_id))
        and (submission is None or run.get("submission") == submission)
        and (variant is None or run.get("variant") == variant)
    ]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(f"{r['run_id']} ({r.get('submission')}/{r.get('variant')})" for r in runs[:20])
    if not matches:
        raise HarnessError(f"{source}: no run matches; it holds {listed or 'no runs'}", hint="pick a run by id")
    raise HarnessError(
        f"{source}: {len(matches)} runs match; it holds {listed}",
        hint="pick one run by id, submission or variant",
    )


# --------------------------------------------------------------------------------------------------------
# Reports


def render(result: GateResult, format: str = "text") -> str:
    """The result as `text`, `markdown` (a table for a PR comment or job summary), `junit` (XML) or `json`."""
    if format == "text":
        return _render_text(result)
    if format == "markdown":
        return _render_markdown(result)
    if format == "junit":
        return _render_junit(result)
    if format == "json":
        return json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"
    raise HarnessError(f"unknown report format {format!r}", hint=f"choose one of {', '.join(FORMATS)}")


def _describe_run(run: dict[str, Any]) -> str:
    who = "/".join(str(run[k]) for k in ("submission", "variant") if run.get(k))
    return f"run {run['run_id']}" + (f" ({who})" if who else "")


def _context_line(result: GateResult) -> str:
    base = result.baseline
    return (
        f"{base['track']} v{base['track_version']} on {base['hardware_class']}: "
        f"baseline {_describe_run(base)}, candidate {_describe_run(result.candidate)}"
    )


def _format_value(value: Any, unit: str | None) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–" if value is None else str(value)
    return f"{value:.3f} ms" if unit == "ms" else f"{value:.4f}"


def _format_change(values: dict[str, Any]) -> str:
    pct = values.get("change_pct")
    if "change" in values:
        text = f"{values['change']:+.4f}"
        return text + (f" ({pct:+.2f} %)" if pct is not None else "")
    return "–" if pct is None else f"{pct:+.2f} %"


def _format_ci(values: dict[str, Any]) -> str:
    if "ci_low" not in values:
        return "–"
    low, high = values["ci_low"], values["ci_high"]
    low_text = f"{100 * (low - 1):+.2f} %" if low > 0 else "-inf"
    high_text = f"{100 * (high - 1):+.2f} %" if math.isfinite(high) else "+inf"
    return f"{low_text} … {high_text}"


_MARKS = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive"}


def _render_text(result: GateResult) -> str:
    lines = [f"harness gate: {result.status.upper()} (exit {result.exit_code})", _context_line(result)]
    lines += [f"note: {note}" for note in result.notes]
    for check in result.checks:
        lines.append(f"[{check.status}] {check.name}: {check.detail}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _render_markdown(result: GateResult) -> str:
    level = f"{100 * result.settings['confidence']:g} % CI"
    lines = [
        f"### harness gate: {_MARKS[result.status]} (exit {result.exit_code})",
        "",
        _cell(_context_line(result)) + ".",
        f"Thresholds: primary metric may drop by at most {result.settings['max_metric_drop']:g}; "
        f"latency may grow by at most {100 * result.settings['max_latency_increase']:g} % "
        f"({level}, {result.settings['method']}).",
        "",
    ]
    lines += [f"> **Note:** {_cell(note)}" for note in result.notes]
    if result.notes:
        lines.append("")
    lines += [
        f"| check | baseline | candidate | change | {level} | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for check in result.checks:
        unit = check.values.get("unit")
        cells = [
            check.name,
            _format_value(check.values.get("baseline"), unit),
            _format_value(check.values.get("candidate"), unit),
            _format_change(check.values),
            _format_ci(check.values),
            _MARKS[check.status],
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    lines += [f"- **{_cell(check.name)}**: {_cell(check.detail)}" for check in result.checks]
    return "\n".join(lines) + "\n"


def _render_junit(result: GateResult) -> str:
    failures = sum(check.status == "fail" for check in result.checks)
    skipped = sum(check.status == "inconclusive" for check in result.checks)
    suites = ET.Element(
        "testsuites", name="harness gate", tests=str(len(result.checks)), failures=str(failures), errors="0"
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="harness gate",
        tests=str(len(result.checks)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time="0",
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    properties = ET.SubElement(suite, "properties")
    for side, run in (("baseline", result.baseline), ("candidate", result.candidate)):
        for key, value in run.items():
            if value is not None:
                ET.SubElement(properties, "property", name=f"{side}.{key}", value=str(value))
    for key, value in result.settings.items():
        ET.SubElement(properties, "property", name=f"setting.{key}", value=str(value))
    for note in result.notes:
        ET.SubElement(properties, "property", name="note", value=note)
    for check in result.checks:
        case = ET.SubElement(suite, "testcase", classname="harness.gate", name=check.name, time="0")
        if check.status == "fail":
            failure = ET.SubElement(case, "failure", message=check.detail, type="regression")
            failure.text = check.detail
        elif check.status == "inconclusive":
            ET.SubElement(case, "skipped", message=check.detail)
        else:
            ET.SubElement(case, "system-out").text = check.detail
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _json_safe(value: Any) -> Any:
    """Infinite interval bounds (a rank interval with too few repeats) become null, as JSON has no inf."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
