"""Detection: `Detections` (xyxy boxes, scores, category ids) per image, scored as COCO box AP against
`hidden/instances.json`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.contract import Detections, OutputError
from harness.kinds import TaskKind, check_array, check_inside, concatenated, offsets, subset_ids
from harness.measure.crosscheck import BOX_TOLERANCES, CrossCheck, compare_boxes


def _ground_truth(hidden_dir: Path) -> dict:
    from harness.metrics.coco import load_json

    return load_json(hidden_dir / "instances.json")


class Detection(TaskKind):
    name = "detection"
    record_type = Detections
    scorer_version = "coco-bbox-1"
    tolerances = BOX_TOLERANCES
    truth_files = ("instances.json",)

    def check_record(self, record: Any, height: int, width: int, context: dict[str, Any], where: str) -> None:
        boxes = check_array("boxes", record.boxes, 2, 4, where)
        scores = check_array("scores", record.scores, 1, None, where)
        labels = check_array("labels", record.labels, 1, None, where)
        if not (len(boxes) == len(scores) == len(labels)):
            raise OutputError(f"{where}: {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels differ")
        if labels.dtype.kind not in "iu":
            raise OutputError(f"{where}: `labels` has dtype {labels.dtype}, expected integers")
        if len(boxes):
            if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
                raise OutputError(f"{where}: a box has x2 < x1 or y2 < y1 (boxes must be xyxy)")
            check_inside(boxes.reshape(-1, 2), width, height, where)
        label_ids = context.get("label_ids")
        if label_ids is not None and len(labels):
            unknown = sorted(set(labels.tolist()) - label_ids)
            if unknown:
                raise OutputError(
                    f"{where}: unknown category ids {unknown[:5]}; the track's ids are {sorted(label_ids)}"
                )

    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        return {
            "counts": np.asarray([len(r.boxes) for r in records], dtype=np.int64),
            "boxes": concatenated([r.boxes.reshape(-1, 4) for r in records], (0, 4), np.float32),
            "scores": concatenated([r.scores.reshape(-1) for r in records], (0,), np.float32),
            "labels": concatenated([r.labels.reshape(-1) for r in records], (0,), np.int64),
        }

    def decode(self, arrays: dict[str, np.ndarray], count: int, source: str) -> list[Any]:
        spans = offsets(source, arrays["counts"], count, len(arrays["boxes"]))
        return [
            Detections(boxes=arrays["boxes"][a:b], scores=arrays["scores"][a:b], labels=arrays["labels"][a:b])
            for a, b in spans
        ]

    def compare(self, expected: Sequence[Any], got: Sequence[Any], reduced_precision: bool) -> CrossCheck:
        def scored(record: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            boxes = np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4)
            return boxes, np.asarray(record.scores, dtype=np.float64), np.asarray(record.labels, dtype=np.int64)

        tolerance = self.tolerances[reduced_precision]
        return compare_boxes([scored(r) for r in expected], [scored(r) for r in got], tolerance, reduced_precision)

    def subset_truth(self, hidden_dir: Path, ids: Sequence[str], dest: Path) -> None:
        """`instances.json` of only the images `ids` (a split id is `str(image["id"])`, as
        harness.metrics.coco.detections_to_coco maps them): those images and all their annotations (crowd and
        ignore regions included); every category and every other top-level key as they are."""
        import json

        gt = _ground_truth(hidden_dir)
        images = gt.get("images", [])
        wanted = subset_ids([str(image["id"]) for image in images], ids, hidden_dir / "instances.json")
        kept = [image for image in images if str(image["id"]) in wanted]
        kept_ids = {image["id"] for image in kept}
        annotations = [a for a in gt.get("annotations", []) if a.get("image_id") in kept_ids]
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "instances.json").write_text(json.dumps({**gt, "images": kept, "annotations": annotations}) + "\n")

    def label_ids(self, card: Any, hidden_dir: Path) -> list[int]:
        """Category ids are public (they are what a detector must output); annotations are not."""
        return sorted(int(c["id"]) for c in _ground_truth(hidden_dir).get("categories", []))

    def num_classes(self, card: Any, hidden_dir: Path) -> int:
        return len(self.label_ids(card, hidden_dir))

    def score(self, card: Any, predictions: Any, hidden_dir: Path, coco_backend: str | None = None) -> dict[str, float]:
        return _score(*_coco_inputs(predictions, hidden_dir), hidden_dir, coco_backend)

    def score_with_interval(self, card: Any, predictions: Any, hidden_dir: Path, **options: Any) -> tuple[dict, Any]:
        """The metrics (`coco_backend`: the COCO evaluator) and the bootstrap interval of a precision figure
        (harness.metrics.coco_bootstrap), from one reading of the ground truth and one conversion of the
        predictions."""
        from harness.metrics.coco import SUMMARY_KEYS
        from harness.metrics.coco_bootstrap import coco_interval

        gt, results = _coco_inputs(predictions, hidden_dir)
        metrics = _score(gt, results, hidden_dir, options.get("coco_backend"))
        primary = getattr(card, "primary_metric", "AP")
        if primary not in SUMMARY_KEYS:
            return metrics, None
        return metrics, coco_interval(gt, results, primary)


def _coco_inputs(predictions: Any, hidden_dir: Path) -> tuple[dict, list[dict]]:
    """The ground truth, and the predictions as COCO results against it."""
    from harness.metrics.coco import detections_to_coco

    gt = _ground_truth(hidden_dir)
    return gt, detections_to_coco(predictions.ids, predictions.records, ground_truth=gt)


def _score(gt: dict, results: list[dict], hidden_dir: Path, coco_backend: str | None) -> dict[str, float]:
    """COCO box AP/AR (`score_coco` leaves both inputs as they are, so they can be scored again)."""
    from harness.metrics.coco import DEFAULT_BACKEND, score_coco

    source = str(hidden_dir / "instances.json")
    return score_coco(gt, results, backend=coco_backend or DEFAULT_BACKEND, ranges="all", gt_source=source)


KIND = Detection()
