"""The confidence interval of a COCO AP figure by the bootstrap over test images (harness.metrics.intervals).

AP is not a mean over images: each category's precision-recall curve is built from all its detections, sorted by
score, over the whole split. Resampling images therefore means re-accumulating: COCOeval's per-image matching
(`evaluateImg`, from pycocotools, which keeps its per-image results) is done once; then, for every resample,
each detection and each ground-truth box counts as often as its image was drawn, and the curve and its
101-point interpolated precision are computed exactly as `COCOeval.accumulate` does, for all resamples at once.
With every image drawn once this reproduces the scorer's AP (a test holds it to 1e-12).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.metrics.coco import (
    AREA_RANGES,
    SUMMARY_KEYS,
    pycocotools_apis,
    renumber_annotation_ids,
    validate_ground_truth,
    validate_results,
)
from harness.metrics.intervals import SEED, Interval, bootstrap

SAMPLES = 200  # each resample re-accumulates every category's curve; the ends settle to ~0.002 at this count
CHUNK = 25  # resamples accumulated together (bounds memory: CHUNK × IoU thresholds × detections)


@dataclass
class CategoryMatches:
    """One category's detections over the split, sorted as COCOeval sorts them, and its ground truth per image."""

    image: np.ndarray  # (D,) image position of each detection
    true_positive: np.ndarray  # (T, D) bool
    false_positive: np.ndarray  # (T, D) bool
    positives: np.ndarray  # (images,) ground-truth boxes that are not ignored, per image


def per_image_matches(
    ground_truth: dict[str, Any], results: list[dict[str, Any]], area: str, max_dets: int
) -> tuple[list[CategoryMatches], np.ndarray, int]:
    """COCOeval's per-image matching at one area range and detection limit: the matches of each category with
    ground truth, the IoU thresholds and the number of images."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = validate_ground_truth(ground_truth)
    dets = validate_results(results, gt)
    renumber_annotation_ids(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(*pycocotools_apis(COCO, gt, dets), "bbox")
        evaluator.params.areaRng = [list(AREA_RANGES[area])]
        evaluator.params.areaRngLbl = [area]
        evaluator.params.maxDets = [max_dets]
        evaluator.evaluate()
    image_ids = list(evaluator.params.imgIds)
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    thresholds = len(evaluator.params.iouThrs)
    per_category = []
    for k, _ in enumerate(evaluator.params.catIds):
        found = [e for e in evaluator.evalImgs[k * len(image_ids) : (k + 1) * len(image_ids)] if e is not None]
        positives = np.zeros(len(image_ids))
        if not found:
            per_category.append(CategoryMatches(np.zeros(0, int), *(np.zeros((thresholds, 0), bool),) * 2, positives))
            continue
        scores = np.concatenate([e["dtScores"][:max_dets] for e in found])
        order = np.argsort(-scores, kind="mergesort")  # as COCOeval.accumulate
        matched = np.concatenate([e["dtMatches"][:, :max_dets] for e in found], axis=1)[:, order]
        ignored = np.concatenate([e["dtIgnore"][:, :max_dets] for e in found], axis=1)[:, order]
        image = np.concatenate([np.full(min(len(e["dtScores"]), max_dets), position[e["image_id"]]) for e in found])
        for e in found:
            positives[position[e["image_id"]]] = np.count_nonzero(e["gtIgnore"] == 0)
        kept = ~ignored.astype(bool)
        per_category.append(CategoryMatches(image[order], (matched != 0) & kept, (matched == 0) & kept, positives))
    return per_category, np.asarray(evaluator.params.iouThrs), len(image_ids)


def weighted_ap(categories: list[CategoryMatches], counts: np.ndarray, iou_mask: np.ndarray) -> np.ndarray:
    """AP of each resample (`counts`: resamples × images), as COCOeval.accumulate and summarize compute it:
    per category and IoU threshold, precision interpolated at 101 recall points, averaged over the valid ones."""
    recall_points = np.linspace(0.0, 1.0, 101)
    samples = len(counts)
    totals = np.zeros(samples)
    valid = np.zeros(samples)
    for category in categories:
        positives = counts @ category.positives  # (S,)
        has_truth = positives > 0
        if not has_truth.any():
            continue
        per_threshold = np.zeros((samples, int(iou_mask.sum())))
        weights = counts[:, category.image]  # (S, D)
        for j, t in enumerate(np.flatnonzero(iou_mask)):
            tp = np.cumsum(weights * category.true_positive[t], axis=1)
            fp = np.cumsum(weights * category.false_positive[t], axis=1)
            for s in np.flatnonzero(has_truth):
                per_threshold[s, j] = _interpolated_precision(tp[s], fp[s], positives[s], recall_points)
        totals += np.where(has_truth, per_threshold.sum(axis=1), 0.0)
        valid += np.where(has_truth, per_threshold.shape[1], 0)
    return np.divide(totals, valid, out=np.full(samples, -1.0), where=valid > 0)


def _interpolated_precision(tp: np.ndarray, fp: np.ndarray, positives: float, points: np.ndarray) -> float:
    """Mean precision at the recall points, with COCOeval's envelope (precision made non-increasing)."""
    if tp.size == 0:
        return 0.0
    recall = tp / positives
    precision = tp / (tp + fp + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, points, side="left")
    inside = index < len(precision)
    return float(precision[index[inside]].sum() / len(points))


def coco_interval(
    ground_truth: dict[str, Any], results: list[dict[str, Any]], key: str, samples: int = SAMPLES, seed: int = SEED
) -> Interval | None:
    """The bootstrap interval of a COCO precision figure (`AP`, `AP50`, `AP_small`, ...); None for a recall
    figure or a split without images."""
    kind, iou, area, max_dets = SUMMARY_KEYS[key]
    if kind != "precision":
        return None
    categories, thresholds, images = per_image_matches(ground_truth, results, area, max_dets)
    iou_mask = np.isclose(thresholds, iou) if iou is not None else np.ones(len(thresholds), bool)

    def statistic(counts: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [weighted_ap(categories, counts[i : i + CHUNK], iou_mask) for i in range(0, len(counts), CHUNK)]
        )

    return bootstrap(statistic, images, samples, seed)
