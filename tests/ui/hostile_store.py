"""A small store whose every user-controlled text is hostile Markdown or HTML, for the browser test that checks
the board shows such text literally (tests/ui/test_literal_text.py).

Written through the repository API like `tests/benchmarks/synthetic_store.py`, with a track card of its own
(a plugin card on `HARNESS_TRACKS_PATH`) whose name, title, metrics and dataset are hostile too. Nothing here
was measured: every value is made up, and the store lives in the test's temporary folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.store.repo import RunOutcome, Store, idempotency_key
from harness.tracks.card import load_card

LINK = "https://example.invalid"
# A Markdown link and bold text, and HTML that would run script if it were ever parsed as HTML.
MARKDOWN_NAME = f"x [y]({LINK}) **z**"
HTML_NAME = "<b>h</b><img src=x onerror=alert(1)>"
SUBMISSIONS = (MARKDOWN_NAME, HTML_NAME)
VARIANTS = ("fp32", f"v [l]({LINK}) <i>i</i>")
HARDWARE = f"GPU **bold** [hw]({LINK}) <u>u</u>"
ERROR = f"failed: [click]({LINK}) <script>alert(1)</script> **boom** :red[red] $x^2$"
TRACK_NAME = f"t [track]({LINK})"
TRACK_TITLE = f"Board **title** [t]({LINK}) <img src=x onerror=alert(2)>"
METRIC = "acc<b>1</b>"
DATASET = f"d [set]({LINK})"
# Every literal the pages must show as it is; `[` and `<` in each would be markup if it were interpreted.
HOSTILE_TEXTS = (*SUBMISSIONS, VARIANTS[1], HARDWARE, ERROR, TRACK_TITLE)

CARD = f"""
name = "{TRACK_NAME}"
version = 1
kind = "classification"
title = "{TRACK_TITLE}"
dataset = "{DATASET}"
split = "test"
primary_metric = "{METRIC}"
higher_is_better = true
metrics = ["{METRIC}", "top5"]
num_classes = 10
input_sizes = [[32, 32]]
accuracy_batch_size = 64
batch_size = 1
time_limit_s = 60
runner = "local"
ranked_latency = "device"
profile = "quick"
ranking = "latest"

[digests]
"{DATASET}/test" = "{"0" * 64}"
"""


@dataclass(frozen=True)
class HostileStore:
    url: str
    env: dict[str, str]


def _latency(median_ms: float) -> dict:
    samples = [median_ms * (1 + 0.01 * (i % 7)) for i in range(50)]
    ordered = sorted(samples)
    return {
        "batch_size": 1,
        "ranked_ms": median_ms,
        "p50_ms": ordered[25],
        "p90_ms": ordered[45],
        "p95_ms": ordered[47],
        "p99_ms": ordered[49],
        "mean_ms": sum(samples) / len(samples),
        "std_ms": 0.01,
        "cv": 0.01,
        "repeats": 1,
        "iterations": len(samples),
        "timer": "hostile-test",
        "noisy": False,
        "noise_reasons": [],
        "repeat_medians_ms": [median_ms],
        "repeat_sizes": [len(samples)],
        "samples_ms": samples,
    }


def build_hostile_store(root: Path) -> HostileStore:
    """The card in `root/cards`, the store in `root/harness.db`: two submissions with hostile names, each with
    an `ok` run of both variants and a failed run with a hostile error and log."""
    cards = root / "cards"
    cards.mkdir(parents=True, exist_ok=True)
    (cards / "hostile.toml").write_text(CARD)
    card = load_card(cards / "hostile.toml")
    url = f"sqlite:///{root / 'harness.db'}"
    store = Store(url)
    count = 0
    for index, name in enumerate(SUBMISSIONS):
        row, _ = store.add_submission(
            name=name,
            track=card.name,
            content_hash=f"hostile{index:057d}",
            project=f"proj `code` **p** <b>{index}</b>",
            entry_point=f"pkg:build` [e]({LINK})",
            variants=list(VARIANTS[1:]),
            source_path="hostile",
            stored_path="hostile",
            site_path="hostile",
            params=1000 * (index + 1),
            macs={"32x32": 10**6 * (index + 1)},
            bytes=4000 * (index + 1),
        )
        for variant_index, variant in enumerate(VARIANTS):
            # fp32's latest run is `ok`, the other variant's latest failed: both kinds of row on every page.
            for status in ("failed", "ok") if variant_index == 0 else ("ok", "failed"):
                count += 1
                run_id = store.claim_run(
                    idempotency_key("hostile", name, variant, status, count),
                    submission_id=row.id,
                    variant=variant,
                    track=card.name,
                    track_version=card.version,
                    card_hash="hostile",
                    dataset=f"{card.dataset}/{card.split}",
                    dataset_hash="0" * 64,
                    device="cuda",
                    profile=card.profile,
                    runner="local",
                    hardware_class=HARDWARE,
                    harness_version="hostile",
                    scorer_version="hostile",
                    primary_metric=card.primary_metric,
                )
                latency_ms = 1.0 / (1 + index) + 0.5 * variant_index  # the second is faster: both on the front
                value = 0.9 - 0.2 * index - 0.05 * variant_index
                outcome = (
                    RunOutcome(
                        status="ok",
                        metrics={METRIC: value, "top5": 1.0},
                        primary_value=value,
                        primary_interval=(value - 0.01, value + 0.01),
                        complexity={
                            "params": 1000 * (index + 1),
                            "bytes": 4000 * (index + 1),
                            "macs": {"32x32": 10**6 * (index + 1 + variant_index)},
                            "macs_std": {"32x32": 0.0},
                        },
                        latency={"device": _latency(latency_ms), "e2e": _latency(latency_ms * 1.2)},
                        environment={"device": "cuda", "gpu_name": HARDWARE, "note": ERROR},
                    )
                    if status == "ok"
                    else RunOutcome(
                        status="failed", error=ERROR, log_tail=f"{ERROR}\n{HTML_NAME}", environment={"device": "cuda"}
                    )
                )
                store.finish_run(run_id, outcome)
    store.engine.dispose()
    return HostileStore(url=url, env={"HARNESS_DB_URL": url, "HARNESS_TRACKS_PATH": str(cards)})
