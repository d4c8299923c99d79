"""`evaluate`: run the queued (or named) submissions of a track, one run per (submission, variant).

Three steps, each its own function: `plan` resolves names and prepares everything the runs share (card, data
checked against its pin, runner, machine, jobs to run); `execute` claims each job's run in the store under a
lease it keeps renewing (`harness.service.leases`), hands the jobs to the runner and stores what comes back;
`score` turns one ingestion result into the run's outcome (output verified on the host, predictions scored
against the hidden ground truth). The runner sees jobs lazily: a runner that runs one job at a time claims the
next only when it is ready for it, so concurrent evaluators share a queue; a runner that runs many at once
(Ray) claims them all up front.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness.config import settings
from harness.datasets import SplitData
from harness.errors import DatasetError, HarnessError
from harness.kinds import TaskKind
from harness.runners import IngestResult, Runner
from harness.sandbox.job import IngestJob
from harness.tracks import TrackCard

Progress = Callable[[str, dict[str, Any]], None]


def _noop(event: str, info: dict[str, Any]) -> None:
    pass


@dataclass
class Plan:
    """Everything the runs of one evaluation share, and the (submission, variant) pairs to run."""

    card: TrackCard
    kind: TaskKind
    dataset: str
    split: SplitData
    data_dir: Path | None
    runner: Runner
    environment: dict[str, Any]
    hardware_class: str
    device: str
    profile: str
    threads: int
    time_limit_s: float
    force: bool
    job_fields: dict[str, Any]  # what every job of the track carries (classes, label ids, sizes, MAC inputs)
    todo: list[tuple[Any, str]] = field(default_factory=list)  # (stored submission, variant)
    peak: dict[str, Any] | None = None  # the hardware class's peak MACs/s by dtype (harness.service.integrity)
    score_options: dict[str, Any] = field(default_factory=dict)  # passed to the kind's scorer (the COCO backend)
    calibration_dir: str | None = None
    # A competition phase's evaluation (harness.service.competitions): its id (part of each run's identity) and
    # the public and private parts of the hidden test set, {"public": (ids, hidden folder), "private": ...}.
    phase_id: int | None = None
    parts: dict[str, tuple[list[str], Path]] | None = None
    stop: Any = None  # EvaluationRequest.stop


@dataclass(frozen=True)
class EvaluationRequest:
    """What `harness evaluate` is asked for: a track, and which of its queued (or named) submissions and
    variants to run where. `time_limit_s` overrides the track card's wall-time limit of one ingestion step."""

    track: str
    submissions: Sequence[str] | None = None
    variants: Sequence[str] | None = None
    device: str = "cpu"
    profile: str | None = None  # default: the track card's (the profile its standings rank)
    runner: str | None = None  # default: the track card's
    dataset: str | None = None  # default: the track card's
    data_dir: Path | None = None
    force: bool = False
    threads: int | None = None
    runner_options: dict[str, Any] | None = None
    time_limit_s: float | None = None
    coco_backend: str | None = None  # detection tracks: the COCO evaluator (default: harness.metrics.coco's)
    scope: Any = None  # a competition phase (harness.service.competitions.PhaseScope): its card, data and entries
    stop: Any = None  # a threading.Event: once set (SIGTERM while watching), no further run is claimed


def evaluate(track: str, store: Any = None, progress: Progress = _noop, **options: Any) -> list[dict[str, Any]]:
    """Run every queued (or named) submission of a track, per variant; score; store one Run each. `options` are
    the fields of `EvaluationRequest`."""
    from harness.store import open_store

    store = store or open_store()
    return execute(plan(EvaluationRequest(track, **options), store), store, progress)


def plan(request: EvaluationRequest, store: Any) -> Plan:
    """Resolve every name (track, profile, runner, device, dataset, submissions, variants) and prepare the data
    (checked against its pin) and the machine's fingerprint; nothing is claimed or run."""
    from harness.datasets import get_spec, materialize, require_pinned
    from harness.kinds import get_kind
    from harness.measure.environment import default_threads, hardware_class
    from harness.measure.latency import PROFILES
    from harness.runners import get_runner
    from harness.service.integrity import hardware_peak
    from harness.service.jobs import mac_inputs, track_fields
    from harness.tracks import get_card

    scope = request.scope
    card = scope.card if scope else get_card(request.track)
    profile = request.profile or (scope.profile if scope else card.profile)
    if profile not in PROFILES:
        raise HarnessError(f"unknown profile `{profile}`", f"use one of: {', '.join(PROFILES)}")
    if request.coco_backend is not None:
        from harness.metrics.coco import BACKENDS

        if request.coco_backend not in BACKENDS:
            raise HarnessError(f"unknown COCO backend `{request.coco_backend}`", f"use one of: {', '.join(BACKENDS)}")
    runner = get_runner(request.runner or card.runner, **(request.runner_options or {}))
    _check_device(request.device, runner)
    if scope:  # the phase's data, checked, and its entries
        dataset, split = scope.registered_dataset, scope.split
        todo = _todo(card, store, request.submissions, request.variants, scope.submissions)
    else:
        dataset = request.dataset or card.dataset
        spec = get_spec(dataset)
        if spec.kind != card.kind:
            raise DatasetError(f"dataset `{dataset}` is a {spec.kind} dataset; track `{card.name}` needs {card.kind}")
        todo = _todo(card, store, request.submissions, request.variants)
        split = materialize(dataset, card.split, request.data_dir)
        require_pinned(split)  # data that differs from the track's pin is never scored
    threads = request.threads or default_threads()
    env = runner.environment(card, request.device, threads)
    hw_class = hardware_class(env)
    peak = hardware_peak(store, runner, hw_class, request.device, threads) if todo else None
    return Plan(
        card=card,
        kind=get_kind(card.kind),
        dataset=dataset,
        split=split,
        data_dir=request.data_dir,
        runner=runner,
        environment=env,
        hardware_class=hw_class,
        device=request.device,
        profile=profile,
        threads=threads,
        time_limit_s=request.time_limit_s or card.time_limit_s,
        force=request.force,
        job_fields={**track_fields(card, split.hidden_dir), "mac_inputs": mac_inputs(card, split.index())},
        todo=todo,
        peak=peak,
        score_options={"coco_backend": request.coco_backend} if request.coco_backend else {},
        phase_id=scope.phase_id if scope else None,
        parts=scope.parts if scope else None,
        stop=request.stop,
    )


def _check_device(device: str, runner: Runner) -> None:
    if device.startswith("cuda"):
        import torch

        # A remote runner (ray) fingerprints one of its workers: the driver may have no GPU at all.
        if not runner.remote and not torch.cuda.is_available():
            raise HarnessError("--device cuda was asked for, but no CUDA device is available here", "use --device cpu")
    elif device != "cpu":
        raise HarnessError(f"unknown device `{device}`", "use --device cpu or --device cuda[:N]")


def _todo(
    card: TrackCard,
    store: Any,
    names: Sequence[str] | None,
    variants: Sequence[str] | None,
    among: list[Any] | None = None,
) -> list[tuple[Any, str]]:
    """The (submission, variant) pairs to run: the queued submissions (or the named ones, which must exist);
    a competition phase's: its own submissions (`among`), all of them unless some are named."""
    from harness.plugins import suggest
    from harness.variants import check_variant_names

    if among is not None:
        todo = [s for s in among if not names or s.name in names]
    else:
        todo = store.submissions(track=card.name, names=list(names) if names else None)
    if not names and among is None:
        todo = [s for s in todo if s.queued]  # entries marked `queue = false` run only when named
    missing = sorted(set(names or ()) - {s.name for s in todo})
    if missing:
        known = [s.name for s in store.submissions(track=card.name)]
        listing = f"stored for track {card.name}: {', '.join(sorted(known)) or 'none'}"
        raise HarnessError(
            f"no submission named `{missing[0]}` is stored for track {card.name}", suggest(missing[0], known, listing)
        )
    # Built-in and plugin variants, and those the submissions register for themselves (checked at submit).
    check_variant_names(list(variants or []), also_allowed=[v for sub in todo for v in sub.variants])
    return [(sub, variant) for sub in todo for variant in (variants or sub.variants)]


def execute(plan: Plan, store: Any, progress: Progress = _noop) -> list[dict[str, Any]]:
    """Claim, run, score and store each planned job. The service alone writes the store; a job the runner lost
    goes back to the queue, and so does every unfinished claim on Ctrl-C, SIGTERM or a harness bug. Claims are
    held under one lease, renewed by a heartbeat while this runs; a result is stored only while it holds."""
    from harness.service.leases import Heartbeat, sigterm_drains, sigterm_unwinds
    from harness.store.repo import Lease, LeaseLost

    card = plan.card
    _announce(plan, progress)
    lease = Lease.new()
    pending: dict[int, tuple[Any, str, IngestJob]] = {}
    results: list[dict[str, Any]] = []
    with sigterm_drains(plan.stop) if plan.stop is not None else sigterm_unwinds(), Heartbeat(store, lease):
        try:
            jobs = _claimed_jobs(plan, store, progress, pending, lease)
            for run_id, result in plan.runner.run_many(jobs, plan.time_limit_s):
                submission, variant, job = pending[run_id]  # released on an interrupt until it is stored
                skip = {"submission": submission.name, "variant": variant}
                if isinstance(result, Exception):
                    store.release_run(run_id, lease)
                    del pending[run_id]
                    reason = f"lost by the {plan.runner.name} runner ({type(result).__name__}); queued again"
                    progress("skip", {**skip, "reason": reason})
                    continue
                try:
                    store.finish_run(run_id, score(plan, job, result), lease)
                except LeaseLost as exc:
                    del pending[run_id]
                    progress("skip", {**skip, "reason": f"{exc.message}; {exc.hint}"})
                    continue
                del pending[run_id]
                record = run_record(store.get_run(run_id), higher_is_better=card.higher_is_better)
                results.append(record)
                progress("done", record)
        except BaseException:
            for run_id in pending:
                store.release_run(run_id, lease)
            raise
    return results


def _announce(plan: Plan, progress: Progress) -> None:
    progress(
        "start",
        {
            "jobs": len(plan.todo),
            "track": plan.card.key,
            "dataset": plan.split.key,
            "profile": plan.profile,
            "hardware_class": plan.hardware_class,
        },
    )
    if plan.runner.trusted and plan.todo:
        message = (
            f"the {plan.runner.name} runner trusts the submission's code (no sandbox); "
            "use --runner docker for submissions you did not write"
        )
        progress("warning", {"message": message})


def _claimed_jobs(
    plan: Plan, store: Any, progress: Progress, pending: dict, lease: Any
) -> Iterator[tuple[int, IngestJob]]:
    """The planned jobs whose runs this evaluator claims, as the runner asks for them."""
    from harness.service.leases import holder_reason

    for submission, variant in plan.todo:
        if plan.stop is not None and plan.stop.is_set():
            return  # asked to stop: the run before this one was finished and stored
        claimed = claim(plan, store, submission, variant, lease)
        if not isinstance(claimed, tuple):
            progress("skip", {"submission": submission.name, "variant": variant, "reason": holder_reason(claimed)})
            continue
        run_id, job = claimed
        pending[run_id] = (submission, variant, job)
        progress("run", {"submission": submission.name, "variant": variant, "run_id": run_id})
        yield run_id, job


def claim(plan: Plan, store: Any, submission: Any, variant: str, lease: Any) -> tuple[int, IngestJob] | Any:
    """Claim the run of one (submission, variant) under `lease` and build its ingestion job; when the run is
    finished or another evaluator's lease on it is live, the stored row that stands in the way."""
    from harness.store.repo import idempotency_key

    card = plan.card
    calibration_dir = _calibration_dir(plan, variant)  # before the claim: a split that fails its pin claims nothing
    key_parts = [
        submission.content_hash, submission.name, variant, card.key, card.card_hash, plan.hardware_class,
        plan.split.digest, plan.device, plan.profile,
    ]  # fmt: skip
    if plan.phase_id is not None:
        key_parts.append(f"phase:{plan.phase_id}")
    if plan.force:
        key_parts.append(time.time_ns())
    claimed = store.claim(
        idempotency_key(*key_parts),
        lease,
        submission_id=submission.id,
        variant=variant,
        track=card.name,
        track_version=card.version,
        card_hash=card.card_hash,
        dataset=plan.split.key,
        dataset_hash=plan.split.digest,
        device=plan.device,
        profile=plan.profile,
        runner=plan.runner.name,
        hardware_class=plan.hardware_class,
        harness_version=harness.__version__,
        scorer_version=plan.kind.scorer_version,
        primary_metric=card.primary_metric,
        phase_id=plan.phase_id,
    )
    if claimed.run_id is None:
        return claimed.holder
    run_id = claimed.run_id
    try:
        # Each attempt writes a folder of its own: an earlier attempt's orphan never writes into this one's.
        out_dir = settings().runs_dir / str(run_id) / f"attempt-{claimed.attempt}"
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
    except BaseException:
        store.release_run(run_id, lease)
        raise
    job = IngestJob(
        mode="evaluate",
        site_dir=submission.site_path,
        entry_name=submission.name,
        build_options=dict(submission.build_options or {}),
        variant=variant,
        device=plan.device,
        out_dir=str(out_dir),
        inputs_dir=str(plan.split.inputs_dir),
        profile=plan.profile,
        threads=plan.threads,
        calibration_dir=calibration_dir,
        **plan.job_fields,
    )
    return run_id, job


def _calibration_dir(plan: Plan, variant: str) -> str | None:
    """The calibration split's inputs for a variant that needs them (materialised once, checked against its pin)."""
    from harness.datasets import materialize, require_pinned
    from harness.service.jobs import needs_calibration

    if not needs_calibration(variant):
        return None
    if plan.dataset is None:
        raise HarnessError(
            f"the variant {variant} needs a calibration split, and this phase's data (a folder of its bundle) has none",
            "name a registered dataset in the phase, or leave this variant out (--variant)",
        )
    if plan.calibration_dir is None:
        calibration = materialize(plan.dataset, plan.card.calibration_split, plan.data_dir)
        require_pinned(calibration)
        plan.calibration_dir = str(calibration.inputs_dir)
    return plan.calibration_dir


def score(plan: Plan, job: IngestJob, result: IngestResult) -> Any:
    """The outcome to store for one run: its failure, or its verified measurements and scored metrics."""
    from harness.predictions import load_predictions
    from harness.sandbox.measurements import Rejected
    from harness.service.integrity import latency_problem
    from harness.store.repo import RunOutcome
    from harness.verify import verify_output

    env = result.environment or plan.environment  # a remote runner says which machine ran the job
    failed = {"status": "failed", "log_tail": result.log_tail, "environment": env}
    if not result.ok:
        status = "unavailable" if result.unavailable else "failed"
        return RunOutcome(**{**failed, "status": status}, error=result.error)
    try:
        measured = verify_output(job, Path(job.out_dir), result.marks, result.host_timings)
    except Rejected as exc:
        return RunOutcome(error=str(exc), **failed)
    details = _details(measured, result)
    complexity = vars(measured.complexity)
    try:
        t_score = time.perf_counter()
        predictions = load_predictions(Path(job.out_dir) / "predictions.npz", plan.card.kind)
        metrics, interval, private = _scored(plan, predictions)
        details["timings"]["scoring_s"] = time.perf_counter() - t_score
    except HarnessError as exc:
        return RunOutcome(error=f"[scoring] {exc}", complexity=complexity, details=details, **failed)
    crosscheck = measured.crosscheck or {}
    if not crosscheck.get("consistent", True):
        reason = crosscheck.get("reason") or "see details.crosscheck"
        error = f"[crosscheck] the timed outputs differ from the same inputs predicted again: {reason}"
        return RunOutcome(error=error, details=details, **failed)
    problem = latency_problem(plan.card, measured, plan.peak)
    if problem:
        return RunOutcome(error=problem, complexity=complexity, details=details, **failed)
    details["ranked_latency"] = plan.card.ranked_latency
    if interval is not None:
        details["confidence"] = {"metric": plan.card.primary_metric, **interval.to_dict()}
    return RunOutcome(
        status="ok",
        metrics=metrics,
        primary_value=metrics.get(plan.card.primary_metric),
        primary_interval=(interval.low, interval.high) if interval is not None else None,
        complexity=complexity,
        latency=measured.latency,
        environment=env,
        details=details,
        log_tail=result.log_tail,
        private=private,
    )


def _scored(plan: Plan, predictions: Any) -> tuple[dict[str, float], Any, dict[str, Any] | None]:
    """The metrics and primary interval of a run; for a competition phase, those of its public part, and its
    private part's scores apart (never in the run's own metrics)."""
    if not plan.parts:
        metrics, interval = plan.kind.score_with_interval(
            plan.card, predictions, plan.split.hidden_dir, **plan.score_options
        )
        return metrics, interval, None
    from harness.predictions import Predictions

    position = {image_id: i for i, image_id in enumerate(predictions.ids)}
    scored = {}
    for part, (ids, hidden_dir) in plan.parts.items():
        present = [i for i in ids if i in position]
        records = [predictions.records[position[i]] for i in present]
        subset = Predictions(kind=predictions.kind, ids=present, records=records)
        scored[part] = plan.kind.score_with_interval(plan.card, subset, hidden_dir, **plan.score_options)
    (metrics, interval), (private_metrics, private_interval) = scored["public"], scored["private"]
    private = {
        "metrics": private_metrics,
        "primary_value": private_metrics.get(plan.card.primary_metric),
        "primary_interval": (private_interval.low, private_interval.high) if private_interval else None,
    }
    return metrics, interval, private


def _details(measured: Any, result: IngestResult) -> dict[str, Any]:
    """What a run stores as information beside its ranked figures."""
    details = {
        "timings": measured.timings,
        "crosscheck": measured.crosscheck,
        "dtypes": measured.complexity.dtypes,
        "peak_memory_bytes": measured.peak_memory_bytes,
        "runner_wall_s": result.wall_s,
        "sandbox_environment": measured.environment,
    }
    details.update({key: value for key, value in measured.info.items() if value is not None})
    return details


def run_record(run: Any, with_samples: bool = False, higher_is_better: bool | None = None) -> dict[str, Any]:
    """The run record (`harness.records.RunRecord`) of a stored run, as a dict. `higher_is_better` is the
    direction of its track's primary metric (looked up when not given; a track no longer known: higher)."""
    from harness.records import RunRecord
    from harness.tracks import get_card

    if higher_is_better is None:
        try:
            higher_is_better = get_card(run.track).higher_is_better
        except HarnessError:
            higher_is_better = True
    return RunRecord.from_row(run, higher_is_better, with_samples).to_dict()
