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


def test_cli_and_board_rank_ties_identically(tmp_path):
    """Entries tied on the metric (some on latency too, some without a latency) in a real store: `harness
    leaderboard --json` and the board's ranking put them in the same order, with the same ranks."""
    import json

    from harness.leaderboard_app.ranking import macs_key
    from harness.store import queries
    from harness.store.repo import BoardKey, RunOutcome, Store, idempotency_key
    from harness.tracks import get_card
    from tests.conftest import run_cli

    card = get_card("classification")
    url = f"sqlite:///{tmp_path / 'ties.db'}"
    store = Store(url)
    entries = [  # name, top1, ranked latency (None: no latency summary)
        ("e1", 0.90, 2.0),
        ("e2", 0.95, 5.0),
        ("e3", 0.90, 2.0),
        ("e4", 0.90, 1.0),
        ("e5", 0.90, None),
        ("e6", 0.95, 5.0),
        ("e7", 0.80, 0.5),
    ]
    for name, top1, latency in entries:
        row, _ = store.add_submission(
            name=name, track=card.name, content_hash=name * 8, project=name, entry_point=f"{name}:build",
            variants=["fp32"], source_path="/x", stored_path="/x", site_path="/x", params=10, macs={}, bytes=10,
            build_options={}, queued=True,
        )  # fmt: skip
        run_id = store.claim_run(
            idempotency_key(name),
            submission_id=row.id, variant="fp32", track=card.name, track_version=card.version, card_hash="c",
            dataset="shapetex/test", dataset_hash=card.digests["shapetex/test"], device="cpu", profile=card.profile,
            runner="local",
            hardware_class="CPU T / 1 threads", harness_version="0", scorer_version="0", primary_metric="top1",
        )  # fmt: skip
        summary = {
            "batch_size": 1, "ranked_ms": latency, "p50_ms": latency, "p90_ms": latency, "p95_ms": latency,
            "p99_ms": latency, "mean_ms": latency, "std_ms": 0.0, "cv": 0.0, "repeats": 1, "iterations": 1,
            "timer": "perf_counter_ns", "noisy": False, "noise_reasons": [], "repeat_medians_ms": [latency],
            "repeat_sizes": [1], "samples_ms": [latency],
        }  # fmt: skip
        store.finish_run(
            run_id,
            RunOutcome(
                status="ok", metrics={"top1": top1, "top5": 1.0}, primary_value=top1,
                complexity={"params": 10, "bytes": 10, "macs": {}, "macs_std": {}},
                latency={"device": summary, "e2e": summary} if latency is not None else None,
                environment={"device": "cpu", "threads": 1},
            ),
        )  # fmt: skip
    cli = run_cli("leaderboard", "--track", card.name, "--json", env={"HARNESS_DB_URL": url})
    assert cli.returncode == 0, cli.stderr
    cli_order = [(row["submission"], row["rank"]) for row in json.loads(cli.stdout)]
    engine = queries.read_only_engine(url)
    board = rank(queries.standings(engine, BoardKey.for_card(card), macs_key(card), card.metrics), True)
    board_order = list(zip(board["submission"], board["rank"], strict=True))
    assert cli_order == board_order
    # e2 and e6 tie completely: the earlier run first; e4 beats e1/e3 on latency; e5 (no latency) last of 0.90.
    assert [name for name, _ in cli_order] == ["e2", "e6", "e4", "e1", "e3", "e5", "e7"]
    assert [r for _, r in cli_order] == list(range(1, 8))
