"""The classification track: scores logits against `hidden/labels.json` (top-1, top-5)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import DatasetError, PredictionError
from harness.metrics.accuracy import topk_accuracy
from harness.predictions import Predictions
from harness.tracks.base import TrackCard

SCORER_VERSION = "accuracy-1"


def read_labels(hidden_dir: Path) -> dict:
    path = hidden_dir / "labels.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable ground truth ({exc})") from exc
    if len(data.get("ids", [])) != len(data.get("labels", [])):
        raise DatasetError(f"{path}: `ids` and `labels` differ in length")
    return data


def label_ids(card: TrackCard, hidden_dir: Path) -> list[int] | None:
    return None


def num_classes(card: TrackCard, hidden_dir: Path) -> int:
    return len(read_labels(hidden_dir).get("classes", [])) or int(card.num_classes or 0)


def score(card: TrackCard, predictions: Predictions, hidden_dir: Path) -> dict[str, float]:
    import numpy as np

    truth = read_labels(hidden_dir)
    label_of = dict(zip(truth["ids"], truth["labels"], strict=True))
    missing = [i for i in truth["ids"] if i not in set(predictions.ids)]
    if missing or len(predictions.ids) != len(truth["ids"]):
        raise PredictionError(
            f"predictions cover {len(predictions.ids)} samples, the split has {len(truth['ids'])}"
            + (f" (missing e.g. {missing[:3]})" if missing else "")
        )
    logits = np.stack([r.logits for r in predictions.records])
    labels = np.asarray([label_of[i] for i in predictions.ids])
    acc = topk_accuracy(logits, labels, (1, 5))
    return {"top1": acc[1], "top5": acc[5]}
