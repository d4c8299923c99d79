"""A LARGE SYNTHETIC store for the leaderboard speed benchmarks ONLY: real rows written through the repository
API (`Store.add_submission`, `claim_run`, `finish_run`), with fake-but-plausible values. Nothing here was
measured; no test of correctness reads it. Every submission is named `synthetic-NNNN` and every machine
`SYNTHETIC ...` so the rows cannot be mistaken for results.

Shape: `submissions` submissions x the variants, all `ok` on the track's current version (the ranked set),
plus per tenth submission one superseded older `ok` run, one failed run, and one run of the previous track
version (rows the standings query must skip). Latency rows carry per-iteration sample blobs of realistic size
(a standard-profile run keeps ~1,500 samples), which the standings query must not read.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.store.repo import RunOutcome, Store, idempotency_key
from harness.tracks import TrackCard, get_card

VARIANTS = ("fp32", "bf16", "channels-last")
HARDWARE = {
    "SYNTHETIC GPU / driver 1 / CUDA 1": {"device": "cuda", "gpu_name": "SYNTHETIC GPU", "driver": "1", "cuda": "1"},
    "CPU SYNTHETIC / 4 threads": {"device": "cpu", "cpu_model": "SYNTHETIC", "threads": 4},
}


@dataclass(frozen=True)
class SyntheticStore:
    url: str
    submissions: int
    ranked_runs: int
    total_runs: int
    build_s: float


def _latency(rng: np.random.Generator, median_ms: float, samples: int) -> dict:
    values = median_ms * rng.lognormal(0.0, 0.05, samples)
    repeat = np.array_split(values, 5)
    return {
        "batch_size": 1,
        "ranked_ms": float(np.median([np.median(r) for r in repeat])),
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
        "std_ms": float(values.std()),
        "cv": float(values.std() / values.mean()),
        "repeats": 5,
        "iterations": samples,
        "timer": "synthetic",
        "noisy": bool(rng.random() < 0.1),
        "noise_reasons": [],
        "repeat_medians_ms": [float(np.median(r)) for r in repeat],
        "repeat_sizes": [len(r) for r in repeat],
        "samples_ms": values.astype(np.float32).tolist(),
    }


def build_synthetic_store(
    url: str, card: TrackCard, submissions: int = 1000, samples: int = 1500, seed: int = 0
) -> SyntheticStore:
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    store = Store(url)
    size = f"{card.input_sizes[0][0]}x{card.input_sizes[0][1]}"
    total = 0

    def add_run(sub_id: int, name: str, variant: str, hw: str, version: int, status: str, metrics: dict, cost: dict):
        nonlocal total
        key = idempotency_key("synthetic", name, variant, hw, version, status, total)
        run_id = store.claim_run(
            key,
            submission_id=sub_id,
            variant=variant,
            track=card.name,
            track_version=version,
            card_hash="synthetic",
            dataset=f"{card.dataset}/{card.split}",
            dataset_hash=card.digests.get(f"{card.dataset}/{card.split}", "synthetic"),  # the card's board
            device=HARDWARE[hw]["device"],
            profile=card.profile,
            runner="synthetic",
            hardware_class=hw,
            harness_version="synthetic",
            scorer_version="synthetic",
            primary_metric=card.primary_metric,
        )
        if status == "ok":
            outcome = RunOutcome(
                status="ok",
                metrics=metrics,
                primary_value=metrics[card.primary_metric],
                complexity=cost,
                latency={
                    "device": _latency(rng, cost["latency_ms"], samples),
                    "e2e": _latency(rng, cost["latency_ms"] * 1.3, samples),
                },
                environment={**HARDWARE[hw], "synthetic": True},
                details={"synthetic": True},
            )
        else:
            outcome = RunOutcome(
                status="failed", error="[synthetic] failed", log_tail="synthetic log\n" * 20, environment=HARDWARE[hw]
            )
        store.finish_run(run_id, outcome)
        total += 1

    for index in range(submissions):
        name = f"synthetic-{index:04d}"
        params = int(np.exp(rng.uniform(np.log(5e4), np.log(5e6))))
        macs = int(np.exp(rng.uniform(np.log(1e6), np.log(6e7))))
        row, _ = store.add_submission(
            name=name,
            track=card.name,
            content_hash=f"synthetic{index:055d}",
            project=name,
            entry_point=f"{name.replace('-', '_')}:build",
            variants=list(VARIANTS),
            source_path="synthetic",
            stored_path="synthetic",
            site_path="synthetic",
            params=params,
            macs={size: macs},
            bytes=params * 4,
        )
        hw = list(HARDWARE)[index % len(HARDWARE)]
        top1 = float(rng.uniform(0.5, 0.99))
        base_latency = float(np.exp(rng.uniform(np.log(0.1), np.log(10.0))))
        for variant in VARIANTS:
            half = variant == "bf16"
            value = top1 - (float(rng.uniform(0, 0.01)) if half else 0.0)
            metrics = {card.primary_metric: value, **{m: min(1.0, value + 0.05) for m in card.metrics[1:]}}
            cost = {
                "params": params,
                "bytes": params * (2 if half else 4),
                "macs": {size: macs},
                "macs_std": {size: 0.0},
                "latency_ms": base_latency * (0.7 if half else 1.0),
            }
            if index % 10 == 0 and variant == "fp32":
                add_run(row.id, name, variant, hw, card.version, "ok", metrics, cost)  # superseded below
                add_run(row.id, name, variant, hw, card.version, "failed", {}, cost)
                add_run(row.id, name, variant, hw, card.version - 1, "ok", {**metrics, card.primary_metric: 1.0}, cost)
            add_run(row.id, name, variant, hw, card.version, "ok", metrics, cost)
    store.engine.dispose()
    return SyntheticStore(
        url=url,
        submissions=submissions,
        ranked_runs=submissions * len(VARIANTS),
        total_runs=total,
        build_s=time.perf_counter() - start,
    )


ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = 1000


def schema_digest(salt: bytes = b"", first: tuple[Path, ...] = ()) -> str:
    """A hash of what shapes a store file: `salt`, the files `first` (e.g. a builder), the models, the
    migrations. Kept stores (this synthetic one, the UI tests' seed) are named by it, so a schema change
    builds them again."""
    digest = hashlib.sha256(salt)
    store_dir = ROOT / "harness" / "store"
    for path in [*first, store_dir / "models.py", *sorted((store_dir / "migrations" / "versions").glob("*.py"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _shaping_digest(submissions: int) -> str:
    """A hash of everything that shapes the store file: this builder, the models, the migrations."""
    return schema_digest(str(submissions).encode(), (Path(__file__),))[:16]


def synthetic_cache_dir(config: object) -> Path:
    """pytest's cache folder when the cache plugin is on, else one in the system temp folder (`make test` runs
    with `-p no:cacheprovider`): the store costs minutes to build, so it outlives a session either way."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("leaderboard-synthetic"))
    folder = Path(tempfile.gettempdir()) / "harness-test-cache" / "leaderboard-synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cached_synthetic_store(cache_dir: Path, submissions: int = SUBMISSIONS) -> SyntheticStore:
    """The synthetic store of the classification track, built once (it takes minutes through the repository
    API) and kept in `cache_dir` under a name that changes whenever its builder or the schema changes."""
    path = cache_dir / f"synthetic-{submissions}-{_shaping_digest(submissions)}.db"
    url = f"sqlite:///{path}"
    if path.exists():
        return SyntheticStore(url, submissions, submissions * len(VARIANTS), total_runs=-1, build_s=0.0)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial")
    built = build_synthetic_store(f"sqlite:///{partial}", get_card("classification"), submissions=submissions)
    with sqlite3.connect(partial) as db:  # fold the WAL into the file so that one file can be renamed
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode=DELETE")
    for leftover in (f"{partial}-wal", f"{partial}-shm", f"{partial}.migrate-lock"):
        Path(leftover).unlink(missing_ok=True)
    partial.rename(path)
    return SyntheticStore(url, built.submissions, built.ranked_runs, built.total_runs, built.build_s)
