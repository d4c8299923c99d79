"""Every check of what an ingestion step wrote, applied on the host to the results of EVERY runner.

The submission's code runs in the same process as the driver, whatever the runner, so nothing it leaves in
the output folder is trusted: `error.json` (types, length), `measurements.json` (size, types, ranges; the
latency statistics recomputed from the raw samples: `Measurements.from_json`), `predictions.npz` (declared
member sizes and array headers before anything is loaded; the split's ids in order; one valid record per
input) and, where the runner timestamped the performance pass's phases from outside the sandbox, the
latency samples against those times. A file that breaks the rules fails the run: measurements as
"[tampered]", predictions as "[outputs]". `measurements.json` is rewritten with the host's own figures.

Timing integrity (runners that relay the driver's phase markers, such as the docker runner): the samples of
each latency summary must account for at least `MIN_SAMPLE_FRACTION` of the host-measured span in which they
were taken (less a small allowance for the timing loop itself), and all samples together may not exceed the
measured performance pass. This catches every way of under-reporting time that was actually spent: a patched
or replaced harness clock, a fake `torch.cuda.Event`, a rewritten samples list.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

from harness.sandbox.job import IngestJob
from harness.sandbox.measurements import (
    MAX_MEASUREMENTS_BYTES,
    MAX_MESSAGE_CHARS,
    MIB,
    Measurements,
    Rejected,
    profile_from_json,
)

PHASES = ("perf-start", "device:measure", "device:end", "e2e:measure", "e2e:end", "perf-end")
MIN_SAMPLE_FRACTION = 0.5
TIMING_SLACK_S = 0.1  # marker delivery
PER_ITERATION_ALLOWANCE_S = 50e-6  # the timing loop itself (list append, clock reads)
MAX_PREDICTIONS_BYTES = 512 * MIB


def read_error_file(path: Path) -> tuple[str, bool] | None:
    """(reason, unavailable) from the driver's error.json, or None when there is none."""
    if not path.is_file():
        return None
    try:
        if path.stat().st_size > MAX_MEASUREMENTS_BYTES:
            raise ValueError("too large")
        error = json.loads(path.read_text())
        if not isinstance(error, dict):
            raise ValueError("not an object")
        stage = str(error.get("stage", "?"))[:40]
        message = str(error.get("message", "?"))[:MAX_MESSAGE_CHARS]
        return f"[{stage}] {message}", error.get("unavailable") is True
    except (OSError, ValueError):
        return "the ingestion step wrote an unreadable error file", False


def verify_output(
    job: IngestJob,
    out_dir: Path,
    marks: list[tuple[str, float]] | None = None,
    host_timings: dict[str, float] | None = None,
) -> Measurements | dict[str, Any]:
    """Re-check everything an `ok` ingestion step wrote; rewrite measurements.json with the host's figures and
    return them (`Rejected` names the first fault). `marks`: the phase markers as the host timed them."""
    path = out_dir / "measurements.json"
    if not path.is_file():
        raise Rejected("[tampered] the ingestion step reported success but left no measurements.json")
    if path.stat().st_size > MAX_MEASUREMENTS_BYTES:
        raise Rejected(f"[tampered] measurements.json is larger than {MAX_MEASUREMENTS_BYTES // MIB} MiB")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Rejected(f"[tampered] measurements.json is not valid JSON ({exc})") from exc
    if job.mode == "profile":
        profile = profile_from_json(raw)
        path.write_text(json.dumps(profile))
        return profile
    measured = Measurements.from_json(raw, job.mode, job.batch_size)
    measured.timings.update(host_timings or {})
    if job.mode == "evaluate":
        if marks is not None:
            measured.timings.update(check_timing(marks, measured.latency or {}))
        verify_predictions(job, out_dir / "predictions.npz", MAX_PREDICTIONS_BYTES)
    path.write_text(json.dumps(measured.to_json()))
    return measured


def check_timing(marks: list[tuple[str, float]], latency: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Bound the in-sandbox latency samples by the host's clock; return the host-measured spans."""
    names = [name for name, _ in marks if name != "first-batch"]
    if names != list(PHASES) or len(marks) - len(names) > 1:
        shown = ", ".join(name for name, _ in marks[:12]) or "none"
        raise Rejected(
            "[tampered] the performance pass's timing markers did not reach the host once each and in order "
            f"(got: {shown})"
        )
    at = dict(marks)
    spans: dict[str, float] = {}
    total_samples_s = 0.0
    for kind in ("device", "e2e"):
        host_s = at[f"{kind}:end"] - at[f"{kind}:measure"]
        samples = latency[kind]["samples_ms"]
        samples_s = sum(samples) / 1000.0
        untimed_s = float(latency[kind].get("untimed_s") or 0.0)  # fresh inputs made between the timed calls
        total_samples_s += samples_s + untimed_s
        floor = MIN_SAMPLE_FRACTION * host_s - TIMING_SLACK_S - len(samples) * PER_ITERATION_ALLOWANCE_S
        if samples_s + untimed_s < floor:
            raise Rejected(
                f"[tampered] the {kind} latency samples add up to {samples_s:.3f} s (and {untimed_s:.3f} s making "
                f"their inputs), but {host_s:.3f} s passed on the host's clock while they were taken "
                f"({len(samples)} iterations)"
            )
        spans[f"host_{kind}_measure_s"] = host_s
    perf_s = at["perf-end"] - at["perf-start"]
    if total_samples_s > 1.5 * perf_s + 1.0:
        raise Rejected(
            f"[tampered] the latency samples add up to {total_samples_s:.3f} s, more than the {perf_s:.3f} s "
            "the performance pass took on the host's clock"
        )
    spans["host_performance_s"] = perf_s
    return spans


class _Shape:
    """Stands in for an image where only its size matters (validate_outputs reads `.shape`)."""

    def __init__(self, height: int, width: int):
        self.shape = (height, width, 3)


def verify_predictions(job: IngestJob, path: Path, max_bytes: int) -> None:
    """Load predictions.npz without trusting it: sizes first, then the split's ids, then every record."""
    from harness.datasets import read_index
    from harness.errors import HarnessError
    from harness.kinds import get_kind, validate_outputs
    from harness.predictions import load_predictions

    if not path.is_file():
        raise Rejected("[outputs] the sandbox wrote measurements but no predictions.npz")
    check_npz(path, max_bytes)
    try:
        predictions = load_predictions(path, job.kind)
    except HarnessError as exc:
        raise Rejected(f"[outputs] {exc.message}") from exc
    inputs = Path(job.inputs_dir or "")
    index = read_index(inputs)
    if predictions.ids != list(index["ids"]):
        raise Rejected(
            f"[outputs] predictions.npz holds {len(predictions.ids)} ids that are not the split's "
            f"{len(index['ids'])} ids in order"
        )
    if not get_kind(job.kind).needs_image_sizes:
        images: list[Any] = [_Shape(1, 1)] * len(predictions.ids)
    else:
        from PIL import Image

        images = []
        for name in index["files"]:
            with Image.open(inputs / name) as img:
                images.append(_Shape(img.height, img.width))
    try:
        validate_outputs(job.kind, predictions.records, images, job.num_classes, set(job.label_ids or []) or None)
    except HarnessError as exc:
        raise Rejected(f"[outputs] predictions.npz: {exc.message}") from exc
    except (ValueError, TypeError) as exc:
        raise Rejected(f"[outputs] predictions.npz: {exc}") from exc


def check_npz(path: Path, max_bytes: int) -> None:
    """Refuse an npz whose members would unpack to more than `max_bytes`, or whose array headers claim more
    data than the member holds (numpy allocates by the header before reading)."""
    import numpy as np

    fmt = np.lib.format
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                total += info.file_size
                if total > max_bytes:
                    raise Rejected(f"[outputs] predictions.npz unpacks to more than {max_bytes // MIB} MiB")
                with archive.open(info) as member:
                    version = fmt.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = fmt.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = fmt.read_array_header_2_0(member)
                    else:
                        raise Rejected(
                            f"[outputs] predictions.npz: member {info.filename[:60]} has npy version {version}"
                        )
                    if dtype.hasobject:
                        raise Rejected("[outputs] predictions.npz holds Python objects")
                    if math.prod(shape) * dtype.itemsize > info.file_size:
                        raise Rejected(
                            f"[outputs] predictions.npz: member {info.filename[:60]} is shorter than its header"
                        )
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise Rejected(f"[outputs] predictions.npz is not a valid npz file ({exc})") from exc
