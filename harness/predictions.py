"""Predictions on disk: what the ingestion step writes and the scoring step reads (npz, never pickle).

One file per run, `predictions.npz`, holding the sample ids and the track's records flattened into arrays:
- classification: `logits` (N, C)
- detection: `counts` (N,), `boxes` (sum K, 4), `scores`, `labels`
- text: `counts` (N,), `points` (sum K,) points per polygon, `coords` (sum points, 2), `scores`
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.contract import ClassScores, Detections, TextPolygons
from harness.errors import PredictionError


@dataclass
class Predictions:
    kind: str
    ids: list[str]
    records: list  # one record per id, in order


def save_predictions(path: Path, kind: str, ids: list[str], records: list) -> None:
    arrays: dict[str, np.ndarray] = {"ids": np.asarray(ids, dtype=np.str_), "kind": np.asarray(kind)}
    if kind == "classification":
        arrays["logits"] = np.stack([r.logits.astype(np.float32) for r in records]) if records else np.zeros((0, 0))
    elif kind == "detection":
        arrays["counts"] = np.asarray([len(r.boxes) for r in records], dtype=np.int64)
        arrays["boxes"] = (
            np.concatenate([r.boxes.reshape(-1, 4) for r in records]).astype(np.float32)
            if records
            else np.zeros((0, 4))
        )
        arrays["scores"] = (
            np.concatenate([r.scores.reshape(-1) for r in records]).astype(np.float32) if records else np.zeros(0)
        )
        arrays["labels"] = (
            np.concatenate([r.labels.reshape(-1) for r in records]).astype(np.int64) if records else np.zeros(0)
        )
    elif kind == "text":
        arrays["counts"] = np.asarray([len(r.polygons) for r in records], dtype=np.int64)
        points = [p.shape[0] for r in records for p in r.polygons]
        arrays["points"] = np.asarray(points, dtype=np.int64)
        coords = [p.reshape(-1, 2) for r in records for p in r.polygons]
        arrays["coords"] = np.concatenate(coords).astype(np.float32) if coords else np.zeros((0, 2), np.float32)
        arrays["scores"] = (
            np.concatenate([r.scores.reshape(-1) for r in records]).astype(np.float32) if records else np.zeros(0)
        )
    else:
        raise ValueError(f"unknown track kind {kind!r}")
    np.savez(path, **arrays)


def load_predictions(path: Path, expected_kind: str | None = None) -> Predictions:
    """Read and re-check a predictions file; never trusts it (it was written inside the sandbox)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise PredictionError(f"{path}: not a readable predictions file ({exc})") from exc
    try:
        kind = str(arrays["kind"])
        ids = [str(x) for x in arrays["ids"].tolist()]
        n = len(ids)
        if expected_kind is not None and kind != expected_kind:
            raise PredictionError(f"{path}: predictions are for a {kind} track, expected {expected_kind}")
        if kind == "classification":
            logits = arrays["logits"]
            if logits.shape[0] != n:
                raise PredictionError(f"{path}: {logits.shape[0]} logit rows for {n} ids")
            records = [ClassScores(logits=row) for row in logits]
        elif kind == "detection":
            counts = arrays["counts"]
            offsets = _offsets(path, counts, n, len(arrays["boxes"]))
            records = [
                Detections(boxes=arrays["boxes"][a:b], scores=arrays["scores"][a:b], labels=arrays["labels"][a:b])
                for a, b in offsets
            ]
        elif kind == "text":
            counts, points = arrays["counts"], arrays["points"]
            offsets = _offsets(path, counts, n, len(points))
            point_offsets = np.concatenate([[0], np.cumsum(points)])
            if point_offsets[-1] != len(arrays["coords"]):
                raise PredictionError(f"{path}: point counts do not add up to the coordinates given")
            records = []
            for a, b in offsets:
                polys = [arrays["coords"][point_offsets[j] : point_offsets[j + 1]] for j in range(a, b)]
                if polys and len({len(p) for p in polys}) == 1:
                    stacked = np.stack(polys)
                else:
                    # Polygons of different point counts in one image: pad by repeating the last point.
                    width = max((len(p) for p in polys), default=4)
                    stacked = (
                        np.stack([np.concatenate([p, np.repeat(p[-1:], width - len(p), 0)]) for p in polys])
                        if polys
                        else np.zeros((0, 4, 2), np.float32)
                    )
                records.append(TextPolygons(polygons=stacked, scores=arrays["scores"][a:b]))
        else:
            raise PredictionError(f"{path}: unknown predictions kind {kind!r}")
    except KeyError as exc:
        raise PredictionError(f"{path}: predictions file lacks the array {exc}") from exc
    return Predictions(kind=kind, ids=ids, records=records)


def _offsets(path: Path, counts: np.ndarray, n: int, total: int) -> list[tuple[int, int]]:
    if len(counts) != n or (counts < 0).any() or counts.sum() != total:
        raise PredictionError(f"{path}: per-image counts do not match the {n} ids and {total} entries")
    ends = np.cumsum(counts)
    starts = ends - counts
    return list(zip(starts.tolist(), ends.tolist(), strict=True))
