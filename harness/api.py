"""The library behind the CLI: check, submit and evaluate submissions, and read results back as records.

Each CLI verb is a thin layer over one function here. Functions raise `HarnessError` for anything the user
can fix; they never print.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness.config import harness_home, submissions_dir
from harness.errors import DatasetError, HarnessError, RuleViolation, SubmissionError
from harness.runners import INFORMATIONAL_MEASUREMENTS
from harness.runners.ingest import IngestJob
from harness.submission import content_hash, copy_source, install, read_manifest
from harness.tracks.base import TrackCard, get_card, track_module

Progress = Callable[[str, dict[str, Any]], None]


def _noop(event: str, info: dict[str, Any]) -> None:
    pass


def default_threads() -> int:
    """Half the cores, at most 4: intra-op threads that compete with other processes for a core spin in
    barriers and can inflate CPU latency by orders of magnitude (seen here: 0.2 ms -> 39 ms)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def size_key(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def mac_inputs(
    card: TrackCard, inputs_index: dict | None, input_sizes: Sequence[Sequence[int]] | None = None
) -> dict[str, Any]:
    """Which images MACs are counted on: fixed test images for data-dependent models, else one image per size."""
    if input_sizes:
        return {size_key(s): {"size": list(s)} for s in input_sizes}
    if card.mac_images and inputs_index is not None:
        return {"dataset": {"files": inputs_index["files"][: card.mac_images]}}
    return {size_key(s): {"size": list(s)} for s in card.input_sizes}


def rule_violations(card: TrackCard, complexity: dict[str, Any]) -> list[str]:
    rules = card.rules
    found = []
    if rules.max_params is not None and complexity["params"] > rules.max_params:
        found.append(f"params {complexity['params']:,} exceed max_params {rules.max_params:,}")
    if rules.max_bytes is not None and complexity["bytes"] > rules.max_bytes:
        found.append(f"bytes {complexity['bytes']:,} exceed max_bytes {rules.max_bytes:,}")
    if rules.max_macs is not None and complexity["macs"]:
        key, macs = next(iter(complexity["macs"].items()))
        if macs > rules.max_macs:
            found.append(f"MACs {macs / 1e6:,.1f} M at {key} exceed max_macs {rules.max_macs / 1e6:,.1f} M")
    return found


# check ------------------------------------------------------------------------------------------------


@dataclass
class CheckReport:
    name: str
    track: str
    ok: bool
    params: int | None = None
    macs: dict[str, int] = field(default_factory=dict)
    macs_std: dict[str, float] = field(default_factory=dict)
    bytes: int | None = None
    violations: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(
    path: Path,
    input_sizes: Sequence[Sequence[int]] | None = None,
    time_limit_s: float = 600,
    runner: str | None = None,
) -> list[CheckReport]:
    """Validate a submission folder without storing anything: manifest, install, entry points, one batch
    through output validation, params/MACs/bytes, and the track's rules. One report per entry point.
    The submission's code runs through `runner` (default local: a participant checking their own code)."""
    from harness.registry import discover
    from harness.runners import get_runner

    manifest = read_manifest(path)
    card = get_card(manifest.track)
    site = install(manifest.path, content_hash(manifest.path))
    found = discover(site)
    split = _split_for_complexity(card) if card.mac_images and not input_sizes else None
    runner_impl = get_runner(runner or "local")
    reports = []
    for name in manifest.entry_points:
        if name not in found:
            raise SubmissionError(
                f"{manifest.path}: entry point `{name}` did not install",
                "check the package name in pyproject.toml",
            )
        with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
            job = IngestJob(
                mode="check",
                site_dir=str(site),
                entry_name=name,
                track=card.name,
                kind=card.kind,
                variant="fp32",
                device="cpu",
                out_dir=tmp,
                inputs_dir=str(split.inputs_dir) if split else None,
                threads=default_threads(),
                build_options=manifest.build_options.get(name, {}),
                num_classes=card.num_classes,
                label_ids=_label_ids(card, split) if split else None,
                input_size=list(card.input_sizes[0]),
                mac_inputs=mac_inputs(card, split.index() if split else None, input_sizes),
            )
            result = runner_impl.run(job, time_limit_s)
            if not result.ok:
                reports.append(CheckReport(name=name, track=card.name, ok=False, error=result.error))
                continue
            measured = result.measurements()
            complexity = measured["complexity"]
        output_error = measured.get("output_error")
        violations = (
            rule_violations(card, complexity) if not input_sizes else rule_violations(card, {**complexity, "macs": {}})
        )
        reports.append(
            CheckReport(
                name=name,
                track=card.name,
                ok=not violations and output_error is None,
                error=f"[outputs] {output_error}" if output_error else None,
                params=complexity["params"],
                macs=complexity["macs"],
                macs_std=complexity["macs_std"],
                bytes=complexity["bytes"],
                violations=violations,
            )
        )
    return reports


def _split_for_complexity(card: TrackCard):
    from harness.datasets import materialize

    return materialize(card.dataset, card.split)


def _label_ids(card: TrackCard, split: Any) -> list[int] | None:
    module = track_module(card)
    return module.label_ids(card, split.hidden_dir) if hasattr(module, "label_ids") else None


# submit -----------------------------------------------------------------------------------------------


@dataclass
class SubmitResult:
    id: int
    name: str
    track: str
    content_hash: str
    created: bool
    stored_path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def submit(path: Path, store: Any = None, runner: str | None = None) -> list[SubmitResult]:
    """Check, then store an immutable content-hashed copy, queued for evaluation. Same content again is
    recognised and not duplicated. Nothing is stored if any entry point fails its check. A server taking
    strangers' submissions checks them with `runner="docker"`."""
    from harness.store import open_store

    store = store or open_store()
    reports = check(path, runner=runner)
    bad = [r for r in reports if not r.ok]
    if bad:
        lines = [f"{r.name}: {r.error or '; '.join(r.violations)}" for r in bad]
        cls = RuleViolation if all(r.violations and not r.error for r in bad) else SubmissionError
        raise cls(
            "submission refused:\n  " + "\n  ".join(lines),
            "fix the faults above and run `harness check` again",
        )
    return store_submission(path, store, reports={r.name: r for r in reports})


def store_submission(
    path: Path, store: Any = None, reports: dict[str, Any] | None = None, entries: Sequence[str] | None = None
) -> list[SubmitResult]:
    """Store an immutable content-hashed copy of a project, install it into its own site folder, and queue its
    entry points (all, or `entries`). `reports` are their check reports, whose complexity figures the rows keep;
    `submit` checks first. Called without reports (no check, no figures) only by tools that trust the code."""
    from harness.store import open_store

    store = store or open_store()
    manifest = read_manifest(path)
    digest = content_hash(manifest.path)
    stored = submissions_dir() / digest
    if not stored.exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=_ensure(submissions_dir())))
        copy_source(manifest.path, staging)
        try:
            os.rename(staging, stored)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    site = install(stored, digest)
    names = list(entries or (reports.keys() if reports else manifest.entry_points))
    results = []
    for name in names:
        report = (reports or {}).get(name)
        row, created = store.add_submission(
            name=name,
            track=manifest.track,
            content_hash=digest,
            project=manifest.project,
            entry_point=manifest.entry_points[name],
            variants=list(manifest.variants),
            source_path=str(manifest.path),
            stored_path=str(stored),
            site_path=str(site),
            params=getattr(report, "params", None),
            macs=getattr(report, "macs", None),
            bytes=getattr(report, "bytes", None),
            build_options=manifest.build_options.get(name, {}),
            queued=manifest.queued(name),
        )
        results.append(SubmitResult(row.id, row.name, row.track, digest, created, str(stored)))
    return results


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# evaluate ---------------------------------------------------------------------------------------------


def evaluate(
    track: str,
    submissions: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    device: str = "cpu",
    profile: str = "quick",
    runner: str | None = None,
    dataset: str | None = None,
    data_dir: Path | None = None,
    force: bool = False,
    threads: int | None = None,
    store: Any = None,
    progress: Progress = _noop,
    runner_options: dict[str, Any] | None = None,
    time_limit_s: float | None = None,
) -> list[dict[str, Any]]:
    """Run every queued (or named) submission of a track, per variant; score; store one Run each.
    `time_limit_s` overrides the track card's wall-time limit of one ingestion step."""
    from harness.datasets import get_spec, materialize, require_pinned
    from harness.measure.environment import fingerprint, hardware_class
    from harness.measure.latency import PROFILES
    from harness.runners import get_runner
    from harness.store import open_store
    from harness.store.repo import idempotency_key
    from harness.variants import check_variant_names

    card = get_card(track)
    if profile not in PROFILES:
        raise HarnessError(f"unknown profile `{profile}`", f"use one of: {', '.join(PROFILES)}")
    runner_impl = get_runner(runner or card.runner, **(runner_options or {}))
    # A remote runner (ray) fingerprints one of its workers: the driver may have no GPU at all.
    remote = hasattr(runner_impl, "environment")
    if device.startswith("cuda"):
        import torch

        if not remote and not torch.cuda.is_available():
            raise HarnessError("--device cuda was asked for, but no CUDA device is available here", "use --device cpu")
    elif device != "cpu":
        raise HarnessError(f"unknown device `{device}`", "use --device cpu or --device cuda[:N]")
    dataset_name = dataset or card.dataset
    spec = get_spec(dataset_name)
    if spec.kind != card.kind:
        raise DatasetError(f"dataset `{dataset_name}` is a {spec.kind} dataset; track `{track}` needs {card.kind}")
    store = store or open_store()
    todo = store.submissions(track=card.name, names=list(submissions) if submissions else None)
    if not submissions:
        todo = [s for s in todo if s.queued]  # entries marked `queue = false` run only when named
    if submissions:
        missing = sorted(set(submissions) - {s.name for s in todo})
        if missing:
            from harness.registry import Registered, lookup

            known = {s.name: Registered(s.name, s.entry_point, s.project) for s in store.submissions(track=card.name)}
            lookup(missing[0], known)
    # Built-in and plugin variants, and those the submissions register for themselves (checked at submit).
    check_variant_names(list(variants or []), also_allowed=[v for sub in todo for v in sub.variants])
    split = materialize(dataset_name, card.split, data_dir)
    require_pinned(split)  # data that differs from the track's pin is never scored
    threads = threads or default_threads()
    env = runner_impl.environment(card, device, threads) if remote else fingerprint(device, threads)
    hw_class = hardware_class(env)
    module = track_module(card)
    label_ids = _label_ids(card, split)
    num_classes = module.num_classes(card, split.hidden_dir) if hasattr(module, "num_classes") else card.num_classes
    index = split.index()
    calibration_dir: str | None = None

    jobs = [(sub, variant) for sub in todo for variant in (variants or sub.variants)]
    progress("start", {"jobs": len(jobs), "track": card.key, "dataset": dataset_name, "hardware_class": hw_class})
    if runner_impl.trusted and jobs:
        progress(
            "warning",
            {
                "message": f"the {runner_impl.name} runner trusts the submission's code (no sandbox); "
                "use --runner docker for submissions you did not write"
            },
        )
    results: list[dict[str, Any]] = []

    def claim(sub: Any, variant: str) -> tuple[int, IngestJob] | None:
        """Claim the run of one (submission, variant) and build its ingestion job; None when done elsewhere."""
        nonlocal calibration_dir
        key_parts = [
            sub.content_hash,
            sub.name,
            variant,
            card.key,
            card.card_hash,
            hw_class,
            split.digest,
            device,
            profile,
        ]
        if force:
            key_parts.append(time.time_ns())
        key = idempotency_key(*key_parts)
        run_id = store.claim_run(
            key,
            submission_id=sub.id,
            variant=variant,
            track=card.name,
            track_version=card.version,
            card_hash=card.card_hash,
            dataset=f"{dataset_name}/{card.split}",
            dataset_hash=split.digest,
            device=device,
            profile=profile,
            runner=runner_impl.name,
            hardware_class=hw_class,
            harness_version=harness.__version__,
            scorer_version=getattr(module, "SCORER_VERSION", "?"),
            primary_metric=card.primary_metric,
        )
        if run_id is None:
            progress("skip", {"submission": sub.name, "variant": variant, "reason": "already evaluated"})
            return None
        progress("run", {"submission": sub.name, "variant": variant, "run_id": run_id})
        if variant in ("int8-cpu", "tensorrt-int8") and calibration_dir is None:
            calibration = materialize(dataset_name, card.calibration_split, data_dir)
            require_pinned(calibration)
            calibration_dir = str(calibration.inputs_dir)
        out_dir = harness_home() / "runs" / str(run_id)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        job = IngestJob(
            mode="evaluate",
            site_dir=sub.site_path,
            entry_name=sub.name,
            build_options=dict(sub.build_options or {}),
            track=card.name,
            kind=card.kind,
            variant=variant,
            device=device,
            out_dir=str(out_dir),
            inputs_dir=str(split.inputs_dir),
            profile=profile,
            threads=threads,
            num_classes=num_classes,
            label_ids=label_ids,
            input_size=list(card.input_sizes[0]),
            accuracy_batch_size=card.accuracy_batch_size,
            batch_size=card.batch_size,
            mac_inputs=mac_inputs(card, index),
            calibration_dir=calibration_dir,
        )
        return run_id, job

    def finish(run_id: int, outcome: Any) -> None:
        store.finish_run(run_id, outcome)
        record = run_to_dict(store.get_run(run_id))
        results.append(record)
        progress("done", record)

    if hasattr(runner_impl, "run_many"):
        _evaluate_concurrently(
            jobs, claim, finish, card, module, runner_impl, split, env, store, progress, time_limit_s
        )
        return results
    for sub, variant in jobs:
        claimed = claim(sub, variant)
        if claimed is None:
            continue
        run_id, job = claimed
        try:
            outcome = _run_one(card, module, runner_impl, job, split, env, time_limit_s)
        except BaseException:
            store.release_run(run_id)  # Ctrl-C or a harness bug: the job goes back to the queue
            raise
        finish(run_id, outcome)
    return results


def _evaluate_concurrently(
    jobs: Sequence[tuple[Any, str]],
    claim: Callable[[Any, str], tuple[int, IngestJob] | None],
    finish: Callable[[int, Any], None],
    card: TrackCard,
    module: Any,
    runner: Any,
    split: Any,
    env: dict[str, Any],
    store: Any,
    progress: Progress,
    time_limit_s: float | None = None,
) -> None:
    """Claim every job, hand them all to a runner that runs many at once (ray), and score and store each
    as it comes back. The driver alone writes the store; a job the runner lost goes back to the queue, and so
    does every unfinished claim on Ctrl-C or a harness bug."""
    import contextlib

    pending: dict[int, IngestJob] = {}
    names: dict[int, tuple[str, str]] = {}
    try:
        for sub, variant in jobs:
            claimed = claim(sub, variant)
            if claimed is not None:
                pending[claimed[0]] = claimed[1]
                names[claimed[0]] = (sub.name, variant)
        with contextlib.closing(runner.run_many(list(pending.items()), time_limit_s or card.time_limit_s)) as finished:
            for run_id, result in finished:
                job = pending.pop(run_id)
                if isinstance(result, Exception):
                    store.release_run(run_id)
                    submission, variant = names[run_id]
                    reason = f"lost by the {runner.name} runner ({type(result).__name__}); queued again"
                    progress("skip", {"submission": submission, "variant": variant, "reason": reason})
                    continue
                finish(run_id, _outcome(card, module, result, job, split, env))
    except BaseException:
        for run_id in pending:
            store.release_run(run_id)
        raise


def _run_one(
    card: TrackCard,
    module: Any,
    runner: Any,
    job: IngestJob,
    split: Any,
    env: dict[str, Any],
    time_limit_s: float | None = None,
):
    return _outcome(card, module, runner.run(job, time_limit_s or card.time_limit_s), job, split, env)


def _outcome(card: TrackCard, module: Any, result: Any, job: IngestJob, split: Any, env: dict[str, Any]):
    """Score what the ingestion step left behind; the outcome to store for its run."""
    from harness.predictions import load_predictions
    from harness.store.repo import RunOutcome

    env = getattr(result, "environment", None) or env  # a remote runner says which machine ran the job
    if not result.ok:
        status = "unavailable" if result.unavailable else "failed"
        return RunOutcome(status=status, error=result.error, log_tail=result.log_tail, environment=env)
    measurements = result.measurements()
    details = {
        "timings": measurements.get("timings", {}),
        "crosscheck": measurements.get("crosscheck"),
        "dtypes": measurements["complexity"].get("dtypes"),
        "peak_memory_bytes": measurements.get("peak_memory_bytes"),
        "runner_wall_s": result.wall_s,
        "sandbox_environment": measurements.get("environment"),
    }
    # Measurement details of the performance pass (issue 5): sweep, clocks, memory, what the variant did.
    for key in INFORMATIONAL_MEASUREMENTS:
        if measurements.get(key) is not None:
            details[key] = measurements[key]
    try:
        t_score = time.perf_counter()
        predictions = load_predictions(Path(job.out_dir) / "predictions.npz", card.kind)
        metrics = module.score(card, predictions, split.hidden_dir)
        details["timings"]["scoring_s"] = time.perf_counter() - t_score
    except HarnessError as exc:
        return RunOutcome(
            status="failed",
            error=f"[scoring] {exc}",
            log_tail=result.log_tail,
            complexity=measurements["complexity"],
            environment=env,
            details=details,
        )
    crosscheck = measurements.get("crosscheck") or {}
    if crosscheck and not crosscheck.get("consistent", True):
        return RunOutcome(
            status="failed",
            error="[crosscheck] the performance pass's outputs differ from the accuracy pass's: "
            + str(crosscheck.get("reason") or "see details.crosscheck"),
            log_tail=result.log_tail,
            environment=env,
            details=details,
        )
    return RunOutcome(
        status="ok",
        metrics=metrics,
        primary_value=metrics.get(card.primary_metric),
        complexity=measurements["complexity"],
        latency=measurements.get("latency"),
        environment=env,
        details=details,
        log_tail=result.log_tail,
    )


# records ----------------------------------------------------------------------------------------------


def latency_dict(row: Any, with_samples: bool = False) -> dict[str, Any]:
    data = {
        "p50_ms": row.p50_ms,
        "p90_ms": row.p90_ms,
        "p95_ms": row.p95_ms,
        "p99_ms": row.p99_ms,
        "mean_ms": row.mean_ms,
        "std_ms": row.std_ms,
        "cv": row.cv,
        "repeats": row.repeats,
        "iterations": row.iterations,
        "ranked_ms": row.ranked_ms,
        "batch_size": row.batch_size,
        "noisy": row.noisy,
        "noise_reasons": list(row.noise_reasons or []),
        "timer": row.timer,
        "repeat_medians_ms": list(row.repeat_medians_ms or []),
        "repeat_sizes": list(row.repeat_sizes or []),
    }
    if with_samples:
        from harness.store.repo import latency_samples

        data["samples_ms"] = latency_samples(row).tolist()
    return data


def run_to_dict(run: Any, with_samples: bool = False) -> dict[str, Any]:
    """The run record of `evaluate --json`, `show --json` and exports."""
    latencies = {row.kind: row for row in run.latencies}
    device_row = latencies.get("device")
    card = None
    try:
        card = get_card(run.track)
    except HarnessError:
        pass
    return {
        "run_id": run.id,
        "submission": run.submission.name,
        "submission_hash": run.submission.content_hash,
        "variant": run.variant,
        "track": run.track,
        "track_version": run.track_version,
        "status": run.status,
        "error": run.error,
        "primary_metric": run.primary_metric,
        "higher_is_better": card.higher_is_better if card else True,
        "metrics": {m.name: m.value for m in run.metrics},
        "params": run.params,
        "macs": run.macs or {},
        "macs_std": run.macs_std or {},
        "bytes": run.bytes,
        "latency": latency_dict(device_row, with_samples) if device_row else None,
        "latency_e2e": latency_dict(latencies["e2e"], with_samples) if "e2e" in latencies else None,
        "device": run.device,
        "profile": run.profile,
        "runner": run.runner,
        "dataset": run.dataset,
        "dataset_hash": run.dataset_hash,
        "hardware_class": run.hardware_class,
        "harness_version": run.harness_version,
        "scorer_version": run.scorer_version,
        "environment": run.environment.data if run.environment else {},
        "details": run.details or {},
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "log_tail": run.log_tail if run.status != "ok" else None,
    }


def standings(track: str, hardware_class: str | None = None, store: Any = None) -> list[dict[str, Any]]:
    """Ranked rows of the current track version: best primary metric first, then lower latency."""
    from harness.store import open_store

    card = get_card(track)
    store = store or open_store()
    rows = [run_to_dict(r) for r in store.standings(card.name, card.version, hardware_class)]
    sign = -1.0 if card.higher_is_better else 1.0

    def order(row: dict[str, Any]) -> tuple:
        value = row["metrics"].get(card.primary_metric)
        latency = row["latency"]["ranked_ms"] if row["latency"] else float("inf")
        # A run without the primary metric ranks last; ties go to the faster run.
        return (row["hardware_class"], value is None, sign * value if value is not None else 0.0, latency)

    rows.sort(key=order)
    rank_in: dict[str, int] = {}
    for row in rows:
        rank_in[row["hardware_class"]] = rank_in.get(row["hardware_class"], 0) + 1
        row["rank"] = rank_in[row["hardware_class"]]
    return rows


# references to runs (gate, compare, export) ----------------------------------------------------------


def resolve_ref(ref: str, store: Any = None, with_samples: bool = True) -> dict[str, Any]:
    """A run record from a run id (`12`), `submission@variant` (its latest finished run), or an exported
    results file (`results.json`, or `results.json#RUN_ID` when the file holds several runs)."""
    from harness.gate import load_results_file, select_run
    from harness.store import open_store

    path_part, _, run_part = ref.partition("#")
    if Path(path_part).is_file():
        runs = load_results_file(path_part)
        return select_run(runs, path_part, run_id=run_part or None)
    store = store or open_store()
    if ref.isdigit():
        run = store.get_run(int(ref))
        if run is None:
            raise HarnessError(f"no run with id {ref}", "see `harness leaderboard --track T` for run ids")
        return run_to_dict(run, with_samples)
    if "@" in ref:
        name, _, variant = ref.partition("@")
        runs = [r for r in store.runs(submission=name, variant=variant or "fp32") if r.status != "running"]
        if not runs:
            raise HarnessError(f"no finished run of `{name}` with variant `{variant or 'fp32'}`", "evaluate it first")
        return run_to_dict(runs[-1], with_samples)
    raise HarnessError(
        f"`{ref}` is neither a run id, `submission@variant`, nor an existing results file",
        "e.g. 12, gtsnet@fp16, or results.json",
    )


def compare_rows(refs: Sequence[str], store: Any = None) -> list[dict[str, Any]]:
    """Variants side by side: latency, throughput, bytes, metric, and the change in % against the first."""
    runs = [resolve_ref(ref, store, with_samples=False) for ref in refs]
    rows = []
    base = runs[0]

    def change(value: float | None, reference: float | None) -> float | None:
        if value is None or reference in (None, 0):
            return None
        return 100.0 * (value - reference) / reference

    for run in runs:
        lat = run.get("latency") or {}
        metric = run["metrics"].get(run["primary_metric"])
        base_metric = base["metrics"].get(base["primary_metric"])
        p50 = lat.get("ranked_ms")
        throughput = 1000.0 * lat.get("batch_size", 1) / p50 if p50 else None
        sweep = (run.get("details") or {}).get("throughput") or {}
        if sweep.get("best_samples_per_s"):
            throughput = sweep["best_samples_per_s"]  # the best of the batch-size sweep
        rows.append(
            {
                "run_id": run["run_id"],
                "submission": run["submission"],
                "variant": run["variant"],
                "status": run["status"],
                "primary_metric": run["primary_metric"],
                "metric": metric,
                "p50_ms": p50,
                "p90_ms": lat.get("p90_ms"),
                "throughput_per_s": throughput,
                "throughput_batch_size": sweep.get("best_batch_size"),
                "bytes": run.get("bytes"),
                "noisy": lat.get("noisy"),
                "hardware_class": run.get("hardware_class"),
                "change_pct": {
                    "p50_ms": change(p50, (base.get("latency") or {}).get("ranked_ms")),
                    "bytes": change(run.get("bytes"), base.get("bytes")),
                    "metric": change(metric, base_metric),
                },
                "metric_delta": None if metric is None or base_metric is None else metric - base_metric,
            }
        )
    return rows


def export_runs(refs: Sequence[str], track: str | None, output: Path, store: Any = None) -> int:
    """Write runs (by reference, or a track's current standings) to a results file for gates elsewhere."""
    from harness.gate import export_results

    runs = [resolve_ref(ref, store) for ref in refs]
    if track:
        from harness.store import open_store

        card = get_card(track)
        store = store or open_store()
        runs.extend(run_to_dict(r, True) for r in store.standings(card.name, card.version))
    if not runs:
        raise HarnessError("nothing to export", "name runs (ids or submission@variant) or pass --track")
    export_results(runs, output)
    return len(runs)
