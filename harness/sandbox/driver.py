"""The ingestion driver: the harness-owned program that runs a submission inside the sandbox.

    python -m harness.sandbox.driver JOB.json

It sees only the job file, the submission's installed folder and the inputs (images and ids, no labels).
It loads the entry point, builds the predictor, measures its complexity, applies the variant, runs the
accuracy pass (batched, whole split) and then the performance pass (`harness.sandbox.passes`), and writes
`predictions.npz` and `measurements.json` (or `error.json`) into the output folder. Nothing is pickled. In
`profile` mode it only times the forward step under the profiler and writes the per-layer-type breakdown.
"""

from __future__ import annotations

# The harness's clock is captured before anything else, and before any submission code is imported.
from harness.measure.latency import wall_clock_ns  # isort: skip
from harness.predictions import save_predictions  # isort: skip

import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.sandbox.images import LazyImages, load_image, synthetic_image
from harness.sandbox.job import IngestJob
from harness.sandbox.measurements import Complexity, Measurements
from harness.sandbox.passes import (
    StageError,
    TimingMarkers,
    accuracy_pass,
    describe,
    label_set,
    performance_pass,
    profile_pass,
)
from harness.sandbox.timed import timer_snapshot, timers_replaced, unseen_image

EXIT_SUBMISSION_FAULT = 3


def build_predictor(job: IngestJob, timings: dict[str, float]) -> Any:
    """The submission's predictor, built by its entry point, on the job's device, in eval mode."""
    import torch

    from harness.contract import BuildContext, Predictor
    from harness.submission import SUBMISSIONS

    t0 = wall_clock_ns()
    try:
        build = SUBMISSIONS.get(job.entry_name, Path(job.site_dir))
    except Exception as exc:
        raise StageError("import", str(exc)) from exc
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
    return predictor


@dataclass
class Architecture:
    """What the model as built computes and reads (before any variant): MACs per input key (mean and std over
    its images), MACs by operator family, parameters and read bytes, the images checked, the first output fault."""

    macs: dict[str, int] = field(default_factory=dict)
    macs_std: dict[str, float] = field(default_factory=dict)
    macs_by_family: dict[str, int] = field(default_factory=dict)
    params: int = 0
    read_bytes: int = 0
    outside_forward_share: float = 0.0  # of the MACs, the share computed outside `forward`
    checked: list = field(default_factory=list)
    output_error: str | None = None


OTHER_THREADS_SHARE = 0.25  # of a traced call's CPU time, at most this much may be spent by other threads ...
OTHER_THREADS_FLOOR_S = 0.002  # ... beyond this (with one intra-op thread, an honest model uses none)


def hidden_work(measured: Any) -> None:
    """Refuse a predictor whose traced calls ran their work on other threads or in other processes, where no
    tracer sees MACs or weights: with one intra-op thread, an honest model computes in the thread that calls
    `predict`."""
    other, own = measured.other_threads_cpu_s, measured.own_cpu_s
    if other > OTHER_THREADS_SHARE * (own + other) + OTHER_THREADS_FLOOR_S:
        raise StageError(
            "complexity",
            f"predict ran most of its work on other threads or processes ({other * 1000:.1f} ms of CPU time "
            f"there, {own * 1000:.1f} ms in the calling thread); the harness counts MACs and weights in the "
            "calling thread: compute in the thread that calls predict",
        )


def count_complexity(job: IngestJob, predictor: Any) -> Architecture:
    """MACs, parameters and bytes of the model as built, counted at the dispatcher (harness.measure.complexity);
    the outputs of the first images validated. Parameters are counted before the variant: a quantized model holds
    no float parameters."""
    from harness.contract import OutputError
    from harness.kinds import validate_outputs
    from harness.measure.complexity import measure

    found = Architecture()
    weights_seen: dict[str, tuple[int, int]] = {}
    for key, spec in job.mac_inputs.items():
        if "files" in spec:
            images = [load_image(Path(job.inputs_dir or "") / f) for f in spec["files"]]
        else:
            images = [synthetic_image(*spec["size"])]
        try:
            measured = measure(predictor, images)
            unseen = measure(predictor, [unseen_image(images, real="files" in spec)])
            outputs = predictor.predict(images[:2])
        except Exception as exc:
            raise StageError("predict", describe(exc)) from exc
        answered_from_memory(key, measured.macs_per_image, unseen.macs_per_image[0])
        if found.output_error is None:
            try:
                validate_outputs(job.kind, outputs, images[:2], job.num_classes, label_set(job))
            except OutputError as exc:
                found.output_error = f"{exc} (on a {images[0].shape[1]}x{images[0].shape[0]} input)"
        found.checked.extend(images[:1])
        found.macs[key] = int(round(float(np.mean(measured.macs_per_image))))
        found.macs_std[key] = float(np.std(measured.macs_per_image))
        if not found.macs_by_family:
            found.macs_by_family = {family: macs // len(images) for family, macs in measured.macs_by_family.items()}
        weights_seen[key] = (measured.params, measured.read_bytes)
        hidden_work(measured)
        total = sum(measured.macs_per_image)
        found.outside_forward_share = max(found.outside_forward_share, measured.outside_forward_macs / max(total, 1))
    # Each input size reads the same weights; the largest count covers data-dependent branches.
    found.params = max((params for params, _ in weights_seen.values()), default=0)
    found.read_bytes = max((size for _, size in weights_seen.values()), default=0)
    return found


UNSEEN_TOLERANCE = 1.5  # an unseen image may cost a data-dependent model somewhat more than the fixed ones


def answered_from_memory(key: str, known: list[int], unseen: int) -> None:
    """Refuse a model that computes far less on the fixed images MACs are counted on (which anyone can know in
    advance) than on an image nobody can have seen: it answers known inputs from memory, and its count would
    be a dodge. The count reported is the fixed images' (reproducible); this only checks it."""
    if unseen > UNSEEN_TOLERANCE * max(known) + 1000:
        raise StageError(
            "complexity",
            f"predict computed {unseen:,} MACs on an image it cannot have seen before but {max(known):,} on the "
            f"{key} image(s) MACs are counted on: a model that answers known inputs from memory cannot be "
            "measured; compute every input",
        )


def apply_job_variant(job: IngestJob, predictor: Any, index: dict | None, checked: list, info: dict) -> Any:
    from harness.variants import VariantUnavailable, apply_variant

    context = {
        "calibration": calibration_images(job),
        "sample_images": sample_images(job, index) or checked,
        "threads": job.threads,
        "kind": job.kind,
        "batch_size": job.batch_size,
        "max_batch": job.accuracy_batch_size,
        "info": info,
    }
    try:
        return apply_variant(job.variant, predictor, job.device, context, site_dir=Path(job.site_dir))
    except VariantUnavailable:
        raise
    except Exception as exc:
        raise StageError("variant", f"variant {job.variant} failed: {describe(exc)}") from exc


def run(job: IngestJob) -> dict[str, Any]:
    import torch

    from harness.measure.environment import fingerprint
    from harness.variants import get_variant

    torch.set_num_threads(job.threads)
    float32_means_float32()
    timings: dict[str, float] = {}
    mark = TimingMarkers(job.marker_fd)
    timers = timer_snapshot()
    predictor = build_predictor(job, timings)
    architecture = Architecture() if job.mode == "profile" else count_complexity(job, predictor)
    if architecture.output_error is not None and job.mode != "check":
        raise StageError("outputs", architecture.output_error)
    index = read_inputs_index(job)
    info: dict[str, Any] = {}
    t_variant = wall_clock_ns()
    predictor = apply_job_variant(job, predictor, index, architecture.checked, info)
    timings["variant_s"] = (wall_clock_ns() - t_variant) / 1e9
    variant = get_variant(job.variant, Path(job.site_dir))
    float32_means_float32()  # again: the submission's build and the variant ran since
    if job.mode == "profile":
        return profile_pass(job, predictor, index)
    size, dtypes = variant_bytes(predictor, architecture, info)
    measured = Measurements(
        complexity=Complexity(architecture.params, size, dtypes, architecture.macs, architecture.macs_std),
        environment=fingerprint(job.device, job.threads),
        timings=timings,
        info={
            "variant_info": info,
            "macs_by_family": architecture.macs_by_family,
            "macs_outside_forward": {"share": architecture.outside_forward_share},
        },
    )
    if job.mode == "check":
        measured.output_error = architecture.output_error  # `check` still reports what the model costs
        return measured.to_json()
    if index is None:
        raise StageError("inputs", "evaluate mode needs the inputs folder (inputs_dir) of the split")
    records = accuracy_pass(job, predictor, index["ids"], index["files"], measured, mark)
    t_save = wall_clock_ns()
    save_predictions(Path(job.out_dir) / "predictions.npz", job.kind, index["ids"], records)
    timings["save_predictions_s"] = (wall_clock_ns() - t_save) / 1e9
    performance_pass(job, predictor, variant, index["files"], records, measured, mark)
    replaced = timers_replaced(timers)
    if replaced:
        raise StageError("latency", f"the harness's timers were replaced while it ran: {', '.join(replaced)}")
    measured.info["numerics"] = {
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
    }
    return measured.to_json()


def variant_bytes(predictor: Any, architecture: Architecture, info: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """The bytes of the model as run (after its variant) and its elements per dtype: the variant's own artefact
    where it writes one (ONNX graph, engine); else the larger of the stored state dict and the weights the
    computation reads (weights held outside the module tree are stored state too)."""
    from harness.measure.complexity import measure, serialized_bytes

    stored, dtypes = serialized_bytes(predictor.model)
    if info.get("serialized_bytes"):
        return int(info["serialized_bytes"]), dtypes
    reads = architecture.read_bytes
    if architecture.checked:
        try:
            reads = measure(predictor, architecture.checked[:1]).read_bytes
        except Exception as exc:
            raise StageError(
                "variant", f"the {predictor.__class__.__name__} failed after its variant: {describe(exc)}"
            ) from exc
    return max(stored, reads), dtypes


def float32_means_float32() -> None:
    """Float32 layers compute in float32 on every device: cuDNN and matmuls may not use TF32 (which rounds
    inputs to 10 mantissa bits and moves batch-1 outputs by ~1e-3, failing the cross-check on Ampere and later
    GPUs). Reduced precision is what the fp16 and bf16 variants are for. The state is recorded (`numerics`)."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def read_inputs_index(job: IngestJob) -> dict[str, Any] | None:
    if not job.inputs_dir or not (Path(job.inputs_dir) / "index.json").exists():
        return None
    from harness.datasets import read_index

    return read_index(Path(job.inputs_dir))


def sample_images(job: IngestJob, index: dict[str, Any] | None, count: int = 4) -> list[np.ndarray]:
    """A few real inputs of the split, for variants that export or compile on example inputs."""
    if index is None:
        return []
    return [load_image(Path(job.inputs_dir or "") / f) for f in index["files"][:count]]


def calibration_images(job: IngestJob) -> LazyImages | list:
    """Calibration images for post-training quantization: a fixed slice of the calibration split's inputs."""
    if not job.calibration_dir:
        return []
    from harness.datasets import read_index

    index = read_index(Path(job.calibration_dir))
    return LazyImages(Path(job.calibration_dir), index["files"][: job.calibration_count])


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, default=_json_default))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job = IngestJob.load(Path(args[0]))
    out_dir = Path(job.out_dir)
    from harness.variants import VariantUnavailable

    try:
        result = run(job)
    except VariantUnavailable as exc:
        _write(out_dir / "error.json", {"stage": "variant", "unavailable": True, "message": str(exc)})
        return EXIT_SUBMISSION_FAULT
    except StageError as exc:
        error = {"stage": exc.stage, "message": exc.message, "traceback": traceback.format_exc()[-4000:]}
        _write(out_dir / "error.json", error)
        print(f"[{exc.stage}] {exc.message}", file=sys.stderr)
        return EXIT_SUBMISSION_FAULT
    except MemoryError:
        _write(out_dir / "error.json", {"stage": "run", "message": "out of memory (MemoryError)"})
        return EXIT_SUBMISSION_FAULT
    _write(out_dir / "measurements.json", result)
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
