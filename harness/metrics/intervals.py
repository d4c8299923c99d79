"""Confidence intervals of a split-level metric by the bootstrap over test images.

A metric computed on n test images is one draw of what the model would score on another n images of the same
kind. Resampling the images with replacement (`SAMPLES` times, from a fixed seed, so that the same predictions
always give the same interval) and recomputing the metric on each resample gives its sampling distribution; the
2.5th and 97.5th percentiles are the 95 % interval (the percentile bootstrap, Efron & Tibshirani ch. 13).

Each resample is a vector of counts, how many times each image is drawn (a multinomial draw, which is what
sampling n images with replacement gives), so a metric that is a function of per-image sums is recomputed for
all resamples at once as `counts @ per_image`: top-1 (correct per image), DetEval and ICDAR2015 (their global
sums and cared-for counts per image). COCO AP is re-accumulated from per-image matches (harness.metrics.coco).

Two entries whose intervals overlap cannot be told apart on this test set at this level: the standings mark
them as statistically tied (harness.service.standings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

SAMPLES = 1000  # resamples; the interval's ends move by well under 0.001 between seeds at this count
SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    samples: int
    seed: int
    images: int
    method: str = "percentile bootstrap over test images"

    def to_dict(self) -> dict:
        return asdict(self)

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high


def resample_counts(images: int, samples: int = SAMPLES, seed: int = SEED) -> np.ndarray:
    """(samples, images) draw counts: row k says how often each image is in resample k (each row sums to n)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(images, np.full(images, 1.0 / images), size=samples).astype(np.float64)


def bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray], images: int, samples: int = SAMPLES, seed: int = SEED
) -> Interval | None:
    """The interval of `statistic(counts) -> (samples,)` values; None for an empty split."""
    if images == 0:
        return None
    values = np.asarray(statistic(resample_counts(images, samples, seed)), dtype=np.float64)
    alpha = (1.0 - LEVEL) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return Interval(float(low), float(high), LEVEL, samples, seed, images)


def mean_interval(per_image: np.ndarray, samples: int = SAMPLES, seed: int = SEED) -> Interval | None:
    """A metric that is the mean of a per-image value (top-1: 1 where the image is right)."""
    values = np.asarray(per_image, dtype=np.float64)
    return bootstrap(lambda counts: counts @ values / len(values), len(values), samples, seed)


def hmean_interval(
    recall_sum: np.ndarray,
    precision_sum: np.ndarray,
    gt_care: np.ndarray,
    det_care: np.ndarray,
    which: str = "hmean",
    samples: int = SAMPLES,
    seed: int = SEED,
) -> Interval | None:
    """The precision, recall or h-mean of a protocol that sums matches and counts over images (DetEval,
    ICDAR2015), with their zero conventions (a zero denominator gives 0)."""
    table = np.stack([recall_sum, precision_sum, gt_care, det_care], axis=1).astype(np.float64)

    def statistic(counts: np.ndarray) -> np.ndarray:
        r_sum, p_sum, gts, dets = (counts @ table).T
        recall = np.divide(r_sum, gts, out=np.zeros_like(r_sum), where=gts > 0)
        precision = np.divide(p_sum, dets, out=np.zeros_like(p_sum), where=dets > 0)
        total = recall + precision
        hmean = np.divide(2 * recall * precision, total, out=np.zeros_like(total), where=total > 0)
        return {"hmean": hmean, "recall": recall, "precision": precision}[which]

    return bootstrap(statistic, len(table), samples, seed)
