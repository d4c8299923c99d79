"""Data identity: every generated split matches the digest its track card pins; a changed pixel or label is
caught by `harness datasets verify` and refused by `harness evaluate`; every run records the digest it was
scored on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from harness.datasets import content_digest, materialize, pins, verify_split
from tests.conftest import make_submission, run_cli


@pytest.mark.parametrize("key", sorted(pins()))
def test_every_pin_matches_freshly_generated_data(harness_env, key):
    dataset, split = key.split("/")
    result = verify_split(materialize(dataset, split))
    assert result.ok, result.problem()
    assert result.found == result.pin and result.pinned_by


def test_digest_is_of_content_not_of_encoding(tmp_path):
    """The same pixels written by another PNG encoder setting give the same digest; one pixel changes it."""
    root = tmp_path / "split"
    (root / "inputs").mkdir(parents=True)
    (root / "hidden").mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "inputs" / "a.png", compress_level=1)
    (root / "inputs" / "index.json").write_text('{"ids": ["a"], "files": ["a.png"]}')
    (root / "hidden" / "labels.json").write_text('{"a": 3}')
    (root / "dataset.json").write_text("{}")
    first = content_digest(root)
    Image.fromarray(pixels).save(root / "inputs" / "a.png", compress_level=9)
    assert content_digest(root) == first
    (root / "dataset.json").write_text('{"anything": 1}')  # the harness's own card is not content
    assert content_digest(root) == first
    changed = pixels.copy()
    changed[3, 4, 1] ^= 1
    Image.fromarray(changed).save(root / "inputs" / "a.png")
    assert content_digest(root) != first
    Image.fromarray(pixels).save(root / "inputs" / "a.png")
    (root / "hidden" / "labels.json").write_text('{"a": 4}')
    assert content_digest(root) != first


def test_changed_pixel_is_caught_and_never_scored(tmp_path):
    """On a private harness home: verify passes, a run records the pinned digest; after one pixel changes,
    verify exits 1 naming dataset, split, both digests and the likely cause, and evaluate refuses (exit 2)
    with nothing stored."""
    env = {"HARNESS_HOME": str(tmp_path / "home"), "HARNESS_DB_URL": f"sqlite:///{tmp_path / 'harness.db'}"}
    pin = pins()["digits/test"][0]
    prepared = run_cli("datasets", "prepare", "digits", "--split", "test", env=env)
    assert prepared.returncode == 0, prepared.stderr
    assert pin in prepared.stdout and "matches the pin of track `classification`" in prepared.stdout
    verified = run_cli("datasets", "verify", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "digits/test" in verified.stdout

    submission = make_submission(tmp_path)
    assert run_cli("submit", str(submission), env=env).returncode == 0
    evaluated = run_cli("evaluate", "--track", "classification", "--dataset", "digits", "--json", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    (run,) = json.loads(evaluated.stdout)
    assert run["status"] == "ok" and run["dataset_hash"] == pin

    image_path = tmp_path / "home" / "datasets" / "digits" / "v1" / "test" / "inputs" / "digits-00007.png"
    pixels = np.asarray(Image.open(image_path)).copy()
    pixels[5, 5, 0] ^= 1
    Image.fromarray(pixels).save(image_path)

    verified = run_cli("datasets", "verify", "digits", env=env)
    assert verified.returncode == 1
    message = verified.stderr
    found = content_digest(image_path.parents[1])
    assert "dataset `digits` split `test`" in message and pin in message and found in message
    assert "likely cause: its files were changed" in message and "Traceback" not in message
    assert "fix:" in message

    refused = run_cli("evaluate", "--track", "classification", "--dataset", "digits", "--force", "--json", env=env)
    assert refused.returncode == 2
    assert (
        "dataset `digits` split `test` does not match its pin" in refused.stderr and "Traceback" not in refused.stderr
    )
    shown = run_cli("leaderboard", "--track", "classification", "--dataset", "digits", "--json", env=env)
    assert [row["run_id"] for row in json.loads(shown.stdout)] == [run["run_id"]]  # nothing new stored


def test_verify_of_unknown_or_unprepared_dataset(tmp_path):
    env = {"HARNESS_HOME": str(tmp_path / "home"), "HARNESS_DB_URL": f"sqlite:///{tmp_path / 'harness.db'}"}
    unknown = run_cli("datasets", "verify", "digitz", env=env)
    assert unknown.returncode == 2 and "unknown dataset `digitz`" in unknown.stderr and "digits" in unknown.stderr
    empty = run_cli("datasets", "verify", env=env)
    assert empty.returncode == 0 and "no prepared split" in empty.stdout
