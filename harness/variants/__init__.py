"""Variants: named transformations of a submission's predictor (precision, layout, compilers, quantization).

Each variant is registered like a plugin: a name, a function that says whether it can run here (and why
not), and a function that transforms a built predictor. A variant that cannot run is reported as
unavailable with its reason, never faked.

The built-in variants are lazy `module:attr` targets, resolved exactly as third-party ones are. Anyone can
add variants through the entry-point group `harness.variants`: plugins installed in the harness's own
environment, and submissions for themselves (declared in their `pyproject.toml`). An entry point's target is
either a `Variant` (whose name must equal the entry point's) or a function `apply(predictor, context)`.
A name registered twice is refused. Submission code is only imported inside the ingestion sandbox: the host
validates variant names from the manifests, never by importing the targets.

`apply(predictor, context)` receives in `context`: `device`, `threads`, `kind` (track kind), `calibration`
(a fixed list of calibration images, for quantization), `sample_images` (a few real inputs, for exporters
and compilers) and `info` (a dict the variant may fill; it is stored with the run's details).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, SubmissionError
from harness.plugins import BUILTIN, Entry, Registry, builtin_entries, load_target

GROUP = "harness.variants"


class VariantUnavailable(Exception):
    """This variant cannot run in this environment; the message says why."""


def _always(device: str) -> str | None:
    return None


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    apply: Callable[[Any, dict], Any]  # (predictor, context) -> predictor
    available: Callable[[str], str | None] = _always  # device -> None if available, else the reason
    # Outputs may differ from float32 beyond rounding (float16, int8): the cross-check uses looser tolerances.
    reduced_precision: bool = False
    # Entered around the timed repeats of the performance pass (e.g. "a recompilation here is an error").
    timing_guard: Callable[[], AbstractContextManager] | None = None
    # Needs `context["calibration"]`: images of the track's calibration split (post-training quantization).
    needs_calibration: bool = False


BUILTIN_TARGETS: dict[str, str] = {
    "fp32": "harness.variants.builtin:FP32",
    "fp16": "harness.variants.builtin:FP16",
    "bf16": "harness.variants.builtin:BF16",
    "channels-last": "harness.variants.builtin:CHANNELS_LAST",
    "compile": "harness.variants.compile:COMPILE",
    "onnxruntime": "harness.variants.onnxrt:ONNXRUNTIME",
    "int8-cpu": "harness.variants.int8:INT8_CPU",
    "tensorrt-fp16": "harness.variants.tensorrt:TENSORRT_FP16",
    "tensorrt-int8": "harness.variants.tensorrt:TENSORRT_INT8",
}


def _load(entry: Entry, site_dir: Path | None) -> Variant:
    where = f"variant `{entry.name}` (entry point `{entry.target}` of `{entry.source}`)"
    obj = load_target(entry.target, site_dir if entry.source != BUILTIN else None, where, SubmissionError)
    if isinstance(obj, Variant):
        if obj.name != entry.name:
            raise SubmissionError(
                f"entry point `{entry.name}` of the group {GROUP} returns a Variant named `{obj.name}`",
                "make the entry point's name and the Variant's name the same",
            )
        return obj
    if not callable(obj):
        raise SubmissionError(
            f"{where} is a {type(obj).__name__}",
            "point it at a harness.variants.Variant or at apply(predictor, context)",
        )
    # A plain function: `apply(predictor, context) -> predictor`, available everywhere.
    return Variant(entry.name, f"provided by {entry.source}", obj, reduced_precision=True)


VARIANTS: Registry[Variant] = Registry(
    "variant", GROUP, loader=_load, builtins=builtin_entries(BUILTIN_TARGETS), error=SubmissionError
)


def variant_targets(site_dir: Path | None = None) -> dict[str, Entry]:
    """Every variant name known here: the built-ins, plugins of this environment, and (with `site_dir`) the
    variants of the submission installed there. Nothing is imported."""
    return VARIANTS.entries(Path(site_dir) if site_dir is not None else None)


def known_variants() -> list[str]:
    return VARIANTS.names()


def check_variant_names(
    names: list[str] | tuple[str, ...],
    declared: dict[str, str] | None = None,
    also_allowed: list[str] | tuple[str, ...] = (),
) -> None:
    """Refuse unknown variant names, without importing anything. `declared` are the variants a submission
    registers for itself (entry point name -> target); they may not reuse a known name. `also_allowed` are
    names accepted as they are (variants of stored submissions, checked when they were submitted)."""
    known = variant_targets()
    for name in declared or {}:
        if name in known:
            raise SubmissionError(
                f"the submission registers variant `{name}`, a name `{known[name].source}` already registers",
                "rename the submission's own variant",
            )
    allowed = set(known) | set(declared or {}) | set(also_allowed)
    for name in names:
        if name not in allowed:
            raise _unknown(name, allowed)


def _unknown(name: str, allowed: set[str]) -> HarnessError:
    error = VARIANTS.unknown(name, allowed)
    return HarnessError(error.message, error.hint)


def get_variant(name: str, site_dir: Path | None = None) -> Variant:
    """Resolve a variant by name (importing its module). With `site_dir`, the submission's own variants are
    included: only the ingestion driver passes it, inside the sandbox."""
    targets = variant_targets(site_dir)
    if name not in targets:
        raise _unknown(name, set(targets))
    return VARIANTS.get(name, Path(site_dir) if site_dir is not None else None)


def apply_variant(
    name: str, predictor: Any, device: str, context: dict | None = None, site_dir: Path | None = None
) -> Any:
    variant = get_variant(name, site_dir)
    reason = variant.available(device)
    if reason:
        raise VariantUnavailable(reason)
    return variant.apply(predictor, {"device": device, **(context or {})})
