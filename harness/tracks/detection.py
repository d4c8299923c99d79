"""The detection tracks: predictions become COCO results and are scored against `hidden/instances.json`."""

from __future__ import annotations

from pathlib import Path

from harness.metrics.coco import detections_to_coco, load_json, score_coco
from harness.predictions import Predictions
from harness.tracks.base import TrackCard

SCORER_VERSION = "coco-bbox-1"


def _ground_truth(hidden_dir: Path) -> dict:
    return load_json(hidden_dir / "instances.json")


def label_ids(card: TrackCard, hidden_dir: Path) -> list[int]:
    """Category ids are public (they are what a detector must output); annotations are not."""
    return sorted(int(c["id"]) for c in _ground_truth(hidden_dir).get("categories", []))


def num_classes(card: TrackCard, hidden_dir: Path) -> int:
    return len(label_ids(card, hidden_dir))


def score(
    card: TrackCard, predictions: Predictions, hidden_dir: Path, backend: str = "pycocotools"
) -> dict[str, float]:
    gt = _ground_truth(hidden_dir)
    results = detections_to_coco(predictions.ids, predictions.records, ground_truth=gt)
    return score_coco(gt, results, backend=backend, ranges="all", gt_source=str(hidden_dir / "instances.json"))
