"""Text detection: `TextPolygons` (K×P×2 polygons, scores) per image, scored against the hidden ICDAR ground
truth with ICDAR2013 DetEval (the ground truth's form) and ICDAR2015 IoU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.contract import OutputError, TextPolygons
from harness.errors import PredictionError
from harness.kinds import TaskKind, check_array, check_inside, concatenated, offsets, subset_ids
from harness.measure.crosscheck import BOX_TOLERANCES, CrossCheck, compare_boxes


def to_quads(polygons: np.ndarray) -> np.ndarray:
    """ICDAR results are quadrilaterals: polygons of more points become their minimum-area rectangle."""
    polygons = np.asarray(polygons, dtype=np.float64)
    if len(polygons) == 0 or polygons.shape[1] == 4:
        return polygons.reshape(-1, 4, 2)
    import cv2

    return np.stack([cv2.boxPoints(cv2.minAreaRect(p.astype(np.float32))) for p in polygons]).astype(np.float64)


def _padded(polygons: list[np.ndarray]) -> np.ndarray:
    """Polygons of one image as one array; those with fewer points repeat their last point."""
    if polygons and len({len(p) for p in polygons}) == 1:
        return np.stack(polygons)
    if not polygons:
        return np.zeros((0, 4, 2), np.float32)
    width = max(len(p) for p in polygons)
    return np.stack([np.concatenate([p, np.repeat(p[-1:], width - len(p), 0)]) for p in polygons])


class Text(TaskKind):
    name = "text"
    record_type = TextPolygons
    scorer_version = "deteval-icdar15-1"
    tolerances = BOX_TOLERANCES
    # One `gt_<id>.txt` per image (harness.formats.rrc); an image without text has an empty file, so every
    # split with ground truth has at least one.
    truth_files = ("gt_*.txt",)

    def check_record(self, record: Any, height: int, width: int, context: dict[str, Any], where: str) -> None:
        polygons = check_array("polygons", record.polygons, 3, 2, where)
        scores = check_array("scores", record.scores, 1, None, where)
        if len(polygons) != len(scores):
            raise OutputError(f"{where}: {len(polygons)} polygons but {len(scores)} scores")
        if len(polygons) and polygons.shape[1] < 4:
            raise OutputError(f"{where}: polygons have {polygons.shape[1]} points, at least 4 are needed")
        if len(polygons):
            check_inside(polygons.reshape(-1, 2), width, height, where)

    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        return {
            "counts": np.asarray([len(r.polygons) for r in records], dtype=np.int64),
            "points": np.asarray([p.shape[0] for r in records for p in r.polygons], dtype=np.int64),
            "coords": concatenated([p.reshape(-1, 2) for r in records for p in r.polygons], (0, 2), np.float32),
            "scores": concatenated([r.scores.reshape(-1) for r in records], (0,), np.float32),
        }

    def decode(self, arrays: dict[str, np.ndarray], count: int, source: str) -> list[Any]:
        points = arrays["points"]
        spans = offsets(source, arrays["counts"], count, len(points))
        point_offsets = np.concatenate([[0], np.cumsum(points)])
        if point_offsets[-1] != len(arrays["coords"]):
            raise PredictionError(f"{source}: point counts do not add up to the coordinates given")
        coords = arrays["coords"]
        return [
            TextPolygons(
                polygons=_padded([coords[point_offsets[j] : point_offsets[j + 1]] for j in range(a, b)]),
                scores=arrays["scores"][a:b],
            )
            for a, b in spans
        ]

    def compare(self, expected: Sequence[Any], got: Sequence[Any], reduced_precision: bool) -> CrossCheck:
        def scored(record: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            polygons = np.asarray(record.polygons, dtype=np.float64)
            # Polygons are compared by their enclosing boxes: robust, and enough to catch other outputs.
            boxes = (
                np.concatenate([polygons.min(axis=1), polygons.max(axis=1)], axis=1)
                if len(polygons)
                else np.zeros((0, 4))
            )
            return boxes, np.asarray(record.scores, dtype=np.float64), np.zeros(len(boxes), dtype=np.int64)

        tolerance = self.tolerances[reduced_precision]
        return compare_boxes([scored(r) for r in expected], [scored(r) for r in got], tolerance, reduced_precision)

    def subset_truth(self, hidden_dir: Path, ids: Sequence[str], dest: Path) -> None:
        """The `gt_<id>.txt` files of only `ids` (all that harness.formats.rrc.read_rrc_ground_truth reads), and
        the generator's `chars.json` restricted to them where there is one; other files (`meta.json`) are not
        copied. An empty `ids` leaves no ground-truth file, which the scorer refuses."""
        import json
        import shutil

        from harness.formats.rrc import GT_NAME

        files = {m.group(1): p for p in hidden_dir.iterdir() if p.is_file() and (m := GT_NAME.fullmatch(p.name))}
        wanted = subset_ids(list(files), ids, hidden_dir)
        dest.mkdir(parents=True, exist_ok=True)
        for image_id in sorted(wanted):
            shutil.copyfile(files[image_id], dest / files[image_id].name)
        chars = hidden_dir / "chars.json"
        if chars.is_file():
            data = json.loads(chars.read_text())
            if isinstance(data, dict):
                kept = {key: value for key, value in data.items() if key in wanted}
                (dest / "chars.json").write_text(json.dumps(kept, separators=(",", ":")))

    def num_classes(self, card: Any, hidden_dir: Path) -> None:
        return None

    def score(self, card: Any, predictions: Any, hidden_dir: Path) -> dict[str, float]:
        return self.score_with_interval(card, predictions, hidden_dir)[0]

    def score_with_interval(self, card: Any, predictions: Any, hidden_dir: Path, **options: Any) -> tuple[dict, Any]:
        from harness.formats.rrc import read_rrc_ground_truth
        from harness.metrics.deteval import deteval_images, summarise_images
        from harness.metrics.icdar15 import iou_images
        from harness.metrics.intervals import hmean_interval
        from harness.metrics.text_records import ImageDet

        truth = read_rrc_ground_truth(hidden_dir)
        by_id = dict(zip(predictions.ids, predictions.records, strict=True))
        unknown = sorted(set(by_id) - set(truth.images))
        if unknown:
            raise PredictionError(f"predictions for images the split does not have: {unknown[:5]}")
        gt, det = [], []
        for image_id, image_gt in truth.images.items():
            record = by_id.get(image_id)
            gt.append(image_gt)
            if record is None:
                det.append(ImageDet.empty())  # as the official script: a missing result is no detections
            else:
                det.append(ImageDet(polygons=to_quads(record.polygons), scores=np.asarray(record.scores, np.float64)))
        # Per image, then summed in image order as the official scripts do: the dataset figures, and the
        # per-image sums the bootstrap resamples.
        per_image = {
            "deteval": [
                (i.recall_sum, i.precision_sum, i.gt_care, i.det_care) for i in deteval_images(gt, det, truth.form)
            ],
            "iou": [(len(i.matches), len(i.matches), i.gt_care, i.det_care) for i in iou_images(gt, det)],
        }
        metrics: dict[str, float] = {}
        interval = None
        primary = getattr(card, "primary_metric", "")
        for protocol, rows in per_image.items():
            table = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
            precision, recall, hmean = summarise_images(*table.T)
            metrics.update(
                {f"{protocol}_precision": precision, f"{protocol}_recall": recall, f"{protocol}_hmean": hmean}
            )
            if primary.startswith(f"{protocol}_"):
                interval = hmean_interval(*table.T, which=primary.removeprefix(f"{protocol}_"))
        return metrics, interval


KIND = Text()
