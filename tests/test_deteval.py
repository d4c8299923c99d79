"""ICDAR2013 DetEval: hand-worked cases for every rule of the protocol, and a cross-check of the vectorised
scorer against a direct transcription of the official loops on random scenes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.errors import PredictionError
from harness.metrics.deteval import DetEvalParams, deteval, deteval_images
from harness.metrics.quad_geometry import pair_intersection_areas, quad_areas
from harness.metrics.text_records import ImageDet, ImageGT, integer_coordinates


def box(xmin: float, ymin: float, xmax: float, ymax: float) -> list[list[float]]:
    return [[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]]


def truth(*boxes: list[list[float]], dont_care: tuple[int, ...] = ()) -> ImageGT:
    flags = np.array([index in dont_care for index in range(len(boxes))], dtype=bool)
    return ImageGT(polygons=np.array(boxes, dtype=float).reshape(-1, 4, 2), dont_care=flags)


def found(*boxes: list[list[float]]) -> ImageDet:
    return ImageDet(polygons=np.array(boxes, dtype=float).reshape(-1, 4, 2), scores=np.ones(len(boxes)))


def figures(gt: list[ImageGT], det: list[ImageDet], form: str = "rect", **params: float) -> tuple[float, ...]:
    result = deteval(gt, det, form, DetEvalParams(**params))
    return tuple(round(result[key], 4) for key in ("deteval_precision", "deteval_recall", "deteval_hmean"))


def test_integer_coordinates_round_half_away_from_zero() -> None:
    assert integer_coordinates(np.array([-0.5, 0.5, 1.49, 2.5, -2.6])).tolist() == [-1, 1, 1, 3, -3]


def test_one_to_one_and_a_false_positive() -> None:
    # Two words each found exactly, plus a detection on empty background:
    # recall 2/2, precision 2/3, h-mean 2*(2/3)*1/(2/3+1) = 0.8.
    gt = [truth(box(0, 0, 49, 9), box(100, 0, 149, 9))]
    det = [found(box(0, 0, 49, 9), box(100, 0, 149, 9), box(300, 300, 320, 310))]
    assert figures(gt, det) == (0.6667, 1.0, 0.8)
    (image,) = deteval_images(gt, det)
    assert image.matches == (((0,), (0,), "one-to-one"), ((1,), (1,), "one-to-one"))


def test_rectangle_areas_are_pixel_inclusive() -> None:
    # gt 0..9 is 10 x 10 = 100 pixels; det 1..10 likewise; they share 1..9 = 9 x 9 = 81 pixels, so
    # recall = precision = 0.81 >= 0.8: a one-to-one match in the official rectangle form.
    # As polygons the same corners give areas 9 x 9 = 81 and an intersection 8 x 8 = 64:
    # 64/81 = 0.790 < 0.8, and with a single overlap neither a split nor a merge applies: nothing matches.
    gt, det = [truth(box(0, 0, 9, 9))], [found(box(1, 1, 10, 10))]
    assert figures(gt, det, "rect") == (1.0, 1.0, 1.0)
    assert figures(gt, det, "quad") == (0.0, 0.0, 0.0)


def test_rect_form_uses_the_bounds_of_integer_corners() -> None:
    # A tilted quad becomes its bounding rectangle 0..10 x 0..10 (11 x 11 = 121 pixels) after rounding
    # 9.6 -> 10 and 0.4 -> 0; the detection 0..10 x 0..10 equals it: a one-to-one match.
    gt = [ImageGT(polygons=np.array([[[0.4, 2], [9.6, 0], [10, 8], [1, 10]]]), dont_care=np.array([False]))]
    det = [found(box(0, 0, 10, 10))]
    (image,) = deteval_images(gt, det, "rect")
    assert image.matches == (((0,), (0,), "one-to-one"),)


def test_split_one_ground_truth_over_two_detections() -> None:
    # gt 0..99 x 0..9 (1000 px) found as two halves of 500 px: each recall 0.5, precision 1.0.
    # No one-to-one (recall < 0.8); two cared detections overlap the gt and the summed recall is 1.0 >= 0.8:
    # a split. Recall sum += 0.8, precision sum += 0.8 * 2 = 1.6. Recall 0.8/1, precision 1.6/2 = 0.8.
    gt = [truth(box(0, 0, 99, 9))]
    det = [found(box(0, 0, 49, 9), box(50, 0, 99, 9))]
    assert figures(gt, det) == (0.8, 0.8, 0.8)
    (image,) = deteval_images(gt, det)
    assert image.matches == (((0,), (0, 1), "one-to-many"),)
    assert (image.recall_sum, image.precision_sum) == (0.8, 1.6)


def test_split_with_a_single_qualifying_detection_counts_as_one_to_one() -> None:
    # gt 0..99 x 0..9 (1000 px). d0 = 0..84 (850 px): recall 0.85, precision 1.0. d1 = 80..199 (1200 px)
    # overlaps the gt on 80..99 = 200 px: recall 0.2, precision 0.167 < 0.4.
    # Step 3 fails: d1 also overlaps the gt (not a single overlap). Step 4: two cared detections overlap
    # the gt ("at least two"), but only d0 has precision >= 0.4; its recall 0.85 >= 0.8, so the gt matches d0
    # alone, weighted 1.0 / 1.0 as a one-to-one match. d1 stays a false positive.
    # Recall 1/1, precision 1/2, h-mean 2 * 0.5 * 1 / 1.5 = 0.6667.
    gt = [truth(box(0, 0, 99, 9))]
    det = [found(box(0, 0, 84, 9), box(80, 0, 199, 9))]
    assert figures(gt, det) == (0.5, 1.0, 0.6667)
    (image,) = deteval_images(gt, det)
    assert image.matches == (((0,), (0,), "one-to-many"),)
    assert (image.recall_sum, image.precision_sum) == (1.0, 1.0)


def test_merge_two_ground_truths_in_one_detection() -> None:
    # g0 0..9 and g1 20..29 (100 px each) inside one detection 0..29 (300 px): recall 1.0 each,
    # precision 1/3 each, so no one-to-one and no split (precision < 0.4). Merge: two cared gts overlap the
    # detection, both with recall >= 0.8, summed precision 0.6667 >= 0.4. Recall sum += 1.0 * 2,
    # precision sum += 1.0: recall 2/2, precision 1/1.
    gt = [truth(box(0, 0, 9, 9), box(20, 0, 29, 9))]
    det = [found(box(0, 0, 29, 9))]
    assert figures(gt, det) == (1.0, 1.0, 1.0)
    (image,) = deteval_images(gt, det)
    assert image.matches == (((0, 1), (0,), "many-to-one"),)


def test_merge_with_a_single_qualifying_ground_truth_counts_as_one_to_one() -> None:
    # g0 0..9 (100 px) lies in d 0..11 (120 px): recall 1.0, precision 0.833. d also overlaps g1 10..49
    # (400 px) on 10..11 = 20 px: recall 0.05. Step 3 fails (d overlaps two cared gts); step 4 fails for
    # g0 (only one detection overlaps it). Step 5: two cared gts overlap d, only g0 has recall >= 0.8,
    # precision 0.833 >= 0.4: matched 1.0 / 1.0. Recall 1/2, precision 1/1, h-mean 0.6667.
    gt = [truth(box(0, 0, 9, 9), box(10, 0, 49, 9))]
    det = [found(box(0, 0, 11, 9))]
    assert figures(gt, det) == (1.0, 0.5, 0.6667)


def test_centre_distance_and_the_at_least_two_conditions() -> None:
    # g 0..9 and d 1..10: recall = precision = 0.81. Centres (5, 5) and (6, 6), distance sqrt(2); inclusive
    # diagonals sqrt(200) each: normalised distance 2 * 1.414 / 28.28 = 0.1 < 1, a match by default.
    # (With the official threshold 1 this condition cannot fail for overlapping rectangles; see deteval.py.)
    # With the threshold tightened to 0.05 the one-to-one fails, and the fallbacks do not rescue it: one
    # detection overlaps g (a split needs at least two) and one gt overlaps d (a merge needs at least two).
    gt, det = [truth(box(0, 0, 9, 9))], [found(box(1, 1, 10, 10))]
    assert figures(gt, det) == (1.0, 1.0, 1.0)
    assert figures(gt, det, centre_threshold=0.05) == (0.0, 0.0, 0.0)
    assert figures(gt, det, centre_threshold=0.11) == (1.0, 1.0, 1.0)


def test_dont_care_ground_truth_and_filtered_detections() -> None:
    # g0 is ### (0..9 x 0..9, 100 px); g1 50..59 is found by d1. A detection covering g0 with more than
    # 0.4 of its own area is don't care and is not counted:
    #   d = 0..9 x 0..23 (240 px): 100/240 = 0.417 > 0.4 -> excluded: recall 1/1, precision 1/1;
    #   d = 0..9 x 0..24 (250 px): 100/250 = 0.4, not > 0.4 -> a cared false positive: precision 1/2.
    # The don't-care gt itself is never in the recall denominator.
    words = truth(box(0, 0, 9, 9), box(50, 0, 59, 9), dont_care=(0,))
    assert figures([words], [found(box(0, 0, 9, 23), box(50, 0, 59, 9))]) == (1.0, 1.0, 1.0)
    assert figures([words], [found(box(0, 0, 9, 24), box(50, 0, 59, 9))]) == (0.5, 1.0, 0.6667)
    (image,) = deteval_images([words], [found(box(0, 0, 9, 23), box(50, 0, 59, 9))])
    assert (image.gt_care, image.det_care, image.det_dont_care) == (1, 1, (0,))


def test_image_without_ground_truth_counts_against_precision_only() -> None:
    # Image A: one word found. Image B: no words, two detections. Global sums: recall 1/1,
    # precision 1/3, h-mean 2 * (1/3) * 1 / (4/3) = 0.5.
    gt = [truth(box(0, 0, 9, 9)), ImageGT.empty()]
    det = [found(box(0, 0, 9, 9)), found(box(0, 0, 5, 5), box(20, 20, 30, 30))]
    assert figures(gt, det) == (0.3333, 1.0, 0.5)
    assert deteval_images(gt, det)[1].recall == 1.0


def test_no_detections() -> None:
    # Image A: one word found; image B: one word, nothing detected. Recall 1/2, precision 1/1.
    gt = [truth(box(0, 0, 9, 9)), truth(box(0, 0, 9, 9))]
    assert figures(gt, [found(box(0, 0, 9, 9)), ImageDet.empty()]) == (1.0, 0.5, 0.6667)
    # Nothing detected anywhere: precision is 0 by convention (no cared detections), h-mean 0.
    assert figures(gt, [ImageDet.empty(), ImageDet.empty()]) == (0.0, 0.0, 0.0)
    assert figures([], []) == (0.0, 0.0, 0.0)


def test_split_sum_is_rounded_to_four_decimals() -> None:
    # gt 0..999 x 0..99 = 100000 px, found as two side-by-side pieces that lie inside it (precision 1):
    #   0..399 x 0..99 (40000 px, recall 0.4) + 400..803 x 0..98 (404 x 99 = 39996 px, recall 0.39996):
    #   sum 0.79996 rounds to 0.8 >= 0.8 -> split: recall 0.8/1, precision 1.6/2 = 0.8;
    #   0..397 x 0..99 (39800 px) + 398..803 x 0..98 (406 x 99 = 40194 px): sum 0.79994 rounds to 0.7999
    #   < 0.8 -> nothing matches.
    gt = [truth(box(0, 0, 999, 99))]
    assert figures(gt, [found(box(0, 0, 399, 99), box(400, 0, 803, 98))]) == (0.8, 0.8, 0.8)
    assert figures(gt, [found(box(0, 0, 397, 99), box(398, 0, 803, 98))]) == (0.0, 0.0, 0.0)


def test_thresholds_are_inclusive() -> None:
    # gt 0..9 x 0..9 (100 px); det 0..9 x 0..7 (80 px) inside it: recall exactly 0.8 >= 0.8 -> match.
    # det 0..9 x 0..24 (250 px) over it: precision exactly 0.4 >= 0.4 -> match.
    gt = [truth(box(0, 0, 9, 9))]
    assert figures(gt, [found(box(0, 0, 9, 7))]) == (1.0, 1.0, 1.0)
    assert figures(gt, [found(box(0, 0, 9, 24))]) == (1.0, 1.0, 1.0)
    assert figures(gt, [found(box(0, 0, 9, 6))]) == (0.0, 0.0, 0.0)


def test_misaligned_inputs_are_refused() -> None:
    with pytest.raises(PredictionError, match="1 detection records for 2 ground-truth images"):
        deteval([ImageGT.empty(), ImageGT.empty()], [ImageDet.empty()])
    with pytest.raises(PredictionError, match=r"expected \(N, 4, 2\)"):
        ImageDet(polygons=np.zeros((2, 5, 2)), scores=np.ones(2))
    with pytest.raises(ValueError, match="form"):
        deteval([], [], "polygon")


# A direct transcription of the official script's loops (rectangle and polygon forms), used to check the
# vectorised scorer on random scenes, including contested splits and sums near the thresholds.


def _reference_image(gt: ImageGT, det: ImageDet, form: str) -> tuple[float, float, int, int]:
    gts, dets = integer_coordinates(gt.polygons), integer_coordinates(det.polygons)
    n_gt, n_det = len(gts), len(dets)
    dont_care_gt = [g for g in range(n_gt) if gt.dont_care[g]]

    def rect(quad: np.ndarray) -> tuple[float, float, float, float]:
        return quad[:, 0].min(), quad[:, 1].min(), quad[:, 0].max(), quad[:, 1].max()

    if form == "rect":
        gt_rects, det_rects = [rect(q) for q in gts], [rect(q) for q in dets]

        def area(r: tuple[float, ...]) -> float:
            return (r[2] - r[0] + 1) * (r[3] - r[1] + 1)

        def inter(a: tuple[float, ...], b: tuple[float, ...]) -> float:
            dx = min(a[2], b[2]) - max(a[0], b[0]) + 1
            dy = min(a[3], b[3]) - max(a[1], b[1]) + 1
            return dx * dy if dx >= 0 and dy >= 0 else 0.0

        def centre(r: tuple[float, ...]) -> tuple[float, float]:
            return r[0] + (r[2] - r[0] + 1) / 2.0, r[1] + (r[3] - r[1] + 1) / 2.0

        def diag(r: tuple[float, ...]) -> float:
            return math.sqrt((r[3] - r[1] + 1) ** 2 + (r[2] - r[0] + 1) ** 2)

        gt_area, det_area = [area(r) for r in gt_rects], [area(r) for r in det_rects]
        inter_mat = np.array([[inter(a, b) for b in det_rects] for a in gt_rects]).reshape(n_gt, n_det)
        gt_centre, det_centre = [centre(r) for r in gt_rects], [centre(r) for r in det_rects]
        gt_diag, det_diag = [diag(r) for r in gt_rects], [diag(r) for r in det_rects]
    else:
        gt_area, det_area = quad_areas(gts).tolist(), quad_areas(dets).tolist()
        every_pair = pair_intersection_areas(np.repeat(gts, n_det, axis=0), np.tile(dets, (n_gt, 1, 1)))
        inter_mat = every_pair.reshape(n_gt, n_det)
        gt_centre, det_centre = gts.mean(axis=1).tolist(), dets.mean(axis=1).tolist()

        def bbox_diag(q: np.ndarray) -> float:
            size = q.max(axis=0) - q.min(axis=0)
            return math.sqrt(size[1] ** 2 + size[0] ** 2)

        gt_diag, det_diag = [bbox_diag(q) for q in gts], [bbox_diag(q) for q in dets]

    recall_mat = np.zeros((n_gt, n_det))
    precision_mat = np.zeros((n_gt, n_det))
    for g in range(n_gt):
        for d in range(n_det):
            recall_mat[g, d] = 0 if gt_area[g] == 0 else inter_mat[g, d] / gt_area[g]
            precision_mat[g, d] = 0 if det_area[d] == 0 else inter_mat[g, d] / det_area[d]
    dont_care_det = [d for d in range(n_det) if any(precision_mat[g, d] > 0.4 for g in dont_care_gt)]
    gt_care, det_care = n_gt - len(dont_care_gt), n_det - len(dont_care_det)
    if n_det == 0:
        return 0.0, 0.0, gt_care, det_care

    def both(g: int, d: int) -> bool:
        return recall_mat[g, d] >= 0.8 and precision_mat[g, d] >= 0.4

    def overlaps_of_gt(g: int) -> int:
        return sum(1 for d in range(n_det) if d not in dont_care_det and recall_mat[g, d] > 0)

    def overlaps_of_det(d: int) -> int:
        return sum(1 for g in range(n_gt) if g not in dont_care_gt and recall_mat[g, d] > 0)

    gt_done, det_done = [False] * n_gt, [False] * n_det
    recall_sum = precision_sum = 0.0
    for g in range(n_gt):
        for d in range(n_det):
            if gt_done[g] or det_done[d] or g in dont_care_gt or d in dont_care_det:
                continue
            unique = sum(both(g, j) for j in range(n_det)) == 1 and sum(both(i, d) for i in range(n_gt)) == 1
            if unique and both(g, d) and overlaps_of_gt(g) == 1 and overlaps_of_det(d) == 1:
                distance = math.dist(gt_centre[g], det_centre[d]) / (gt_diag[g] + det_diag[d]) * 2.0
                if distance < 1:
                    gt_done[g] = det_done[d] = True
                    recall_sum += 1.0
                    precision_sum += 1.0
    for g in range(n_gt):
        if g in dont_care_gt:
            continue
        total, chosen = 0, []
        for d in range(n_det):
            if not gt_done[g] and not det_done[d] and d not in dont_care_det and precision_mat[g, d] >= 0.4:
                total += recall_mat[g, d]
                chosen.append(d)
        if round(total, 4) >= 0.8 and overlaps_of_gt(g) >= 2:
            gt_done[g] = True
            recall_sum += 1.0 if len(chosen) == 1 else 0.8
            precision_sum += 1.0 if len(chosen) == 1 else 0.8 * len(chosen)
            for d in chosen:
                det_done[d] = True
    for d in range(n_det):
        if d in dont_care_det:
            continue
        total, chosen = 0, []
        for g in range(n_gt):
            if not gt_done[g] and not det_done[d] and g not in dont_care_gt and recall_mat[g, d] >= 0.8:
                total += precision_mat[g, d]
                chosen.append(g)
        if round(total, 4) >= 0.4 and overlaps_of_det(d) >= 2:
            det_done[d] = True
            recall_sum += 1.0 if len(chosen) == 1 else 1.0 * len(chosen)
            precision_sum += 1.0
            for g in chosen:
                gt_done[g] = True
    return recall_sum, precision_sum, gt_care, det_care


def _random_scene(rng: np.random.Generator, tilted: bool) -> tuple[ImageGT, ImageDet]:
    """Small integer boxes packed close together, so that splits, merges, contested detections and
    ratios exactly at the thresholds are frequent."""
    words, dets = [], []
    for _ in range(rng.integers(0, 7)):
        x, y, w, h = rng.integers(0, 30), rng.integers(0, 30), rng.integers(2, 20), rng.integers(2, 8)
        words.append(box(x, y, x + w, y + h))
        fate = rng.integers(0, 4)
        if fate == 0:
            dets.append(box(x + rng.integers(-2, 3), y + rng.integers(-1, 2), x + w + rng.integers(-2, 3), y + h))
        elif fate == 1:
            cut = x + rng.integers(1, w)
            dets += [box(x, y, cut, y + h), box(cut + rng.integers(0, 2), y, x + w, y + h)]
        elif fate == 2:
            dets.append(box(x, y, x + w + rng.integers(5, 25), y + h + rng.integers(0, 3)))
    for _ in range(rng.integers(0, 3)):
        x, y = rng.integers(0, 40), rng.integers(0, 40)
        dets.append(box(x, y, x + rng.integers(1, 15), y + rng.integers(1, 10)))
    gt_polygons = np.array(words, dtype=float).reshape(-1, 4, 2)
    det_polygons = np.array(dets, dtype=float).reshape(-1, 4, 2)
    if tilted:
        # Shear some corners by a pixel or two: convex quads that are not rectangles.
        gt_polygons[:, :2, 1] += rng.integers(0, 3, (len(gt_polygons), 1))
        det_polygons[:, 1:3, 0] += rng.integers(0, 3, (len(det_polygons), 1))
    dont_care = rng.random(len(gt_polygons)) < 0.2
    return ImageGT(gt_polygons, dont_care), ImageDet(det_polygons, np.ones(len(det_polygons)))


@pytest.mark.parametrize(("form", "tilted"), [("rect", False), ("quad", False), ("quad", True)])
def test_vectorised_scorer_equals_the_official_loops(form: str, tilted: bool) -> None:
    rng = np.random.default_rng(7)
    scenes = [_random_scene(rng, tilted) for _ in range(300)]
    gt, det = [scene[0] for scene in scenes], [scene[1] for scene in scenes]
    images = deteval_images(gt, det, form)
    kinds = {match[2] for image in images for match in image.matches}
    assert kinds == {"one-to-one", "one-to-many", "many-to-one"}
    for index, (image, (gt_image, det_image)) in enumerate(zip(images, scenes, strict=True)):
        expected = _reference_image(gt_image, det_image, form)
        got = (image.recall_sum, image.precision_sum, image.gt_care, image.det_care)
        assert got == expected, f"image {index}"
