"""The ingestion driver: the harness-owned program that runs a submission inside the sandbox.

    python -m harness.runners.ingest JOB.json

It sees only the job file, the submission's installed folder and the inputs (images and ids, no labels).
It loads the entry point, builds the predictor, applies the variant, measures complexity, runs the
accuracy pass (batched, whole split) and then the performance pass (latency protocol, noise checks,
cross-check against the accuracy pass, throughput sweep), and writes `predictions.npz` and
`measurements.json` (or `error.json`) into the output folder. Nothing is pickled. In `profile` mode it
only times the forward step under the profiler and writes the per-layer-type breakdown.
"""

from __future__ import annotations

# The harness's clock is captured before anything else, and before any submission code is imported.
from harness.measure.latency import PROFILES, time_callable, wall_clock_ns  # isort: skip
from harness.predictions import save_predictions  # isort: skip

import json
import os
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

EXIT_SUBMISSION_FAULT = 3


@dataclass
class IngestJob:
    mode: str  # "check" | "evaluate" | "profile" (per-layer-type breakdown, see harness.measure.profile)
    site_dir: str  # where the submission is installed
    entry_name: str
    track: str
    kind: str
    variant: str
    device: str
    out_dir: str
    inputs_dir: str | None = None
    profile: str = "quick"
    threads: int = 1
    num_classes: int | None = None
    label_ids: list[int] | None = None
    input_size: list[int] | None = None
    accuracy_batch_size: int = 16
    batch_size: int = 1
    mac_inputs: dict[str, Any] = field(default_factory=dict)  # "HxW": {"size": [H, W]} | {"files": [...]}
    calibration_dir: str | None = None
    calibration_count: int = 128
    check_sample: int = 32  # at most this many images re-predicted in performance mode for the cross-check
    build_options: dict[str, Any] = field(default_factory=dict)  # the manifest's, handed over as ctx.extra
    throughput: bool = True  # batch-size sweep after the latency passes
    profile_iterations: int = 20  # profile mode: forward calls under the profiler
    marker_fd: int | None = None  # a pipe on which the runner timestamps the passes from outside the sandbox

    @classmethod
    def load(cls, path: Path) -> IngestJob:
        return cls(**json.loads(Path(path).read_text()))

    def dump(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))


class TimingMarkers:
    """Writes phase names (`first-batch`, `perf-start`, `device:measure`, ...) to a pipe that a runner outside
    the sandbox timestamps on arrival; a no-op without a pipe. See `harness.runners.docker` for the check."""

    def __init__(self, fd: int | None):
        self.fd = fd

    def __call__(self, name: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, f"{name}\n".encode())
        except OSError:
            self.fd = None  # closed under us: the runner notices the missing markers


class StageError(Exception):
    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage
        self.message = message


def load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A fixed noise image: MACs of most models do not depend on pixel values, only on the size."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def decode_workers() -> int:
    """Threads that decode images: PNG and JPEG decoders release the GIL, so they decode in parallel. Half
    the cores (at most 8): a single decoding thread could not keep a GPU busy (seen on the H200: 0.47 s of a
    1.12 s accuracy pass spent waiting for decoded 512x512 PNGs)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def iter_batches(
    inputs_dir: Path, ids: list[str], files: list[str], batch: int, ahead: int = 4, workers: int | None = None
) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """Batches of decoded images, in order, decoded by a pool of threads up to `ahead` batches in advance so
    that decoding overlaps with the model's work."""
    from concurrent.futures import Future, ThreadPoolExecutor

    starts = iter(range(0, len(ids), batch))
    pending: deque[tuple[list[str], list[Future]]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers or decode_workers(), thread_name_prefix="harness-decode")

    def submit_next() -> None:
        start = next(starts, None)
        if start is not None:
            chunk = files[start : start + batch]
            pending.append((ids[start : start + batch], [pool.submit(load_image, inputs_dir / f) for f in chunk]))

    try:
        for _ in range(ahead):
            submit_next()
        while pending:
            batch_ids, futures = pending.popleft()
            images = [future.result() for future in futures]
            submit_next()
            yield batch_ids, images
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def load_entry_point(site_dir: str, name: str) -> Any:
    from harness.registry import load_from_site

    try:
        return load_from_site(Path(site_dir), name)
    except Exception as exc:
        raise StageError("import", str(exc)) from exc


def run(job: IngestJob) -> dict[str, Any]:
    import torch

    from harness.contract import BuildContext, OutputError, Predictor, validate_outputs
    from harness.measure.complexity import count_macs, count_params, serialized_bytes
    from harness.measure.environment import fingerprint
    from harness.variants import VariantUnavailable, apply_variant, get_variant

    torch.set_num_threads(job.threads)
    _float32_means_float32()
    out_dir = Path(job.out_dir)
    timings: dict[str, float] = {}
    mark = TimingMarkers(job.marker_fd)
    t0 = wall_clock_ns()

    build = load_entry_point(job.site_dir, job.entry_name)
    ctx = BuildContext(
        track=job.track,
        device=job.device,
        variant=job.variant,
        num_classes=job.num_classes,
        input_size=tuple(job.input_size) if job.input_size else None,
        extra=dict(job.build_options),
    )
    try:
        predictor = build(ctx)
    except Exception as exc:
        raise StageError("build", f"build(ctx) raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(predictor, Predictor):
        raise StageError(
            "build",
            f"build(ctx) returned a {type(predictor).__name__}, expected a harness.contract.Predictor "
            "(use harness.contract.wrap_classifier / wrap_detector, or subclass Predictor)",
        )
    if not isinstance(getattr(predictor, "model", None), torch.nn.Module):
        raise StageError("build", "the predictor's `model` is not a torch.nn.Module; the harness measures it itself")
    predictor.model.eval()
    try:
        predictor.to(job.device)
    except Exception as exc:
        raise StageError("build", f"moving the model to {job.device} failed: {exc}") from exc
    timings["load_s"] = (wall_clock_ns() - t0) / 1e9

    def mac_images(spec: dict[str, Any]) -> list[np.ndarray]:
        if "files" in spec:
            return [load_image(Path(job.inputs_dir) / f) for f in spec["files"]]
        return [synthetic_image(*spec["size"])]

    # Params and MACs describe the architecture: counted on the model as built (quantized modules hold no
    # float parameters and do not run the float hooks). Bytes describe the variant: measured after it.
    macs: dict[str, int] = {}
    macs_std: dict[str, float] = {}
    checked_images: list[np.ndarray] = []
    output_error: str | None = None
    if job.mode != "profile":
        for key, spec in job.mac_inputs.items():
            images = mac_images(spec)
            try:
                per_image = count_macs(predictor, images)
                outputs = predictor.predict(images[:2])
            except Exception as exc:
                raise StageError("predict", _describe(exc)) from exc
            if output_error is None:
                try:
                    validate_outputs(job.kind, outputs, images[:2], job.num_classes, _label_set(job))
                except OutputError as exc:
                    output_error = f"{exc} (on a {images[0].shape[1]}x{images[0].shape[0]} input)"
            checked_images.extend(images[:1])
            macs[key] = int(round(float(np.mean(per_image))))
            macs_std[key] = float(np.std(per_image))
    params = count_params(predictor.model)
    if output_error is not None and job.mode != "check":
        raise StageError("outputs", output_error)

    index = _read_inputs_index(job)
    variant_info: dict[str, Any] = {}
    context = {
        "calibration": _calibration_images(job),
        "sample_images": _sample_images(job, index) or checked_images,
        "threads": job.threads,
        "kind": job.kind,
        "batch_size": job.batch_size,
        "max_batch": job.accuracy_batch_size,
        "info": variant_info,
    }
    t_variant = wall_clock_ns()
    try:
        predictor = apply_variant(job.variant, predictor, job.device, context, site_dir=Path(job.site_dir))
    except VariantUnavailable:
        raise
    except Exception as exc:
        raise StageError("variant", f"variant {job.variant} failed: {_describe(exc)}") from exc
    timings["variant_s"] = (wall_clock_ns() - t_variant) / 1e9
    variant = get_variant(job.variant, Path(job.site_dir))
    _float32_means_float32()  # again: the submission's build and the variant ran since

    if job.mode == "profile":
        return _profile(job, predictor, index)

    size, dtypes = serialized_bytes(predictor.model)
    if variant_info.get("serialized_bytes"):
        size = int(variant_info["serialized_bytes"])  # the variant's own artefact (ONNX graph, engine)
    result: dict[str, Any] = {
        "complexity": {"params": params, "bytes": size, "dtypes": dtypes, "macs": macs, "macs_std": macs_std},
        "environment": fingerprint(job.device, job.threads),
        "timings": timings,
        "variant_info": variant_info,
    }
    if job.mode == "check":
        if output_error is not None:
            result["output_error"] = output_error  # `check` still reports what the model costs
        return result

    if index is None:
        raise StageError("inputs", "evaluate mode needs the inputs folder (inputs_dir) of the split")
    ids, files = index["ids"], index["files"]
    records = _accuracy_pass(job, predictor, ids, files, timings, result, mark)
    t_save = wall_clock_ns()
    save_predictions(out_dir / "predictions.npz", job.kind, ids, records)
    timings["save_predictions_s"] = (wall_clock_ns() - t_save) / 1e9
    _performance_pass(job, predictor, variant, files, records, timings, result, mark)
    result["numerics"] = {
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
    }
    return result


def _float32_means_float32() -> None:
    """Float32 layers compute in float32 on every device. PyTorch lets cuDNN convolutions run in TF32 on
    Ampere and later GPUs by default, which rounds their inputs to 10 mantissa bits: batch-1 outputs then
    differ from the accuracy pass's batches by about 1e-3 (seen on the H200: shufflenet_v2_x0_5 logits
    2.9e-3 apart, failing the cross-check). Reduced precision is what the fp16 and bf16 variants are for.
    The state after the run is recorded (`numerics`)."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def _read_inputs_index(job: IngestJob) -> dict[str, Any] | None:
    if not job.inputs_dir or not (Path(job.inputs_dir) / "index.json").exists():
        return None
    from harness.datasets import read_index

    return read_index(Path(job.inputs_dir))


def _sample_images(job: IngestJob, index: dict[str, Any] | None, count: int = 4) -> list[np.ndarray]:
    """A few real inputs of the split, for variants that export or compile on example inputs."""
    if index is None:
        return []
    return [load_image(Path(job.inputs_dir) / f) for f in index["files"][:count]]


class _StepTimer:
    """Adds up the time of one predictor step (`forward`, `preprocess`, `postprocess`) during the accuracy
    pass, by wrapping it as an instance attribute (so `predict` still calls it). On CUDA the forward step is
    timed with CUDA events on the stream, without synchronising, so the pass runs as it would untimed."""

    def __init__(self, predictor: Any, name: str, cuda_events: bool):
        import torch

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
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
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


def _accuracy_pass(
    job: IngestJob,
    predictor: Any,
    ids: list[str],
    files: list[str],
    timings: dict,
    result: dict,
    mark: TimingMarkers,
) -> list[Any]:
    """The whole split, batched; times the forward step apart from everything around it."""
    import torch

    from harness.contract import validate_outputs

    cuda = job.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = False  # image sizes may vary across the split
        torch.cuda.reset_peak_memory_stats()
    records: list[Any] = []
    steps = {name: _StepTimer(predictor, name, cuda and name == "forward") for name in STEPS}
    wait_ns = validate_ns = 0
    t_acc = wall_clock_ns()
    model_ns = 0
    try:
        batches = iter_batches(Path(job.inputs_dir), ids, files, job.accuracy_batch_size)
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
                raise StageError("predict", f"predict failed on {batch_ids[0]}..: {_describe(exc)}") from exc
            model_ns += wall_clock_ns() - t_batch
            t_validate = wall_clock_ns()
            try:
                validate_outputs(job.kind, outputs, images, job.num_classes, _label_set(job))
            except Exception as exc:
                raise StageError("outputs", f"invalid output for a batch starting at {batch_ids[0]}: {exc}") from exc
            validate_ns += wall_clock_ns() - t_validate
            records.extend(outputs)
        if cuda:
            torch.cuda.synchronize()
    finally:
        for step in steps.values():
            step.restore()
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
        result["peak_memory_accuracy_bytes"] = int(torch.cuda.max_memory_allocated())
    return records


STEPS = ("preprocess", "forward", "postprocess")


def _performance_pass(
    job: IngestJob,
    predictor: Any,
    variant: Any,
    files: list[str],
    records: list[Any],
    timings: dict,
    result: dict,
    mark: TimingMarkers,
) -> None:
    """The model alone at the track's batch size, then end to end; noise checks; throughput sweep;
    the cross-check of its outputs against the accuracy pass."""
    import torch

    from harness.measure.environment import clock_noise_reasons, gpu_compute_processes, read_sm_clock
    from harness.measure.latency import sweep_limits, throughput_sweep

    cuda = job.device.startswith("cuda")
    device_index = (torch.device(job.device).index or 0) if cuda else 0
    profile = PROFILES[job.profile]
    sample_images = [load_image(Path(job.inputs_dir) / f) for f in files[: job.batch_size]]
    guard = variant.timing_guard
    if cuda:
        # Inputs are the same every iteration (fixed shapes), so cuDNN may pick its fastest algorithms.
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    busy_before = gpu_compute_processes(device_index) if cuda else []
    timed_outputs: dict[str, Any] = {}
    mark("perf-start")
    t_perf = wall_clock_ns()
    try:
        with torch.inference_mode():
            model_inputs = predictor.preprocess(sample_images)

            def forward_once() -> None:
                timed_outputs["device"] = predictor.forward(model_inputs)

            def predict_once() -> None:
                timed_outputs["e2e"] = predictor.predict(sample_images)

            timed_forward, timer_label = forward_once, None
            if cuda:
                for _ in range(3):  # first calls may compile or tune; the clock is read on the running model
                    forward_once()
                torch.cuda.synchronize()
                timed_forward, timer_label = _device_timed_forward(
                    predictor, model_inputs, forward_once, timed_outputs, result
                )
            clocks_before = read_sm_clock(device_index, timed_forward) if cuda else None
            device_latency = time_callable(
                timed_forward,
                profile,
                "device",
                job.batch_size,
                job.device,
                guard,
                on_phase=lambda phase: mark(f"device:{phase}"),
                timer_label=timer_label,
            )
            e2e_latency = time_callable(
                predict_once,
                profile,
                "e2e",
                job.batch_size,
                job.device,
                guard,
                on_phase=lambda phase: mark(f"e2e:{phase}"),
            )
            clocks_after = read_sm_clock(device_index, timed_forward) if cuda else None
    except Exception as exc:
        raise StageError("latency", f"performance pass failed: {_describe(exc)}") from exc
    timings["performance_s"] = (wall_clock_ns() - t_perf) / 1e9
    mark("perf-end")
    reasons: list[str] = []
    if not cuda:
        cores = os.cpu_count() or 1
        load = os.getloadavg()[0]
        if load > cores:
            reasons.append(f"CPU load average {load:.1f} on {cores} cores during timing")
    else:
        result["clocks"] = {"before": clocks_before, "after": clocks_after}
        reasons.extend(clock_noise_reasons(clocks_before, clocks_after))
    busy_after = gpu_compute_processes(device_index) if cuda else []
    others = sorted(set(busy_before) | set(busy_after))
    if others:
        reasons.append(f"other compute processes on the GPU: {', '.join(others)}")
    for summary in (device_latency, e2e_latency):
        summary.noise_reasons.extend(reasons)
        summary.noisy = bool(summary.noise_reasons)
    result["latency"] = {"device": device_latency.to_dict(), "e2e": e2e_latency.to_dict()}
    if cuda:
        result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    else:
        import resource

        result["peak_rss_bytes"] = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    # MLPerf-style cross-check: what the timed calls returned, and the performance mode on a sample.
    result["crosscheck"] = _crosscheck(job, predictor, variant, files, records, timed_outputs, sample_images)

    if job.throughput:
        t_sweep = wall_clock_ns()

        def make_inputs(batch: int) -> Any:
            with torch.inference_mode():
                return predictor.preprocess((sample_images * batch)[:batch])

        def forward(inputs: Any) -> Any:
            with torch.inference_mode():
                return predictor.forward(inputs)

        max_batch, budget_s = sweep_limits(job.profile, job.device)
        sweep = throughput_sweep(
            make_inputs, forward, job.device, job.profile, max_batch=max_batch, budget_s=budget_s, guard=guard
        )
        result["throughput"] = sweep.to_dict()
        timings["throughput_s"] = (wall_clock_ns() - t_sweep) / 1e9
        if cuda:
            torch.cuda.empty_cache()


def _device_timed_forward(
    predictor: Any,
    model_inputs: Any,
    eager: Callable[[], None],
    timed_outputs: dict[str, Any],
    result: dict[str, Any],
) -> tuple[Callable[[], Any], str | None]:
    """On CUDA, the device latency times replays of the forward captured in a CUDA graph when the replay
    reproduces the eager forward (harness/measure/cudagraph.py says why), and `eager` otherwise. Returns the
    function to time and its timer's name; `result["device_timing"]` says which, and why not a graph."""
    from harness.measure.cudagraph import capture_forward

    t0 = wall_clock_ns()
    graphed, why_not = capture_forward(predictor.forward, model_inputs)
    info: dict[str, Any] = {
        "method": "cuda-graph" if graphed else "cuda-events",
        "capture_s": (wall_clock_ns() - t0) / 1e9,
    }
    result["device_timing"] = info
    if graphed is None:
        info["why_not_graph"] = why_not
        return eager, None
    timed_outputs["device"] = graphed.output  # what every replay writes: the cross-check reads it after timing
    return graphed.graph.replay, "cuda-graph"


def _crosscheck(
    job: IngestJob,
    predictor: Any,
    variant: Any,
    files: list[str],
    records: list[Any],
    timed_outputs: dict[str, Any],
    sample_images: list[np.ndarray],
) -> dict[str, Any]:
    import torch

    from harness.measure.crosscheck import compare_outputs

    reduced = bool(variant.reduced_precision)
    expected_first = records[: len(sample_images)]
    checks: dict[str, Any] = {}
    with torch.inference_mode():
        checks["timed_forward"] = compare_outputs(
            job.kind, expected_first, predictor.postprocess(timed_outputs["device"], sample_images), reduced
        ).to_dict()
    checks["timed_predict"] = compare_outputs(job.kind, expected_first, timed_outputs["e2e"], reduced).to_dict()
    # MLPerf-style, a share of the split (10 %, at least 8 images, at most `check_sample`): enough to catch a
    # predictor that behaves differently when timed, without re-running a slow detector over a third of its set.
    count = min(job.check_sample, max(8, len(files) // 10), len(files))
    again: list[Any] = []
    for start in range(0, count, job.batch_size):
        images = [load_image(Path(job.inputs_dir) / f) for f in files[start : min(count, start + job.batch_size)]]
        try:
            again.extend(predictor.predict(images))
        except Exception as exc:  # the same predictor answered the accuracy pass: name the stage that broke it
            raise StageError(
                "crosscheck", f"predicting the cross-check sample (images {start}..) failed: {_describe(exc)}"
            ) from exc
    sample = compare_outputs(job.kind, records[:count], again, reduced)
    checks["sample"] = sample.to_dict()
    failed = [f"{name}: {c['reason']}" for name, c in checks.items() if not c["consistent"]]
    return {
        "images": count,
        "consistent": not failed,
        "reduced_precision": reduced,
        "reason": "; ".join(failed) or None,
        "checks": checks,
    }


def _profile(job: IngestJob, predictor: Any, index: dict[str, Any] | None) -> dict[str, Any]:
    """Profile mode: the forward step at the track's batch size under the profiler, by layer type."""
    import torch

    from harness.measure.profile import profile_forward

    if index is None:
        raise StageError("inputs", "profile mode needs the inputs folder (inputs_dir) of the split")
    images = [load_image(Path(job.inputs_dir) / f) for f in index["files"][: job.batch_size]]
    try:
        with torch.inference_mode():
            inputs = predictor.preprocess(images)
        profiled = profile_forward(predictor, inputs, job.device, iterations=job.profile_iterations)
    except Exception as exc:
        raise StageError("profile", f"profiling failed: {_describe(exc)}") from exc
    return {**profiled, "batch_size": job.batch_size, "variant": job.variant, "device": job.device}


def _label_set(job: IngestJob) -> set[int] | None:
    return set(job.label_ids) if job.label_ids else None


class LazyImages(Sequence):
    """Image files decoded on first access: variants that need no calibration never pay for loading it."""

    def __init__(self, folder: Path, files: list[str]):
        self.folder, self.files = folder, files
        self._images: list[np.ndarray] | None = None

    def _load(self) -> list[np.ndarray]:
        if self._images is None:
            self._images = [load_image(self.folder / f) for f in self.files]
        return self._images

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: Any) -> Any:
        return self._load()[item]


def _calibration_images(job: IngestJob) -> Sequence[np.ndarray]:
    """Calibration images for post-training quantization: a fixed slice of the calibration split's inputs."""
    if not job.calibration_dir:
        return []
    from harness.datasets import read_index

    index = read_index(Path(job.calibration_dir))
    return LazyImages(Path(job.calibration_dir), index["files"][: job.calibration_count])


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 2000 else text[:2000] + "..."


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job = IngestJob.load(Path(args[0]))
    out_dir = Path(job.out_dir)
    from harness.variants import VariantUnavailable

    try:
        result = run(job)
    except VariantUnavailable as exc:
        (out_dir / "error.json").write_text(json.dumps({"stage": "variant", "unavailable": True, "message": str(exc)}))
        return EXIT_SUBMISSION_FAULT
    except StageError as exc:
        (out_dir / "error.json").write_text(
            json.dumps({"stage": exc.stage, "message": exc.message, "traceback": traceback.format_exc()[-4000:]})
        )
        print(f"[{exc.stage}] {exc.message}", file=sys.stderr)
        return EXIT_SUBMISSION_FAULT
    except MemoryError:
        (out_dir / "error.json").write_text(json.dumps({"stage": "run", "message": "out of memory (MemoryError)"}))
        return EXIT_SUBMISSION_FAULT
    (out_dir / "measurements.json").write_text(json.dumps(result, default=_json_default))
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
