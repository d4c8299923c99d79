"""A small ICDAR2015-style IoU score for training logs (the harness's own scorers are the reference).

Per image: a detection is don't care when more than half of its area lies inside a `###` word; cared-for
pairs match one-to-one, greedily in ground-truth then detection order, when IoU > 0.5. Precision, recall
and h-mean are sums over the dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

IOU_THRESHOLD = 0.5
DONT_CARE_THRESHOLD = 0.5


@dataclass(frozen=True)
class IouScore:
    precision: float
    recall: float
    hmean: float
    matched: int
    ground_truths: int
    detections: int


def _area(poly: np.ndarray) -> float:
    return float(abs(cv2.contourArea(poly.astype(np.float32))))


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    hull_a = cv2.convexHull(a.astype(np.float32))
    hull_b = cv2.convexHull(b.astype(np.float32))
    area, _ = cv2.intersectConvexConvex(hull_a, hull_b)
    return max(float(area), 0.0)


def match_image(
    gt_quads: Sequence[np.ndarray], gt_care: Sequence[bool], detections: Sequence[np.ndarray]
) -> tuple[int, int, int]:
    """(matched, cared-for ground truths, cared-for detections) for one image."""
    dont_care = [q for q, care in zip(gt_quads, gt_care, strict=True) if not care]
    cared_gt = [q for q, care in zip(gt_quads, gt_care, strict=True) if care]
    cared_det = []
    for det in detections:
        area = _area(det)
        if area > 0 and any(_intersection(det, q) / area > DONT_CARE_THRESHOLD for q in dont_care):
            continue
        cared_det.append(det)
    det_taken = [False] * len(cared_det)
    matched = 0
    for g in cared_gt:
        g_area = _area(g)
        for j, det in enumerate(cared_det):
            if det_taken[j]:
                continue
            inter = _intersection(g, det)
            union = g_area + _area(det) - inter
            if union > 0 and inter / union > IOU_THRESHOLD:
                det_taken[j] = True
                matched += 1
                break
    return matched, len(cared_gt), len(cared_det)


def iou_hmean(
    per_image: Iterable[tuple[Sequence[np.ndarray], Sequence[bool], Sequence[np.ndarray]]],
) -> IouScore:
    """Score (ground-truth quads, cared-for flags, detected polygons) triples, one per image."""
    matched = total_gt = total_det = 0
    for gt_quads, gt_care, detections in per_image:
        m, g, d = match_image(gt_quads, gt_care, detections)
        matched, total_gt, total_det = matched + m, total_gt + g, total_det + d
    recall = matched / total_gt if total_gt else 0.0
    precision = matched / total_det if total_det else 0.0
    hmean = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return IouScore(precision, recall, hmean, matched, total_gt, total_det)
