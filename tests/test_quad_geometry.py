"""Quad areas and intersections, checked against exact rational clipping and closed forms."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from harness.metrics.quad_geometry import (
    area_error_bounds,
    boxes,
    exact_intersection_area,
    exact_quad_area,
    overlapping_pairs,
    pair_intersection_areas,
    quad_areas,
)


def _exact_clip_area(subject: list[tuple[int, int]], clip: list[tuple[int, int]]) -> Fraction:
    """Sutherland–Hodgman in rational arithmetic: exact for any simple subject and a convex clip."""

    def signed(poly: list[tuple[Fraction, Fraction]]) -> Fraction:
        return (
            sum(
                (
                    poly[i][0] * poly[(i + 1) % len(poly)][1] - poly[(i + 1) % len(poly)][0] * poly[i][1]
                    for i in range(len(poly))
                ),
                Fraction(0),
            )
            / 2
        )

    out = [(Fraction(x), Fraction(y)) for x, y in subject]
    window = [(Fraction(x), Fraction(y)) for x, y in clip]
    if signed(out) < 0:
        out = out[::-1]
    if signed(window) < 0:
        window = window[::-1]
    for i in range(len(window)):
        a, b = window[i], window[(i + 1) % len(window)]
        points, out = out, []
        for j in range(len(points)):
            p, q = points[j], points[(j + 1) % len(points)]
            side_p = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
            side_q = (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0])
            if (side_p >= 0) != (side_q >= 0):
                t = side_p / (side_p - side_q)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
            if side_q >= 0:
                out.append(q)
        if not out:
            return Fraction(0)
    return signed(out) if len(out) >= 3 else Fraction(0)


def _parallelograms(rng: np.random.Generator, count: int) -> np.ndarray:
    corner = rng.integers(0, 20, (count, 1, 2))
    u, v = rng.integers(-15, 16, (count, 1, 2)), rng.integers(-15, 16, (count, 1, 2))
    return np.concatenate([corner, corner + u, corner + u + v, corner + v], axis=1).astype(float)


def test_axis_aligned_boxes_are_exact() -> None:
    rng = np.random.default_rng(0)
    low_a, size_a = rng.integers(0, 50, (2000, 2)), rng.integers(0, 30, (2000, 2))
    low_b, size_b = rng.integers(0, 50, (2000, 2)), rng.integers(0, 30, (2000, 2))

    def quads(low: np.ndarray, size: np.ndarray) -> np.ndarray:
        high = low + size
        return np.stack(
            [low, np.stack([high[:, 0], low[:, 1]], 1), high, np.stack([low[:, 0], high[:, 1]], 1)], axis=1
        ).astype(float)

    overlap = np.clip(np.minimum(low_a + size_a, low_b + size_b) - np.maximum(low_a, low_b), 0, None)
    expected = overlap[:, 0] * overlap[:, 1]
    assert np.array_equal(pair_intersection_areas(quads(low_a, size_a), quads(low_b, size_b)), expected)
    assert np.array_equal(quad_areas(quads(low_a, size_a)), size_a[:, 0] * size_a[:, 1])


def test_convex_quads_match_exact_clipping() -> None:
    rng = np.random.default_rng(1)
    first, second = _parallelograms(rng, 400), _parallelograms(rng, 400)
    second[::2] = second[::2, ::-1]  # either orientation
    got = pair_intersection_areas(first, second)
    expected = [float(_exact_clip_area(a.tolist(), b.tolist())) for a, b in zip(first, second, strict=True)]
    assert np.allclose(got, expected, rtol=0, atol=1e-9)
    assert (np.array(expected) > 0).sum() > 100


def test_concave_quads() -> None:
    # An arrowhead concave at (8, 10): the triangle (0,0) (30,10) (0,20) of area 300 less the notch
    # (0,0) (8,10) (0,20) of area 80: 220.
    arrow = np.array([[[0, 0], [30, 10], [0, 20], [8, 10]]], dtype=float)
    assert quad_areas(arrow).tolist() == [220.0]
    assert pair_intersection_areas(arrow, arrow).tolist() == [220.0]
    # Against the box 0..8 x 0..20: exactly the part of the arrow left of x = 8. The arrow's edges there are
    # y = x/3 (top) and y = 20 - x/3 (bottom) on the outside, and the notch edges from (0,0) and (0,20)
    # to (8,10); the area between the outer edges over 0..8 is 8*20 - 2 * (8*8/3/2) = 160 - 64/3, minus the
    # notch triangle (0,0) (8,10) (0,20) of area 80: 160 - 21.333 - 80 = 58.667.
    left = np.array([[[0, 0], [8, 0], [8, 20], [0, 20]]], dtype=float)
    expected = 160 - 64 / 3 - 80
    assert np.isclose(pair_intersection_areas(arrow, left)[0], expected, atol=1e-9)
    assert np.isclose(pair_intersection_areas(left, arrow)[0], expected, atol=1e-9)
    # Concave against tilted convex quads, both ways round, against exact clipping with the convex quad
    # as the clip window.
    rng = np.random.default_rng(2)
    others = _parallelograms(rng, 200)
    arrows = np.repeat(arrow + [10, 10], 200, axis=0)
    expected_areas = [float(_exact_clip_area(arrows[0].tolist(), quad.tolist())) for quad in others]
    assert np.allclose(pair_intersection_areas(arrows, others), expected_areas, atol=1e-9)
    assert np.allclose(pair_intersection_areas(others, arrows), expected_areas, atol=1e-9)


def test_touching_and_disjoint_quads_have_no_intersection() -> None:
    a = np.array([[[0, 0], [10, 0], [10, 10], [0, 10]]], dtype=float)
    touching = a + [10, 0]
    corner = a + [10, 10]
    far = a + [50, 50]
    point = np.full((1, 4, 2), 5.0)  # a quad collapsed to a point inside `a`
    line = np.array([[[2, 2], [8, 8], [8, 8], [2, 2]]], dtype=float)
    for other in (touching, corner, far, point, line):
        assert pair_intersection_areas(a, other).tolist() == [0.0]
        assert pair_intersection_areas(other, a).tolist() == [0.0]


def test_overlapping_pairs_per_image() -> None:
    # Image 0: one gt, two dets (one overlapping); image 1: no gt; image 2: one gt touching one det.
    gt_boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    det_boxes = np.array([[5, 5, 20, 20], [30, 30, 40, 40], [1, 1, 2, 2], [10, 0, 20, 10]], dtype=float)
    gt_offsets, det_offsets = np.array([0, 1, 1, 2]), np.array([0, 2, 3, 4])
    pairs = overlapping_pairs(gt_boxes, gt_offsets, det_boxes, det_offsets, inclusive=False)
    assert [p.tolist() for p in pairs] == [[0], [0]]
    inclusive = overlapping_pairs(gt_boxes, gt_offsets, det_boxes, det_offsets, inclusive=True)
    assert [p.tolist() for p in inclusive] == [[0, 1], [0, 3]]
    assert boxes(np.array([[[3, 1], [5, 2], [4, 7], [0, 3]]], dtype=float)).tolist() == [[0, 1, 5, 7]]


def test_exact_intersections_equal_exact_clipping() -> None:
    # Parallelograms (either orientation, some far from the origin) and the concave arrow against them, both
    # ways round: the exact counterpart of pair_intersection_areas is the true area, not just close to it.
    rng = np.random.default_rng(3)
    first, second = _parallelograms(rng, 300), _parallelograms(rng, 300)
    second[::2] = second[::2, ::-1]
    first[::3] += 1000
    second[::3] += 1000
    for a, b in zip(first, second, strict=True):
        assert exact_intersection_area(a, b) == _exact_clip_area(a.tolist(), b.tolist())
    arrow = np.array([[0, 0], [30, 10], [0, 20], [8, 10]], dtype=float) + 10
    for quad in _parallelograms(rng, 100):
        expected = _exact_clip_area(arrow.tolist(), quad.tolist())
        assert exact_intersection_area(arrow, quad) == exact_intersection_area(quad, arrow) == expected
    assert exact_quad_area(arrow) == 220
    assert exact_quad_area(np.array([[0, 0], [0.5, 0], [0.5, 0.25], [0, 0.25]])) == Fraction(1, 8)


def test_exact_intersections_of_degenerate_and_touching_quads() -> None:
    a = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    line = np.array([[2, 2], [8, 8], [8, 8], [2, 2]], dtype=float)
    for other in (a + [10, 0], a + [10, 10], a + [50, 50], line):
        assert exact_intersection_area(a, other) == exact_intersection_area(other, a) == 0
    # Shared edges in the same direction are counted once: a box against itself and against its halves.
    assert exact_intersection_area(a, a) == 100
    assert exact_intersection_area(a, np.array([[0, 0], [10, 0], [10, 5], [0, 5]], dtype=float)) == 50


def test_float_intersections_stay_within_their_error_bound() -> None:
    # Random quads (convex, concave and self-intersecting) near the origin and at large coordinates, where
    # rounded crossing points cost the most: the float path is never further from the exact figure than
    # area_error_bounds says, which is what keeps the scorers' exact decisions sound.
    rng = np.random.default_rng(4)
    for scale, offset in ((10, 0), (200, 0), (200, 5000), (40, 30000)):
        first = (rng.integers(0, scale, (400, 4, 2)) + offset).astype(float)
        second = first[rng.permutation(400)] + rng.integers(-scale // 3, scale // 3 + 1, (400, 1, 2))
        second += rng.integers(-2, 3, second.shape)
        got = pair_intersection_areas(first, second)
        exact = np.array([float(exact_intersection_area(a, b)) for a, b in zip(first, second, strict=True)])
        assert (np.abs(got - exact) <= area_error_bounds(first, second)).all()
        assert (exact > 0).sum() > 100
