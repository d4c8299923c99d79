"""Top-k accuracy for classification."""

from __future__ import annotations

import numpy as np


def topk_hits(logits: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[int, np.ndarray]:
    """Per sample, whether its true label is among the k highest scores. Ties are broken by index order (stable
    sort), so a constant output never counts as correct for every class at once."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} do not match")
    if len(labels) == 0:
        return {k: np.zeros(0, dtype=bool) for k in ks}
    order = np.argsort(-logits, axis=1, kind="stable")
    return {k: (order[:, : min(k, logits.shape[1])] == labels[:, None]).any(axis=1) for k in ks}
