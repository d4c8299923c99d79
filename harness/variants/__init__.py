"""Variants: named transformations of a submission's predictor (precision, layout, compilers, quantization).

Each variant is registered like a plugin: a name, a function that says whether it can run here (and why
not), and a function that transforms a built predictor. A variant that cannot run is reported as
unavailable with its reason, never faked. Submissions may register their own under the entry-point group
`harness.variants`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError


class VariantUnavailable(Exception):
    """This variant cannot run in this environment; the message says why."""


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    apply: Callable[[Any, dict], Any]  # (predictor, context) -> predictor
    available: Callable[[str], str | None]  # device -> None if available, else the reason


VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> None:
    if variant.name in VARIANTS:
        raise ValueError(f"variant {variant.name!r} is registered twice")
    VARIANTS[variant.name] = variant


def get_variant(name: str) -> Variant:
    _load_builtin()
    if name not in VARIANTS:
        import difflib

        near = difflib.get_close_matches(name, list(VARIANTS), n=1)
        hint = f"did you mean `{near[0]}`?" if near else f"known variants: {', '.join(sorted(VARIANTS))}"
        raise HarnessError(f"unknown variant `{name}`", hint)
    return VARIANTS[name]


def known_variants() -> list[str]:
    _load_builtin()
    return sorted(VARIANTS)


def apply_variant(name: str, predictor: Any, device: str, context: dict | None = None) -> Any:
    variant = get_variant(name)
    reason = variant.available(device)
    if reason:
        raise VariantUnavailable(reason)
    return variant.apply(predictor, context or {})


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from harness.variants import builtin  # noqa: F401  (registers on import)
