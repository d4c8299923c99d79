"""Vectorised areas and intersection areas of quadrilaterals, for the text-detection scorers.

Intersections are computed for all candidate pairs of a whole dataset in one batch. Two convex quads
intersect in a convex polygon whose vertices are among the corners of each inside the other and the
crossing points of their edges; the candidates are computed together, ordered by angle and measured with
the shoelace formula. A concave quad is first split into two triangles along the diagonal from its reflex
vertex and the pieces' intersections are summed. Quads are assumed simple (edges do not cross); for a
self-intersecting ("bow-tie") quad the figures follow this construction but are not meaningful geometry.

Every candidate point is computed directly from the input corners, a crossing point as
(p·s_q − q·s_p) / (s_q − s_p) from the sides s of the edge's end points: with integer corners the sides
are exact, so the inside tests are exact, a crossing at an integer position is exact, and axis-aligned
integer boxes get exact areas, as with an exact polygon library.

Other crossing points are rounded, so a tilted pair's intersection can be off by a few units in the last
place: an exact area recall of 4/5 may read 0.7999999999999773. For decisions at a threshold, the exact
counterparts (`exact_intersection_area`, `exact_quad_area`) compute the same figures without rounding, and
`threshold_decisions` uses them for the values within a band around the threshold that holds every value
that could be on the wrong side (`area_error_bounds`).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np


def signed_areas(polygons: np.ndarray) -> np.ndarray:
    """Shoelace areas of (N, M, 2) polygons; positive when the vertices turn left (counter-clockwise in
    a y-up frame, which is clockwise on screen where y points down)."""
    x, y = polygons[..., 0], polygons[..., 1]
    return 0.5 * (x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y).sum(axis=-1)


def quad_areas(quads: np.ndarray) -> np.ndarray:
    """Unsigned areas of (N, 4, 2) quads."""
    return np.abs(signed_areas(quads))


def positively_oriented(quads: np.ndarray) -> np.ndarray:
    """The quads with their vertex order reversed where needed so that every signed area is >= 0."""
    flip = signed_areas(quads) < 0
    if not flip.any():
        return quads
    out = quads.copy()
    out[flip] = quads[flip][:, ::-1]
    return out


def _convex_pieces(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split positively oriented quads into at most two convex pieces: a convex quad stays whole, a concave
    one becomes two triangles along the diagonal from its reflex vertex (stored as quads with a repeated
    vertex, whose zero-length edge constrains nothing). Returns the first pieces, the second pieces (equal
    to the first where there is none) and which quads have a second piece."""
    before = quads - np.roll(quads, 1, axis=1)
    after = np.roll(quads, -1, axis=1) - quads
    turn = before[..., 0] * after[..., 1] - before[..., 1] * after[..., 0]
    concave = (turn < 0).any(axis=1)
    if not concave.any():
        return quads, quads, concave
    reflex = turn[concave].argmin(axis=1)
    order = (reflex[:, None] + np.arange(4)[None, :]) % 4
    rolled = np.take_along_axis(quads[concave], order[..., None], axis=1)
    first, second = quads.copy(), quads.copy()
    first[concave] = rolled[:, [0, 1, 2, 2]]
    second[concave] = rolled[:, [2, 3, 0, 0]]
    return first, second, concave


def _convex_intersection_areas(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Areas of first[i] ∩ second[i] for convex, positively oriented (N, 4, 2) quads.

    The 24 candidate vertices (4 + 4 corners, 16 edge crossings) are computed at once; the valid ones are
    ordered by angle around their mean and the shoelace formula gives the area. Unused slots repeat the
    first point and add nothing.
    """
    rows = len(first)
    ax, ay = first[..., 0], first[..., 1]
    bx, by = second[..., 0], second[..., 1]
    a_next_x, a_next_y = np.roll(ax, -1, axis=1), np.roll(ay, -1, axis=1)
    a_edge_x, a_edge_y = a_next_x - ax, a_next_y - ay
    b_edge_x, b_edge_y = np.roll(bx, -1, axis=1) - bx, np.roll(by, -1, axis=1) - by
    # [n, i, j]: side of first's corner i to second's edge j, and of second's corner j to first's edge i;
    # >= 0 is the inner side or the line itself.
    side_of_a = b_edge_x[:, None, :] * (ay[:, :, None] - by[:, None, :]) - b_edge_y[:, None, :] * (
        ax[:, :, None] - bx[:, None, :]
    )
    side_of_b = a_edge_x[:, :, None] * (by[:, None, :] - ay[:, :, None]) - a_edge_y[:, :, None] * (
        bx[:, None, :] - ax[:, :, None]
    )
    a_inside = (side_of_a >= 0).all(axis=2)
    b_inside = (side_of_b >= 0).all(axis=1)
    # Edge i of first (p -> q) crosses edge j of second (c -> d) when p, q straddle line cd and c, d
    # straddle line pq. Collinear edges (side_p == side_q == 0) are left to the corner tests.
    side_p = side_of_a
    side_q = np.roll(side_of_a, -1, axis=1)
    side_c = side_of_b
    side_d = np.roll(side_of_b, -1, axis=2)
    crossing = (side_p * side_q <= 0) & (side_c * side_d <= 0) & (side_p != side_q)
    denominator = np.where(crossing, side_q - side_p, 1.0)
    cross_x = (ax[:, :, None] * side_q - a_next_x[:, :, None] * side_p) / denominator
    cross_y = (ay[:, :, None] * side_q - a_next_y[:, :, None] * side_p) / denominator
    xs = np.concatenate([ax, bx, cross_x.reshape(rows, 16)], axis=1)
    ys = np.concatenate([ay, by, cross_y.reshape(rows, 16)], axis=1)
    valid = np.concatenate([a_inside, b_inside, crossing.reshape(rows, 16)], axis=1)
    counts = valid.sum(axis=1)
    centre_x = np.where(valid, xs, 0.0).sum(axis=1) / np.maximum(counts, 1)
    centre_y = np.where(valid, ys, 0.0).sum(axis=1) / np.maximum(counts, 1)
    dx, dy = xs - centre_x[:, None], ys - centre_y[:, None]
    # A pseudo-angle in [0, 4), monotone in the true angle and cheaper than arctan2.
    radius = np.abs(dx) + np.abs(dy)
    slope = dy / np.where(radius > 0, radius, 1.0)
    angle = np.where(valid, np.where(dx >= 0, 1.0 - slope, 3.0 + slope), np.inf)
    order = np.argsort(angle, axis=1)
    xs = np.take_along_axis(xs, order, axis=1)
    ys = np.take_along_axis(ys, order, axis=1)
    used = np.arange(xs.shape[1])[None, :] < counts[:, None]
    xs = np.where(used, xs, xs[:, :1])
    ys = np.where(used, ys, ys[:, :1])
    area = 0.5 * np.abs((xs * np.roll(ys, -1, axis=1) - np.roll(xs, -1, axis=1) * ys).sum(axis=1))
    return np.where(counts >= 3, area, 0.0)


def pair_intersection_areas(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Intersection areas of quads first[i] and second[i], for (N, 4, 2) arrays of simple quads."""
    if len(first) == 0:
        return np.zeros(0, dtype=np.float64)
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    a_first, a_second, a_split = _convex_pieces(positively_oriented(first))
    b_first, b_second, b_split = _convex_pieces(positively_oriented(second))
    areas = _convex_intersection_areas(a_first, b_first)
    # Rare: a concave quad adds the intersections of its second piece (the pieces do not overlap).
    for rows, a_piece, b_piece in (
        (a_split, a_second, b_first),
        (b_split, a_first, b_second),
        (a_split & b_split, a_second, b_second),
    ):
        if rows.any():
            areas[rows] += _convex_intersection_areas(a_piece[rows], b_piece[rows])
    # A quad collapsed to a point has no edge to be outside of: everything would count as inside it.
    return np.where((quad_areas(first) > 0) & (quad_areas(second) > 0), areas, 0.0)


def boxes(quads: np.ndarray) -> np.ndarray:
    """(N, 4) axis-aligned bounds xmin, ymin, xmax, ymax of (N, 4, 2) quads."""
    return np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1)


PADDED_CELLS_PER_CHUNK = 4_000_000  # bounds the memory of one batch of the pair search


def _chunks(gt_counts: list[int], det_counts: list[int]) -> list[tuple[int, int, int, int]]:
    """Consecutive runs of images (start, stop, most gts, most dets) whose padded G×D grids stay small."""
    chunks = []
    start, most_gt, most_det = 0, 0, 0
    for image, (n_gt, n_det) in enumerate(zip(gt_counts, det_counts, strict=True)):
        wider_gt, wider_det = max(most_gt, n_gt), max(most_det, n_det)
        if image > start and (image + 1 - start) * wider_gt * wider_det > PADDED_CELLS_PER_CHUNK:
            chunks.append((start, image, most_gt, most_det))
            start, wider_gt, wider_det = image, n_gt, n_det
        most_gt, most_det = wider_gt, wider_det
    if len(gt_counts) > start:
        chunks.append((start, len(gt_counts), most_gt, most_det))
    return chunks


def _padded(values: np.ndarray, offsets: np.ndarray, start: int, stop: int, width: int) -> np.ndarray:
    """Rows of images start..stop as a (columns, images, width) array, padded with NaN, which overlaps
    nothing; one contiguous plane per column keeps the broadcasts below fast."""
    counts = np.diff(offsets[start : stop + 1])
    out = np.full((values.shape[1], stop - start, max(width, 1)), np.nan)
    image = np.repeat(np.arange(stop - start), counts)
    row = np.arange(offsets[start], offsets[stop]) - np.repeat(offsets[start:stop], counts)
    out[:, image, row] = values[offsets[start] : offsets[stop]].T
    return out


def overlapping_pairs(
    gt_boxes: np.ndarray,
    gt_offsets: np.ndarray,
    det_boxes: np.ndarray,
    det_offsets: np.ndarray,
    inclusive: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The (ground truth, detection) pairs of the same image whose boxes overlap.

    Items of all images are concatenated; image i owns rows offsets[i]:offsets[i + 1]. Boxes overlap when
    min(xmax) − max(xmin) > 0 on both axes, or >= 0 when `inclusive` (pixel-inclusive rectangles, where
    touching boxes share a pixel row or column). Images are searched in batches as padded G×D grids.
    Returns global indices in (gt, det) row-major order, images in order.
    """
    gt_parts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    det_parts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    for start, stop, most_gt, most_det in _chunks(np.diff(gt_offsets).tolist(), np.diff(det_offsets).tolist()):
        if most_gt == 0 or most_det == 0:
            continue
        gts = _padded(gt_boxes, gt_offsets, start, stop, most_gt)[:, :, :, None]
        dets = _padded(det_boxes, det_offsets, start, stop, most_det)[:, :, None, :]
        width = np.minimum(gts[2], dets[2]) - np.maximum(gts[0], dets[0])
        height = np.minimum(gts[3], dets[3]) - np.maximum(gts[1], dets[1])
        overlap = (width >= 0) & (height >= 0) if inclusive else (width > 0) & (height > 0)
        image, gt_row, det_row = np.nonzero(overlap)
        gt_parts.append(gt_offsets[start + image] + gt_row)
        det_parts.append(det_offsets[start + image] + det_row)
    return np.concatenate(gt_parts), np.concatenate(det_parts)


# Exact arithmetic, for the few pairs whose ratios lie next to a threshold. Every float is a rational, so the
# figures of the float path can be computed without rounding: integers (the scorers' corners) as Python ints,
# other coordinates as `Fraction`s. For convex, positively oriented pieces (those of every simple quad) the
# float construction is the true intersection, computed here as a boundary integral; for other pieces (those
# of a self-intersecting quad) the construction itself is repeated in rational arithmetic.

# |pair_intersection_areas - exact| <= AREA_ERROR * (1 + largest |coordinate| of the pair)**2. The float path
# rounds each crossing point by a few units of 2**-52 of the coordinates' magnitude M and sums at most
# 4 pieces × 24 shoelace terms of size up to 2 M²: a worst case of about 3e-13 M², a thirtieth of this bound
# (the errors seen on random quads stay under 1e-15 M²; tests/test_quad_geometry.py checks the bound).
AREA_ERROR = 1e-11
# Ratios computed from exact areas carry a rounding error of a few units of 2**-52; a band this wide around
# a threshold (relative to it) also covers the gap between a decimal threshold and its float.
RATIO_BAND = 1e-9

Number = int | Fraction
Point = tuple[Number, Number]


def exact_threshold(threshold: float) -> Fraction:
    """A threshold as the decimal it is written as: 0.8 is 4/5, not the float nearest to it, which is
    0.8000000000000000444…; the paper's `area recall >= 0.8` passes at exactly 4/5."""
    return Fraction(repr(float(threshold)))


def _exact(value: float) -> Number:
    return int(value) if value.is_integer() else Fraction(value)


def _exact_corners(quad: np.ndarray) -> list[Point]:
    return [(_exact(x), _exact(y)) for x, y in np.asarray(quad, dtype=np.float64).tolist()]


def _twice_signed_area(points: list[Point]) -> Number:
    total: Number = 0
    for (x, y), (next_x, next_y) in zip(points, points[1:] + points[:1], strict=True):
        total += x * next_y - next_x * y
    return total


def exact_quad_area(quad: np.ndarray) -> Fraction:
    """The unsigned shoelace area of one (4, 2) quad, without rounding."""
    return Fraction(abs(_twice_signed_area(_exact_corners(quad)))) / 2


def _turns(points: list[Point]) -> list[Number]:
    """Cross products of the edges into and out of each vertex: all >= 0 for a convex, positively oriented
    polygon."""
    turns = []
    for index, (x, y) in enumerate(points):
        before_x, before_y = x - points[index - 1][0], y - points[index - 1][1]
        after_x, after_y = points[(index + 1) % 4][0] - x, points[(index + 1) % 4][1] - y
        turns.append(before_x * after_y - before_y * after_x)
    return turns


def _exact_pieces(points: list[Point]) -> list[list[Point]]:
    """`_convex_pieces` for one positively oriented quad: itself, or two triangles (as quads with a repeated
    vertex) along the diagonal from its most reflex vertex."""
    turns = _turns(points)
    if min(turns) >= 0:
        return [points]
    reflex = turns.index(min(turns))
    rolled = [points[(reflex + step) % 4] for step in range(4)]
    return [[rolled[0], rolled[1], rolled[2], rolled[2]], [rolled[2], rolled[3], rolled[0], rolled[0]]]


def _side(start: Point, end: Point, point: Point) -> Number:
    """Which side of the line start -> end `point` lies on: > 0 to the left (inner side), 0 on it."""
    return (end[0] - start[0]) * (point[1] - start[1]) - (end[1] - start[1]) * (point[0] - start[0])


def _edge_span(p: Point, q: Point, polygon: list[Point], skip_shared: bool) -> tuple[Number, Number, Number] | None:
    """The part of the edge p + t·(q − p), 0 <= t <= 1, inside (or on) a convex, positively oriented polygon, as
    (numerator of t0, numerator of t1, their common denominator), or None when it is empty. With
    `skip_shared`, an edge that runs along one of the polygon's edges in the same direction counts as outside."""
    low, low_den, high, high_den = 0, 1, 1, 1  # t0 = low / low_den, t1 = high / high_den; denominators > 0
    for c, d in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        side_p, side_q = _side(c, d, p), _side(c, d, q)
        if side_p < 0 and side_q < 0:
            return None
        if side_p < 0:  # entering: t >= side_p / (side_p − side_q)
            if -side_p * low_den > low * (side_q - side_p):
                low, low_den = -side_p, side_q - side_p
        elif side_q < 0:  # leaving: t <= side_p / (side_p − side_q)
            if side_p * high_den < high * (side_p - side_q):
                high, high_den = side_p, side_p - side_q
        elif (
            skip_shared and side_p == side_q == 0 and (q[0] - p[0]) * (d[0] - c[0]) + (q[1] - p[1]) * (d[1] - c[1]) > 0
        ):
            return None
    if high * low_den <= low * high_den:
        return None
    return low * high_den, high * low_den, low_den * high_den


def _boundary_integral(first: list[Point], second: list[Point], skip_shared: bool) -> Fraction:
    """Twice the area that the parts of first's edges inside convex `second` add to the shoelace sum of
    first ∩ second (Green's theorem): the part t0..t1 of the edge p + t·(q − p) adds (t1 − t0)·(p × (q − p))."""
    total = Fraction(0)
    for p, q in zip(first, first[1:] + first[:1], strict=True):
        span = _edge_span(p, q, second, skip_shared)
        if span is not None:
            total += Fraction((span[1] - span[0]) * (p[0] * (q[1] - p[1]) - p[1] * (q[0] - p[0]))) / span[2]
    return total


def _pseudo_angle(dx: Fraction, dy: Fraction) -> Fraction:
    radius = abs(dx) + abs(dy)
    slope = dy / radius if radius > 0 else Fraction(0)
    return 1 - slope if dx >= 0 else 3 + slope


def _constructed_area(first: list[Point], second: list[Point]) -> Fraction:
    """`_convex_intersection_areas` for one pair of pieces in rational arithmetic: the same candidate points,
    inside tests, angular order and shoelace sum. For pieces that are not convex with a positive area (those of
    a self-intersecting quad), where the construction is no intersection but must still be matched."""
    first = [(Fraction(x), Fraction(y)) for x, y in first]
    second = [(Fraction(x), Fraction(y)) for x, y in second]
    points = [p for p in first if all(_side(second[j], second[(j + 1) % 4], p) >= 0 for j in range(4))]
    points += [p for p in second if all(_side(first[i], first[(i + 1) % 4], p) >= 0 for i in range(4))]
    for i in range(4):
        p, q = first[i], first[(i + 1) % 4]
        for j in range(4):
            c, d = second[j], second[(j + 1) % 4]
            side_p, side_q = _side(c, d, p), _side(c, d, q)
            if side_p * side_q <= 0 and _side(p, q, c) * _side(p, q, d) <= 0 and side_p != side_q:
                weight = side_q - side_p
                points.append(((p[0] * side_q - q[0] * side_p) / weight, (p[1] * side_q - q[1] * side_p) / weight))
    if len(points) < 3:
        return Fraction(0)
    centre_x = sum((p[0] for p in points), Fraction(0)) / len(points)
    centre_y = sum((p[1] for p in points), Fraction(0)) / len(points)
    points.sort(key=lambda p: _pseudo_angle(p[0] - centre_x, p[1] - centre_y))
    return Fraction(abs(_twice_signed_area(points))) / 2


def _piece_area(first: list[Point], second: list[Point]) -> Fraction:
    """What the float path computes for one pair of pieces, without rounding."""
    if all(min(_turns(piece)) >= 0 and _twice_signed_area(piece) > 0 for piece in (first, second)):
        return (_boundary_integral(first, second, False) + _boundary_integral(second, first, True)) / 2
    return _constructed_area(first, second)


def exact_intersection_area(first: np.ndarray, second: np.ndarray) -> Fraction:
    """The intersection area of two (4, 2) quads as `pair_intersection_areas` defines it, without rounding: the
    true area for simple quads."""
    a, b = _exact_corners(first), _exact_corners(second)
    area_a, area_b = _twice_signed_area(a), _twice_signed_area(b)
    if area_a == 0 or area_b == 0:
        return Fraction(0)
    a, b = a if area_a > 0 else a[::-1], b if area_b > 0 else b[::-1]
    pieces = [(piece_a, piece_b) for piece_a in _exact_pieces(a) for piece_b in _exact_pieces(b)]
    return sum((_piece_area(piece_a, piece_b) for piece_a, piece_b in pieces), Fraction(0))


def area_error_bounds(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per pair, a bound on how far `pair_intersection_areas(first, second)` can be from the exact area."""
    if len(first) == 0:
        return np.zeros(0, dtype=np.float64)
    largest = np.maximum(np.abs(first).max(axis=(1, 2)), np.abs(second).max(axis=(1, 2)))
    return AREA_ERROR * (1.0 + largest) ** 2


def ratio_sign(numerator: Fraction, denominator: Fraction, threshold: Fraction) -> int:
    """The sign of numerator / denominator − threshold, the ratio being 0 where the denominator is 0 (the
    scorers' convention)."""
    ratio = numerator / denominator if denominator != 0 else Fraction(0)
    return (ratio > threshold) - (ratio < threshold)


def ratios(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator element-wise, 0 where the denominator is not positive (the scorers' convention)."""
    positive = denominator > 0
    return np.where(positive, numerator / np.where(positive, denominator, 1.0), 0.0)


_COMPARE = {">": np.greater, ">=": np.greater_equal, "<": np.less}


def threshold_decisions(
    values: np.ndarray,
    threshold: float,
    op: str,
    errors: np.ndarray | float,
    exact_signs: Callable[[np.ndarray, Fraction], list[int]],
) -> np.ndarray:
    """`values op threshold` element-wise (op is ">", ">=" or "<"), decided exactly next to the threshold.

    The float comparison stands where a value is further than RATIO_BAND × |threshold| + `errors` (a bound on
    the value's own error) from the threshold: there the exact value lies on the same side. The elements
    within that band are decided by `exact_signs(indices, threshold as a decimal)`, which returns the sign of
    exact value − threshold for each.
    """
    compare = _COMPARE[op]
    decided = compare(values, threshold)
    near = np.flatnonzero(np.abs(values - threshold) <= RATIO_BAND * abs(threshold) + errors)
    if len(near):
        decided[near] = compare(np.array(exact_signs(near, exact_threshold(threshold)), dtype=np.int64), 0)
    return decided
