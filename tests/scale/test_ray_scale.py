"""500 jobs queued through Ray into PostgreSQL: 500 runs stored, none lost or duplicated; throughput printed.

What runs for real: 250 submission rows (250 entry points of one installed project) x 2 variants = 500 claims
with distinct idempotency keys; 500 Ray tasks asking for the `fake_gpu` stand-in, each with its attempt process
and its outputs sent back as bytes; scoring of every prediction file against the hidden labels on the driver;
500 finished runs written to PostgreSQL. What is reused: the model's work. One real ingestion of the tiny CNN on
the digits test split is recorded first, and each task's inner runner replays its files (`tests/scale/replay.py`),
because a fresh ingestion process costs seconds of CPU (importing torch) and 500 would take most of an hour on
two cores. The ingestion step itself runs through Ray in `test_ray_runner.py`.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter

import pytest

from harness.config import harness_home
from harness.service.evaluate import evaluate
from harness.service.submit import store_submission
from harness.store.repo import Store
from tests.conftest import make_submission
from tests.scale.cluster import GPU_STAND_IN

ENTRY_POINTS = 250
VARIANTS = ["fp32", "channels-last"]


@pytest.mark.ray
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.heavy_benchmark  # 7-12 min on 2 vCPUs: run on demand (-m heavy_benchmark), figures in docs/BENCHMARKS.md
def test_500_jobs_through_ray_store_500_runs(ray_cluster, pg_env, tmp_path, capsys):
    names = [f"tiny_{i:03d}" for i in range(ENTRY_POINTS)]
    folder = make_submission(
        tmp_path, "tiny_many", entry_points={n: "tiny_many_pkg:build" for n in names}, variants=VARIANTS
    )

    # One real ingestion (local runner, its own SQLite store), whose output files every task replays.
    local_store = Store(f"sqlite:///{tmp_path / 'record.db'}")
    store_submission(folder, local_store, entries=names[:1])  # the rows `harness submit` adds, unchecked
    (recorded_run,) = evaluate("classification", variants=["fp32"], runner="local", store=local_store)
    assert recorded_run["status"] == "ok", recorded_run["error"]
    recorded = tmp_path / "recorded"
    (attempt,) = (harness_home() / "runs" / str(recorded_run["run_id"])).glob("attempt-*")  # its output folder
    shutil.copytree(attempt, recorded)

    store = Store(pg_env["HARNESS_DB_URL"])
    store_submission(folder, store)
    options = {
        "address": ray_cluster.address,
        "resources": {GPU_STAND_IN: 1},
        "inner": "tests.scale.replay:ReplayRunner",
        "inner_options": {"source": str(recorded)},
    }
    events: Counter[str] = Counter()
    start = time.monotonic()
    results = evaluate(
        "classification",
        runner="ray",
        runner_options=options,
        store=store,
        progress=lambda event, info: events.update([event]),
    )
    elapsed = time.monotonic() - start

    assert events["run"] == 500 and events["done"] == 500 and events["skip"] == 0
    assert len(results) == 500
    assert all(r["status"] == "ok" for r in results), {r["error"] for r in results if r["status"] != "ok"}
    assert all(r["metrics"] == recorded_run["metrics"] for r in results)
    runs = store.runs()
    assert len(runs) == 500
    assert Counter((r.submission.name, r.variant) for r in runs) == {(n, v): 1 for n in names for v in VARIANTS}
    assert len({r.idempotency_key for r in runs}) == 500
    assert {r.runner for r in runs} == {"ray"} and {r.status for r in runs} == {"ok"}

    # Nothing left in the queue: a second pass claims nothing.
    assert evaluate("classification", runner="ray", runner_options=options, store=store) == []
    assert store.count_runs() == 500
    store.engine.dispose()
    with capsys.disabled():
        print(f"\nscale: 500 runs through Ray into PostgreSQL in {elapsed:.1f} s = {500 / elapsed:.2f} runs/s")
