"""Classification: `ClassScores` (logits) per image, scored top-1/top-5 against `hidden/labels.json`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.contract import ClassScores, OutputError
from harness.errors import DatasetError, PredictionError
from harness.kinds import TaskKind, check_array, subset_ids
from harness.measure.crosscheck import CrossCheck, Tolerance, compare_logits


def read_labels(hidden_dir: Path) -> dict:
    path = hidden_dir / "labels.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable ground truth ({exc})") from exc
    if len(data.get("ids", [])) != len(data.get("labels", [])):
        raise DatasetError(f"{path}: `ids` and `labels` differ in length")
    return data


class Classification(TaskKind):
    name = "classification"
    record_type = ClassScores
    scorer_version = "accuracy-1"
    needs_image_sizes = False
    truth_files = ("labels.json",)
    tolerances = {
        False: Tolerance(logits=1e-3, iou=1.0, score=0.0, min_score=0.0, matched=1.0),
        True: Tolerance(logits=5e-2, iou=1.0, score=0.0, min_score=0.0, matched=1.0),
    }

    def check_record(self, record: Any, height: int, width: int, context: dict[str, Any], where: str) -> None:
        logits = check_array("logits", record.logits, 1, None, where)
        num_classes = context.get("num_classes")
        if num_classes is not None and logits.shape[0] != num_classes:
            raise OutputError(f"{where}: `logits` has {logits.shape[0]} classes, the track has {num_classes}")

    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        logits = np.stack([r.logits.astype(np.float32) for r in records]) if records else np.zeros((0, 0))
        return {"logits": logits}

    def decode(self, arrays: dict[str, np.ndarray], count: int, source: str) -> list[Any]:
        logits = arrays["logits"]
        if logits.shape[0] != count:
            raise PredictionError(f"{source}: {logits.shape[0]} logit rows for {count} ids")
        return [ClassScores(logits=row) for row in logits]

    def compare(self, expected: Sequence[Any], got: Sequence[Any], reduced_precision: bool) -> CrossCheck:
        return compare_logits(expected, got, self.tolerances[reduced_precision], reduced_precision)

    def num_classes(self, card: Any, hidden_dir: Path) -> int | None:
        return len(read_labels(hidden_dir).get("classes", [])) or int(card.num_classes or 0)

    def subset_truth(self, hidden_dir: Path, ids: Sequence[str], dest: Path) -> None:
        """`labels.json` of only `ids` (in the ground truth's order), with its `classes` and any other keys."""
        truth = read_labels(hidden_dir)
        wanted = subset_ids(truth.get("ids", []), ids, hidden_dir / "labels.json")
        kept = [(i, label) for i, label in zip(truth["ids"], truth["labels"], strict=True) if i in wanted]
        subset = {**truth, "ids": [i for i, _ in kept], "labels": [label for _, label in kept]}
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "labels.json").write_text(json.dumps(subset) + "\n")

    def score(self, card: Any, predictions: Any, hidden_dir: Path) -> dict[str, float]:
        return self.score_with_interval(card, predictions, hidden_dir)[0]

    def score_with_interval(self, card: Any, predictions: Any, hidden_dir: Path, **options: Any) -> tuple[dict, Any]:
        from harness.metrics.accuracy import topk_hits
        from harness.metrics.intervals import mean_interval

        truth = read_labels(hidden_dir)
        label_of = dict(zip(truth["ids"], truth["labels"], strict=True))
        predicted = set(predictions.ids)
        missing = [i for i in truth["ids"] if i not in predicted]
        if missing or len(predictions.ids) != len(truth["ids"]):
            raise PredictionError(
                f"predictions cover {len(predictions.ids)} samples, the split has {len(truth['ids'])}"
                + (f" (missing e.g. {missing[:3]})" if missing else "")
            )
        logits = np.stack([r.logits for r in predictions.records])
        labels = np.asarray([label_of[i] for i in predictions.ids])
        hits = {f"top{k}": value for k, value in topk_hits(logits, labels, (1, 5)).items()}
        metrics = {name: float(value.mean()) if len(value) else 0.0 for name, value in hits.items()}
        primary = hits.get(getattr(card, "primary_metric", "top1"))
        return metrics, mean_interval(primary) if primary is not None else None


KIND = Classification()
