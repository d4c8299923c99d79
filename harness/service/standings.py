"""The standings: on one board (track version, dataset and digest, latency profile: `harness.store.repo.BoardKey`),
the run that stands for each (submission, variant, hardware class, device) by the card's rule, ranked.
`rank_order` is THE ranking: the CLI (`harness leaderboard`), exports and the Streamlit board all order entries
through it, so they never disagree on ties."""

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


def board_key(track: str, dataset: str | None = None, profile: str | None = None) -> Any:
    """The board of a track's current version: its card's dataset (at the pinned digest) and profile, unless
    others are named; the card's ranking rule and ranked latency."""
    from harness.datasets import get_spec
    from harness.errors import HarnessError
    from harness.measure.latency import PROFILES
    from harness.store.repo import BoardKey
    from harness.tracks import get_card

    card = get_card(track)
    if profile is not None and profile not in PROFILES:
        raise HarnessError(f"unknown profile `{profile}`", f"use one of: {', '.join(PROFILES)}")
    if dataset is not None:
        get_spec(dataset)  # an unknown name is refused with the known ones
    return BoardKey.for_card(card, dataset, profile)


def standings(
    track: str,
    hardware_class: str | None = None,
    store: Any = None,
    dataset: str | None = None,
    profile: str | None = None,
    with_samples: bool = False,
) -> list[dict[str, Any]]:
    """Ranked run records of one board (`board_key`), grouped by hardware class and device (each ranked 1..n).
    Each row carries the board it belongs to (`board`), its ranked latency kind, its primary interval and
    whether that interval overlaps its leader's (`tied_with_leader`, with the reason)."""
    from harness.records import ranked_summary
    from harness.service.evaluate import run_record
    from harness.store import open_store
    from harness.tracks import get_card

    card = get_card(track)
    key = board_key(track, dataset, profile)
    store = store or open_store()
    rows = [run_record(r, with_samples, card.higher_is_better) for r in store.standings(key, hardware_class)]
    for row in rows:
        row["ranked_latency"] = key.latency_kind  # the board's rule, whatever the run was stored with
    order = rank_order(
        [row["metrics"].get(card.primary_metric) for row in rows],
        [(ranked_summary(row) or {}).get("ranked_ms") for row in rows],
        [row["run_id"] for row in rows],
        card.higher_is_better,
    )
    ranked = [rows[i] for i in order]
    groups = [f"{row['hardware_class']}\0{row['device']}" for row in ranked]
    leaders: dict[str, dict[str, Any]] = {}
    for row, group, rank in zip(ranked, groups, ranks_within(groups), strict=True):
        row["rank"] = rank
        row["board"] = key.to_dict()
        leader = leaders.setdefault(group, row)
        row["tied_with_leader"], row["tie_reason"] = tie_with(row, leader, card.primary_metric)
    return sorted(ranked, key=lambda row: (row["hardware_class"], row["device"]))  # stable: ranks stay in order


def tie_with(row: dict[str, Any], leader: dict[str, Any], metric: str) -> tuple[bool, str | None]:
    """Whether an entry cannot be told apart from its group's leader on the primary metric: their confidence
    intervals overlap. The leader itself, and entries without an interval, are not marked."""
    if row is leader or not row.get("primary_interval") or not leader.get("primary_interval"):
        return False, None
    low, high = row["primary_interval"]
    leader_low, leader_high = leader["primary_interval"]
    if low <= leader_high and leader_low <= high:
        return True, (
            f"{metric} interval [{low:.4f}, {high:.4f}] overlaps the leader's [{leader_low:.4f}, {leader_high:.4f}]"
        )
    return False, None
