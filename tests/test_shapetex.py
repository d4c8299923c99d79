"""The classification track's default data since version 3: shapetex, rendered from a seed (issue 21)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from harness.datasets import content_digest, materialize, pins, shapetex
from harness.datasets.classification_split import write_classification_split
from harness.tracks import get_card


def test_same_seed_renders_the_same_pixels_and_digest(tmp_path):
    first_images, first_labels = shapetex.generate("test", 500)
    second_images, second_labels = shapetex.generate("test", 500)
    assert np.array_equal(first_images, second_images) and np.array_equal(first_labels, second_labels)
    other_images, _ = shapetex.generate("val", 500)
    assert not np.array_equal(first_images, other_images)  # each split has its own seed
    digests = []
    for name, images in (("a", first_images), ("b", second_images)):
        ids = [f"shapetex-test-{i:05d}" for i in range(len(images))]
        write_classification_split(tmp_path / name, ids, images, first_labels, shapetex.CLASSES)
        digests.append(content_digest(tmp_path / name))
    assert digests[0] == digests[1]


def test_images_are_32x32_rgb_and_not_blank():
    images, labels = shapetex.generate("train", 100)
    assert images.shape == (100, 32, 32, 3) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert images.std(axis=(1, 2, 3)).min() > 5  # every image has structure, none is a flat colour


@pytest.mark.parametrize("split", sorted(shapetex.SPLITS))
def test_classes_are_balanced(split):
    labels = shapetex.split_labels(split)
    assert len(labels) == shapetex.SPLITS[split]
    assert np.array_equal(np.bincount(labels, minlength=50), np.full(50, shapetex.SPLITS[split] // 50))


def test_the_card_pins_every_split_and_the_test_split_matches_its_pin(harness_env):
    card = get_card("classification")
    assert card.version == 3 and card.dataset == "shapetex" and card.num_classes == len(shapetex.CLASSES) == 50
    assert {f"shapetex/{split}" for split in shapetex.SPLITS} <= set(card.digests)
    data = materialize("shapetex", "test")
    assert content_digest(data.root) == pins()["shapetex/test"][0] == card.digests["shapetex/test"]
    truth = json.loads((data.hidden_dir / "labels.json").read_text())
    assert truth["classes"] == shapetex.CLASSES and np.array_equal(truth["labels"], shapetex.split_labels("test"))


def test_no_test_or_val_image_equals_a_train_image():
    def hashes(split: str) -> set[str]:
        images, _ = shapetex.load_shapetex_split(split)
        return {hashlib.sha256(image.tobytes()).hexdigest() for image in images}

    train, val, test = hashes("train"), hashes("val"), hashes("test")
    assert len(train) == shapetex.SPLITS["train"] and len(test) == shapetex.SPLITS["test"]  # no duplicates within
    assert not train & test and not train & val and not val & test


def test_ids_and_order_do_not_leak_labels():
    labels = shapetex.split_labels("test")
    ids = shapetex.split_ids("test")
    assert ids == [f"shapetex-test-{i:05d}" for i in range(len(labels))]
    assert not any(name in sample_id for sample_id in ids for name in shapetex.SHAPES)
    # Position says nothing about the class: no runs, no cycles, no trend.
    assert np.mean(labels[1:] == labels[:-1]) < 0.05
    assert np.mean(labels[1:] == (labels[:-1] + 1) % 50) < 0.05
    assert abs(np.corrcoef(np.arange(len(labels)), labels)[0, 1]) < 0.05
    first, second = np.bincount(labels[: len(labels) // 2], minlength=50), np.bincount(labels[len(labels) // 2 :])
    assert abs(first - second).max() < 70  # each half holds about 100 of every class (5 standard deviations)
