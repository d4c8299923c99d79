"""Exact threshold decisions in the text-detection scorers: pairs whose ratio is exactly at a threshold.

The quads below were found by a search over tilted rectangles with integer corners at image-like positions:
their area recall, precision or IoU is exactly 4/5, 2/5 or 1/2, while the float computation of the
intersection (whose crossing points are rounded) lands on the wrong side of the threshold. Each case
records the float value the scorers compared before the exact decisions, and checks that it still is on
the wrong side, so that the case keeps testing what it is meant to.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from harness.metrics.deteval import DetEvalParams, deteval, deteval_images
from harness.metrics.icdar15 import icdar15, iou_images
from harness.metrics.quad_geometry import (
    exact_intersection_area,
    exact_quad_area,
    exact_threshold,
    pair_intersection_areas,
    quad_areas,
    ratio_sign,
    threshold_decisions,
)
from harness.metrics.text_records import ImageDet, ImageGT

# Area recall exactly 4/5: gt area 160, detection area 200, intersection 128 (precision 0.64).
# The float intersection gives recall 0.7999999999999773: `>= 0.8` failed, nothing matched.
RECALL_GT = [[115, 310], [131, 318], [127, 326], [111, 318]]
RECALL_DET = [[115, 308], [135, 318], [131, 326], [111, 316]]
# Area precision exactly 2/5: gt area 24, detection area 52, intersection 104/5 (recall 0.8667).
# Float: precision 0.39999999999998603, so `>= 0.4` failed and nothing matched.
PRECISION_GT = [[937, 44], [943, 50], [941, 52], [935, 46]]
PRECISION_DET = [[937, 44], [943, 48], [939, 54], [933, 50]]
# A detection with exactly 2/5 of its area (10 of 25) inside a ### region of area 30.
# Float: 0.40000000000058206, so `> 0.4` held and the detection was wrongly dropped as don't care.
COVERED_04_GT = [[399, 656], [405, 659], [403, 663], [397, 660]]
COVERED_04_DET = [[398, 662], [403, 652], [405, 653], [400, 663]]
# IoU exactly 1/2: a tilted gt of area 40 and an axis-aligned detection of area 40 sharing 80/3.
# Float: IoU 0.5000000000000341, so `> 0.5` held and the pair matched.
IOU_GT = [[213, 273], [225, 277], [224, 280], [212, 276]]
IOU_DET = [[214, 274], [224, 274], [224, 278], [214, 278]]
# A detection (area 32) with exactly half of its area (16) inside a ### region of area 60.
# Float: 0.5000000000001137, so `> 0.5` held and the detection was wrongly dropped as don't care.
COVERED_05_GT = [[166, 336], [175, 333], [177, 339], [168, 342]]
COVERED_05_DET = [[171, 333], [179, 333], [179, 337], [171, 337]]


def box(xmin: float, ymin: float, xmax: float, ymax: float) -> list[list[float]]:
    return [[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]]


def truth(quad: list[list[float]], dont_care: bool = False) -> list[ImageGT]:
    return [ImageGT(polygons=np.array([quad], dtype=float), dont_care=np.array([dont_care]))]


def found(quad: list[list[float]]) -> list[ImageDet]:
    return [ImageDet(polygons=np.array([quad], dtype=float), scores=np.ones(1))]


def float_ratio(gt: list[list[float]], det: list[list[float]], kind: str) -> float:
    """The ratio as the float path computes it."""
    first, second = np.array([gt], dtype=float), np.array([det], dtype=float)
    intersection = pair_intersection_areas(first, second)[0]
    gt_area, det_area = quad_areas(first)[0], quad_areas(second)[0]
    return {
        "recall": intersection / gt_area,
        "precision": intersection / det_area,
        "iou": intersection / (gt_area + det_area - intersection),
    }[kind]


def exact_ratio(gt: list[list[float]], det: list[list[float]], kind: str) -> Fraction:
    first, second = np.array(gt, dtype=float), np.array(det, dtype=float)
    intersection = exact_intersection_area(first, second)
    gt_area, det_area = exact_quad_area(first), exact_quad_area(second)
    return {
        "recall": intersection / gt_area,
        "precision": intersection / det_area,
        "iou": intersection / (gt_area + det_area - intersection),
    }[kind]


@pytest.mark.parametrize(
    ("gt", "det", "kind", "exact", "naive"),
    [
        (RECALL_GT, RECALL_DET, "recall", Fraction(4, 5), 0.7999999999999773),
        (PRECISION_GT, PRECISION_DET, "precision", Fraction(2, 5), 0.39999999999998603),
        (COVERED_04_GT, COVERED_04_DET, "precision", Fraction(2, 5), 0.40000000000058206),
        (IOU_GT, IOU_DET, "iou", Fraction(1, 2), 0.5000000000000341),
        (COVERED_05_GT, COVERED_05_DET, "precision", Fraction(1, 2), 0.5000000000001137),
    ],
)
def test_the_cases_are_exact_ties_that_floats_miss(gt, det, kind, exact, naive) -> None:
    assert exact_ratio(gt, det, kind) == exact
    assert float_ratio(gt, det, kind) == naive != float(exact)


def test_thresholds_are_read_as_decimals() -> None:
    assert exact_threshold(0.8) == Fraction(4, 5)
    assert exact_threshold(0.4) == Fraction(2, 5)
    assert Fraction(0.8) > Fraction(4, 5)  # the float 0.8 itself: 4/5 would fail `>= 0.8` against it


def test_deteval_quad_recall_of_exactly_four_fifths_passes() -> None:
    # Recall 4/5 >= 0.8, precision 0.64 >= 0.4, the only pair: a one-to-one match (before: nothing).
    (image,) = deteval_images(truth(RECALL_GT), found(RECALL_DET), "quad")
    assert image.matches == (((0,), (0,), "one-to-one"),)
    assert deteval(truth(RECALL_GT), found(RECALL_DET), "quad")["deteval_hmean"] == 1.0


def test_deteval_quad_precision_of_exactly_two_fifths_passes() -> None:
    # Precision 2/5 >= 0.4, recall 0.8667 >= 0.8: a one-to-one match (before: nothing).
    (image,) = deteval_images(truth(PRECISION_GT), found(PRECISION_DET), "quad")
    assert image.matches == (((0,), (0,), "one-to-one"),)


def test_deteval_quad_dont_care_needs_more_than_two_fifths() -> None:
    # 2/5 of the detection inside a ### region is not > 0.4: the detection stays cared for, an unmatched
    # false positive (before: dropped as don't care, with no cared detection left).
    (image,) = deteval_images(truth(COVERED_04_GT, dont_care=True), found(COVERED_04_DET), "quad")
    assert (image.det_care, image.det_dont_care, image.matches) == (1, (), ())


def test_icdar15_iou_of_exactly_one_half_does_not_match() -> None:
    # IoU 1/2 is not > 0.5 (before: matched, P = R = 1).
    assert iou_images(truth(IOU_GT), found(IOU_DET))[0].matches == ()
    assert icdar15(truth(IOU_GT), found(IOU_DET)) == {"iou_precision": 0.0, "iou_recall": 0.0, "iou_hmean": 0.0}


def test_icdar15_dont_care_needs_more_than_one_half() -> None:
    # Half of the detection inside a ### region is not > 0.5: it stays a cared false positive (before: don't care).
    (image,) = iou_images(truth(COVERED_05_GT, dont_care=True), found(COVERED_05_DET))
    assert (image.det_care, image.det_dont_care) == (1, ())


def test_rect_form_ties_far_from_the_origin() -> None:
    # Inclusive integer rectangles: areas and intersections are exact integers, so their float ratios were
    # already right; the exact path must agree. gt 1000..1009 x 2000..2009 (100 px).
    gt = truth(box(1000, 2000, 1009, 2009))
    # 1000..1009 x 2000..2007 (80 px) inside it: recall exactly 4/5 -> a match.
    assert deteval(gt, found(box(1000, 2000, 1009, 2007)), "rect")["deteval_hmean"] == 1.0
    # 1000..1009 x 2000..2024 (250 px) over it: precision exactly 2/5 -> a match.
    assert deteval(gt, found(box(1000, 2000, 1009, 2024)), "rect")["deteval_hmean"] == 1.0
    # 1000..1009 x 2000..2006 (70 px): recall 0.7 -> nothing.
    assert deteval(gt, found(box(1000, 2000, 1009, 2006)), "rect")["deteval_hmean"] == 0.0
    # As a ### region, 100 of the detection's 250 px (exactly 2/5) is not > 0.4: still cared for.
    (image,) = deteval_images(truth(box(1000, 2000, 1009, 2009), True), found(box(1000, 2000, 1009, 2024)))
    assert image.det_care == 1
    # ICDAR2015 on axis-aligned rectangles: IoU exactly 1/2 does not match, 0.6 does.
    square = truth(box(5000, 7000, 5010, 7010))
    assert icdar15(square, found(box(5000, 7000, 5010, 7005)))["iou_hmean"] == 0.0
    assert icdar15(square, found(box(5000, 7000, 5010, 7006)))["iou_hmean"] == 1.0


@pytest.mark.parametrize(
    ("form", "gt", "det"),
    [
        # Inclusive 30 x 30 px squares (0..29) shifted by (3, 3): recall = precision = 729/900 = 0.81.
        ("rect", box(0, 0, 29, 29), box(3, 3, 32, 32)),
        # Polygon squares of side 30 shifted by (3, 3): recall = precision = 0.81.
        ("quad", box(0, 0, 30, 30), box(3, 3, 33, 33)),
    ],
)
def test_centre_distance_exactly_at_the_threshold(form: str, gt, det) -> None:
    # Centre distance 3√2, diagonals 30√2 each: normalised 2·3√2 / 60√2 = 1/10 exactly. Its float is
    # 0.09999999999999999, which passed `< 0.1`; exactly, 1/10 < 1/10 fails and nothing matches.
    assert deteval(truth(gt), found(det), form, DetEvalParams(centre_threshold=0.1))["deteval_hmean"] == 0.0
    assert deteval(truth(gt), found(det), form, DetEvalParams(centre_threshold=0.1000001))["deteval_hmean"] == 1.0
    assert deteval(truth(gt), found(det), form)["deteval_hmean"] == 1.0


def test_float_coordinates_are_decided_exactly() -> None:
    # The scorers round corners to integers, but the exact geometry takes any floats: the IoU case scaled by
    # 1/4 (corners such as 53.25, 68.25), still an IoU of exactly 1/2, still read 0.5000000000000341 in floats.
    gt, det = np.array([IOU_GT], dtype=float) / 4, np.array([IOU_DET], dtype=float) / 4
    assert gt[0, 0].tolist() == [53.25, 68.25]
    intersection = pair_intersection_areas(gt, det)
    gt_area, det_area = quad_areas(gt), quad_areas(det)
    iou = intersection / (gt_area + det_area - intersection)
    assert iou.tolist() == [0.5000000000000341]
    exact_area = exact_intersection_area(gt[0], det[0])
    assert exact_area == Fraction(80, 3) / 16

    def signs(chosen: np.ndarray, threshold: Fraction) -> list[int]:
        union = exact_quad_area(gt[0]) + exact_quad_area(det[0]) - exact_area
        return [ratio_sign(exact_area, union, threshold) for _ in chosen.tolist()]

    assert threshold_decisions(iou, 0.5, ">", 0.0, signs).tolist() == [False]
    assert threshold_decisions(iou, 0.5, ">=", 0.0, signs).tolist() == [True]
    assert (iou > 0.5).tolist() == [True]  # the naive decision
