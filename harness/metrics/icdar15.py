"""ICDAR2015 "Incidental Scene Text" IoU protocol, as the official RRC Challenge 4 Task 1 script computes it.

The specification is `shared/specs/text-detection-metrics.md`:

* polygons are the integer quads (see `harness.metrics.text_records.integer_coordinates`);
* a detection is don't care when its intersection with some `###` region covers more than 0.5 of the
  detection's own area;
* matching is one-to-one and greedy in file order (ground-truth index, then detection index): a cared-for
  pair matches when IoU > 0.5 (strict) and neither side is matched yet. Greedy is not optimal: a ground
  truth takes its first free detection even where a later ground truth needed it;
* recall = matches / cared-for ground truths, precision = matches / cared-for detections, summed over the
  dataset (each 0 when its denominator is 0); h-mean = 2PR / (P + R), 0 when P + R = 0.

Both comparisons (IoU > 0.5 and the don't-care share > 0.5) are exact: a threshold is the decimal it is
written as, and pairs whose float ratio lies within a band around it (1e-9 of it plus a bound on the float's
own error) are decided in rational arithmetic (`quad_geometry.threshold_decisions`). An IoU of exactly 1/2
therefore never matches, even where its float reads 0.5000000000000341; outside the band the float decision
stands, so only exact and near-exact ties differ from plain float comparisons.

The official script reads confidences only in its AP mode (`CONFIDENCES`), where it also sorts each
image's detections by confidence before matching; this scorer, like its default mode, keeps file order.
IoU of two zero-area polygons, a division by zero in the official script, is 0 here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from harness.metrics.deteval import summarise
from harness.metrics.quad_geometry import (
    area_error_bounds,
    boxes,
    exact_intersection_area,
    exact_quad_area,
    overlapping_pairs,
    pair_intersection_areas,
    quad_areas,
    ratio_sign,
    ratios,
    threshold_decisions,
)
from harness.metrics.text_records import ImageDet, ImageGT, PackedText, pack

IOU_THRESHOLD = 0.5
DONT_CARE_THRESHOLD = 0.5


@dataclass(frozen=True)
class IoUImage:
    """ICDAR2015 result of one image: matched pairs (gt index, det index) and the cared-for counts."""

    matches: tuple[tuple[int, int], ...]
    gt_care: int
    det_care: int
    det_dont_care: tuple[int, ...]


def _greedy(pair_gt: np.ndarray, pair_det: np.ndarray, n_gt: int, n_det: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching of candidate pairs in (gt, det) order: each ground truth takes its first
    free detection. A pair alone in its row and its column is matched whatever the order; only the rest
    needs the sequential pass, and it never competes for those pairs' detections."""
    per_gt = np.bincount(pair_gt, minlength=n_gt)
    per_det = np.bincount(pair_det, minlength=n_det)
    alone = (per_gt[pair_gt] == 1) & (per_det[pair_det] == 1)
    taken = np.zeros(n_det, dtype=bool)
    done = np.zeros(n_gt, dtype=bool)
    extra_gt: list[int] = []
    extra_det: list[int] = []
    for g, d in zip(pair_gt[~alone].tolist(), pair_det[~alone].tolist(), strict=True):
        if not done[g] and not taken[d]:
            done[g] = taken[d] = True
            extra_gt.append(g)
            extra_det.append(d)
    matched_gt = np.concatenate([pair_gt[alone], np.array(extra_gt, dtype=np.int64)])
    matched_det = np.concatenate([pair_det[alone], np.array(extra_det, dtype=np.int64)])
    order = np.argsort(matched_gt, kind="stable")
    return matched_gt[order], matched_det[order]


def _exact_signs(
    packed: PackedText, pair_gt: np.ndarray, pair_det: np.ndarray, iou: bool
) -> Callable[[np.ndarray, Fraction], list[int]]:
    """For `threshold_decisions`: exact signs of the IoU (`iou`) or of the share of the detection's area
    inside the ground truth of chosen pairs, from exact polygon areas and intersections."""

    def signs(chosen: np.ndarray, threshold: Fraction) -> list[int]:
        out = []
        for g, d in zip(pair_gt[chosen].tolist(), pair_det[chosen].tolist(), strict=True):
            gt_quad, det_quad = packed.gt_quads[g], packed.det_quads[d]
            intersection, det_area = exact_intersection_area(gt_quad, det_quad), exact_quad_area(det_quad)
            if iou:
                out.append(ratio_sign(intersection, exact_quad_area(gt_quad) + det_area - intersection, threshold))
            else:
                out.append(ratio_sign(intersection, det_area, threshold))
        return out

    return signs


def _match(packed: PackedText) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matched (gt, det) global indices and the don't-care flags of the detections. The comparisons with the
    thresholds are exact (see `threshold_decisions`): a ratio's float error is at most its intersection's error
    bound over the detection's area (the share covered) or twice that over the union (the IoU)."""
    pair_gt, pair_det = overlapping_pairs(
        boxes(packed.gt_quads),
        packed.gt_offsets,
        boxes(packed.det_quads),
        packed.det_offsets,
        inclusive=False,
    )
    gt_pairs, det_pairs = packed.gt_quads[pair_gt], packed.det_quads[pair_det]
    intersection = pair_intersection_areas(gt_pairs, det_pairs)
    error = area_error_bounds(gt_pairs, det_pairs)
    gt_area, det_area = quad_areas(packed.gt_quads), quad_areas(packed.det_quads)
    pair_det_area = det_area[pair_det]
    covered = ratios(intersection, pair_det_area)
    covered_signs = _exact_signs(packed, pair_gt, pair_det, iou=False)
    over = threshold_decisions(covered, DONT_CARE_THRESHOLD, ">", ratios(error, pair_det_area), covered_signs)
    det_dont_care = np.zeros(len(det_area), dtype=bool)
    det_dont_care[pair_det[packed.gt_dont_care[pair_gt] & over]] = True
    union = gt_area[pair_gt] + pair_det_area - intersection
    iou = ratios(intersection, union)
    iou_signs = _exact_signs(packed, pair_gt, pair_det, iou=True)
    passes = threshold_decisions(iou, IOU_THRESHOLD, ">", ratios(2.0 * error, union), iou_signs)
    candidate = passes & ~packed.gt_dont_care[pair_gt] & ~det_dont_care[pair_det]
    matched_gt, matched_det = _greedy(pair_gt[candidate], pair_det[candidate], len(gt_area), len(det_area))
    return matched_gt, matched_det, det_dont_care


def iou_images(gt: list[ImageGT], det: list[ImageDet]) -> list[IoUImage]:
    """The ICDAR2015 protocol per image, for ground truth and detections given in the same image order."""
    packed = pack(gt, det)
    matched_gt, matched_det, det_dont_care = _match(packed)
    pairs: list[list[tuple[int, int]]] = [[] for _ in range(packed.images)]
    for g, d in zip(matched_gt.tolist(), matched_det.tolist(), strict=True):
        image = int(packed.gt_image[g])
        pairs[image].append((g - int(packed.gt_offsets[image]), d - int(packed.det_offsets[image])))
    results = []
    for image in range(packed.images):
        gt_rows = slice(packed.gt_offsets[image], packed.gt_offsets[image + 1])
        dont_care = det_dont_care[packed.det_offsets[image] : packed.det_offsets[image + 1]]
        results.append(
            IoUImage(
                matches=tuple(pairs[image]),
                gt_care=int((~packed.gt_dont_care[gt_rows]).sum()),
                det_care=int((~dont_care).sum()),
                det_dont_care=tuple(np.flatnonzero(dont_care).tolist()),
            )
        )
    return results


def icdar15(gt: list[ImageGT], det: list[ImageDet]) -> dict[str, float]:
    """ICDAR2015 IoU over a dataset: `iou_precision`, `iou_recall`, `iou_hmean` (global counts)."""
    packed = pack(gt, det)
    matched_gt, _, det_dont_care = _match(packed)
    matched = float(len(matched_gt))
    gt_care = int((~packed.gt_dont_care).sum())
    det_care = int((~det_dont_care).sum())
    precision, recall, hmean = summarise(matched, matched, gt_care, det_care)
    return {"iou_precision": precision, "iou_recall": recall, "iou_hmean": hmean}
