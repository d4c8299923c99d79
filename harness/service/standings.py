"""The standings: the latest `ok` run of each (submission, variant, hardware class) of a track's current
version, ranked. `rank_order` is THE ranking: the CLI (`harness leaderboard`), exports and the Streamlit
board all order entries through it, so they never disagree on ties."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def rank_order(
    values: Sequence[float | None], latencies: Sequence[float | None], run_ids: Sequence[int], higher_is_better: bool
) -> np.ndarray:
    """Positions of the entries, best first: the better primary value; on a tie the lower ranked latency; then
    the earlier run. An entry without a value (or latency) comes after those with one."""
    value = np.array(values, dtype=np.float64)  # None becomes NaN
    latency = np.array(latencies, dtype=np.float64)
    goodness = -value if higher_is_better else value
    # np.lexsort sorts by the last key first; NaN keys are pushed last by their "missing" flags.
    return np.lexsort(
        (
            np.asarray(run_ids, dtype=np.int64),
            np.nan_to_num(latency, nan=0.0),
            np.isnan(latency),
            np.nan_to_num(goodness, nan=0.0),
            np.isnan(goodness),
        )
    )


def ranks_within(groups: Sequence[str]) -> list[int]:
    """1, 2, ... within each group, for entries already in rank order (ranks never span hardware classes)."""
    seen: dict[str, int] = {}
    ranks = []
    for group in groups:
        seen[group] = seen.get(group, 0) + 1
        ranks.append(seen[group])
    return ranks


def standings(track: str, hardware_class: str | None = None, store: Any = None) -> list[dict[str, Any]]:
    """Ranked run records of the current track version, grouped by hardware class (each ranked 1..n)."""
    from harness.service.evaluate import run_record
    from harness.store import open_store
    from harness.tracks import get_card

    card = get_card(track)
    store = store or open_store()
    rows = [
        run_record(r, higher_is_better=card.higher_is_better)
        for r in store.standings(card.name, card.version, hardware_class)
    ]
    order = rank_order(
        [row["metrics"].get(card.primary_metric) for row in rows],
        [(row["latency"] or {}).get("ranked_ms") for row in rows],
        [row["run_id"] for row in rows],
        card.higher_is_better,
    )
    ranked = [rows[i] for i in order]
    for row, rank in zip(ranked, ranks_within([row["hardware_class"] for row in ranked]), strict=True):
        row["rank"] = rank
    return sorted(ranked, key=lambda row: row["hardware_class"])  # stable: ranks stay in order per class
