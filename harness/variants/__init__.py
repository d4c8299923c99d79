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

import difflib
import importlib
import importlib.metadata as metadata
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, SubmissionError

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


@dataclass(frozen=True)
class VariantTarget:
    name: str
    target: str  # "module:attr"
    source: str  # "harness" for the built-ins, else the distribution that registered it


_resolved: dict[tuple[str, str], Variant] = {}


def _entry_points(site_dir: Path | None) -> list[VariantTarget]:
    dists = metadata.distributions(path=[str(site_dir)]) if site_dir else metadata.distributions()
    found = []
    for dist in dists:
        dist_name = dist.metadata["Name"] or "?"
        found.extend(VariantTarget(ep.name, ep.value, dist_name) for ep in dist.entry_points if ep.group == GROUP)
    return found


def _merge(into: dict[str, VariantTarget], targets: list[VariantTarget]) -> None:
    for target in targets:
        known = into.get(target.name)
        if known is not None and known.source != target.source:
            raise SubmissionError(
                f"variant name `{target.name}` is registered twice: by `{known.source}` and by `{target.source}`",
                f"give each entry point in the group {GROUP} a name that no other variant uses",
            )
        into[target.name] = target


def variant_targets(site_dir: Path | None = None) -> dict[str, VariantTarget]:
    """Every variant name known here: the built-ins, plugins of this environment, and (with `site_dir`) the
    variants of the submission installed there. Nothing is imported."""
    targets = {name: VariantTarget(name, target, "harness") for name, target in BUILTIN_TARGETS.items()}
    _merge(targets, _entry_points(None))
    if site_dir is not None:
        _merge(targets, _entry_points(Path(site_dir)))
    return targets


def known_variants() -> list[str]:
    return sorted(variant_targets())


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
    near = difflib.get_close_matches(name, sorted(allowed), n=1)
    hint = f"did you mean `{near[0]}`?" if near else f"known variants: {', '.join(sorted(allowed))}"
    return HarnessError(f"unknown variant `{name}`", hint)


def get_variant(name: str, site_dir: Path | None = None) -> Variant:
    """Resolve a variant by name (importing its module). With `site_dir`, the submission's own variants are
    included: only the ingestion driver passes it, inside the sandbox."""
    targets = variant_targets(site_dir)
    if name not in targets:
        raise _unknown(name, set(targets))
    target = targets[name]
    key = (target.source, target.target)
    if key not in _resolved:
        _resolved[key] = _load(target, site_dir)
    return _resolved[key]


def _load(target: VariantTarget, site_dir: Path | None) -> Variant:
    if target.source == "harness":
        module_name, _, attr = target.target.partition(":")
        return getattr(importlib.import_module(module_name), attr)
    obj = _import_target(target, site_dir)
    if isinstance(obj, Variant):
        if obj.name != target.name:
            raise SubmissionError(
                f"entry point `{target.name}` of the group {GROUP} returns a Variant named `{obj.name}`",
                "make the entry point's name and the Variant's name the same",
            )
        return obj
    # A plain function: `apply(predictor, context) -> predictor`, available everywhere.
    return Variant(target.name, f"provided by {target.source}", obj, reduced_precision=True)  # type: ignore[arg-type]


def _import_target(target: VariantTarget, site_dir: Path | None) -> Any:
    if site_dir is not None and str(site_dir) not in sys.path:
        sys.path.insert(0, str(site_dir))
    module_name, _, attr = target.target.partition(":")
    where = f"variant `{target.name}` (entry point `{target.target}` of `{target.source}`)"
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise SubmissionError(f"{where} fails to import: {type(exc).__name__}: {exc}") from exc
    for part in filter(None, attr.split(".")):
        if not hasattr(obj, part):
            raise SubmissionError(f"{where}: `{module_name}` has no attribute `{part}`")
        obj = getattr(obj, part)
    if not isinstance(obj, Variant) and not callable(obj):
        raise SubmissionError(
            f"{where} is a {type(obj).__name__}",
            "point it at a harness.variants.Variant or at apply(predictor, context)",
        )
    return obj


def apply_variant(
    name: str, predictor: Any, device: str, context: dict | None = None, site_dir: Path | None = None
) -> Any:
    variant = get_variant(name, site_dir)
    reason = variant.available(device)
    if reason:
        raise VariantUnavailable(reason)
    return variant.apply(predictor, {"device": device, **(context or {})})
