"""The statistics of the latency gate: a confidence interval of the ratio candidate / baseline of the ranked
latency figure, by a two-stage bootstrap over repeats (or a Hodges-Lehmann rank interval), and how a run's
samples split into its repeats. docs/GATE.md explains the choices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

METHODS = ("bootstrap", "rank")
# Exact Mann-Whitney null distributions are enumerated up to this many pairs, then approximated by a normal.
_EXACT_RANK_MAX_PAIRS = 2500
# Absolute slack for threshold comparisons (see harness.gate.decide).
EPS = 1e-9


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
    interval = ratio_interval(
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


def ratio_interval(
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
        ratios = bootstrap_figures(candidate, n_boot, rng) / bootstrap_figures(baseline, n_boot, rng)
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


def bootstrap_figures(blocks: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
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
    point = kth_difference(x, y, middle)
    if pairs % 2 == 0:
        point = 0.5 * (point + kth_difference(x, y, middle + 1))
    k = _mann_whitney_rank(x.size, y.size, alpha)
    if k < 1:
        note = (
            f"{x.size} against {y.size} observations cannot give a rank interval at "
            f"{100 * (1 - alpha):g} % confidence; measure more repeats or use the bootstrap"
        )
        return -math.inf, point, math.inf, note
    return kth_difference(x, y, k), point, kth_difference(x, y, pairs + 1 - k), ""


def kth_difference(x: np.ndarray, y: np.ndarray, k: int) -> float:
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
        counts = mann_whitney_counts(m, n)
        total = math.comb(m + n, m)
        cumulative, k = 0, 0
        while k <= pairs and cumulative + counts[k] <= alpha / 2 * total:
            cumulative += counts[k]
            k += 1
        return k
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return max(0, math.floor(pairs / 2 - z * math.sqrt(pairs * (m + n + 1) / 12)))


def mann_whitney_counts(m: int, n: int) -> list[int]:
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


def latency_blocks(run: dict[str, Any]) -> tuple[list[np.ndarray] | None, str]:
    """A run's latency samples split into its repeats where that can be trusted, and how they were split.

    Samples are split into `latency.repeat_sizes` consecutive blocks when that field exists, else into
    `latency.repeats` equal blocks when the count divides evenly; when `repeat_medians_ms` is present the
    split is accepted only if the block medians reproduce it (a file with sorted or shuffled samples falls
    back to one block of independent samples). With no samples, the repeat medians serve as one-sample
    blocks. Returns `(None, reason)` when there is nothing to compare.
    """
    from harness.records import ranked_summary

    latency = ranked_summary(run) or {}  # the latency the run's track ranks
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
