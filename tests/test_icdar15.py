"""ICDAR2015 IoU protocol: hand-worked cases (greedy order, strict IoU > 0.5, don't care, polygons)."""

from __future__ import annotations

import numpy as np

from harness.metrics.icdar15 import icdar15, iou_images
from harness.metrics.text_records import ImageDet, ImageGT


def square(x: float, y: float, size: float) -> list[list[float]]:
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size]]


def box(xmin: float, ymin: float, xmax: float, ymax: float) -> list[list[float]]:
    return [[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]]


def truth(*quads: list[list[float]], dont_care: tuple[int, ...] = ()) -> ImageGT:
    flags = np.array([index in dont_care for index in range(len(quads))], dtype=bool)
    return ImageGT(polygons=np.array(quads, dtype=float).reshape(-1, 4, 2), dont_care=flags)


def found(*quads: list[list[float]]) -> ImageDet:
    return ImageDet(polygons=np.array(quads, dtype=float).reshape(-1, 4, 2), scores=np.ones(len(quads)))


def figures(gt: list[ImageGT], det: list[ImageDet]) -> tuple[float, ...]:
    result = icdar15(gt, det)
    return tuple(round(result[key], 4) for key in ("iou_precision", "iou_recall", "iou_hmean"))


def test_greedy_matching_in_file_order() -> None:
    # Polygon areas (no +1): g0 = 0..10 (100), g1 = 4..14, d0 = 2..12, d1 = -2..8 (all 10 x 10).
    # IoU(g0, d0) = 80 / 120 = 0.667, IoU(g0, d1) = 0.667, IoU(g1, d0) = 0.667, IoU(g1, d1) = 40 / 160 = 0.25.
    # Greedy: g0 takes its first free detection d0; g1's only candidate d0 is taken. One match, where the
    # optimal assignment (g0-d1, g1-d0) would have two: recall 1/2, precision 1/2.
    gt = [truth(box(0, 0, 10, 10), box(4, 0, 14, 10))]
    det = [found(box(2, 0, 12, 10), box(-2, 0, 8, 10))]
    assert figures(gt, det) == (0.5, 0.5, 0.5)
    assert iou_images(gt, det)[0].matches == ((0, 0),)
    # With the detections listed the other way round, greedy finds both pairs.
    assert figures(gt, [found(box(-2, 0, 8, 10), box(2, 0, 12, 10))]) == (1.0, 1.0, 1.0)


def test_iou_threshold_is_strict() -> None:
    # gt 0..10 x 0..10 (100). d 0..10 x 0..5 (50) inside it: IoU = 50 / 100 = 0.5, not > 0.5: no match.
    # d 0..10 x 0..6: IoU 0.6: a match.
    gt = [truth(box(0, 0, 10, 10))]
    assert figures(gt, [found(box(0, 0, 10, 5))]) == (0.0, 0.0, 0.0)
    assert figures(gt, [found(box(0, 0, 10, 6))]) == (1.0, 1.0, 1.0)


def test_rotated_polygons() -> None:
    # gt: the diamond (10,0) (20,10) (10,20) (0,10), area 200.
    # d = square 5..15: its corners lie on the diamond's edges, intersection 100, IoU 100/200 = 0.5: no match.
    # d = square 4..16 (144): four corner triangles with legs 2 fall outside (4 x 2 = 8), intersection 136,
    # union 200 + 144 - 136 = 208, IoU 0.654: a match.
    diamond = [[10, 0], [20, 10], [10, 20], [0, 10]]
    assert figures([truth(diamond)], [found(square(5, 5, 10))]) == (0.0, 0.0, 0.0)
    assert figures([truth(diamond)], [found(square(4, 4, 12))]) == (1.0, 1.0, 1.0)
    # Vertex order does not matter: the same square listed counter-clockwise on screen.
    assert figures([truth(diamond)], [found(square(4, 4, 12)[::-1])]) == (1.0, 1.0, 1.0)


def test_dont_care() -> None:
    # g0 = ### 0..10 (100), g1 = 50..60 found exactly by the second detection.
    # d = 0..10 x 0..10: 100% of it inside the ### region (> 0.5): don't care, not counted: P = R = 1.
    # d = 0..10 x 0..20 (200): 100 / 200 = 0.5, not > 0.5: a cared false positive: precision 1/2.
    # A ### region is never matched nor counted in recall, even when a detection fits it exactly.
    words = truth(box(0, 0, 10, 10), box(50, 0, 60, 10), dont_care=(0,))
    assert figures([words], [found(box(0, 0, 10, 10), box(50, 0, 60, 10))]) == (1.0, 1.0, 1.0)
    assert figures([words], [found(box(0, 0, 10, 20), box(50, 0, 60, 10))]) == (0.5, 1.0, 0.6667)
    image = iou_images([words], [found(box(0, 0, 10, 10), box(50, 0, 60, 10))])[0]
    assert (image.gt_care, image.det_care, image.det_dont_care, image.matches) == (1, 1, (0,), ((1, 1),))


def test_empty_images_and_no_detections() -> None:
    # Image A: one word found; image B: no words, one detection; image C: one word, nothing found.
    # Matches 1; cared gts 2; cared detections 2: P = R = 0.5.
    gt = [truth(box(0, 0, 10, 10)), ImageGT.empty(), truth(box(0, 0, 10, 10))]
    det = [found(box(0, 0, 10, 10)), found(box(0, 0, 10, 10)), ImageDet.empty()]
    assert figures(gt, det) == (0.5, 0.5, 0.5)
    assert figures([ImageGT.empty()], [ImageDet.empty()]) == (0.0, 0.0, 0.0)


def test_corners_are_rounded_to_integers() -> None:
    # d corners 0.4 .. 10.4 round to 0 .. 10: exactly the gt, IoU 1. Without rounding the IoU would still
    # pass; the point is that 5.5 rounds up to 6 (halves away from zero): d 0..10 x 0..5.5 becomes
    # 0..10 x 0..6, IoU 0.6 > 0.5, where 0..5.5 itself would give 0.55 and 0..5 gives 0.5.
    gt = [truth(box(0, 0, 10, 10))]
    assert figures(gt, [found(box(0.4, 0.4, 10.4, 10.4))]) == (1.0, 1.0, 1.0)
    result = iou_images(gt, [found(box(0, 0, 10, 5.5))])
    assert result[0].matches == ((0, 0),)
    assert figures(gt, [found(box(0, 0, 10, 5.4))]) == (0.0, 0.0, 0.0)
