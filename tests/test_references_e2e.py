"""Every reference submission through the real CLI on CPU (quick profile): submit, evaluate all three tracks,
and check what the issues promise (thresholds), plus a self-gate: the harness's metrics must equal the pinned
figures in `tests/expected_reference_metrics.json`, so a change in a scorer, a dataset generator or a
reference's weights cannot pass unnoticed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

EXPECTED = Path(__file__).with_name("expected_reference_metrics.json")
TRACKS = ("classification", "small-object", "text-detection")
# Pinned figures are CPU results; other CPUs' kernels may round differently in the last digits of a score.
TOLERANCE = 2e-3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(reference_store) -> dict[str, list[dict]]:
    """The fp32 runs of the session's reference store (tests/conftest.py: submitted and evaluated by the CLI)."""
    runs = {track: reference_store.fp32(track) for track in TRACKS}
    runs["env"] = reference_store.env  # type: ignore[assignment]
    return runs


def _by_name(runs: list[dict]) -> dict[str, dict]:
    found = {r["submission"]: r for r in runs}
    for run in runs:
        assert run["status"] == "ok", f"{run['submission']}: {run['error']}"
    return found


def test_classification_references(evaluated):
    runs = _by_name(evaluated["classification"])
    assert set(runs) == {"gtsnet", "shufflenet_v2_x0_5", "mobilenet_v2", "ghostnet"}
    for name, run in runs.items():
        assert 0.40 <= run["metrics"]["top1"] <= 0.95, name
        assert run["bytes"] <= 15 * 2**20
    assert 200_000 < runs["gtsnet"]["params"] < 230_000  # "about 0.21 M parameters" with the 50-class head


def test_classification_references_are_separated(evaluated):
    """Issue 21: on the default data (shapetex, 10,000 test images) the references span at least 5 points of
    top-1 and the best and the worst have 95 % intervals that do not overlap (on digits every one tied)."""
    runs = sorted(_by_name(evaluated["classification"]).values(), key=lambda run: run["metrics"]["top1"])
    worst, best = runs[0], runs[-1]
    assert best["metrics"]["top1"] - worst["metrics"]["top1"] >= 0.05
    assert worst["primary_interval"][1] < best["primary_interval"][0]
    assert all(run["details"]["confidence"]["images"] == 10_000 for run in runs)


def test_small_object_references(evaluated):
    runs = _by_name(evaluated["small-object"])
    small, default = runs["fasterrcnn_small"]["metrics"], runs["fasterrcnn_default"]["metrics"]
    assert small["AP"] >= 0.30 and small["AP50"] >= 0.60
    assert small["AP_verytiny"] + small["AP_tiny"] > default["AP_verytiny"] + default["AP_tiny"]
    for run in runs.values():
        assert run["macs_std"]["dataset"] >= 0.0 and run["macs"]["dataset"] > 1e9  # mean over 8 test images


def test_text_detection_reference(evaluated):
    runs = _by_name(evaluated["text-detection"])
    assert set(runs) == {"craft_compact"}, "craft_vgg16_bn is stored but evaluated only when named"
    assert runs["craft_compact"]["metrics"]["deteval_hmean"] >= 0.85


def test_metrics_match_pinned_figures(evaluated):
    """The self-gate. After a deliberate change, regenerate with
    `python tests/test_references_e2e.py` semantics: copy the new figures from `harness evaluate --json`."""
    expected = json.loads(EXPECTED.read_text())
    for track in TRACKS:
        for run in evaluated[track]:
            pinned = expected[track][run["submission"]]
            for name, value in pinned.items():
                assert run["metrics"][name] == pytest.approx(value, abs=TOLERANCE), (track, run["submission"], name)


def test_leaderboards_print(evaluated):
    for track in TRACKS:
        board = run_cli("leaderboard", "--track", track, env=evaluated["env"])
        assert board.returncode == 0
        for run in evaluated[track]:
            assert run["submission"] in board.stdout
