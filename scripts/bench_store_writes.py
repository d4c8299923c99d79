"""Write latency of the store under concurrent writers: N processes each claim and finish runs as fast as they can.

    python scripts/bench_store_writes.py --url postgresql+psycopg://harness:harness@127.0.0.1:5432/bench
    python scripts/bench_store_writes.py --url sqlite:////tmp/bench.db --writers 8 --runs 50

Each run is what `harness evaluate` writes: a claim (a `running` row with a unique idempotency key), then the
finished run in one transaction (status, complexity, two metrics, one latency summary carrying `--samples`
float32 samples, the shared environment row, details). The writers start together on a barrier, all on the
same machine fingerprint (as the runs of one cluster are). Prints per-operation latency percentiles and the
aggregate throughput; `--json` prints them as JSON. The database must be empty or new (use a fresh one).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ENVIRONMENT = {"device": "cpu", "cpu_model": "bench", "threads": 1, "torch": "bench", "harness": "bench"}


def _outcome(samples: int, rng: np.random.Generator) -> Any:
    from harness.store.repo import RunOutcome

    values = rng.gamma(20.0, 0.05, size=samples).astype(np.float32)
    latency = {
        "batch_size": 1,
        "ranked_ms": float(np.median(values)),
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
        "std_ms": float(values.std()),
        "cv": float(values.std() / values.mean()),
        "repeats": 3,
        "iterations": samples,
        "timer": "perf_counter_ns",
        "noisy": False,
        "noise_reasons": [],
        "repeat_medians_ms": [float(np.median(c)) for c in np.array_split(values, 3)],
        "repeat_sizes": [len(c) for c in np.array_split(values, 3)],
        "samples_ms": values.tolist(),
    }
    return RunOutcome(
        status="ok",
        metrics={"top1": float(rng.random()), "top5": 1.0},
        primary_value=0.5,
        complexity={"params": 1562, "bytes": 6248, "macs": {"32x32": 516256}, "macs_std": {"32x32": 0.0}},
        latency={"device": latency},
        environment=ENVIRONMENT,
        details={"timings": {"accuracy_s": 0.1}, "runner_wall_s": 1.0},
    )


def _writer(url: str, submission_id: int, runs: int, samples: int, barrier: Any, queue: Any, index: int) -> None:
    from harness.store.repo import Store, idempotency_key

    store = Store(url)
    rng = np.random.default_rng(index)
    outcomes = [_outcome(samples, rng) for _ in range(runs)]
    claim_ms, finish_ms = [], []
    barrier.wait()
    start = time.perf_counter()
    for n in range(runs):
        t0 = time.perf_counter()
        run_id = store.claim_run(
            idempotency_key("bench", index, n, uuid.uuid4().hex),
            submission_id=submission_id,
            variant="fp32",
            track="classification",
            track_version=1,
            card_hash="b" * 16,
            dataset="digits/test",
            dataset_hash="d" * 64,
            device="cpu",
            profile="quick",
            runner="bench",
            hardware_class="CPU bench / 1 threads",
            harness_version="bench",
            scorer_version="bench",
            primary_metric="top1",
        )
        t1 = time.perf_counter()
        if run_id is None:
            raise RuntimeError("a fresh idempotency key was refused")
        store.finish_run(run_id, outcomes[n])
        t2 = time.perf_counter()
        claim_ms.append((t1 - t0) * 1e3)
        finish_ms.append((t2 - t1) * 1e3)
    queue.put({"claim_ms": claim_ms, "finish_ms": finish_ms, "wall_s": time.perf_counter() - start})


def _summary(values: list[float]) -> dict[str, float]:
    data = np.asarray(values)
    return {
        "p50": float(np.percentile(data, 50)),
        "p95": float(np.percentile(data, 95)),
        "p99": float(np.percentile(data, 99)),
        "max": float(data.max()),
        "mean": float(data.mean()),
    }


def bench(url: str, writers: int, runs: int, samples: int) -> dict[str, Any]:
    from harness.store.repo import Store

    store = Store(url)  # migrates once, before the writers start
    if store.count_runs():
        raise SystemExit(f"{url.split('@')[-1]} already holds runs: give the benchmark an empty database")
    row, _ = store.add_submission(
        name="bench",
        track="classification",
        content_hash=uuid.uuid4().hex,
        project="bench",
        entry_point="bench:build",
        variants=["fp32"],
        source_path="-",
        stored_path="-",
        site_path="-",
        params=1562,
        macs={"32x32": 516256},
        bytes=6248,
    )
    store.engine.dispose()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(writers + 1)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, row.id, runs, samples, barrier, queue, i)) for i in range(writers)]
    for proc in procs:
        proc.start()
    barrier.wait()
    start = time.perf_counter()
    reports = []
    while len(reports) < writers:
        try:
            reports.append(queue.get(timeout=5))
        except Empty as empty:
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed:
                for proc in procs:
                    proc.terminate()
                message = f"{len(failed)} writer(s) failed (exit codes {failed}); their errors are above"
                raise SystemExit(message) from empty
    wall = time.perf_counter() - start
    for proc in procs:
        proc.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise SystemExit(f"{len(failed)} writer(s) failed: exit codes {failed}")
    stored = Store(url).count_runs()
    claims = [v for r in reports for v in r["claim_ms"]]
    finishes = [v for r in reports for v in r["finish_ms"]]
    return {
        "url": url.split("@")[-1] if "@" in url else url,
        "dialect": url.split(":", 1)[0],
        "writers": writers,
        "runs_per_writer": runs,
        "samples_per_run": samples,
        "runs_stored": stored,
        "wall_s": wall,
        "runs_per_s": writers * runs / wall,
        "claim_ms": _summary(claims),
        "finish_ms": _summary(finishes),
        "run_ms": _summary([c + f for c, f in zip(claims, finishes, strict=True)]),
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of an empty database")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=50, help="runs per writer")
    parser.add_argument("--samples", type=int, default=300, help="latency samples stored per run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = bench(args.url, args.writers, args.runs, args.samples)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"{result['dialect']}: {result['writers']} writers x {result['runs_per_writer']} runs = "
        f"{result['runs_stored']} stored in {result['wall_s']:.1f} s ({result['runs_per_s']:.1f} runs/s); "
        f"load {result['load_average_1m']:.1f} on {result['cpu_count']} CPUs"
    )
    for op in ("claim_ms", "finish_ms", "run_ms"):
        s = result[op]
        print(
            f"  {op:<10} p50 {s['p50']:7.1f}  p95 {s['p95']:7.1f}  p99 {s['p99']:7.1f}  "
            f"max {s['max']:7.1f}  mean {s['mean']:7.1f}"
        )


if __name__ == "__main__":
    main()
