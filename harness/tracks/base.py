"""Track cards (versioned, declarative rules of a benchmark) and the interface every track module fills."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.errors import HarnessError

CARDS_DIR = Path(__file__).parent / "cards"


@dataclass(frozen=True)
class Rules:
    max_params: int | None = None
    max_macs: int | None = None  # at the card's first input size (mean over the MAC images for detectors)
    max_bytes: int | None = None


@dataclass(frozen=True)
class TrackCard:
    """Everything that defines a track version. Runs of different versions are never ranked together."""

    name: str
    version: int
    kind: str  # "classification" | "detection" | "text"
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


def load_card(path: Path) -> TrackCard:
    data = tomllib.loads(path.read_text())
    rules = Rules(**data.pop("rules", {}))
    data["digests"] = dict(data.get("digests", {}))
    data["metrics"] = tuple(data["metrics"])
    data["input_sizes"] = tuple(tuple(s) for s in data["input_sizes"])
    return TrackCard(rules=rules, **data)


class TrackModule(Protocol):
    """What a track module (`harness.tracks.<kind>`) provides to the evaluation flow."""

    def score(self, card: TrackCard, predictions: Any, hidden_dir: Path) -> dict[str, float]: ...

    def complexity_images(self, card: TrackCard, inputs_dir: Path | None) -> dict[str, list[np.ndarray]]: ...


def all_cards() -> dict[str, TrackCard]:
    cards = {}
    for path in sorted(CARDS_DIR.glob("*.toml")):
        card = load_card(path)
        cards[card.name] = card
    return cards


def get_card(name: str) -> TrackCard:
    cards = all_cards()
    if name not in cards:
        import difflib

        near = difflib.get_close_matches(name, list(cards), n=1)
        hint = f"did you mean `{near[0]}`?" if near else f"known tracks: {', '.join(sorted(cards))}"
        raise HarnessError(f"unknown track `{name}`", hint)
    return cards[name]


def track_module(card: TrackCard) -> TrackModule:
    import importlib

    return importlib.import_module(f"harness.tracks.{card.kind}")  # type: ignore[return-value]
