"""The text-detection tracks: predicted polygons scored against the hidden ICDAR ground truth with
ICDAR2013 DetEval (the ground truth's form) and ICDAR2015 IoU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import PredictionError
from harness.formats.rrc import read_rrc_ground_truth
from harness.metrics.deteval import deteval
from harness.metrics.icdar15 import icdar15
from harness.metrics.text_records import ImageDet
from harness.predictions import Predictions
from harness.tracks.base import TrackCard

SCORER_VERSION = "deteval-icdar15-1"


def label_ids(card: TrackCard, hidden_dir: Path) -> None:
    return None


def num_classes(card: TrackCard, hidden_dir: Path) -> None:
    return None


def to_quads(polygons: np.ndarray) -> np.ndarray:
    """ICDAR results are quadrilaterals: polygons of more points become their minimum-area rectangle."""
    polygons = np.asarray(polygons, dtype=np.float64)
    if len(polygons) == 0 or polygons.shape[1] == 4:
        return polygons.reshape(-1, 4, 2)
    import cv2

    return np.stack([cv2.boxPoints(cv2.minAreaRect(p.astype(np.float32))) for p in polygons]).astype(np.float64)


def score(card: TrackCard, predictions: Predictions, hidden_dir: Path) -> dict[str, float]:
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
    return {**deteval(gt, det, truth.form), **icdar15(gt, det)}
