"""COCO box AP/AR (pycocotools or faster-coco-eval) with tiny-object area ranges, and strict input checks.

`score_coco(ground_truth, results)` runs COCOeval (iouType "bbox", default IoU thresholds, recall thresholds
and maxDets 1/10/100) once over seven area ranges: COCO's all/small/medium/large and the AI-TOD style
tiny ranges verytiny [0, 8²], tiny [8², 16²], small16 [16², 32²]. The summaries are computed from
`eval["precision"]` and `eval["recall"]` exactly as `COCOeval.summarize()` does (mean over entries > -1),
so they equal what the scorers print, without their printing. An area range's result does not depend on
the other ranges evaluated beside it, so one pass with seven ranges equals separate COCO and tiny runs.

Where no ground truth falls in a range (no entry > -1), the value is -1.0, as COCO reports it: callers
that store or rank metrics must treat a negative value as "not applicable", never as a score.

Area ranges use each ground-truth annotation's `area` field (COCO's segment area where it exists), not its
box area; a detection's area is its box w*h. Ground truth without `area` gets w*h here. Annotations with
`iscrowd=1` are ignore regions: a detection matched to one is neither a true nor a false positive, but only
for the crowd annotation's own category (COCOeval matches per category).

The default backend is faster-coco-eval (`DEFAULT_BACKEND`): it gives the numbers pycocotools gives (the tests
check every key to 1e-12 on the conformance set and on random sets; the differences seen are about 1e-16) several
times faster (docs/BENCHMARKS.md, "COCO scorer"); pycocotools stays selectable.

Annotation ids: both scorers record a match by writing the matched annotation's id where 0 means "unmatched"
(faster-coco-eval also reads a negative id so), so a perfect detection of an annotation with id 0 would count as
a miss. When any ground-truth id is 0 or negative, `score_coco` renumbers the annotations of its validated copy
1..N in their order (matching depends on the boxes and the order, not the ids, so nothing else changes) and
appends `RENUMBERED_NOTE` to the caller's `notes` list; `harness score` prints it on stderr.

Validation is vectorised: every entry is checked at once with NumPy, and only when a check fails (or an entry
holds an unusual but valid type, e.g. a NumPy scalar) does the per-entry path run, to normalise it or to name the
first bad entry and its field. Python's cyclic garbage collector is paused while the large lists of dicts are
built and scored.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import numbers
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import settings
from harness.contract import Detections
from harness.errors import DatasetError, HarnessError, PredictionError
from harness.formats.limits import read_bounded
from harness.records import brief

BACKENDS = ("pycocotools", "faster-coco-eval")
DEFAULT_BACKEND = "faster-coco-eval"
RENUMBERED_NOTE = (
    "ground truth annotation ids renumbered: id 0 is the scorers' 'unmatched' marker (faster-coco-eval's: any id <= 0)"
)
RANGE_SETS = ("coco", "tiny", "all")

_AREA_MAX = 1e5**2  # COCO's upper bound for "all" and "large"
AREA_RANGES: dict[str, list[float]] = {
    "all": [0.0, _AREA_MAX],
    "small": [0.0, 32.0**2],
    "medium": [32.0**2, 96.0**2],
    "large": [96.0**2, _AREA_MAX],
    "verytiny": [0.0, 8.0**2],
    "tiny": [8.0**2, 16.0**2],
    "small16": [16.0**2, 32.0**2],
}
_RANGES_EVALUATED = {
    "coco": ["all", "small", "medium", "large"],
    "tiny": ["all", "verytiny", "tiny", "small16", "medium", "large"],
    "all": ["all", "small", "medium", "large", "verytiny", "tiny", "small16"],
}
_MAX_DETS = (1, 10, 100)

# key -> (array, IoU threshold or None for the mean over .50:.95, area range, maxDets), as COCOeval.summarize.
SUMMARY_KEYS: dict[str, tuple[str, float | None, str, int]] = {
    "AP": ("precision", None, "all", 100),
    "AP50": ("precision", 0.5, "all", 100),
    "AP75": ("precision", 0.75, "all", 100),
    "AP_small": ("precision", None, "small", 100),
    "AP_medium": ("precision", None, "medium", 100),
    "AP_large": ("precision", None, "large", 100),
    "AP_verytiny": ("precision", None, "verytiny", 100),
    "AP_tiny": ("precision", None, "tiny", 100),
    "AP_small16": ("precision", None, "small16", 100),
    "AR_1": ("recall", None, "all", 1),
    "AR_10": ("recall", None, "all", 10),
    "AR_100": ("recall", None, "all", 100),
    "AR_small": ("recall", None, "small", 100),
    "AR_medium": ("recall", None, "medium", 100),
    "AR_large": ("recall", None, "large", 100),
    "AR_verytiny": ("recall", None, "verytiny", 100),
    "AR_tiny": ("recall", None, "tiny", 100),
    "AR_small16": ("recall", None, "small16", 100),
}
_COCO_KEYS = [
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large",
]  # fmt: skip
_TINY_ONLY_KEYS = ["AP_verytiny", "AP_tiny", "AP_small16", "AR_verytiny", "AR_tiny", "AR_small16"]
_TINY_KEYS = [
    "AP", "AP50", "AP75", "AP_verytiny", "AP_tiny", "AP_small16", "AP_medium", "AP_large",
    "AR_1", "AR_10", "AR_100", "AR_verytiny", "AR_tiny", "AR_small16", "AR_medium", "AR_large",
]  # fmt: skip
METRIC_KEYS = {"coco": _COCO_KEYS, "tiny": _TINY_KEYS, "all": _COCO_KEYS + _TINY_ONLY_KEYS}
"""The keys `score_coco` returns for each choice of `ranges`, in order."""


def load_json(path: Path | str, error: type[HarnessError] = DatasetError) -> Any:
    """Read a JSON file; an unreadable or invalid file, or one over `HARNESS_MAX_JSON_MB` (checked before it is read),
    raises `error` naming the path (and line)."""
    path = Path(path)
    data = read_bounded(path, settings().max_json_bytes, "HARNESS_MAX_JSON_MB", error, "the JSON file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})", "save the file as UTF-8") from exc
    del data
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            "fix the file so that it parses as JSON",
        ) from exc
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; arrays nested thousands deep
        raise error(f"{path}: JSON the harness does not read ({brief(str(exc))})", "write plain COCO json") from exc


def _is_number(value: Any) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer of hundreds of digits: no float holds it
        return False


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _bbox_problem(bbox: Any) -> str | None:
    """Why `bbox` is not a valid COCO [x, y, w, h] box, or None. Zero width or height is allowed."""
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        return f"`bbox` is {brief(bbox)}, expected a list [x, y, width, height] of 4 numbers"
    for name, value in zip(("x", "y", "width", "height"), bbox, strict=True):
        if not _is_number(value):
            return f"`bbox` {name} is {brief(value)}, expected a finite number"
    if bbox[2] < 0 or bbox[3] < 0:
        return f"`bbox` {list(bbox)} has a negative width or height (COCO boxes are [x, y, width, height])"
    return None


# --- vectorised checks: each returns None where any entry fails (or has an unusual type), never raises ---------

_MISSING = object()
_REAL = {int, float}
_RESULT_KEYS = ("image_id", "category_id", "bbox", "score")


def _int_column(values: list) -> np.ndarray | None:
    """`values` as int64 when every one is a plain `int` (not bool, not a NumPy scalar) that fits, else None."""
    if not set(map(type, values)) <= {int}:
        return None
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        return None


def _id_array(ids: set[int]) -> np.ndarray | None:
    try:
        return np.fromiter(ids, dtype=np.int64, count=len(ids))
    except (OverflowError, TypeError):
        return None


def _box_column(bboxes: list) -> np.ndarray | None:
    """An N×4 float array of the [x, y, w, h] boxes when all are lists/tuples of 4 finite plain numbers with w, h >=
    0 (what `_bbox_problem` accepts), else None."""
    if not set(map(type, bboxes)) <= {list, tuple} or not set(map(len, bboxes)) <= {4}:
        return None
    flat = list(chain.from_iterable(bboxes))
    if not set(map(type, flat)) <= _REAL:
        return None
    try:
        boxes = np.array(flat, dtype=np.float64).reshape(-1, 4)
    except OverflowError:
        return None
    if not np.isfinite(boxes).all() or (boxes[:, 2:] < 0).any():
        return None
    return boxes


def _real_column(values: list) -> np.ndarray | None:
    """`values` as float64 when every one is a finite plain int or float, else None."""
    if not set(map(type, values)) <= _REAL:
        return None
    try:
        column = np.array(values, dtype=np.float64)
    except OverflowError:
        return None
    return column if np.isfinite(column).all() else None


def _entries_fast(entries: list) -> tuple[list[dict[str, Any]], set[int]] | None:
    """`_entries_with_ids` at once: plain-int, unique ids; None where the per-entry path must run."""
    if not set(map(type, entries)) <= {dict}:
        return None
    ids = [entry.get("id") for entry in entries]
    column = _int_column(ids)
    if column is None or len(np.unique(column)) != len(column):
        return None
    return [{**entry} for entry in entries], set(ids)


def _annotations_fast(anns: list, image_ids: set[int], category_ids: set[int]) -> list[dict[str, Any]] | None:
    """The normalised copies `_checked_annotation` would make, checked at once; None where any entry fails."""
    known_images, known_categories = _id_array(image_ids), _id_array(category_ids)
    if known_images is None or known_categories is None or not set(map(type, anns)) <= {dict}:
        return None
    try:
        columns = [[ann[key] for ann in anns] for key in ("id", "image_id", "category_id", "bbox")]
    except KeyError:
        return None
    ids, image_column, category_column = (_int_column(column) for column in columns[:3])
    if ids is None or image_column is None or category_column is None or len(np.unique(ids)) != len(ids):
        return None
    if not (np.isin(image_column, known_images).all() and np.isin(category_column, known_categories).all()):
        return None
    boxes = _box_column(columns[3])
    crowd = _int_column([ann.get("iscrowd", 0) for ann in anns])
    if boxes is None or crowd is None or not np.isin(crowd, (0, 1)).all():
        return None
    given = [ann.get("area", _MISSING) for ann in anns]
    has_area = np.fromiter((value is not _MISSING for value in given), dtype=bool, count=len(given))
    given_areas = _real_column([value for value in given if value is not _MISSING])
    if given_areas is None:
        return None
    with np.errstate(over="ignore"):
        areas = boxes[:, 2] * boxes[:, 3]  # what `_checked_annotation` computes where `area` is absent
    areas[has_area] = given_areas
    if not np.isfinite(areas).all() or (areas < 0).any():
        return None
    return [
        {**ann, "bbox": bbox, "area": area, "iscrowd": iscrowd}
        for ann, bbox, area, iscrowd in zip(anns, boxes.tolist(), areas.tolist(), crowd.tolist(), strict=True)
    ]


def _results_fast(results: list, image_ids: set[int], category_ids: set[int]) -> list[dict[str, Any]] | None:
    """The clean copies `validate_results` would make, checked at once; None where any entry fails."""
    known_images, known_categories = _id_array(image_ids), _id_array(category_ids)
    if known_images is None or known_categories is None or not set(map(type, results)) <= {dict}:
        return None
    try:
        image, category, bbox, score = ([det[key] for det in results] for key in _RESULT_KEYS)
    except KeyError:
        return None
    image_column, category_column = _int_column(image), _int_column(category)
    if image_column is None or category_column is None:
        return None
    if not (np.isin(image_column, known_images).all() and np.isin(category_column, known_categories).all()):
        return None
    boxes, scores = _box_column(bbox), _real_column(score)
    if boxes is None or scores is None:
        return None
    return [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, c, b, s in zip(image, category, boxes.tolist(), scores.tolist(), strict=True)
    ]


def validate_ground_truth(gt: Any, path: Path | str | None = None) -> dict[str, Any]:
    """Check a COCO instances dict and return a normalised copy, ready for scoring.

    Requires `images`, `annotations` and `categories` lists; integer, unique image, category and
    annotation ids; annotations on known images and categories with a valid `bbox`. Fills in what COCOeval
    needs but small converters often omit: `iscrowd` (0) and `area` (w*h of the box). Raises
    `DatasetError` naming the entry, its field, and the fix. The input is not modified.
    """
    where = str(path) if path is not None else "ground truth"
    if not isinstance(gt, dict):
        raise DatasetError(
            f"{where}: is a {type(gt).__name__}, expected a COCO object with images, annotations, categories"
        )
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise DatasetError(
                f"{where}: has no `{key}` list",
                "a COCO instances file has images, annotations and categories",
            )
        if not isinstance(gt[key], list):
            raise DatasetError(f"{where}: `{key}` is a {type(gt[key]).__name__}, expected a list")
    if not gt["images"]:
        raise DatasetError(f"{where}: `images` is empty", "the ground truth must list the images it covers")
    if not gt["categories"]:
        raise DatasetError(f"{where}: `categories` is empty", 'list the categories, e.g. {"id": 1, "name": "car"}')

    images, image_ids = _entries_fast(gt["images"]) or _entries_with_ids(gt["images"], "images", "image", where)
    categories, category_ids = _entries_fast(gt["categories"]) or _entries_with_ids(
        gt["categories"], "categories", "category", where
    )
    annotations = _annotations_fast(gt["annotations"], image_ids, category_ids)
    if annotations is None:
        annotations = _checked_annotations(gt["annotations"], image_ids, category_ids, where)
    return {**gt, "images": images, "annotations": annotations, "categories": categories}


def _checked_annotations(anns: list, image_ids: set[int], category_ids: set[int], where: str) -> list[dict[str, Any]]:
    """The per-entry path: normalised copies of the annotations, or `DatasetError` naming the first bad one."""
    annotations = []
    annotation_ids: set[int] = set()
    for i, ann in enumerate(anns):
        annotations.append(_checked_annotation(ann, f"{where}: annotations[{i}]", image_ids, category_ids))
        if annotations[-1]["id"] in annotation_ids:
            raise DatasetError(
                f"{where}: annotations[{i}] (id {brief(ann['id'])}, image_id {brief(ann['image_id'])}): "
                f"repeats annotation id {brief(ann['id'])}",
                "annotation ids must be unique",
            )
        annotation_ids.add(annotations[-1]["id"])
    return annotations


def _entries_with_ids(entries: list, key: str, what: str, where: str) -> tuple[list[dict[str, Any]], set[int]]:
    """Copies of the `images` or `categories` entries with integer, unique ids, and the set of those ids."""
    out, ids = [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: {key}[{i}] is a {type(entry).__name__}, expected an object")
        entry_id = entry.get("id")
        if not _is_int(entry_id):
            raise DatasetError(
                f"{where}: {key}[{i}] has `id` {brief(entry_id)}, expected an integer",
                f"give every {what} an integer id",
            )
        if entry_id in ids:
            raise DatasetError(f"{where}: {key}[{i}] repeats {what} id {entry_id}", f"{what} ids must be unique")
        ids.add(int(entry_id))
        out.append({**entry, "id": int(entry_id)})
    return out, ids


def _checked_annotation(ann: Any, at: str, image_ids: set[int], category_ids: set[int]) -> dict[str, Any]:
    """A normalised copy of one annotation (iscrowd and area filled in); `DatasetError` names its fault."""
    if not isinstance(ann, dict):
        raise DatasetError(f"{at} is a {type(ann).__name__}, expected an object")
    entry = f"{at} (id {brief(ann.get('id'))}, image_id {brief(ann.get('image_id'))})"
    for key in ("id", "image_id", "category_id", "bbox"):
        if key not in ann:
            raise DatasetError(f"{entry}: has no `{key}`", "every annotation needs id, image_id, category_id, bbox")
    for key in ("id", "image_id", "category_id"):
        if not _is_int(ann[key]):
            raise DatasetError(f"{entry}: `{key}` is {brief(ann[key])}, expected an integer")
    if ann["image_id"] not in image_ids:
        raise DatasetError(
            f"{entry}: `image_id` {ann['image_id']} is not in `images`", "add the image or drop the annotation"
        )
    if ann["category_id"] not in category_ids:
        raise DatasetError(
            f"{entry}: `category_id` {ann['category_id']} is not in `categories` {sorted(category_ids)}",
            "add the category or fix the annotation",
        )
    problem = _bbox_problem(ann["bbox"])
    if problem:
        raise DatasetError(f"{entry}: {problem}")
    bbox = [float(v) for v in ann["bbox"]]
    area = ann.get("area", bbox[2] * bbox[3])
    if not _is_number(area) or area < 0:
        raise DatasetError(
            f"{entry}: `area` is {brief(area)}, expected a finite number >= 0", "set area to the box's w*h"
        )
    iscrowd = ann.get("iscrowd", 0)
    if not (isinstance(iscrowd, numbers.Integral) and int(iscrowd) in (0, 1)):
        raise DatasetError(
            f"{entry}: `iscrowd` is {brief(iscrowd)}, expected 0 or 1", "use 1 for ignore regions, else 0"
        )
    return {
        **ann,
        "id": int(ann["id"]),
        "image_id": int(ann["image_id"]),
        "category_id": int(ann["category_id"]),
        "bbox": bbox,
        "area": float(area),
        "iscrowd": int(iscrowd),
    }


def validate_results(results: Any, gt: dict[str, Any], source: Path | str | None = None) -> list[dict[str, Any]]:
    """Check COCO detection results against (validated) ground truth and return clean copies.

    Each entry must be an object with `image_id` and `category_id` known to the ground truth, `bbox`
    [x, y, w, h] of finite numbers with w, h >= 0 (a zero-size box is allowed: it can match nothing, so it
    counts as a false positive), and a finite `score`. Other keys are dropped. Raises `PredictionError`
    naming the entry's index, image id, field and the fix.
    """
    where = str(source) if source is not None else "results"
    if not isinstance(results, list):
        raise PredictionError(
            f"{where}: is a {type(results).__name__}, expected a list of detections",
            'write a JSON list of {"image_id", "category_id", "bbox": [x, y, w, h], "score"} objects',
        )
    image_ids = {image["id"] for image in gt["images"]}
    category_ids = {category["id"] for category in gt["categories"]}
    clean = _results_fast(results, image_ids, category_ids)
    clean = clean if clean is not None else _checked_results(results, image_ids, category_ids, where)
    _refuse_crowded_images(clean, where)
    return clean


def _refuse_crowded_images(results: list[dict[str, Any]], where: str) -> None:
    """`PredictionError` when an image has more detections than `HARNESS_MAX_PREDICTIONS_PER_IMAGE`."""
    most = settings().max_predictions_per_image
    if len(results) <= most:
        return
    image_ids, counts = np.unique(
        np.fromiter((r["image_id"] for r in results), np.int64, len(results)), return_counts=True
    )
    if counts.max() > most:
        crowded = int(image_ids[counts.argmax()])
        raise PredictionError(
            f"{where}: image_id {crowded} has {int(counts.max()):,} detections, over the limit of {most:,} per image",
            "keep the most confident detections of each image, or raise HARNESS_MAX_PREDICTIONS_PER_IMAGE",
        )


def _checked_results(results: list, image_ids: set[int], category_ids: set[int], where: str) -> list[dict[str, Any]]:
    """The per-entry path: clean copies of the results, or `PredictionError` naming the first bad one."""
    clean = []
    for i, det in enumerate(results):
        if not isinstance(det, dict):
            raise PredictionError(f"{where}: result {i} is a {type(det).__name__}, expected an object")
        entry = f"{where}: result {i} (image_id {brief(det.get('image_id'))})"
        missing = [key for key in ("image_id", "category_id", "bbox", "score") if key not in det]
        if missing:
            raise PredictionError(
                f"{entry}: has no {', '.join(f'`{key}`' for key in missing)}",
                "every result needs image_id, category_id, bbox [x, y, w, h] and score",
            )
        image_id, category_id = det["image_id"], det["category_id"]
        if not _is_int(image_id) or image_id not in image_ids:
            hint = "use the integer ids of the ground truth's images"
            digits = isinstance(image_id, str) and len(image_id) < 20 and image_id.strip().lstrip("-").isdigit()
            if digits and int(image_id) in image_ids:
                hint = f"image ids are integers: write {int(image_id)}, not {brief(image_id)}"
            raise PredictionError(f"{entry}: `image_id` {brief(image_id)} is not an image of the ground truth", hint)
        if not _is_int(category_id) or category_id not in category_ids:
            raise PredictionError(
                f"{entry}: `category_id` {brief(category_id)} is not a category of the ground truth",
                f"use one of the category ids {brief(sorted(category_ids))}",
            )
        problem = _bbox_problem(det["bbox"])
        if problem:
            raise PredictionError(f"{entry}: {problem}", "write boxes as [x, y, width, height] in pixels")
        if not _is_number(det["score"]):
            raise PredictionError(f"{entry}: `score` is {brief(det['score'])}, expected a finite number")
        clean.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "bbox": [float(v) for v in det["bbox"]],
                "score": float(det["score"]),
            }
        )
    return clean


def detections_to_coco(
    ids: Sequence[str], records: Sequence[Detections], ground_truth: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Turn the harness's per-sample `Detections` (boxes xyxy) into COCO results (bbox xywh).

    A sample id is `str(image["id"])`; with `ground_truth` given, ids are mapped back to its image ids
    (an id it lacks raises `PredictionError`), else each id must be an integer written in decimal.
    """
    if len(ids) != len(records):
        raise PredictionError(f"{len(ids)} sample ids but {len(records)} detection records", "give one record per id")
    id_map = {str(image["id"]): image["id"] for image in ground_truth["images"]} if ground_truth is not None else None
    results: list[dict[str, Any]] = []
    for sample_id, record in zip(ids, records, strict=True):
        if id_map is not None:
            if sample_id not in id_map:
                raise PredictionError(
                    f"sample id {brief(sample_id)} is not an image of the ground truth",
                    "predictions must come from the split this ground truth belongs to",
                )
            image_id = id_map[sample_id]
        else:
            try:
                image_id = int(sample_id)
            except ValueError as exc:
                raise PredictionError(
                    f"sample id {brief(sample_id)} is not an integer COCO image id",
                    "pass the ground truth to map ids",
                ) from exc
        boxes = np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).tolist()
        scores = np.asarray(record.scores, dtype=np.float64).reshape(-1).tolist()
        labels = np.asarray(record.labels).reshape(-1).tolist()
        if not (len(xywh) == len(scores) == len(labels)):
            raise PredictionError(
                f"sample {brief(sample_id)}: {len(xywh)} boxes, {len(scores)} scores, {len(labels)} labels differ"
            )
        results.extend(
            {"image_id": image_id, "category_id": int(label), "bbox": bbox, "score": score}
            for bbox, score, label in zip(xywh, scores, labels, strict=True)
        )
    return results


def _load_backend(backend: str) -> tuple[Any, Any]:
    """(COCO class, COCOeval class) of the chosen backend, imported only now: both are optional at import."""
    if backend == "pycocotools":
        try:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        except ImportError as exc:
            raise HarnessError(
                f"the COCO scorer backend 'pycocotools' is not installed ({exc})",
                "pip install pycocotools, or choose the backend 'faster-coco-eval'",
            ) from exc
        return COCO, COCOeval
    if backend == "faster-coco-eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError as exc:
            raise HarnessError(
                f"the COCO scorer backend 'faster-coco-eval' is not installed ({exc})",
                "pip install faster-coco-eval, or choose the backend 'pycocotools'",
            ) from exc
        return COCO, COCOeval_faster
    raise HarnessError(f"unknown COCO scorer backend {backend!r}", f"choose one of {', '.join(BACKENDS)}")


def pycocotools_apis(coco_cls: Any, gt: dict[str, Any], results: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The ground-truth and results objects of pycocotools' `COCO` class for validated inputs. Its loadRes cannot
    take an empty list; an empty one gets the result object loadRes would build. It prints: callers capture stdout."""
    gt_api = coco_cls()
    gt_api.dataset = gt
    gt_api.createIndex()
    if results:
        return gt_api, gt_api.loadRes(results)
    dt_api = coco_cls()
    dt_api.dataset = {"images": list(gt["images"]), "categories": list(gt["categories"]), "annotations": []}
    dt_api.createIndex()
    return gt_api, dt_api


def _evaluate(backend: str, gt: dict[str, Any], results: list[dict[str, Any]], range_labels: list[str]) -> Any:
    coco_cls, eval_cls = _load_backend(backend)
    # Both scorers print progress; the captured text is dropped, the numbers are untouched.
    with contextlib.redirect_stdout(io.StringIO()):
        if backend == "pycocotools":
            evaluator = eval_cls(*pycocotools_apis(coco_cls, gt, results), "bbox")
        else:
            gt_api = coco_cls(gt)
            dt_api = gt_api.loadRes(results)
            evaluator = eval_cls(gt_api, dt_api, "bbox", print_function=lambda *args, **kwargs: None)
        evaluator.params.areaRng = [list(AREA_RANGES[label]) for label in range_labels]
        evaluator.params.areaRngLbl = list(range_labels)
        evaluator.params.maxDets = list(_MAX_DETS)
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator


def _summary(evaluator: Any, key: str, range_labels: list[str]) -> float:
    kind, iou, area, max_dets = SUMMARY_KEYS[key]
    params = evaluator.params
    a = range_labels.index(area)
    m = list(params.maxDets).index(max_dets)
    values = evaluator.eval[kind]  # precision: T×R×K×A×M, recall: T×K×A×M
    if iou is not None:
        values = values[np.flatnonzero(np.isclose(params.iouThrs, iou))]
    values = values[..., a, m]
    values = values[values > -1]
    return float(np.mean(values)) if values.size else -1.0


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, then restore its state. Loading and scoring a large file build
    hundreds of thousands of dicts and lists, and every burst of allocations would start a collection that walks
    the ones still alive again, finding nothing to free (a cycle, if any, is collected once the collector runs
    again). Callers do the work in a function call inside the `with`, so that its objects are freed before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_choices(backend: str, ranges: str) -> None:
    if ranges not in RANGE_SETS:
        raise HarnessError(f"unknown area range set {ranges!r}", f"choose one of {', '.join(RANGE_SETS)}")
    if backend not in BACKENDS:
        raise HarnessError(f"unknown COCO scorer backend {backend!r}", f"choose one of {', '.join(BACKENDS)}")


def renumber_annotation_ids(gt: dict[str, Any]) -> bool:
    """Give the annotations of a validated copy the ids 1..N in their order when any id is 0 or negative, which
    the scorers would take for "unmatched" (see the module docstring); True when it did."""
    annotations = gt["annotations"]
    if all(annotation["id"] > 0 for annotation in annotations):
        return False
    for new_id, annotation in enumerate(annotations, start=1):
        annotation["id"] = new_id
    return True


def score_coco(
    ground_truth: dict[str, Any],
    results: list[dict[str, Any]],
    backend: str = DEFAULT_BACKEND,
    ranges: str = "all",
    *,
    gt_source: Path | str | None = None,
    results_source: Path | str | None = None,
    notes: list[str] | None = None,
) -> dict[str, float]:
    """COCO box AP/AR of `results` (COCO detection results) against `ground_truth` (COCO instances dict).

    `ranges`: "coco" gives AP, AP50, AP75, AP/AR small/medium/large, AR_1/10/100; "tiny" gives the same
    with small replaced by verytiny/tiny/small16; "all" (default) gives the "coco" keys plus
    AP/AR verytiny/tiny/small16 (see `METRIC_KEYS`). -1.0 means no ground truth in that range.
    Both inputs are validated first (`gt_source`/`results_source` name them in error messages); neither is
    modified. Ground-truth annotation ids of 0 or below are renumbered (the scorers' "unmatched" marker, see the
    module docstring): `RENUMBERED_NOTE` is then appended to `notes` where a list is given, for the caller to show.
    """
    _check_choices(backend, ranges)
    with _collector_paused():
        return _score_validated(*_validated(ground_truth, results, gt_source, results_source), backend, ranges, notes)


def _validated(
    ground_truth: Any, results: Any, gt_source: Path | str | None, results_source: Path | str | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    gt = validate_ground_truth(ground_truth, gt_source)
    return gt, validate_results(results, gt, results_source)


def _score_validated(
    gt: dict[str, Any], results: list[dict[str, Any]], backend: str, ranges: str, notes: list[str] | None
) -> dict[str, float]:
    """`score_coco` of validated inputs (copies of the caller's own, which the scorers may modify)."""
    if renumber_annotation_ids(gt) and notes is not None:
        notes.append(RENUMBERED_NOTE)
    range_labels = _RANGES_EVALUATED[ranges]
    evaluator = _evaluate(backend, gt, results, range_labels)
    return {key: _summary(evaluator, key, range_labels) for key in METRIC_KEYS[ranges]}


def score_coco_files(
    ground_truth: Path | str,
    results: Path | str,
    backend: str = DEFAULT_BACKEND,
    ranges: str = "all",
    *,
    notes: list[str] | None = None,
) -> dict[str, float]:
    """`score_coco` of a COCO instances json file and a COCO results json file (what `harness score` runs).

    An unreadable or invalid ground-truth file raises `DatasetError`, a results file `PredictionError`; both name
    the file. The files are parsed with the garbage collector paused (see `_collector_paused`).
    """
    _check_choices(backend, ranges)
    with _collector_paused():
        return _score_validated(*_validated_files(Path(ground_truth), Path(results)), backend, ranges, notes)


def _validated_files(ground_truth: Path, results: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Both files parsed and validated; each parsed file is freed once its validated copy exists (the scorers then
    reuse its memory)."""
    gt = validate_ground_truth(load_json(ground_truth), ground_truth)
    return gt, validate_results(load_json(results, error=PredictionError), gt, results)
