"""Tracks and datasets added without editing the harness: a card file on `HARNESS_TRACKS_PATH`, and a dataset and
a track registered by an installed package's entry points, appear in `harness tracks` / `harness datasets list`
and evaluate end to end through the CLI. Also the registry's rules: duplicates refused, near names suggested."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.plugins import Entry, Registry, builtin_entries, load_target
from harness.tracks import CARDS_DIR
from tests.conftest import make_submission, run_cli

PLUGIN_PACKAGE = '''
    """A third party's benchmark: three classes of coloured squares, and a track that ranks on them."""

    import numpy as np

    from harness.datasets import DatasetSpec
    from harness.datasets.classification_split import write_classification_split
    from harness.tracks import TrackCard

    CLASSES = ["red", "green", "blue"]


    def write_split(dest, split):
        rng = np.random.default_rng({"train": 0, "test": 1}[split])
        labels = rng.integers(0, 3, 30)
        images = []
        for label in labels:
            image = rng.integers(0, 40, (32, 32, 3)).astype(np.uint8)
            image[8:24, 8:24, int(label)] = 220
            images.append(image)
        ids = [f"sq-{i:03d}" for i in range(len(labels))]
        return write_classification_split(dest, ids, images, labels, CLASSES)


    SQUARES = DatasetSpec("squares", "classification", "coloured squares (a plugin's dataset)",
                          "squares_plugin:write_split", ("train", "test"), renderers=("numpy", "pillow"))
    CARD = TrackCard(
        name="squares", version=1, kind="classification", title="Coloured squares", dataset="squares",
        split="test", primary_metric="top1", higher_is_better=True, metrics=("top1", "top5"),
        input_sizes=((32, 32),), num_classes=3, accuracy_batch_size=16,
    )
'''

PATH_CARD = """
name = "digits-lite"
version = 1
kind = "classification"
title = "Digits with a tight MAC budget (a card on HARNESS_TRACKS_PATH)"
dataset = "digits"
split = "test"
calibration_split = "train"
primary_metric = "top1"
higher_is_better = true
metrics = ["top1", "top5"]
num_classes = 10
input_sizes = [[32, 32]]
accuracy_batch_size = 64

[rules]
max_macs = 5_000_000
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin project, installed with pip into a folder that the CLI gets on PYTHONPATH."""
    project = tmp_path_factory.mktemp("squares-plugin")
    (project / "squares_plugin.py").write_text(textwrap.dedent(PLUGIN_PACKAGE))
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "squares-plugin"
            version = "0.1.0"

            [project.entry-points."harness.datasets"]
            squares = "squares_plugin:SQUARES"

            [project.entry-points."harness.tracks"]
            squares = "squares_plugin:CARD"

            [tool.setuptools]
            py-modules = ["squares_plugin"]
            """
        )
    )
    site = tmp_path_factory.mktemp("squares-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(project),
        ],
        check=True,
        capture_output=True,
    )
    return site


def test_plugin_and_path_tracks_evaluate_end_to_end(plugin_site, harness_env, tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "digits-lite.toml").write_text(PATH_CARD)
    env = {**harness_env, "PYTHONPATH": str(plugin_site), "HARNESS_TRACKS_PATH": str(cards)}

    listed = run_cli("tracks", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    tracks = json.loads(listed.stdout)
    assert {"squares", "digits-lite", "classification"} <= set(tracks)
    assert tracks["digits-lite"]["rules"]["max_macs"] == 5_000_000
    datasets = json.loads(run_cli("datasets", "list", "--json", env=env).stdout)
    assert "squares" in {d["name"] for d in datasets}

    for track in ("squares", "digits-lite"):
        submission = make_submission(tmp_path / track, "tiny", track=track)
        submitted = run_cli("submit", str(submission), env=env)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        evaluated = run_cli("evaluate", "--track", track, "--json", env=env)
        assert evaluated.returncode == 0, evaluated.stderr
        (run,) = json.loads(evaluated.stdout)
        assert run["status"] == "ok", run["error"]
        assert run["track"] == track and 0.0 <= run["metrics"]["top1"] <= 1.0
        board = json.loads(run_cli("leaderboard", "--track", track, "--json", env=env).stdout)
        assert [row["run_id"] for row in board] == [run["run_id"]]
    assert json.loads(evaluated.stdout)[0]["dataset"] == "digits/test"


def test_a_track_name_taken_twice_is_refused(harness_env, tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "mine.toml").write_text((CARDS_DIR / "classification.toml").read_text())
    env = {**harness_env, "HARNESS_TRACKS_PATH": str(cards)}
    result = run_cli("tracks", env=env)
    assert result.returncode == 2
    assert "track name `classification` is registered twice: by `harness` and by" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_path_card_names_file_and_field(harness_env, tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "broken.toml").write_text(PATH_CARD.replace('primary_metric = "top1"', 'primary_metric = "top3"'))
    result = run_cli("tracks", env={**harness_env, "HARNESS_TRACKS_PATH": str(cards)})
    assert result.returncode == 2 and "broken.toml" in result.stderr and "`primary_metric` 'top3'" in result.stderr
    (cards / "broken.toml").write_text(PATH_CARD + "\nspeed = 3\n")
    result = run_cli("tracks", env={**harness_env, "HARNESS_TRACKS_PATH": str(cards)})
    assert result.returncode == 2 and "unknown field `rules.speed`" in result.stderr
    missing = run_cli("tracks", env={**harness_env, "HARNESS_TRACKS_PATH": str(tmp_path / "nowhere")})
    assert missing.returncode == 2 and "not a folder" in missing.stderr


def test_registry_suggests_the_near_name_and_refuses_duplicates():
    registry: Registry[str] = Registry(
        "widget",
        None,
        loader=lambda entry, _site: entry.target,
        builtins=lambda: [Entry("alpha", "one", "harness"), Entry("beta", "two", "harness")],
    )
    assert registry.get("alpha") == "one" and registry.names() == ["alpha", "beta"]
    with pytest.raises(HarnessError) as caught:
        registry.get("alpah")
    assert "unknown widget `alpah`" in caught.value.message and "did you mean `alpha`?" in caught.value.hint
    clash: Registry[str] = Registry(
        "widget",
        None,
        loader=lambda entry, _site: entry.target,
        builtins=lambda: [Entry("alpha", "one", "harness"), Entry("alpha", "two", "somebody-else")],
    )
    with pytest.raises(
        HarnessError, match="widget name `alpha` is registered twice: by `harness` and by `somebody-else`"
    ):
        clash.names()
    lazy = Registry(
        "thing", None, loader=lambda e, _s: load_target(e.target), builtins=builtin_entries({"x": "math:pi"})
    )
    assert lazy.get("x") == pytest.approx(3.14159, abs=1e-5)
    with pytest.raises(HarnessError, match="has no attribute `nope`"):
        load_target("math:nope")
