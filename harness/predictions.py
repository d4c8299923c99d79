"""Predictions on disk: what the ingestion step writes and the scoring step reads (npz, never pickle).

One file per run, `predictions.npz`, holding the sample ids, the task kind, and the kind's records as arrays
(each kind's `encode`/`decode` in `harness.kinds`), e.g. classification `logits` (N, C); detection `counts`
(N,), `boxes` (sum K, 4), `scores`, `labels`; text `counts`, `points` per polygon, `coords`, `scores`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import HarnessError, PredictionError
from harness.kinds import get_kind


@dataclass
class Predictions:
    kind: str
    ids: list[str]
    records: list  # one record per id, in order


def save_predictions(path: Path, kind: str, ids: list[str], records: list) -> None:
    arrays = {"ids": np.asarray(ids, dtype=np.str_), "kind": np.asarray(kind), **get_kind(kind).encode(records)}
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
        if expected_kind is not None and kind != expected_kind:
            raise PredictionError(f"{path}: predictions are for a {kind} track, expected {expected_kind}")
        try:
            task = get_kind(kind)
        except HarnessError:
            raise PredictionError(f"{path}: unknown predictions kind {kind!r}") from None
        records = task.decode(arrays, len(ids), str(path))
    except KeyError as exc:
        raise PredictionError(f"{path}: predictions file lacks the array {exc}") from exc
    return Predictions(kind=kind, ids=ids, records=records)
