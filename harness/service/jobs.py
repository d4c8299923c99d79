"""What an ingestion job of a track carries besides the submission: the split's public facts and the track's
sizes. Shared by check, evaluate and the layer breakdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.kinds import get_kind
from harness.tracks import TrackCard


def size_key(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def mac_inputs(
    card: TrackCard, inputs_index: dict | None, input_sizes: Sequence[Sequence[int]] | None = None
) -> dict[str, Any]:
    """Which images MACs are counted on: fixed test images for data-dependent models, else one image per size."""
    if input_sizes:
        return {size_key(s): {"size": list(s)} for s in input_sizes}
    if card.mac_images and inputs_index is not None:
        return {"dataset": {"files": inputs_index["files"][: card.mac_images]}}
    return {size_key(s): {"size": list(s)} for s in card.input_sizes}


def macs_key(card: TrackCard) -> str:
    """The MACs entry ranked, budgeted and checked for plausibility: the card's first input size (the one its
    rules apply at), or the fixed MAC image set of tracks whose models' work depends on the image."""
    if card.mac_images:
        return "dataset"
    return size_key(card.input_sizes[0])


def track_fields(card: TrackCard, hidden_dir: Path | None) -> dict[str, Any]:
    """The job fields every mode shares: classes and label ids of the split (public), the track's sizes."""
    kind = get_kind(card.kind)
    return {
        "track": card.name,
        "kind": card.kind,
        "num_classes": kind.num_classes(card, hidden_dir) if hidden_dir is not None else card.num_classes,
        "label_ids": kind.label_ids(card, hidden_dir) if hidden_dir is not None else None,
        "input_size": list(card.input_sizes[0]),
        "accuracy_batch_size": card.accuracy_batch_size,
        "batch_size": card.batch_size,
    }


def needs_calibration(variant: str) -> bool:
    """Whether a run of `variant` needs the calibration split. A submission's own variant is not imported on the
    host, so it gets the calibration inputs in case it quantizes (they are only decoded if read)."""
    from harness.variants import get_variant, variant_targets

    if variant not in variant_targets():
        return True
    return get_variant(variant).needs_calibration
