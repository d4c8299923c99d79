"""The ingestion driver: the harness-owned program that runs a submission inside the sandbox.

    python -m harness.runners.ingest JOB.json

It sees only the job file, the submission's installed folder and the inputs (images and ids, no labels).
It loads the entry point, builds the predictor, applies the variant, measures complexity, runs the
accuracy pass (batched, whole split) and then the performance pass (latency protocol), and writes
`predictions.npz` and `measurements.json` (or `error.json`) into the output folder. Nothing is pickled.
"""

from __future__ import annotations

# The harness's clock is captured before anything else, and before any submission code is imported.
from harness.measure.latency import PROFILES, time_callable, wall_clock_ns  # isort: skip

import json
import os
import queue
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

EXIT_SUBMISSION_FAULT = 3


@dataclass
class IngestJob:
    mode: str  # "check" | "evaluate"
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
    check_sample: int = 32  # performance-pass outputs re-checked against the accuracy pass
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


def iter_batches(
    inputs_dir: Path, ids: list[str], files: list[str], batch: int
) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """Decode images on a background thread so decoding overlaps with the model's work."""
    pending: queue.Queue = queue.Queue(maxsize=4)

    def produce() -> None:
        try:
            for start in range(0, len(ids), batch):
                chunk = files[start : start + batch]
                pending.put((ids[start : start + batch], [load_image(inputs_dir / f) for f in chunk]))
        except Exception as exc:  # surfaced in the consumer
            pending.put(exc)
        pending.put(None)

    threading.Thread(target=produce, daemon=True).start()
    while (item := pending.get()) is not None:
        if isinstance(item, Exception):
            raise item
        yield item


def load_entry_point(site_dir: str, name: str) -> Any:
    from harness.registry import load_from_site

    try:
        return load_from_site(Path(site_dir), name)
    except Exception as exc:
        raise StageError("import", str(exc)) from exc


def run(job: IngestJob) -> dict[str, Any]:
    import torch

    from harness.contract import BuildContext, Predictor, validate_outputs
    from harness.measure.complexity import count_macs, count_params, serialized_bytes
    from harness.measure.environment import fingerprint, gpu_compute_processes
    from harness.predictions import save_predictions
    from harness.variants import VariantUnavailable, apply_variant

    torch.set_num_threads(job.threads)
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

    # MACs are counted on the model as built (float32): quantized modules do not run the float hooks.
    macs: dict[str, int] = {}
    macs_std: dict[str, float] = {}
    checked_images: list[np.ndarray] = []
    for key, spec in job.mac_inputs.items():
        images = mac_images(spec)
        try:
            per_image = count_macs(predictor, images)
            validate_outputs(job.kind, predictor.predict(images[:2]), images[:2], job.num_classes, _label_set(job))
        except StageError:
            raise
        except Exception as exc:
            raise StageError("predict", _describe(exc)) from exc
        checked_images.extend(images[:1])
        macs[key] = int(round(float(np.mean(per_image))))
        macs_std[key] = float(np.std(per_image))

    try:
        predictor = apply_variant(job.variant, predictor, job.device, {"calibration": _calibration_images(job)})
    except VariantUnavailable:
        raise
    except Exception as exc:
        raise StageError("variant", f"variant {job.variant} failed: {_describe(exc)}") from exc
    params = count_params(predictor.model)
    size, dtypes = serialized_bytes(predictor.model)
    result: dict[str, Any] = {
        "complexity": {"params": params, "bytes": size, "dtypes": dtypes, "macs": macs, "macs_std": macs_std},
        "environment": fingerprint(job.device, job.threads),
        "timings": timings,
    }
    if job.mode == "check":
        return result

    # Accuracy pass: the whole split, batched.
    from harness.datasets import read_index

    index = read_index(Path(job.inputs_dir))
    ids, files = index["ids"], index["files"]
    records: list[Any] = []
    t_acc = wall_clock_ns()
    model_ns = 0
    for batch_ids, images in iter_batches(Path(job.inputs_dir), ids, files, job.accuracy_batch_size):
        if not records:
            mark("first-batch")
        t_batch = wall_clock_ns()
        try:
            outputs = predictor.predict(images)
        except Exception as exc:
            raise StageError("predict", f"predict failed on {batch_ids[0]}..: {_describe(exc)}") from exc
        model_ns += wall_clock_ns() - t_batch
        try:
            validate_outputs(job.kind, outputs, images, job.num_classes, _label_set(job))
        except Exception as exc:
            raise StageError("outputs", f"invalid output for a batch starting at {batch_ids[0]}: {exc}") from exc
        records.extend(outputs)
    if job.device.startswith("cuda"):
        torch.cuda.synchronize()
    timings["accuracy_s"] = (wall_clock_ns() - t_acc) / 1e9
    timings["accuracy_predict_s"] = model_ns / 1e9
    save_predictions(out_dir / "predictions.npz", job.kind, ids, records)

    # Performance pass: the model alone at the track's batch size, then end to end.
    profile = PROFILES[job.profile]
    sample_images = [load_image(Path(job.inputs_dir) / f) for f in files[: job.batch_size]]
    if job.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = job.kind == "classification"  # fixed shapes only
        torch.cuda.reset_peak_memory_stats()
    busy_before = gpu_compute_processes() if job.device.startswith("cuda") else []
    mark("perf-start")
    t_perf = wall_clock_ns()
    try:
        with torch.inference_mode():
            model_inputs = predictor.preprocess(sample_images)
            device_latency = time_callable(
                lambda: predictor.forward(model_inputs),
                profile,
                "device",
                job.batch_size,
                job.device,
                on_phase=lambda phase: mark(f"device:{phase}"),
            )
            e2e_latency = time_callable(
                lambda: predictor.predict(sample_images),
                profile,
                "e2e",
                job.batch_size,
                job.device,
                on_phase=lambda phase: mark(f"e2e:{phase}"),
            )
    except Exception as exc:
        raise StageError("latency", f"performance pass failed: {_describe(exc)}") from exc
    timings["performance_s"] = (wall_clock_ns() - t_perf) / 1e9
    mark("perf-end")
    if not job.device.startswith("cuda"):
        cores = os.cpu_count() or 1
        load = os.getloadavg()[0]
        if load > cores:
            for summary in (device_latency, e2e_latency):
                summary.noisy = True
                summary.noise_reasons.append(f"CPU load average {load:.1f} on {cores} cores during timing")
    if busy_before:
        for summary in (device_latency, e2e_latency):
            summary.noisy = True
            summary.noise_reasons.append(f"other compute processes on the GPU: {', '.join(busy_before)}")
    result["latency"] = {"device": device_latency.to_dict(), "e2e": e2e_latency.to_dict()}
    if job.device.startswith("cuda"):
        result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())

    # MLPerf-style cross-check: the performance pass computes what the accuracy pass computed.
    result["crosscheck"] = _crosscheck(job.kind, predictor, sample_images, records[: len(sample_images)])
    return result


def _label_set(job: IngestJob) -> set[int] | None:
    return set(job.label_ids) if job.label_ids else None


def _calibration_images(job: IngestJob) -> list[np.ndarray]:
    """Calibration images for post-training quantization: a fixed slice of the calibration split's inputs."""
    if not job.calibration_dir:
        return []
    from harness.datasets import read_index

    index = read_index(Path(job.calibration_dir))
    return [load_image(Path(job.calibration_dir) / f) for f in index["files"][: job.calibration_count]]


def _crosscheck(kind: str, predictor: Any, images: list[np.ndarray], expected: list[Any]) -> dict[str, Any]:
    again = predictor.predict(images)
    if kind == "classification":
        same = all(int(np.argmax(a.logits)) == int(np.argmax(b.logits)) for a, b in zip(again, expected, strict=True))
    elif kind == "detection":
        same = all(len(a.boxes) == len(b.boxes) for a, b in zip(again, expected, strict=True))
    else:
        same = all(len(a.polygons) == len(b.polygons) for a, b in zip(again, expected, strict=True))
    return {"images": len(images), "consistent": bool(same)}


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
