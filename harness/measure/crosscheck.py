"""MLPerf-style cross-check: the performance pass computes what the accuracy pass computed.

The performance pass runs at the track's batch size (1 by default) while the accuracy pass runs large
batches, so a predictor that does less work when it is timed (a cache, a cheaper path for batch 1) would be
ranked on latency it does not have. Outputs of the performance pass on a sample of images are compared with
the accuracy pass's outputs for the same images. Batch size and kernel choice change results by rounding
only, so tolerances are tight for float32 variants and looser for reduced-precision ones (float16, int8);
detections and polygons below a confidence floor may cross a threshold and are not required to match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    logits: float  # classification: largest |difference| allowed, as a fraction of max(1, largest |logit|)
    iou: float  # detection/text: a confident output needs a counterpart with IoU >= this ...
    score: float  # ... whose score differs by at most this
    min_score: float  # outputs scored below this need no counterpart (they may cross a threshold)
    matched: float  # fraction of confident outputs, on both sides, that must have a counterpart


# Records compared by their boxes (detections, text polygons' enclosing boxes), by "reduced precision".
BOX_TOLERANCES = {
    False: Tolerance(logits=0.0, iou=0.95, score=0.01, min_score=0.3, matched=0.99),
    True: Tolerance(logits=0.0, iou=0.8, score=0.05, min_score=0.3, matched=0.9),
}


@dataclass
class CrossCheck:
    images: int
    consistent: bool
    reduced_precision: bool
    tolerance: dict[str, float]
    detail: dict[str, float]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def failed(cls, images: int, reduced: bool, tolerance: Tolerance, reason: str) -> CrossCheck:
        return cls(images, False, reduced, asdict(tolerance), {}, reason)


def compare_logits(expected: Sequence[Any], got: Sequence[Any], tol: Tolerance, reduced: bool) -> CrossCheck:
    """Records with `logits`: every logit within the tolerance, and the same top-1 class unless it is a near tie."""
    worst = 0.0
    disagreements = 0
    for a, b in zip(expected, got, strict=True):
        la, lb = np.asarray(a.logits, dtype=np.float64), np.asarray(b.logits, dtype=np.float64)
        if la.shape != lb.shape:
            return CrossCheck.failed(len(expected), reduced, tol, f"logits of shape {lb.shape} vs {la.shape}")
        scale = max(1.0, float(np.abs(la).max(initial=0.0)))
        error = float(np.abs(la - lb).max(initial=0.0)) / scale
        worst = max(worst, error)
        if la.size > 1 and int(np.argmax(la)) != int(np.argmax(lb)):
            top2 = np.sort(la)[-2:]
            # A near tie may flip within the tolerance; a clear winner may not.
            if (top2[1] - top2[0]) / scale > 2 * tol.logits:
                disagreements += 1
    detail = {"max_logit_error": worst, "top1_disagreements": float(disagreements)}
    if disagreements:
        reason = f"top-1 class differs on {disagreements} of {len(expected)} images"
    elif worst > tol.logits:
        reason = f"logits differ by {worst:.2e} of their range (allowed {tol.logits:.0e})"
    else:
        reason = None
    return CrossCheck(len(expected), reason is None, reduced, asdict(tol), detail, reason)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes a (N×4) and b (M×4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), (union == 0).astype(float))


def _matched(src: tuple, dst: tuple, tol: Tolerance) -> tuple[int, int]:
    """How many confident outputs of `src` have a counterpart in `dst` (greedy by score, one-to-one)."""
    boxes, scores, labels = src
    other_boxes, other_scores, other_labels = dst
    confident = np.flatnonzero(scores >= tol.min_score)
    if len(confident) == 0:
        return 0, 0
    iou = box_iou(boxes[confident], other_boxes)
    used = np.zeros(len(other_boxes), dtype=bool)
    hits = 0
    for row in np.argsort(-scores[confident], kind="stable"):
        i = confident[row]
        ok = (
            (~used)
            & (other_labels == labels[i])
            & (iou[row] >= tol.iou)
            & (np.abs(other_scores - scores[i]) <= tol.score)
        )
        if ok.any():
            used[int(np.argmax(np.where(ok, iou[row], -1.0)))] = True
            hits += 1
    return hits, len(confident)


Scored = tuple[np.ndarray, np.ndarray, np.ndarray]  # one image's boxes (xyxy), scores and labels


def compare_boxes(expected: Sequence[Scored], got: Sequence[Scored], tol: Tolerance, reduced: bool) -> CrossCheck:
    """Confident outputs (boxes, scores, labels per image) must have a counterpart on the other side."""
    hits = total = 0
    for ea, eb in zip(expected, got, strict=True):
        for src, dst in ((ea, eb), (eb, ea)):
            h, n = _matched(src, dst, tol)
            hits += h
            total += n
    fraction = hits / total if total else 1.0
    detail = {"confident_outputs": float(total), "matched_fraction": fraction}
    reason = None
    if fraction < tol.matched:
        reason = (
            f"only {fraction:.1%} of {total} confident outputs (score >= {tol.min_score}) have a counterpart "
            f"(IoU >= {tol.iou}, score within {tol.score}); {tol.matched:.0%} are needed"
        )
    return CrossCheck(len(expected), reason is None, reduced, asdict(tol), detail, reason)
