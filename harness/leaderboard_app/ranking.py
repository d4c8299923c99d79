"""What the leaderboard computes from the stored runs: ranks under budgets, Pareto fronts, variant changes,
and the best score over time. Pure pandas/numpy, no Streamlit, so it is tested directly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.service.jobs import macs_key as macs_key  # the MACs entry ranked, re-exported for the pages
from harness.service.standings import rank_order
from harness.store.queries import METRIC_PREFIX
from harness.tracks import TrackCard


@dataclass(frozen=True)
class Budget:
    """Upper limits a participant's deployment must meet; None means no limit. A run without the measured
    figure cannot be shown to meet a limit on it, so it is left out under that limit."""

    max_macs: float | None = None
    max_latency_ms: float | None = None
    max_bytes: float | None = None

    def admits(self, frame: pd.DataFrame) -> pd.Series:
        keep = pd.Series(True, index=frame.index)
        for column, limit in (("macs", self.max_macs), ("latency_ms", self.max_latency_ms), ("bytes", self.max_bytes)):
            if limit is not None:
                values = pd.to_numeric(frame[column], errors="coerce")
                keep &= values.notna() & (values <= limit)
        return keep


def order(frame: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """The entries in rank order (harness.service.standings.rank_order, the one ranking the CLI uses too)."""
    if frame.empty:
        return frame.copy()
    positions = rank_order(
        pd.to_numeric(frame["primary_value"], errors="coerce").to_numpy(dtype=float, na_value=np.nan),
        pd.to_numeric(frame["latency_ms"], errors="coerce").to_numpy(dtype=float, na_value=np.nan),
        frame["run_id"].to_numpy(dtype="int64"),
        higher_is_better,
    )
    return frame.iloc[positions]


def rank(
    frame: pd.DataFrame,
    higher_is_better: bool,
    *,
    budget: Budget | None = None,
    include_noisy: bool = True,
    variants: list[str] | None = None,
    hardware_class: str | None = None,
) -> pd.DataFrame:
    """The standings after filters, ranked 1..n within each hardware class (ranks never span machines)."""
    keep = pd.Series(True, index=frame.index)
    if budget is not None:
        keep &= budget.admits(frame)
    if not include_noisy:
        keep &= ~frame["noisy"].fillna(False).astype(bool)
    if variants is not None:
        keep &= frame["variant"].isin(variants)
    if hardware_class is not None:
        keep &= frame["hardware_class"] == hardware_class
    ranked = order(frame[keep], higher_is_better)
    groups = ["hardware_class", "device"] if "device" in ranked.columns else ["hardware_class"]
    ranked.insert(0, "rank", ranked.groupby(groups).cumcount().to_numpy() + 1 if len(ranked) else [])
    return with_ties(ranked.reset_index(drop=True), groups)


def with_ties(ranked: pd.DataFrame, groups: list[str]) -> pd.DataFrame:
    """`interval` (the primary metric's confidence interval as text) and `tied` (True where it overlaps the
    interval of its group's leader: the gap may be chance), as `harness.service.standings.tie_with` marks them."""
    if "primary_ci_low" not in ranked.columns or ranked.empty:
        return ranked.assign(interval=None, tied=False)
    low = pd.to_numeric(ranked["primary_ci_low"], errors="coerce")
    high = pd.to_numeric(ranked["primary_ci_high"], errors="coerce")
    leader_low = low.groupby([ranked[g] for g in groups]).transform("first")
    leader_high = high.groupby([ranked[g] for g in groups]).transform("first")
    tied = (ranked["rank"] > 1) & (low <= leader_high) & (leader_low <= high)
    interval = [f"[{a:.4f}, {b:.4f}]" if pd.notna(a) and pd.notna(b) else None for a, b in zip(low, high, strict=True)]
    return ranked.assign(interval=interval, tied=tied.fillna(False).astype(bool))


def pareto_mask(values: np.ndarray, costs: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """True for the entries no other entry beats: none has a cost <= and a value at least as good, with one of
    the two strictly better. Entries with a missing value or cost are never on the front."""
    values = np.asarray(values, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    goodness = values if higher_is_better else -values
    valid = np.isfinite(goodness) & np.isfinite(costs)
    mask = np.zeros(len(values), dtype=bool)
    indices = np.flatnonzero(valid)
    # Cheapest first, and among equal costs the best first: an entry is on the front when it is better than
    # everything cheaper, or exactly equal (value and cost) to the last entry put on the front.
    sweep = indices[np.lexsort((-goodness[indices], costs[indices]))]
    best = -np.inf
    best_cost = np.nan
    for i in sweep:
        if goodness[i] > best:
            mask[i] = True
            best, best_cost = goodness[i], costs[i]
        elif goodness[i] == best and costs[i] == best_cost:
            mask[i] = True
    return mask


def variant_changes(frame: pd.DataFrame, baseline: str = "fp32") -> pd.DataFrame:
    """Each variant's change against the baseline variant's run: metric difference (absolute), and latency,
    bytes and MACs in % of the baseline. Empty changes where the baseline has no finished `ok` run."""
    out = frame.copy()
    base_rows = frame[(frame["variant"] == baseline) & (frame["status"] == "ok")]
    for column in ("delta_metric", "latency_change_pct", "bytes_change_pct"):
        out[column] = np.nan
    if base_rows.empty:
        return out
    base = base_rows.iloc[-1]
    values = pd.to_numeric(out["primary_value"], errors="coerce")
    out["delta_metric"] = values - float(base["primary_value"])
    for column, change in (("latency_ms", "latency_change_pct"), ("bytes", "bytes_change_pct")):
        reference = pd.to_numeric(pd.Series([base[column]]), errors="coerce").iloc[0]
        if pd.notna(reference) and reference != 0:
            out[change] = 100.0 * (pd.to_numeric(out[column], errors="coerce") - reference) / reference
    out.loc[out["status"] != "ok", ["delta_metric", "latency_change_pct", "bytes_change_pct"]] = np.nan
    return out


def best_over_time(frame: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """The `ok` runs in the order they finished, with the best primary value reached so far and a flag on the
    runs that set a new best (ties do not)."""
    ok = frame[(frame["status"] == "ok") & frame["primary_value"].notna()].sort_values(["finished_at", "run_id"])
    ok = ok.reset_index(drop=True)
    values = ok["primary_value"].astype(float)
    best = values.cummax() if higher_is_better else values.cummin()
    previous = best.shift(1)
    record = previous.isna() | ((values > previous) if higher_is_better else (values < previous))
    return ok.assign(best_so_far=best, record=record)


def hardware_classes(frame: pd.DataFrame) -> list[str]:
    """The hardware classes of a run frame, the one with the most entries first (the pages' default)."""
    return list(frame["hardware_class"].value_counts().index)


def variants(frame: pd.DataFrame) -> list[str]:
    """The variants of a run frame, sorted (all of them chosen by default)."""
    return sorted(frame["variant"].unique())


def metric_columns(frame: pd.DataFrame, names: list[str] | tuple[str, ...]) -> list[str]:
    """The `metric:<name>` columns present in a frame, in the track card's order, then any others."""
    present = [c for c in frame.columns if c.startswith(METRIC_PREFIX)]
    ordered = [f"{METRIC_PREFIX}{n}" for n in names if f"{METRIC_PREFIX}{n}" in present]
    return ordered + sorted(c for c in present if c not in ordered)


def busiest_track(counts: pd.DataFrame, cards: dict[str, TrackCard]) -> str:
    """The track with the most `ok` runs of its current version (`queries.track_versions` counts); the first
    track when none has any."""
    ok = counts[counts["status"] == "ok"]
    current = ok[
        [cards[t].version == v if t in cards else False for t, v in zip(ok["track"], ok["track_version"], strict=True)]
    ]
    if current.empty:
        return next(iter(cards))
    return str(current.groupby("track")["runs"].sum().idxmax())
