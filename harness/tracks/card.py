"""Track cards: the versioned, declarative rules of a benchmark, read from TOML files."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


@dataclass(frozen=True)
class Rules:
    min_params: int | None = 1  # a model must compute with weights; 0 admits parameter-free "models"
    max_params: int | None = None
    max_macs: int | None = None  # at the card's first input size (mean over the MAC images for detectors)
    max_bytes: int | None = None


@dataclass(frozen=True)
class TrackCard:
    """Everything that defines a track version. Runs of different versions are never ranked together."""

    name: str
    version: int
    kind: str  # a task kind of harness.kinds: "classification" | "detection" | "text"
    title: str
    dataset: str
    split: str
    primary_metric: str
    higher_is_better: bool
    metrics: tuple[str, ...]
    input_sizes: tuple[tuple[int, int], ...]
    calibration_split: str = "train"
    num_classes: int | None = None
    accuracy_batch_size: int = 16
    batch_size: int = 1
    time_limit_s: int = 1800
    runner: str = "local"
    mac_images: int = 0  # detectors/text: MACs are averaged over this many fixed test images
    # What the standings rank: runs of this latency profile; the device (model-only) or end-to-end latency; of
    # each entry its latest run or its best one. With "device", at most `max_outside_forward` of the model's MACs
    # may be computed outside `forward` (else the run fails: work moved out of the timed step).
    profile: str = "quick"
    ranked_latency: str = "device"
    max_outside_forward: float | None = 0.1
    ranking: str = "latest"
    rules: Rules = field(default_factory=Rules)
    # Content digests of the generated splits the track reads, {"dataset/split": sha256}: the data is part of
    # the track's identity (`harness datasets verify`; `harness evaluate` refuses data that differs).
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def card_hash(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def key(self) -> str:
        return f"{self.name}@v{self.version}"


_REQUIRED = [f.name for f in fields(TrackCard) if f.default is MISSING and f.default_factory is MISSING]


def card_from_dict(data: dict[str, Any], source: str) -> TrackCard:
    """A card from its TOML table; a missing or unknown field, or a wrong type, names `source` and the field."""
    known = {f.name for f in fields(TrackCard)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise HarnessError(
            f"{source}: unknown field `{unknown[0]}` in the track card", f"fields: {', '.join(sorted(known))}"
        )
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise HarnessError(f"{source}: the track card has no `{missing[0]}`", "see harness/tracks/cards/*.toml")
    data = dict(data)
    rules_data = data.pop("rules", {})
    if not isinstance(rules_data, dict):
        raise HarnessError(f"{source}: `rules` must be a table")
    rule_names = {f.name for f in fields(Rules)}
    unknown = sorted(set(rules_data) - rule_names)
    if unknown:
        raise HarnessError(
            f"{source}: unknown field `rules.{unknown[0]}` in the track card", f"rules: {', '.join(sorted(rule_names))}"
        )
    try:
        rules = Rules(**rules_data)
        data["digests"] = {str(k): str(v) for k, v in dict(data.get("digests", {})).items()}
        data["metrics"] = tuple(str(m) for m in data["metrics"])
        data["input_sizes"] = tuple((int(h), int(w)) for h, w in data["input_sizes"])
        card = TrackCard(rules=rules, **data)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"{source}: malformed track card ({exc})") from exc
    for name, kind in (("name", str), ("kind", str), ("dataset", str), ("split", str), ("primary_metric", str)):
        if not isinstance(getattr(card, name), kind) or not getattr(card, name):
            raise HarnessError(f"{source}: field `{name}` must be a non-empty string")
    if not isinstance(card.version, int) or isinstance(card.version, bool) or card.version < 1:
        raise HarnessError(f"{source}: field `version` must be an integer >= 1")
    if card.primary_metric not in card.metrics:
        raise HarnessError(f"{source}: `primary_metric` {card.primary_metric!r} is not one of `metrics`")
    if not card.input_sizes:
        raise HarnessError(f"{source}: field `input_sizes` is empty")
    for name, allowed in (("ranked_latency", ("device", "e2e")), ("ranking", ("latest", "best"))):
        if getattr(card, name) not in allowed:
            raise HarnessError(
                f"{source}: field `{name}` is {getattr(card, name)!r}", f"use one of: {', '.join(allowed)}"
            )
    from harness.measure.latency import PROFILES

    if card.profile not in PROFILES:
        raise HarnessError(f"{source}: field `profile` is {card.profile!r}", f"use one of: {', '.join(PROFILES)}")
    if card.max_outside_forward is not None and not 0 <= card.max_outside_forward <= 1:
        raise HarnessError(f"{source}: field `max_outside_forward` must lie in [0, 1]")
    return card


def load_card(path: Path) -> TrackCard:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(f"{path}: not a readable track card ({exc})") from exc
    return card_from_dict(data, str(path))
