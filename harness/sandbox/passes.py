"""The driver's passes over a built predictor: accuracy (whole split, batched), performance (latency protocol,
noise checks, cross-check, throughput sweep) and profile (time per layer type)."""

from __future__ import annotations

from harness.measure.latency import cuda_event, wall_clock_ns  # isort: skip

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.sandbox.images import iter_batches, load_image
from harness.sandbox.job import IngestJob
from harness.sandbox.measurements import Measurements

STEPS = ("preprocess", "forward", "postprocess")


class StageError(Exception):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage
        self.message = message


class TimingMarkers:
    """Writes phase names (`first-batch`, `perf-start`, `device:measure`, ...) to a pipe that a runner outside
    the sandbox timestamps on arrival; a no-op without a pipe. `harness.verify.check_timing` uses them."""

    def __init__(self, fd: int | None):
        self.fd = fd

    def __call__(self, name: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, f"{name}\n".encode())
        except OSError:
            self.fd = None  # closed under us: the runner notices the missing markers


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 2000 else text[:2000] + "..."


def label_set(job: IngestJob) -> set[int] | None:
    return set(job.label_ids) if job.label_ids else None


class StepTimer:
    """Adds up the time of one predictor step (`forward`, `preprocess`, `postprocess`) during the accuracy
    pass, by wrapping it as an instance attribute (so `predict` still calls it). On CUDA the forward step is
    timed with CUDA events on the stream, without synchronising, so the pass runs as it would untimed."""

    def __init__(self, predictor: Any, name: str, cuda_events: bool):

        self.predictor, self.name = predictor, name
        self.had_attribute = name in vars(predictor)
        self.original = getattr(predictor, name)
        self.calls = 0
        self.host_ns = 0
        self.events: list[tuple[Any, Any]] = []

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            start_ns = wall_clock_ns()
            if cuda_events:
                start, end = cuda_event(), cuda_event()
                start.record()
                out = self.original(*args, **kwargs)
                end.record()
                self.events.append((start, end))
            else:
                out = self.original(*args, **kwargs)
            self.host_ns += wall_clock_ns() - start_ns
            return out

        setattr(predictor, name, timed)

    def restore(self) -> None:
        if self.had_attribute:
            setattr(self.predictor, self.name, self.original)
        else:
            delattr(self.predictor, self.name)

    def seconds(self) -> float:
        """Device time of the step on CUDA (call after a synchronisation), host time otherwise."""
        if self.events:
            return sum(start.elapsed_time(end) for start, end in self.events) / 1e3
        return self.host_ns / 1e9


def accuracy_pass(
    job: IngestJob, predictor: Any, ids: list[str], files: list[str], measured: Measurements, mark: TimingMarkers
) -> list[Any]:
    """The whole split, batched; times the forward step apart from everything around it."""
    import torch

    from harness.kinds import validate_outputs

    cuda = job.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = False  # image sizes may vary across the split
        torch.cuda.reset_peak_memory_stats()
    records: list[Any] = []
    steps = {name: StepTimer(predictor, name, cuda and name == "forward") for name in STEPS}
    wait_ns = validate_ns = model_ns = 0
    labels = label_set(job)
    t_acc = wall_clock_ns()
    try:
        batches = iter_batches(Path(job.inputs_dir or ""), ids, files, job.accuracy_batch_size)
        while True:
            t_wait = wall_clock_ns()
            item = next(batches, None)
            wait_ns += wall_clock_ns() - t_wait
            if item is None:
                break
            batch_ids, images = item
            if not records:
                mark("first-batch")
            t_batch = wall_clock_ns()
            try:
                outputs = predictor.predict(images)
            except Exception as exc:
                raise StageError("predict", f"predict failed on {batch_ids[0]}..: {describe(exc)}") from exc
            model_ns += wall_clock_ns() - t_batch
            t_validate = wall_clock_ns()
            try:
                validate_outputs(job.kind, outputs, images, job.num_classes, labels)
            except Exception as exc:
                raise StageError("outputs", f"invalid output for a batch starting at {batch_ids[0]}: {exc}") from exc
            validate_ns += wall_clock_ns() - t_validate
            records.extend(outputs)
        if cuda:
            torch.cuda.synchronize()
    finally:
        for step in steps.values():
            step.restore()
    timings = measured.timings
    timings["accuracy_s"] = (wall_clock_ns() - t_acc) / 1e9
    timings["accuracy_predict_s"] = model_ns / 1e9
    timings["accuracy_wait_s"] = wait_ns / 1e9  # waiting for decoded images (decoding runs on a thread)
    timings["accuracy_validate_s"] = validate_ns / 1e9
    for name, step in steps.items():
        if step.calls:
            timings[f"accuracy_{name}_s"] = step.seconds()
            if name == "forward" and cuda:
                timings["accuracy_forward_host_s"] = step.host_ns / 1e9
    if cuda:
        measured.info["peak_memory_accuracy_bytes"] = int(torch.cuda.max_memory_allocated())
    return records


def performance_pass(
    job: IngestJob,
    predictor: Any,
    variant: Any,
    files: list[str],
    records: list[Any],
    measured: Measurements,
    mark: TimingMarkers,
) -> None:
    """The model alone at the track's batch size, then end to end, on inputs nobody can predict
    (harness.sandbox.timed); noise checks; the steps of `predict` timed apart; the cross-checks of the timed
    outputs and of a sample of the split against the accuracy pass; the throughput sweep."""
    import torch

    from harness.measure.environment import gpu_compute_processes
    from harness.sandbox.timed import step_times, timed_passes

    cuda = job.device.startswith("cuda")
    device_index = (torch.device(job.device).index or 0) if cuda else 0
    if cuda:
        # The timed inputs have fixed shapes (one image size), so cuDNN may pick its fastest algorithms.
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    busy = gpu_compute_processes(device_index) if cuda else []
    mark("perf-start")
    t_perf = wall_clock_ns()
    try:
        with torch.inference_mode():
            summaries, device, e2e, clocks = timed_passes(
                job, predictor, variant, files, measured, mark, device_timed_forward
            )
            calls = 10 if job.profile == "quick" else 30  # on the timed passes' inputs: the pool is loaded once
            measured.info["steps_ms"] = step_times(job, predictor, device.inputs, calls)
    except Exception as exc:
        raise StageError("latency", f"performance pass failed: {describe(exc)}") from exc
    measured.timings["performance_s"] = (wall_clock_ns() - t_perf) / 1e9
    mark("perf-end")
    busy = sorted(set(busy) | set(gpu_compute_processes(device_index) if cuda else []))
    reasons = _noise_reasons(job, device_index, clocks, busy, measured)
    for summary in summaries:
        summary.noise_reasons.extend(reasons)
        summary.noisy = bool(summary.noise_reasons)
    measured.latency = {summary.kind: summary.to_dict() for summary in summaries}
    if cuda:
        measured.peak_memory_bytes = int(torch.cuda.max_memory_allocated())
    else:
        import resource

        measured.info["peak_rss_bytes"] = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    measured.crosscheck = crosscheck(job, predictor, variant, files, records, device.kept + e2e.kept)
    if job.throughput:
        sample_images = [load_image(Path(job.inputs_dir or "") / f) for f in files[: job.batch_size]]
        _throughput(job, predictor, variant, sample_images, measured)


def _noise_reasons(
    job: IngestJob, device_index: int, clocks: tuple[Any, Any], busy: list[str], measured: Measurements
) -> list[str]:
    from harness.measure.environment import clock_noise_reasons

    reasons: list[str] = []
    if not job.device.startswith("cuda"):
        cores = os.cpu_count() or 1
        load = os.getloadavg()[0]
        if load > cores:
            reasons.append(f"CPU load average {load:.1f} on {cores} cores during timing")
    else:
        measured.info["clocks"] = {"before": clocks[0], "after": clocks[1]}
        reasons.extend(clock_noise_reasons(*clocks))
    if busy:
        reasons.append(f"other compute processes on the GPU: {', '.join(busy)}")
    return reasons


def _throughput(job: IngestJob, predictor: Any, variant: Any, sample_images: list, measured: Measurements) -> None:
    import torch

    from harness.measure.latency import sweep_limits, throughput_sweep

    t_sweep = wall_clock_ns()

    def make_inputs(batch: int) -> Any:
        with torch.inference_mode():
            return predictor.preprocess((sample_images * batch)[:batch])

    def forward(inputs: Any) -> Any:
        with torch.inference_mode():
            return predictor.forward(inputs)

    max_batch, budget_s = sweep_limits(job.profile, job.device)
    sweep = throughput_sweep(
        make_inputs,
        forward,
        job.device,
        job.profile,
        max_batch=max_batch,
        budget_s=budget_s,
        guard=variant.timing_guard,
    )
    measured.info["throughput"] = sweep.to_dict()
    measured.timings["throughput_s"] = (wall_clock_ns() - t_sweep) / 1e9
    if job.device.startswith("cuda"):
        torch.cuda.empty_cache()


def device_timed_forward(
    predictor: Any, model_inputs: Any, eager: Callable[[], None], measured: Measurements
) -> tuple[Callable[[], Any], str | None, Any]:
    """On CUDA, the device latency times replays of the forward captured in a CUDA graph when the replay
    reproduces the eager forward (harness/measure/cudagraph.py says why), and `eager` otherwise. Returns the
    function to time, its timer's name and the graph's input buffers (None for the eager forward: fresh inputs
    are then passed to it instead); `info["device_timing"]` says which, and why not a graph."""
    from harness.measure.cudagraph import capture_forward

    t0 = wall_clock_ns()
    graphed, why_not = capture_forward(predictor.forward, model_inputs)
    info: dict[str, Any] = {
        "method": "cuda-graph" if graphed else "cuda-events",
        "capture_s": (wall_clock_ns() - t0) / 1e9,
    }
    measured.info["device_timing"] = info
    if graphed is None:
        info["why_not_graph"] = why_not
        return eager, None, None
    return graphed.replay, "cuda-graph", model_inputs


def crosscheck(
    job: IngestJob,
    predictor: Any,
    variant: Any,
    files: list[str],
    records: list[Any],
    kept: list[tuple[list[np.ndarray], Any]],
) -> dict[str, Any]:
    """MLPerf-style: the timed calls' outputs against the same inputs predicted again in one batch, and the
    performance mode (the track's batch size) on a share of the split against the accuracy pass."""
    import torch

    from harness.kinds import compare_outputs
    from harness.sandbox.timed import crosscheck_kept

    reduced = bool(variant.reduced_precision)
    checks: dict[str, Any] = {}
    try:
        with torch.inference_mode():
            checks["timed"] = crosscheck_kept(job, predictor, kept, reduced)
    except Exception as exc:  # the same predictor answered the timed calls: name the stage that broke it
        raise StageError("crosscheck", f"predicting the timed inputs again failed: {describe(exc)}") from exc
    # A share of the split (10 %, at least 8 images, at most `check_sample`): enough to catch a predictor that
    # behaves differently at the track's batch size, without re-running a slow detector over a third of its set.
    count = min(job.check_sample, max(8, len(files) // 10), len(files))
    again: list[Any] = []
    for start in range(0, count, job.batch_size):
        images = [load_image(Path(job.inputs_dir or "") / f) for f in files[start : min(count, start + job.batch_size)]]
        try:
            again.extend(predictor.predict(images))
        except Exception as exc:  # the same predictor answered the accuracy pass: name the stage that broke it
            raise StageError(
                "crosscheck", f"predicting the cross-check sample (images {start}..) failed: {describe(exc)}"
            ) from exc
    checks["sample"] = compare_outputs(job.kind, records[:count], again, reduced).to_dict()
    failed = [f"{name}: {c['reason']}" for name, c in checks.items() if not c["consistent"]]
    return {
        "images": count + checks["timed"]["images"],
        "consistent": not failed,
        "reduced_precision": reduced,
        "reason": "; ".join(failed) or None,
        "checks": checks,
    }


def profile_pass(job: IngestJob, predictor: Any, index: dict[str, Any] | None) -> dict[str, Any]:
    """Profile mode: the forward step at the track's batch size under the profiler, by layer type."""
    import torch

    from harness.sandbox.profile import profile_forward

    if index is None:
        raise StageError("inputs", "profile mode needs the inputs folder (inputs_dir) of the split")
    images = [load_image(Path(job.inputs_dir or "") / f) for f in index["files"][: job.batch_size]]
    try:
        with torch.inference_mode():
            inputs = predictor.preprocess(images)
        profiled = profile_forward(predictor, inputs, job.device, iterations=job.profile_iterations)
    except Exception as exc:
        raise StageError("profile", f"profiling failed: {describe(exc)}") from exc
    return {**profiled, "batch_size": job.batch_size, "variant": job.variant, "device": job.device}
