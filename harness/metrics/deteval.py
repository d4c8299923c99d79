"""ICDAR2013 DetEval (Wolf & Jolion's object-level protocol), as the official RRC scripts compute it.

The specification is `shared/specs/text-detection-metrics.md`. Where its summary is terse, the official RRC
DetEval script decides (as read in its public ports, e.g. CLOVA AI's `deteval.py` and the DB/MMOCR
DetEval evaluators, which keep its loops):

* One-to-one (step 3): besides the two uniqueness conditions (counted over *all* rows and columns of the
  matrices, don't-care ones included, as the official `one_to_one_match` does), the official script asks
  that g overlaps (area > 0) no other cared-for detection and d no other cared-for ground truth
  (`is_single_overlap`), then the centre-distance condition.
* "At least two" (steps 4 and 5) means: at least two cared-for detections overlap g (area > 0, matched or
  not) for a split, at least two cared-for ground truths overlap d for a merge (`num_overlaps_gt/det >= 2`).
  The set that is summed (still-unmatched, cared-for items passing the area threshold) may then hold a
  single item; such a match counts 1.0 / 1.0 like a one-to-one match, with no centre-distance check.
* The sums are accumulated left to right in index order and rounded to 4 decimals the way numpy rounds a
  float64 (the official sums are numpy scalars), then compared with `>=`.
* Dataset figures: recall = Σ recall sums / Σ cared-for ground truths (0 when there is none), precision =
  Σ precision sums / Σ cared-for detections (0 when there is none), h-mean = 2PR / (P + R) (0 when P + R = 0).

Forms:

* ``"rect"`` (the official ICDAR2013 form): each quad becomes the axis-aligned rectangle bounding its
  integer corners; pixel coordinates are inclusive, so area = (xmax − xmin + 1)(ymax − ymin + 1), the
  intersection widths likewise, the centre is (xmin + (xmax − xmin + 1) / 2, ymin + …) and the diagonal
  √((w + 1)² + (h + 1)²) of the inclusive size.
* ``"quad"``: polygon areas of the integer quads (no +1); the centre is the mean of the four corners and the
  diagonal that of the quad's bounding box, as the polygon ports of the official script (e.g. the DB/MMOCR
  DetEval evaluators) do.

With the official threshold 1.0 the centre-distance condition never fails for two overlapping rectangles
(the normalised distance is at most |a − i| + |b − i| over |a| + |b| < 1, with a, b, i the size vectors of
the two boxes and their intersection); it is kept, and `DetEvalParams.centre_threshold` can tighten it.

Threshold decisions are exact. Every comparison with a threshold (area recall >= tr and area precision
>= tp in steps 3 to 5, area precision > tp in the don't-care filter, normalised centre distance <
`centre_threshold`) reads the threshold as the decimal it is written as (0.8 is 4/5, not the float nearest
to it) and is decided as exact arithmetic would decide it (`quad_geometry.threshold_decisions`): on the
float figures where they lie clearly on one side, and in rational arithmetic (`fractions.Fraction`: exact
intersections and areas, the centre distance against the sum of the two diagonals by squaring twice) for
the few pairs within a band around the threshold. The band is 1e-9 of the threshold plus a bound on the
float figure's own error, so no pair outside it can be on the wrong side: only exact and near-exact ties
are decided differently from plain float comparisons. An area recall of exactly 4/5 thus passes `>= 0.8`
where its float (e.g. 0.7999999999999773) fails. In the rect form, areas and intersections are exact
integers and the float ratios already decide right (the exact path only confirms); in the quad form, the
intersections of tilted quads are not exact in floats. A pair whose float intersection is positive but
within its error bound of zero counts as overlapping only if it truly overlaps. The sums of steps 4 and 5
are kept as the official float64 sums, rounded to 4 decimals.

Behaviours of other public ports that are *not* reproduced: dropping the "at least two" conditions, strict
``>`` in step 3, skipping the rounding, or weighting a single-detection split 0.8.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    ratio_sign,
    ratios,
    threshold_decisions,
)
from harness.metrics.text_records import ImageDet, ImageGT, PackedText, pack

FORMS = ("rect", "quad")
# Sums are compared with the thresholds after rounding to 4 decimals, so a sum may sit up to 5e-5 below
# its threshold and still pass; sums within this margin of a threshold are decided exactly.
_SCREEN_MARGIN = 1e-3


@dataclass(frozen=True)
class DetEvalParams:
    """The protocol's constants; the defaults are the official ICDAR2013 ones. Thresholds must be > 0."""

    area_recall: float = 0.8  # tr
    area_precision: float = 0.4  # tp, also the don't-care filter threshold (strict >)
    centre_threshold: float = 1.0
    one_to_one_weight: float = 1.0
    split_weight: float = 0.8  # one ground truth over several detections
    merge_weight: float = 1.0  # several ground truths in one detection

    def __post_init__(self) -> None:
        if self.area_recall <= 0 or self.area_precision <= 0:
            raise ValueError("DetEval area thresholds must be positive")


@dataclass(frozen=True)
class DetEvalImage:
    """DetEval result of one image: its sums, its counts and the matches made.

    `matches` holds (ground-truth indices, detection indices, kind) with kind one of "one-to-one",
    "one-to-many", "many-to-one"; indices are those of the image's records. A split or merge that reduced
    to a single item (see the module's notes) is listed under its step's kind but weighted as one-to-one.
    """

    recall_sum: float
    precision_sum: float
    gt_care: int
    det_care: int
    det_dont_care: tuple[int, ...]
    matches: tuple[tuple[tuple[int, ...], tuple[int, ...], str], ...]

    @property
    def recall(self) -> float:
        """Per-image recall; 1.0 for an image without cared-for ground truth."""
        return self.recall_sum / self.gt_care if self.gt_care else 1.0

    @property
    def precision(self) -> float:
        """Per-image precision; with no cared-for detection, 1.0 if no cared-for ground truth either."""
        if self.det_care:
            return self.precision_sum / self.det_care
        return 0.0 if self.gt_care else 1.0


@dataclass
class _Outcome:
    """Matching of a whole dataset, in global (packed) indices."""

    packed: PackedText
    recall_sums: list[float]
    precision_sums: list[float]
    gt_care: np.ndarray  # per image
    det_care: np.ndarray  # per image
    det_dont_care: np.ndarray  # (Dt,) bool
    one_to_one: tuple[np.ndarray, np.ndarray]
    splits: list[tuple[int, np.ndarray]]  # (gt, dets)
    merges: list[tuple[int, np.ndarray]]  # (det, gts)


def _sequential_sum(values: np.ndarray) -> np.float64:
    """Left-to-right float64 sum, as the official loop accumulates (np.sum would sum pairwise)."""
    total = np.float64(0.0)
    for value in values:
        total += value
    return total


class _Exact:
    """Exact areas, intersections, centres and diagonals of single items and pairs, computed on demand for the
    few comparisons that fall next to a threshold (see `threshold_decisions`) and kept."""

    def __init__(self, packed: PackedText, form: str) -> None:
        self.quads = {"gt": packed.gt_quads, "det": packed.det_quads}
        self.form = form
        self._areas: dict[tuple[str, int], Fraction] = {}
        self._intersections: dict[tuple[int, int], Fraction] = {}

    def _box(self, side: str, index: int) -> tuple[Fraction, Fraction, Fraction, Fraction]:
        corners = self.quads[side][index]
        low, high = corners.min(axis=0).tolist(), corners.max(axis=0).tolist()
        return Fraction(low[0]), Fraction(low[1]), Fraction(high[0]), Fraction(high[1])

    def area(self, side: str, index: int) -> Fraction:
        key = (side, index)
        if key not in self._areas:
            if self.form == "rect":
                xmin, ymin, xmax, ymax = self._box(side, index)
                self._areas[key] = (xmax - xmin + 1) * (ymax - ymin + 1)
            else:
                self._areas[key] = exact_quad_area(self.quads[side][index])
        return self._areas[key]

    def intersection(self, g: int, d: int) -> Fraction:
        if (g, d) not in self._intersections:
            if self.form == "rect":
                a, b = self._box("gt", g), self._box("det", d)
                width = min(a[2], b[2]) - max(a[0], b[0]) + 1
                height = min(a[3], b[3]) - max(a[1], b[1]) + 1
                self._intersections[g, d] = max(width, Fraction(0)) * max(height, Fraction(0))
            else:
                self._intersections[g, d] = exact_intersection_area(self.quads["gt"][g], self.quads["det"][d])
        return self._intersections[g, d]

    def shape(self, side: str, index: int) -> tuple[Fraction, Fraction, Fraction]:
        """The centre (x, y) and the squared diagonal, as `_geometry` defines them for the form."""
        xmin, ymin, xmax, ymax = self._box(side, index)
        if self.form == "rect":
            width, height = xmax - xmin + 1, ymax - ymin + 1
            return xmin + width / 2, ymin + height / 2, width * width + height * height
        corners = [(Fraction(x), Fraction(y)) for x, y in self.quads[side][index].tolist()]
        centre_x, centre_y = sum(x for x, _ in corners) / 4, sum(y for _, y in corners) / 4
        return centre_x, centre_y, (xmax - xmin) ** 2 + (ymax - ymin) ** 2

    def centre_sign(self, g: int, d: int, threshold: Fraction) -> int:
        """The sign of 2·|c_g − c_d| / (diag_g + diag_d) − threshold, exactly: with D the squared distance and
        G, H the squared diagonals, the sign of 2√D − t(√G + √H), found by squaring twice."""
        gx, gy, gd = self.shape("gt", g)
        dx, dy, dd = self.shape("det", d)
        distance = (gx - dx) ** 2 + (gy - dy) ** 2
        if threshold < 0:
            return 1
        rest = 4 * distance - threshold**2 * (gd + dd)  # 4D − t²(G + H), against 2t²√(GH) >= 0
        if rest < 0:
            return -1
        difference = rest**2 - 4 * threshold**4 * gd * dd
        return (difference > 0) - (difference < 0)


@dataclass
class _Geometry:
    """The overlapping pairs (in (gt, det) row-major order), their intersection areas with a bound on each
    one's float error, per-item areas, centres and diagonals, and the exact figures on demand."""

    pair_gt: np.ndarray
    pair_det: np.ndarray
    intersection: np.ndarray
    error: np.ndarray
    gt_area: np.ndarray
    det_area: np.ndarray
    centres: tuple[np.ndarray, np.ndarray]
    diagonals: tuple[np.ndarray, np.ndarray]
    exact: _Exact

    def exact_signs(self, ratio: str) -> Callable[[np.ndarray, Fraction], list[int]]:
        """For `threshold_decisions`: exact signs of area recall ("recall") or precision of chosen pairs."""
        side = "gt" if ratio == "recall" else "det"

        def signs(chosen: np.ndarray, threshold: Fraction) -> list[int]:
            pairs = zip(self.pair_gt[chosen].tolist(), self.pair_det[chosen].tolist(), strict=True)
            return [
                ratio_sign(self.exact.intersection(g, d), self.exact.area(side, g if side == "gt" else d), threshold)
                for g, d in pairs
            ]

        return signs


def _geometry(packed: PackedText, form: str) -> _Geometry:
    """Overlapping pairs with their intersection areas, and per-item areas, centres and diagonals. Areas of
    the rect form and polygon areas of integer quads are exact; the polygon intersections are not, so a pair
    whose float intersection is positive but within its error bound of 0 is kept only if it truly overlaps."""
    gt_box, det_box = boxes(packed.gt_quads), boxes(packed.det_quads)
    pair_gt, pair_det = overlapping_pairs(
        gt_box, packed.gt_offsets, det_box, packed.det_offsets, inclusive=form == "rect"
    )
    exact = _Exact(packed, form)
    if form == "rect":
        gt_size = gt_box[:, 2:] - gt_box[:, :2] + 1
        det_size = det_box[:, 2:] - det_box[:, :2] + 1
        span = np.minimum(gt_box[pair_gt, 2:], det_box[pair_det, 2:]) - np.maximum(
            gt_box[pair_gt, :2], det_box[pair_det, :2]
        )
        intersection = (span[:, 0] + 1) * (span[:, 1] + 1)
        error = np.zeros(len(intersection))
        gt_area, det_area = gt_size[:, 0] * gt_size[:, 1], det_size[:, 0] * det_size[:, 1]
        gt_centre, det_centre = gt_box[:, :2] + gt_size / 2.0, det_box[:, :2] + det_size / 2.0
    else:
        gt_pairs, det_pairs = packed.gt_quads[pair_gt], packed.det_quads[pair_det]
        intersection = pair_intersection_areas(gt_pairs, det_pairs)
        error = area_error_bounds(gt_pairs, det_pairs)
        gt_area, det_area = quad_areas(packed.gt_quads), quad_areas(packed.det_quads)
        gt_centre, det_centre = packed.gt_quads.mean(axis=1), packed.det_quads.mean(axis=1)
        gt_size, det_size = gt_box[:, 2:] - gt_box[:, :2], det_box[:, 2:] - det_box[:, :2]
    gt_diagonal = np.sqrt(gt_size[:, 1] * gt_size[:, 1] + gt_size[:, 0] * gt_size[:, 0])
    det_diagonal = np.sqrt(det_size[:, 1] * det_size[:, 1] + det_size[:, 0] * det_size[:, 0])
    positive = intersection > 0
    for pair in np.flatnonzero(positive & (intersection <= error)).tolist():
        positive[pair] = exact.intersection(int(pair_gt[pair]), int(pair_det[pair])) > 0
    return _Geometry(
        pair_gt=pair_gt[positive],
        pair_det=pair_det[positive],
        intersection=intersection[positive],
        error=error[positive],
        gt_area=gt_area,
        det_area=det_area,
        centres=(gt_centre, det_centre),
        diagonals=(gt_diagonal, det_diagonal),
        exact=exact,
    )


def _group_matches(
    owner: np.ndarray,
    member: np.ndarray,
    value: np.ndarray,
    qualifying: np.ndarray,
    eligible: np.ndarray,
    member_taken: np.ndarray,
    threshold: float,
) -> list[tuple[int, np.ndarray]]:
    """Steps 4 and 5: for each eligible owner in order (a ground truth for a split, a detection for a
    merge), its qualifying, still-free members match when the left-to-right sum of their `value`,
    rounded to 4 decimals, reaches `threshold`. Pairs come sorted by owner, then member.

    The official loop is sequential, but an owner whose members no other candidate wants decides the same
    in any order, and one whose sum is clearly above the threshold needs no exact sum: those are decided
    at once. Owners that share members, or whose sums are near the threshold, go through the exact loop.
    `member_taken` is updated in place; returns (owner, members) in owner order.
    """
    n_owner, n_member = len(eligible), len(member_taken)
    pick = qualifying & eligible[owner] & ~member_taken[member]
    bound = np.bincount(owner[pick], weights=value[pick], minlength=n_owner)
    candidate = eligible & (bound >= threshold - _SCREEN_MARGIN)
    pick &= candidate[owner]
    wanted = np.bincount(member[pick], minlength=n_member)
    shared = np.zeros(n_owner, dtype=bool)
    shared[owner[pick & (wanted[member] > 1)]] = True
    sure = candidate & ~shared & (bound >= threshold + _SCREEN_MARGIN)

    sure_pairs = pick & sure[owner]
    sure_owners, first_pair = np.unique(owner[sure_pairs], return_index=True)
    sure_members = member[sure_pairs]
    member_taken[sure_members] = True
    groups = np.split(sure_members, first_pair[1:]) if len(sure_owners) else []
    matched = list(zip(sure_owners.tolist(), groups, strict=True))

    rest = np.flatnonzero(candidate & ~sure)
    starts = np.searchsorted(owner, rest, side="left")
    stops = np.searchsorted(owner, rest, side="right")
    for index, start, stop in zip(rest.tolist(), starts.tolist(), stops.tolist(), strict=True):
        members = member[start:stop]
        chosen = qualifying[start:stop] & ~member_taken[members]
        if np.round(_sequential_sum(value[start:stop][chosen]), 4) >= threshold:
            members = members[chosen]
            member_taken[members] = True
            matched.append((index, members))
    matched.sort(key=lambda match: match[0])
    return matched


def _decisions(
    geometry: _Geometry, params: DetEvalParams, recall: np.ndarray, precision: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair, exactly: area recall >= tr, area precision >= tp, and area precision > tp (don't care), from
    the pairs' float area `recall` and `precision`. A ratio's float error is at most its intersection's error
    bound over the (exact) area, plus rounding."""
    gt_area, det_area = geometry.gt_area[geometry.pair_gt], geometry.det_area[geometry.pair_det]
    recall_error, precision_error = ratios(geometry.error, gt_area), ratios(geometry.error, det_area)
    recall_signs, precision_signs = geometry.exact_signs("recall"), geometry.exact_signs("precision")
    tr, tp = params.area_recall, params.area_precision
    return (
        threshold_decisions(recall, tr, ">=", recall_error, recall_signs),
        threshold_decisions(precision, tp, ">=", precision_error, precision_signs),
        threshold_decisions(precision, tp, ">", precision_error, precision_signs),
    )


def _match(packed: PackedText, form: str, params: DetEvalParams) -> _Outcome:
    """All five steps on the pairs of every image at once. Pairs are kept in (gt, det) row-major order,
    which is each image's file order; sums are accumulated per image in the official order."""
    geometry = _geometry(packed, form)
    pair_gt, pair_det = geometry.pair_gt, geometry.pair_det
    n_gt, n_det, n_images = len(packed.gt_quads), len(packed.det_quads), packed.images
    recall = ratios(geometry.intersection, geometry.gt_area[pair_gt])
    precision = ratios(geometry.intersection, geometry.det_area[pair_det])
    recall_passes, precision_passes, precision_over = _decisions(geometry, params, recall, precision)

    # Step 2: don't care.
    gt_cared = ~packed.gt_dont_care
    det_dont_care = np.zeros(n_det, dtype=bool)
    det_dont_care[pair_det[packed.gt_dont_care[pair_gt] & precision_over]] = True
    det_cared = ~det_dont_care

    # Step 3: one-to-one.
    overlaps_of_gt = np.bincount(pair_gt[det_cared[pair_det] & (recall > 0)], minlength=n_gt)
    overlaps_of_det = np.bincount(pair_det[gt_cared[pair_gt] & (recall > 0)], minlength=n_det)
    one_gt, one_det = _one_to_one(
        geometry,
        params,
        recall_passes & precision_passes,
        (gt_cared, det_cared),
        (overlaps_of_gt, overlaps_of_det),
    )
    gt_matched = np.zeros(n_gt, dtype=bool)
    det_matched = np.zeros(n_det, dtype=bool)
    gt_matched[one_gt] = True
    det_matched[one_det] = True
    matched_per_image = np.bincount(packed.gt_image[one_gt], minlength=n_images)
    recall_sums = [float(count) * params.one_to_one_weight for count in matched_per_image.tolist()]
    precision_sums = list(recall_sums)
    sums = (recall_sums, precision_sums)

    # Step 4: one-to-many, ground truths in order.
    splits = _group_matches(
        owner=pair_gt,
        member=pair_det,
        value=recall,
        qualifying=precision_passes & det_cared[pair_det],
        eligible=gt_cared & ~gt_matched & (overlaps_of_gt >= 2),
        member_taken=det_matched,
        threshold=params.area_recall,
    )
    for g, dets in splits:
        gt_matched[g] = True
        _credit(sums, int(packed.gt_image[g]), len(dets), (params.one_to_one_weight, params.split_weight), True)

    # Step 5: many-to-one, detections in order, on the pairs re-sorted by (det, gt).
    by_det = np.argsort(pair_det, kind="stable")
    merges = _group_matches(
        owner=pair_det[by_det],
        member=pair_gt[by_det],
        value=precision[by_det],
        qualifying=recall_passes[by_det] & gt_cared[pair_gt[by_det]],
        eligible=det_cared & ~det_matched & (overlaps_of_det >= 2),
        member_taken=gt_matched,
        threshold=params.area_precision,
    )
    for d, gts in merges:
        det_matched[d] = True
        _credit(sums, int(packed.det_image[d]), len(gts), (params.one_to_one_weight, params.merge_weight), False)

    return _Outcome(
        packed=packed,
        recall_sums=recall_sums,
        precision_sums=precision_sums,
        gt_care=np.bincount(packed.gt_image[gt_cared], minlength=n_images),
        det_care=np.bincount(packed.det_image[det_cared], minlength=n_images),
        det_dont_care=det_dont_care,
        one_to_one=(one_gt, one_det),
        splits=splits,
        merges=merges,
    )


Pair = tuple[np.ndarray, np.ndarray]  # (of the ground truths, of the detections)


def _one_to_one(
    geometry: _Geometry,
    params: DetEvalParams,
    both: np.ndarray,
    cared: Pair,
    overlaps: Pair,
) -> Pair:
    """The one-to-one matches (gt indices, det indices) among the overlapping pairs of `geometry`, from which
    pairs pass both area thresholds (`both`), which items are cared for, how many items each overlaps, and the
    items' centres and diagonals. Each candidate pair is the only one in its row and its column, so the
    official nested loop's order cannot change the outcome and all pairs are decided at once."""
    pair_gt, pair_det = geometry.pair_gt, geometry.pair_det
    (gt_cared, det_cared), (overlaps_of_gt, overlaps_of_det) = cared, overlaps
    (gt_centre, det_centre), (gt_diagonal, det_diagonal) = geometry.centres, geometry.diagonals
    n_gt, n_det = len(gt_centre), len(det_centre)
    both_per_gt = np.bincount(pair_gt[both], minlength=n_gt)
    both_per_det = np.bincount(pair_det[both], minlength=n_det)
    single = (
        both
        & (both_per_gt[pair_gt] == 1)
        & (both_per_det[pair_det] == 1)
        & gt_cared[pair_gt]
        & det_cared[pair_det]
        & (overlaps_of_gt[pair_gt] == 1)
        & (overlaps_of_det[pair_det] == 1)
    )
    one_gt, one_det = pair_gt[single], pair_det[single]
    delta = np.abs(gt_centre[one_gt] - det_centre[one_det])
    distance = np.sqrt(delta[:, 0] * delta[:, 0] + delta[:, 1] * delta[:, 1])
    normalised = distance / (gt_diagonal[one_gt] + det_diagonal[one_det]) * 2.0

    def signs(chosen: np.ndarray, threshold: Fraction) -> list[int]:
        pairs = zip(one_gt[chosen].tolist(), one_det[chosen].tolist(), strict=True)
        return [geometry.exact.centre_sign(g, d, threshold) for g, d in pairs]

    close = threshold_decisions(normalised, params.centre_threshold, "<", 0.0, signs)
    return one_gt[close], one_det[close]


def _credit(
    sums: tuple[list[float], list[float]],
    image: int,
    partners: int,
    weights: tuple[float, float],
    many_detections: bool,
) -> None:
    """Credit one match of an image to its (recall, precision) sums: a single partner counts as one-to-one
    (`weights[0]`); several get `weights[1]`, times their number on the side they are on (the detections of a
    split, the ground truths of a merge)."""
    recall_sums, precision_sums = sums
    one_to_one_weight, weight = weights
    if partners == 1:
        recall_sums[image] += one_to_one_weight
        precision_sums[image] += one_to_one_weight
    elif many_detections:
        recall_sums[image] += weight
        precision_sums[image] += weight * partners
    else:
        recall_sums[image] += weight * partners
        precision_sums[image] += weight


def _run(gt: list[ImageGT], det: list[ImageDet], form: str, params: DetEvalParams | None) -> _Outcome:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return _match(pack(gt, det), form, params or DetEvalParams())


def deteval_images(
    gt: list[ImageGT], det: list[ImageDet], form: str = "rect", params: DetEvalParams | None = None
) -> list[DetEvalImage]:
    """DetEval per image, for ground truth and detections given in the same image order."""
    outcome = _run(gt, det, form, params)
    packed = outcome.packed
    gt_offsets, det_offsets = packed.gt_offsets, packed.det_offsets
    matches: list[list[tuple[tuple[int, ...], tuple[int, ...], str]]] = [[] for _ in range(packed.images)]
    for g, d in zip(*(index.tolist() for index in outcome.one_to_one), strict=True):
        image = int(packed.gt_image[g])
        matches[image].append(((g - int(gt_offsets[image]),), (d - int(det_offsets[image]),), "one-to-one"))
    for g, dets in outcome.splits:
        image = int(packed.gt_image[g])
        local_dets = tuple((dets - det_offsets[image]).tolist())
        matches[image].append(((g - int(gt_offsets[image]),), local_dets, "one-to-many"))
    for d, gts in outcome.merges:
        image = int(packed.det_image[d])
        local_gts = tuple((gts - gt_offsets[image]).tolist())
        matches[image].append((local_gts, (d - int(det_offsets[image]),), "many-to-one"))
    return [
        DetEvalImage(
            recall_sum=outcome.recall_sums[image],
            precision_sum=outcome.precision_sums[image],
            gt_care=int(outcome.gt_care[image]),
            det_care=int(outcome.det_care[image]),
            det_dont_care=tuple(
                (np.flatnonzero(outcome.det_dont_care[det_offsets[image] : det_offsets[image + 1]])).tolist()
            ),
            matches=tuple(matches[image]),
        )
        for image in range(packed.images)
    ]


def summarise(recall_sum: float, precision_sum: float, gt_care: int, det_care: int) -> tuple[float, float, float]:
    """(precision, recall, h-mean) from dataset sums and counts, with the official zero conventions."""
    recall = 0.0 if gt_care == 0 else recall_sum / gt_care
    precision = 0.0 if det_care == 0 else precision_sum / det_care
    hmean = 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    return precision, recall, hmean


def summarise_images(
    recall_sums: Sequence[float] | np.ndarray,
    precision_sums: Sequence[float] | np.ndarray,
    gt_care: Sequence[int] | np.ndarray,
    det_care: Sequence[int] | np.ndarray,
) -> tuple[float, float, float]:
    """`summarise` of per-image sums and counts, the sums accumulated image by image, in order, as the official
    script accumulates them."""
    recall_sum = precision_sum = 0.0
    for image_recall, image_precision in zip(
        np.asarray(recall_sums, dtype=np.float64).tolist(),
        np.asarray(precision_sums, dtype=np.float64).tolist(),
        strict=True,
    ):
        recall_sum += image_recall
        precision_sum += image_precision
    return summarise(recall_sum, precision_sum, int(np.sum(gt_care)), int(np.sum(det_care)))


def deteval(
    gt: list[ImageGT], det: list[ImageDet], form: str = "rect", params: DetEvalParams | None = None
) -> dict[str, float]:
    """ICDAR2013 DetEval over a dataset: `deteval_precision`, `deteval_recall`, `deteval_hmean`.

    `gt[i]` and `det[i]` belong to the same image; `form` is "rect" (official ICDAR2013 rectangles,
    pixel-inclusive) or "quad" (polygon areas). Figures are global sums over the dataset, not means of
    per-image figures; `deteval_images` gives the per-image results.
    """
    outcome = _run(gt, det, form, params)
    precision, recall, hmean = summarise_images(
        outcome.recall_sums, outcome.precision_sums, outcome.gt_care, outcome.det_care
    )
    return {"deteval_precision": precision, "deteval_recall": recall, "deteval_hmean": hmean}
