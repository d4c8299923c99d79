"""Tests of the synthetic small-object dataset: determinism, the written layout, and its statistics."""

from __future__ import annotations

import colorsys
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.datasets import smallobj
from harness.errors import DatasetError


def _digest(image: np.ndarray, annotations: list[dict]) -> str:
    return hashlib.sha256(image.tobytes() + json.dumps(annotations, sort_keys=True).encode()).hexdigest()


def test_sample_depends_only_on_split_and_index():
    first = _digest(*smallobj.generate_sample("val", 3))
    smallobj.generate_sample("test", 7)  # other draws in between must not matter (workers run in any order)
    smallobj.generate_sample("train", 0)
    assert _digest(*smallobj.generate_sample("val", 3)) == first
    assert _digest(*smallobj.generate_sample("val", 4)) != first
    assert _digest(*smallobj.generate_sample("test", 3)) != first


def test_sample_format():
    image, annotations = smallobj.generate_sample("train", 11)
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert {a["category_id"] for a in annotations} <= {1, 2, 3, 4, 5}
    for a in annotations:
        assert set(a) == {"category_id", "bbox", "area", "iscrowd"}
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 512 and y + h <= 512
        assert 0 < a["area"] <= w * h


def test_unknown_split_and_negative_index_are_refused():
    with pytest.raises(DatasetError, match="unknown small-object split 'dev'"):
        smallobj.generate_sample("dev", 0)
    with pytest.raises(DatasetError, match="negative"):
        smallobj.generate_sample("val", -1)


def test_statistics_over_forty_images():
    sides, per_image, crowds, categories = [], [], 0, set()
    for index in range(40):
        _, annotations = smallobj.generate_sample("val", index)
        objects = [a for a in annotations if not a["iscrowd"]]
        crowds += len(annotations) - len(objects)
        per_image.append(len(objects))
        sides += [max(a["bbox"][2], a["bbox"][3]) for a in objects]
        categories |= {a["category_id"] for a in objects}
    sides = np.array(sides)
    assert min(per_image) >= 5 and max(per_image) <= 40
    assert sides.min() >= 4 and sides.max() <= 32
    assert (sides < 12).mean() >= 0.30
    assert (sides >= 16).mean() >= 0.25  # the size range is spread, not only tiny objects
    assert categories == {1, 2, 3, 4, 5}
    assert 5 <= crowds <= 25  # about a third of the images hold one crowd cluster


def _class_hue(image: np.ndarray, bbox: list[float]) -> float:
    """Circular mean hue (degrees) of the most saturated quarter of the pixels in a box."""
    x, y, w, h = (int(v) for v in bbox)
    patch = image[y : y + h, x : x + w].reshape(-1, 3).astype(np.float32) / 255.0
    high, low = patch.max(1), patch.min(1)
    saturation = (high - low) / np.maximum(high, 1e-6)
    vivid = patch[saturation >= np.quantile(saturation, 0.75)]
    angles = np.deg2rad([colorsys.rgb_to_hsv(*p)[0] * 360.0 for p in vivid])
    return float(np.rad2deg(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())) % 360.0)


def test_class_is_readable_from_the_colour_of_the_box():
    hits = total = 0
    for index in range(10):
        image, annotations = smallobj.generate_sample("val", index)
        for a in annotations:
            if a["iscrowd"]:
                continue
            distance = abs(_class_hue(image, a["bbox"]) - smallobj.CLASS_HUES[a["category_id"]])
            hits += min(distance, 360 - distance) < 25
            total += 1
    # Misses are boxes that overlap another object or show mostly background (rings, occluded objects).
    assert hits / total >= 0.9


def test_crowd_members_replace_the_crowd_region_for_training():
    index = next(i for i in range(20) if any(a["iscrowd"] for a in smallobj.generate_sample("val", i)[1]))
    image, annotations = smallobj.generate_sample("val", index)
    image_members, training = smallobj.generate_sample("val", index, crowd_members=True)
    assert np.array_equal(image, image_members)
    crowd = next(a for a in annotations if a["iscrowd"])
    objects = [a for a in annotations if not a["iscrowd"]]
    members = training[len(objects) :]
    assert training[: len(objects)] == objects
    assert len(members) >= 4 and not any(a["iscrowd"] for a in training)
    cx, cy, cw, ch = crowd["bbox"]
    for member in members:
        x, y, w, h = member["bbox"]
        assert member["category_id"] == crowd["category_id"]
        assert cx <= x and cy <= y and x + w <= cx + cw and y + h <= cy + ch
        assert max(w, h) <= 8


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_write_split_layout_and_bytes(tmp_path):
    smallobj.write_split(tmp_path / "a", "test", count=3)
    smallobj.write_split(tmp_path / "b", "test", count=3)
    tree = _tree(tmp_path / "a")
    assert tree == _tree(tmp_path / "b")
    assert sorted(tree) == [
        "hidden/instances.json",
        "inputs/000001.png",
        "inputs/000002.png",
        "inputs/000003.png",
        "inputs/index.json",
    ]
    index = json.loads((tmp_path / "a/inputs/index.json").read_text())
    assert index == {"ids": ["1", "2", "3"], "files": ["000001.png", "000002.png", "000003.png"]}
    coco = json.loads((tmp_path / "a/hidden/instances.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["disc", "square", "triangle", "cross", "ring"]
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 4, 5]
    assert [img["id"] for img in coco["images"]] == [1, 2, 3]
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    image, annotations = smallobj.generate_sample("test", 1)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a/inputs/000002.png")), image)
    written = [
        {k: v for k, v in a.items() if k not in ("id", "image_id")} for a in coco["annotations"] if a["image_id"] == 2
    ]
    assert written == annotations


def test_split_sizes():
    assert smallobj.SPLITS["train"] == 4000
    assert smallobj.split_size("val") == 100
    assert 100 <= smallobj.split_size("test") <= 200
