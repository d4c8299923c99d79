"""The store on a real PostgreSQL server: migrations (also from several processes at once), column types, claims."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import text

from harness.store.models import Run, utcnow
from harness.store.repo import Lease, RunOutcome, Store, idempotency_key, latency_samples

pytestmark = pytest.mark.postgres

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _submission(store: Store, name: str = "tiny") -> int:
    row, created = store.add_submission(
        name=name,
        track="classification",
        content_hash="c" * 64,
        project="tiny-submission",
        entry_point="tiny_pkg:build",
        variants=["fp32", "bf16"],
        source_path="/src",
        stored_path="/stored",
        site_path="/site",
        params=1234,
        macs={"32x32": 516256},
        bytes=4936,
    )
    assert created
    return row.id


def _claim(store: Store, key: str, submission_id: int, variant: str = "fp32", lease: Lease | None = None) -> int | None:
    return store.claim_run(
        key,
        lease,
        submission_id=submission_id,
        variant=variant,
        track="classification",
        track_version=1,
        card_hash="h" * 16,
        dataset="digits/test",
        dataset_hash="d" * 64,
        device="cpu",
        profile="quick",
        runner="ray",
        hardware_class="CPU test / 1 threads",
        harness_version="0.1.0",
        scorer_version="1",
        primary_metric="top1",
    )


def _latency(samples: list[float]) -> dict:
    return {
        "batch_size": 1,
        "ranked_ms": 1.5,
        "p50_ms": 1.5,
        "p90_ms": 1.9,
        "p95_ms": 2.0,
        "p99_ms": 2.5,
        "mean_ms": 1.6,
        "std_ms": 0.2,
        "cv": 0.125,
        "repeats": 3,
        "iterations": len(samples),
        "timer": "perf_counter_ns",
        "noisy": True,
        "noise_reasons": ["cv 12.5% above 2%"],
        "repeat_medians_ms": [1.4, 1.5, 1.6],
        "repeat_sizes": [2, 2, 1],
        "samples_ms": samples,
    }


def test_migrations_and_types_round_trip(pg_url):
    store = Store(pg_url)
    assert store.engine.dialect.name == "postgresql"
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0005"
        sizes = conn.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_name IN ('runs', 'submissions') AND column_name IN ('params', 'bytes')"
            )
        ).all()
        kinds = dict(
            conn.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'latency_summaries' AND column_name IN ('noisy', 'samples', 'noise_reasons')"
                )
            ).all()
        )
    assert kinds == {"noisy": "boolean", "samples": "bytea", "noise_reasons": "json"}
    assert sorted(sizes) == [(t, c, "bigint") for t in ("runs", "submissions") for c in ("bytes", "params")]

    sub_id = _submission(store)
    run_id = _claim(store, idempotency_key("a"), sub_id)
    assert run_id is not None
    samples = [1.25, 1.5, 2.75, 1.0, 1.5]
    store.finish_run(
        run_id,
        RunOutcome(
            status="ok",
            metrics={"top1": 0.875, "top5": 1.0},
            primary_value=0.875,
            complexity={"params": 1234, "bytes": 3_000_000_000, "macs": {"32x32": 516256}, "macs_std": {"32x32": 0.0}},
            latency={"device": _latency(samples)},
            environment={"device": "cpu", "cpu_model": "test", "threads": 1, "tensorrt": None},
            details={"timings": {"accuracy_s": 0.5}, "crosscheck": {"images": 1, "consistent": True}},
        ),
    )
    run = store.get_run(run_id)
    assert run.status == "ok" and run.primary_value == 0.875
    assert run.bytes == 3_000_000_000  # a 3 GB checkpoint: past 2**31, hence BIGINT
    assert {m.name: m.value for m in run.metrics} == {"top1": 0.875, "top5": 1.0}
    assert run.macs == {"32x32": 516256} and run.details["crosscheck"] == {"images": 1, "consistent": True}
    assert run.environment.data["tensorrt"] is None and run.environment.hardware_class == "CPU test / 1 threads"
    (latency,) = run.latencies
    assert latency.noisy is True and latency.noise_reasons == ["cv 12.5% above 2%"]
    assert latency.repeat_sizes == [2, 2, 1]
    # float32 samples survive bytea exactly (each value above is exactly representable in float32).
    np.testing.assert_array_equal(latency_samples(latency), np.array(samples))


def test_one_claim_wins_among_concurrent_claimers(pg_url):
    store = Store(pg_url)
    sub_id = _submission(store)
    key = idempotency_key("contended")
    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(lambda _: _claim(store, key, sub_id), range(8)))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    assert len(store.runs()) == 1


def test_expired_claims_are_taken_over_and_live_ones_are_not(pg_url):
    store = Store(pg_url)
    sub_id = _submission(store)

    live = _claim(store, idempotency_key("live"), sub_id)
    assert live is not None
    assert _claim(store, idempotency_key("live"), sub_id, lease=Lease.new()) is None, "its lease is live"

    dead = _claim(store, idempotency_key("dead"), sub_id)
    legacy = _claim(store, idempotency_key("legacy"), sub_id)
    with store.session() as s:
        s.get(Run, dead).lease_expires_at = utcnow() - timedelta(seconds=1)  # its evaluator stopped renewing
        s.get(Run, legacy).lease_expires_at = None  # claimed before leases existed
    again_dead = _claim(store, idempotency_key("dead"), sub_id, lease=Lease.new())
    again_legacy = _claim(store, idempotency_key("legacy"), sub_id, lease=Lease.new())
    assert again_dead == dead and again_legacy == legacy, "taken over as the next attempt of the same run"
    assert store.get_run(dead).attempt == 2
    assert sorted(r.id for r in store.runs()) == sorted([live, dead, legacy])

    store.finish_run(again_dead, RunOutcome(status="failed", error="[run] boom"))
    assert _claim(store, idempotency_key("dead"), sub_id, lease=Lease.new()) is None, "a finished run stays"


def test_processes_migrate_a_fresh_database_at_once(pg_url):
    code = "import sys; from harness.store.repo import Store; print(Store(sys.argv[1]).count_runs())"
    env = {**os.environ, "PYTHONPATH": ROOT}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err.decode()[-2000:] for _, err in outputs]
    assert [out.decode().strip() for out, _ in outputs] == ["0"] * 4
    with Store(pg_url).engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_concurrent_finishers_share_one_new_environment_row(pg_url):
    """Eight writers finish runs measured on the same (new) machine at once: one environment row, no error."""
    store = Store(pg_url)
    sub_id = _submission(store)
    run_ids = [_claim(store, idempotency_key("env", n), sub_id) for n in range(8)]
    env = {"device": "cpu", "cpu_model": "shared machine", "threads": 1}
    barrier = threading.Barrier(8)

    def finish(run_id: int) -> None:
        barrier.wait()
        store.finish_run(run_id, RunOutcome(status="ok", metrics={"top1": 0.5}, environment=env))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(finish, run_ids))
    runs = store.runs()
    assert {r.status for r in runs} == {"ok"} and len(runs) == 8
    assert len({r.environment_id for r in runs}) == 1
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM environments")).scalar() == 1


def test_non_finite_floats_in_json_columns_are_stored_as_null(pg_url):
    """PostgreSQL's json type refuses NaN (SQLite's text does not): a NaN timing must not fail the write."""
    store = Store(pg_url)
    run_id = _claim(store, idempotency_key("nan"), _submission(store))
    details = {"timings": {"accuracy_s": float("nan"), "load_s": 0.25}, "spread": [1.0, float("inf")]}
    store.finish_run(run_id, RunOutcome(status="ok", metrics={"top1": float("nan")}, details=details))
    run = store.get_run(run_id)
    assert run.details == {"timings": {"accuracy_s": None, "load_s": 0.25}, "spread": [1.0, None]}
    assert np.isnan(run.metrics[0].value), "a float column keeps NaN"


def test_one_claimer_wins_a_stale_claim_among_concurrent_reclaimers(pg_url):
    store = Store(pg_url)
    sub_id = _submission(store)
    key = idempotency_key("stale-contended")
    stale = _claim(store, key, sub_id)
    with store.session() as s:
        s.get(Run, stale).lease_expires_at = utcnow() - timedelta(seconds=1)
    barrier = threading.Barrier(8)

    def reclaim(_: int) -> int | None:
        barrier.wait()
        return _claim(store, key, sub_id, lease=Lease.new())

    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(reclaim, range(8)))
    winners = [c for c in claims if c is not None]
    assert winners == [stale] and store.get_run(stale).attempt == 2
    assert [r.id for r in store.runs()] == winners


def test_a_participant_s_quota_holds_under_concurrent_reservations(pg_url):
    """Sixteen concurrent reservations of one place each against a daily quota of 3: exactly three are taken
    (the participant's row is written first, which serialises them on PostgreSQL as on SQLite)."""
    from harness.store.competitions import add_participant, competition, register, reserve

    store = Store(pg_url)
    register(store, "pg-cup", "PG cup", "d" * 64, "/bundle", {}, ["final"])
    row = competition(store, "pg-cup")
    phase_id = row.phases[0].id
    person = add_participant(store, row.id, "ann", None)
    barrier = threading.Barrier(16)

    def take(_: int) -> bool:
        barrier.wait()
        return isinstance(reserve(store, phase_id, person.id, [("m", None)], {"per_day": 3}), list)

    with ThreadPoolExecutor(max_workers=16) as pool:
        taken = list(pool.map(take, range(16)))
    assert sum(taken) == 3
    with store.session() as s:
        assert s.execute(text("SELECT count(*) FROM entries WHERE status = 'pending'")).scalar() == 3
