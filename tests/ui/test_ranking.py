"""The leaderboard's computations on small hand-worked tables: ranks under budgets, Pareto fronts, variant
changes against fp32, and the best score over time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.leaderboard_app.ranking import Budget, best_over_time, pareto_mask, rank, variant_changes

HW = "CPU X / 1 threads"


def _entries() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": [1, 2, 3, 4, 5],
            "submission": ["a", "b", "c", "d", "e"],
            "variant": ["fp32", "fp32", "bf16", "fp32", "fp32"],
            "hardware_class": [HW, HW, HW, HW, "GPU Y"],
            "primary_value": [0.9, 0.9, 0.8, 0.95, 0.5],
            "latency_ms": [2.0, 1.0, 0.5, 3.0, 0.1],
            "macs": [10e6, 50e6, 5e6, np.nan, 1e6],
            "bytes": [4e6, 8e6, 1e6, 2e6, 1e6],
            "noisy": [False, True, False, False, False],
        }
    )


def test_rank_orders_by_metric_then_latency_within_each_hardware_class():
    ranked = rank(_entries(), higher_is_better=True)
    # d 0.95 first; a and b tie at 0.9 and b is faster; c 0.8; e is alone on its machine.
    assert list(zip(ranked["submission"], ranked["rank"], strict=True)) == [
        ("d", 1),
        ("b", 2),
        ("a", 3),
        ("c", 4),
        ("e", 1),
    ]
    lower = rank(_entries(), higher_is_better=False, hardware_class=HW)
    assert list(lower["submission"]) == ["c", "b", "a", "d"]


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (Budget(max_macs=20e6), ["a", "c"]),  # b is over; d has no MACs measured, so it cannot be shown within
        (Budget(max_latency_ms=1.0), ["b", "c"]),
        (Budget(max_bytes=2e6), ["d", "c"]),
        (Budget(max_macs=20e6, max_latency_ms=1.0), ["c"]),
    ],
)
def test_budgets_rerank_within_the_budget(budget, expected):
    ranked = rank(_entries(), True, budget=budget, hardware_class=HW)
    assert list(ranked["submission"]) == expected
    assert list(ranked["rank"]) == list(range(1, len(expected) + 1))


def test_noisy_and_variant_filters():
    assert "b" not in set(rank(_entries(), True, include_noisy=False)["submission"])
    assert list(rank(_entries(), True, variants=["bf16"])["submission"]) == ["c"]
    assert rank(_entries(), True, variants=[]).empty


def test_pareto_front_higher_is_better():
    values = np.array([0.9, 0.8, 0.95, 0.7, 0.9])
    costs = np.array([2.0, 1.0, 5.0, 3.0, 2.0])
    # Cheapest (0.8 @ 1) is on the front; 0.9 @ 2 twice (equal entries do not beat each other); 0.7 @ 3 is
    # beaten by 0.9 @ 2; 0.95 @ 5 is the most accurate.
    assert pareto_mask(values, costs, higher_is_better=True).tolist() == [True, True, True, False, True]


def test_pareto_front_lower_is_better_and_missing_values():
    assert pareto_mask(np.array([0.1, 0.2, 0.05]), np.array([1.0, 1.0, 3.0]), False).tolist() == [True, False, True]
    assert pareto_mask(np.array([0.5, np.nan, 0.6]), np.array([1.0, 0.5, np.nan]), True).tolist() == [
        True,
        False,
        False,
    ]


def test_variant_changes_against_fp32():
    frame = pd.DataFrame(
        {
            "variant": ["fp32", "bf16", "int8-cpu"],
            "status": ["ok", "ok", "failed"],
            "primary_value": [0.9, 0.89, np.nan],
            "latency_ms": [2.0, 1.0, np.nan],
            "bytes": [400, 200, np.nan],
        }
    )
    changes = variant_changes(frame)
    assert changes["delta_metric"].iloc[:2].tolist() == pytest.approx([0.0, -0.01])
    assert changes["latency_change_pct"].iloc[:2].tolist() == pytest.approx([0.0, -50.0])
    assert changes["bytes_change_pct"].iloc[:2].tolist() == pytest.approx([0.0, -50.0])
    assert changes.iloc[2][["delta_metric", "latency_change_pct", "bytes_change_pct"]].isna().all()
    without_base = variant_changes(frame[frame["variant"] != "fp32"])
    assert without_base["delta_metric"].isna().all()


def test_best_over_time_marks_only_new_bests():
    frame = pd.DataFrame(
        {
            "run_id": [1, 2, 3, 4, 5, 6],
            "status": ["ok", "ok", "ok", "failed", "ok", "ok"],
            "primary_value": [0.5, 0.7, 0.6, np.nan, 0.7, 0.8],
            "finished_at": pd.to_datetime(
                ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05", "2026-01-06"]
            ),
        }
    )
    timeline = best_over_time(frame, higher_is_better=True)
    assert timeline["run_id"].tolist() == [1, 2, 3, 5, 6]
    assert timeline["best_so_far"].tolist() == [0.5, 0.7, 0.7, 0.7, 0.8]
    assert timeline["record"].tolist() == [True, True, False, False, True]
