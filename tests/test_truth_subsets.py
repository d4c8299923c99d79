"""`TaskKind.subset_truth`: the ground truth of only some images, so that a competition scores its public and
private parts apart. For each built-in kind, scoring predictions restricted to a part against the part's ground
truth gives exactly what a split holding only those images gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.competitions.split import split_ids
from harness.contract import ClassScores, Detections, TextPolygons
from harness.errors import DatasetError, HarnessError
from harness.kinds import TaskKind, get_kind
from harness.predictions import Predictions
from harness.tracks import get_card

KEY = b"k" * 32


def _parts(ids: list[str]) -> tuple[list[str], list[str]]:
    public, private = split_ids(ids, KEY, 0.5)
    assert public and private, "the test needs two non-empty parts"
    return public, private


def _restricted(predictions: Predictions, ids: list[str]) -> Predictions:
    by_id = dict(zip(predictions.ids, predictions.records, strict=True))
    return Predictions(predictions.kind, list(ids), [by_id[i] for i in ids])


# --- classification -------------------------------------------------------------------------------------------


def _labels_split(root: Path, ids: list[str], label_of: dict[str, int]) -> Path:
    from harness.datasets.classification_split import write_classification_split

    images = [np.full((4, 4, 3), n, np.uint8) for n in range(len(ids))]
    write_classification_split(root, ids, images, [label_of[i] for i in ids], [f"c{k}" for k in range(6)])
    return root / "hidden"


def test_classification_parts_score_as_splits_of_their_own(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"s{i:03d}" for i in range(40)]
    label_of = {i: int(rng.integers(6)) for i in ids}
    hidden = _labels_split(tmp_path / "full", ids, label_of)
    predictions = Predictions("classification", ids, [ClassScores(rng.normal(size=6).astype(np.float32)) for _ in ids])
    kind, card = get_kind("classification"), get_card("classification")
    public, private = _parts(ids)
    for n, part in enumerate((public, private)):
        kind.subset_truth(hidden, part, tmp_path / f"part{n}")
        alone = _labels_split(tmp_path / f"alone{n}", part, label_of)
        got = kind.score(card, _restricted(predictions, part), tmp_path / f"part{n}")
        assert got == kind.score(card, _restricted(predictions, part), alone)
        subset = json.loads((tmp_path / f"part{n}" / "labels.json").read_text())
        assert subset["classes"] == [f"c{k}" for k in range(6)] and len(subset["ids"]) == len(part)
    counts = [len(json.loads((tmp_path / f"part{n}" / "labels.json").read_text())["ids"]) for n in (0, 1)]
    assert sum(counts) == len(ids)


# --- detection ------------------------------------------------------------------------------------------------

CATEGORIES = [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}]


def _image_truth(image_id: int) -> list[dict]:
    """The annotations of one image: two objects, and a crowd region on every third image."""
    x = 10 + 7 * image_id
    objects = [
        {"bbox": [x, 20, 30, 25], "category_id": 1, "iscrowd": 0},
        {"bbox": [x + 50, 60, 12, 18], "category_id": 3, "iscrowd": 0},
    ]
    if image_id % 3 == 0:
        objects.append({"bbox": [150, 150, 40, 40], "category_id": 1, "iscrowd": 1, "ignore": 1})
    return objects


def _coco(image_ids: list[int]) -> dict:
    images = [{"id": i, "file_name": f"{i:06d}.png", "width": 256, "height": 256} for i in image_ids]
    annotations = []
    for image_id in image_ids:
        for ann in _image_truth(image_id):
            w, h = ann["bbox"][2:]
            annotations.append({**ann, "id": len(annotations) + 1, "image_id": image_id, "area": float(w * h)})
    return {"info": {"description": "tiny"}, "images": images, "annotations": annotations, "categories": CATEGORIES}


def _detections(image_id: int, rng: np.random.Generator) -> Detections:
    truth = [a for a in _image_truth(image_id) if not a["iscrowd"]]
    boxes = [[x + rng.normal(0, 2), y + rng.normal(0, 2), x + w, y + h] for x, y, w, h in (a["bbox"] for a in truth)]
    boxes.append([200.0, 10.0, 230.0, 40.0])  # a false positive
    labels = [a["category_id"] for a in truth] + [3]
    return Detections(
        np.asarray(boxes, np.float32), rng.uniform(0.1, 1, len(boxes)).astype(np.float32), np.asarray(labels)
    )


def _write(folder: Path, name: str, data: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / name).write_text(json.dumps(data))
    return folder


def test_detection_parts_score_as_splits_of_their_own(tmp_path):
    rng = np.random.default_rng(1)
    image_ids = list(range(1, 13))
    ids = [str(i) for i in image_ids]
    hidden = _write(tmp_path / "full", "instances.json", _coco(image_ids))
    predictions = Predictions("detection", ids, [_detections(i, rng) for i in image_ids])
    kind, card = get_kind("detection"), get_card("small-object")
    public, private = _parts(ids)
    parts = []
    for n, part in enumerate((public, private)):
        kind.subset_truth(hidden, part, tmp_path / f"part{n}")
        alone = _write(tmp_path / f"alone{n}", "instances.json", _coco([int(i) for i in part]))
        got = kind.score(card, _restricted(predictions, part), tmp_path / f"part{n}")
        assert got == kind.score(card, _restricted(predictions, part), alone)
        parts.append(json.loads((tmp_path / f"part{n}" / "instances.json").read_text()))
    full = _coco(image_ids)
    assert sum(len(p["images"]) for p in parts) == len(full["images"])
    assert sorted(i["id"] for p in parts for i in p["images"]) == image_ids
    assert sorted(a["id"] for p in parts for a in p["annotations"]) == [a["id"] for a in full["annotations"]]
    assert any(a["iscrowd"] for p in parts for a in p["annotations"])
    assert all(p["categories"] == CATEGORIES and p["info"] == full["info"] for p in parts)


# --- text -----------------------------------------------------------------------------------------------------


def _quad(x: int, y: int, w: int, h: int) -> list[int]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def _text_truth(n: int) -> list[tuple[list[int], str]]:
    words = [(_quad(10 + n, 10, 60, 20), "hello"), (_quad(100, 50 + n, 40, 15), "world")]
    if n % 4 == 0:
        words.append((_quad(5, 90, 20, 10), "###"))
    return words


def _text_split(folder: Path, numbers: list[int]) -> Path:
    folder.mkdir(parents=True)
    for n in numbers:
        lines = [",".join(map(str, quad)) + f",{word}" for quad, word in _text_truth(n)]
        (folder / f"gt_img_{n}.txt").write_text("\n".join(lines) + "\n")
    (folder / "chars.json").write_text(json.dumps({f"img_{n}": [] for n in numbers}))
    (folder / "meta.json").write_text("{}")
    return folder


def _polygons(n: int, rng: np.random.Generator) -> TextPolygons:
    quads = [np.asarray(q, np.float32).reshape(4, 2) + rng.normal(0, 1.5, (4, 2)) for q, _ in _text_truth(n)[:2]]
    if n % 2:
        quads = quads[:1]  # a missed word
    quads.append(np.asarray(_quad(150, 150, 30, 10), np.float32).reshape(4, 2))  # a false positive
    return TextPolygons(np.stack(quads).astype(np.float32), rng.uniform(0.1, 1, len(quads)).astype(np.float32))


def test_text_parts_score_as_splits_of_their_own(tmp_path):
    rng = np.random.default_rng(2)
    numbers = list(range(1, 11))
    ids = [f"img_{n}" for n in numbers]
    hidden = _text_split(tmp_path / "full", numbers)
    predictions = Predictions("text", ids, [_polygons(n, rng) for n in numbers])
    kind, card = get_kind("text"), get_card("text-detection")
    public, private = _parts(ids)
    files = []
    for n, part in enumerate((public, private)):
        kind.subset_truth(hidden, part, tmp_path / f"part{n}")
        alone = _text_split(tmp_path / f"alone{n}", [int(i.removeprefix("img_")) for i in part])
        got = kind.score(card, _restricted(predictions, part), tmp_path / f"part{n}")
        assert got == kind.score(card, _restricted(predictions, part), alone)
        files.append(sorted(p.name for p in (tmp_path / f"part{n}").glob("gt_*.txt")))
        chars = json.loads((tmp_path / f"part{n}" / "chars.json").read_text())
        assert sorted(chars) == sorted(part)
    assert len(files[0]) + len(files[1]) == len(numbers)
    assert sorted(files[0] + files[1]) == sorted(f"gt_{i}.txt" for i in ids)


# --- faults ---------------------------------------------------------------------------------------------------


def test_an_id_the_truth_lacks_is_refused(tmp_path):
    hidden = _write(tmp_path / "full", "instances.json", _coco([1, 2]))
    with pytest.raises(DatasetError, match="no ground truth"):
        get_kind("detection").subset_truth(hidden, ["1", "7"], tmp_path / "part")
    _labels_split(tmp_path / "cls", ["a", "b"], {"a": 0, "b": 1})
    with pytest.raises(DatasetError, match="no ground truth"):
        get_kind("classification").subset_truth(tmp_path / "cls" / "hidden", ["c"], tmp_path / "part2")
    text = _text_split(tmp_path / "text", [1, 2])
    with pytest.raises(DatasetError, match="no ground truth"):
        get_kind("text").subset_truth(text, ["img_3"], tmp_path / "part3")


def test_built_in_kinds_name_their_truth_files_and_a_plugin_kind_cannot_split(tmp_path):
    assert get_kind("classification").truth_files == ("labels.json",)
    assert get_kind("detection").truth_files == ("instances.json",)
    assert get_kind("text").truth_files == ("gt_*.txt",)

    class Plugin(TaskKind):
        name = "plugin"
        check_record = encode = decode = compare = score = None

    with pytest.raises(HarnessError, match="cannot split its ground truth"):
        Plugin().subset_truth(tmp_path, ["a"], tmp_path / "part")
