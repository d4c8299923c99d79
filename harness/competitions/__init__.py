"""Competitions (layer 4, pure): an organiser's bundle folder (`competition.toml`: phases, each on a track and a
dataset, with open and close times, a public fraction of the hidden test set, quotas and a ranking rule), and
the keyed public/private split of a phase's test set. The store, the service and the CLI build on these."""

from __future__ import annotations

from harness.competitions.bundle import (
    FILE_NAME,
    RANKINGS,
    Bundle,
    PhaseSpec,
    Quota,
    bundle_digest,
    bundle_from_dict,
    init_bundle,
    load_bundle,
    scaffold_text,
)
from harness.competitions.split import load_or_create_key, new_key, public_mask, read_key, split_ids

__all__ = [
    "FILE_NAME",
    "RANKINGS",
    "Bundle",
    "PhaseSpec",
    "Quota",
    "bundle_digest",
    "bundle_from_dict",
    "init_bundle",
    "load_bundle",
    "load_or_create_key",
    "new_key",
    "public_mask",
    "read_key",
    "scaffold_text",
    "split_ids",
]
