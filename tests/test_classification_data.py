"""Classification datasets: the digits default, CIFAR from (fixture) official pickles, ImageFolder trees."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.datasets import cifar, digits, imagefolder
from harness.datasets.classification_split import read_classification_split
from harness.errors import DatasetError

# ---------------------------------------------------------------------------------------------- digits


def test_digits_split_sizes_types_and_stratification():
    from sklearn.datasets import load_digits

    train_x, train_y = digits.load_digits_split("train")
    test_x, test_y = digits.load_digits_split("test")
    assert train_x.shape == (1437, 32, 32, 3) and train_x.dtype == np.uint8
    assert test_x.shape == (360, 32, 32, 3) and test_x.dtype == np.uint8
    assert train_y.dtype == np.int64 and test_y.dtype == np.int64
    per_class = np.bincount(load_digits().target)
    # Stratified 20 %: every class's test share is its count × 0.2, rounded one way or the other.
    assert np.all(np.abs(np.bincount(test_y, minlength=10) - per_class * 0.2) < 1)
    assert np.array_equal(np.bincount(train_y) + np.bincount(test_y), per_class)
    assert digits.CLASSES == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]


def test_digits_splits_partition_the_source_and_match_it():
    from sklearn.datasets import load_digits

    source = load_digits()
    train_idx, test_idx = digits.source_indices("train"), digits.source_indices("test")
    assert sorted(np.concatenate([train_idx, test_idx]).tolist()) == list(range(1797))
    test_x, test_y = digits.load_digits_split("test")
    assert np.array_equal(test_y, source.target[test_idx])
    assert np.array_equal(test_x[5], digits.upscale(source.images[test_idx[5]]))
    # The split order is shuffled: the source order cycles 0..9 and would leak labels through ids.
    assert not np.array_equal(test_idx, np.sort(test_idx))


def test_digits_upscale_mapping():
    full = digits.upscale(np.full((8, 8), 16.0))
    assert full.shape == (32, 32, 3) and (full == 255).all()
    assert (digits.upscale(np.zeros((8, 8))) == 0).all()
    half = digits.upscale(np.full((8, 8), 8.0))
    assert (half == 128).all()  # round(8 * 255 / 16) = round(127.5) = 128
    left_ink = np.zeros((8, 8))
    left_ink[:, :4] = 16
    img = digits.upscale(left_ink)
    assert (img[:, :, 0] == img[:, :, 1]).all() and (img[:, :, 1] == img[:, :, 2]).all()
    assert (img[:, 0] == 255).all() and (img[:, -1] == 0).all()
    row = img[10, :, 0].astype(int)
    assert (np.diff(row) <= 0).all()  # bilinear: a monotone ramp from ink to background


def test_digits_are_deterministic_and_ids_follow_split_order():
    a, b = digits.load_digits_split("train"), digits.load_digits_split("train")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    a[0][:] = 1  # callers get copies: changing one leaves the next load intact
    assert np.array_equal(digits.load_digits_split("train")[0], b[0])
    ids = digits.split_ids("test")
    assert ids[0] == "digits-00000" and ids[42] == "digits-00042" and len(ids) == 360


def test_digits_calibration_indices():
    idx = digits.calibration_indices()
    assert len(idx) == 128 and len(set(idx.tolist())) == 128
    assert (np.diff(idx) > 0).all() and idx.min() >= 0 and idx.max() < 1437
    assert np.array_equal(idx, digits.calibration_indices())


def test_digits_unknown_split():
    with pytest.raises(DatasetError, match="no split `val`"):
        digits.load_digits_split("val")


def test_digits_write_split_layout(tmp_path):
    count = digits.write_split(tmp_path, "test")
    assert count == 360
    index = json.loads((tmp_path / "inputs" / "index.json").read_text())
    assert index["ids"][:2] == ["digits-00000", "digits-00001"]
    assert index["files"][:2] == ["digits-00000.png", "digits-00001.png"]
    assert sorted(p.name for p in (tmp_path / "inputs").iterdir()) == sorted(index["files"] + ["index.json"])
    truth = json.loads((tmp_path / "hidden" / "labels.json").read_text())
    assert truth["ids"] == index["ids"] and truth["classes"] == digits.CLASSES
    split = read_classification_split(tmp_path)
    images, labels = digits.load_digits_split("test")
    assert np.array_equal(np.stack(split.images), images)  # PNG is lossless
    assert np.array_equal(split.labels, labels)


# ----------------------------------------------------------------------------------------------- CIFAR

_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_PY2_GLOBALS = {
    id(_RECONSTRUCT): b"numpy.core.multiarray\n_reconstruct\n",
    id(np.ndarray): b"numpy\nndarray\n",
    id(np.dtype): b"numpy\ndtype\n",
}


class Py2Pickler(pickle._Pickler):
    """Writes a pickle as Python 2's cPickle (protocol 2) wrote the official CIFAR files: byte strings
    as STRING opcodes, numpy arrays as `numpy.core.multiarray._reconstruct` + `ndarray.__setstate__`."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string

    def save_global(self, obj, name=None):
        spec = _PY2_GLOBALS.get(id(obj))
        if spec is None:
            raise AssertionError(f"unexpected global {obj!r} in a CIFAR fixture")
        self.write(pickle.GLOBAL + spec)
        self.memoize(obj)

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            state = (1, obj.shape, obj.dtype, False, obj.tobytes())
            return _RECONSTRUCT, (np.ndarray, (0,), b"b"), state
        if isinstance(obj, np.dtype):
            return np.dtype, (obj.str[1:].encode(), 0, 1), (3, b"|", None, None, None, -1, -1, 0)
        return NotImplemented


def write_py2_pickle(path: Path, obj) -> None:
    with path.open("wb") as fh:
        Py2Pickler(fh, protocol=2).dump(obj)


def _random_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _rows(images: np.ndarray) -> np.ndarray:
    """The official row layout: the red plane, then green, then blue, each row-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))


def make_cifar10(root: Path, per_batch: int = 2, test: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    write_py2_pickle(
        root / "batches.meta", {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072}
    )
    truth: dict[str, list] = {"train_x": [], "train_y": []}
    for i in range(1, 6):
        images, labels = _random_images(rng, per_batch), rng.integers(0, 10, per_batch).tolist()
        batch = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": labels,
            b"data": _rows(images),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(per_batch)],
        }
        write_py2_pickle(root / f"data_batch_{i}", batch)
        truth["train_x"].append(images)
        truth["train_y"] += labels
    test_x, test_y = _random_images(rng, test), rng.integers(0, 10, test).tolist()
    write_py2_pickle(
        root / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": test_y,
            b"data": _rows(test_x),
            b"filenames": [],
        },
    )
    return {
        "train_x": np.concatenate(truth["train_x"]),
        "train_y": np.array(truth["train_y"]),
        "test_x": test_x,
        "test_y": np.array(test_y),
    }


def test_fixture_pickles_have_the_official_opcodes(tmp_path):
    make_cifar10(tmp_path / "c10")
    raw = (tmp_path / "c10" / "data_batch_1").read_bytes()
    assert raw.startswith(b"\x80\x02}")  # protocol 2, a dict
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"cnumpy\ndtype\n" in raw
    assert b"U\x04data" in raw  # the key as a Python 2 byte string
    assert b"_codecs" not in raw  # what Python 3 would write for bytes at protocol 2
    # The standard library reads it the way the CIFAR page says: encoding="bytes".
    batch = pickle.loads(raw, encoding="bytes")
    assert batch[b"data"].shape == (2, 3072) and batch[b"data"].dtype == np.uint8


def test_cifar10_load_and_pixel_layout(tmp_path):
    truth = make_cifar10(tmp_path / "cifar-10-batches-py")
    images, labels, classes = cifar.load_cifar(tmp_path / "cifar-10-batches-py", "train")
    assert classes[:3] == ["airplane", "automobile", "bird"] and len(classes) == 10
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, truth["train_x"]) and np.array_equal(labels, truth["train_y"])
    assert labels.dtype == np.int64
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes(), encoding="bytes")
    row = raw[b"data"][0]
    # pixel (y=1, x=2): red at 1*32+2, green 1,024 later, blue 2,048 later.
    assert images[0, 1, 2].tolist() == [row[34], row[1024 + 34], row[2048 + 34]]
    test_x, test_y, _ = cifar.load_cifar(tmp_path, "test")  # the folder above is accepted too
    assert np.array_equal(test_x, truth["test_x"]) and np.array_equal(test_y, truth["test_y"])


def test_cifar10_write_split(tmp_path):
    truth = make_cifar10(tmp_path / "src")
    count = cifar.write_split(tmp_path / "src", tmp_path / "out", "test")
    assert count == 3
    split = read_classification_split(tmp_path / "out")
    assert split.ids == ["cifar10-00000", "cifar10-00001", "cifar10-00002"]
    assert np.array_equal(np.stack(split.images), truth["test_x"])
    assert np.array_equal(split.labels, truth["test_y"]) and split.classes[-1] == "truck"
    with pytest.raises(DatasetError, match="holds cifar10, not cifar100"):
        cifar.write_cifar100_split(tmp_path / "src", tmp_path / "out2", "test")


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    fine = [f"fine_{i}".encode() for i in range(100)]
    write_py2_pickle(root / "meta", {b"fine_label_names": fine, b"coarse_label_names": [b"c"] * 20})
    parts = {}
    for split, n in (("train", 4), ("test", 2)):
        images = _random_images(rng, n)
        fine_y, coarse_y = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
        write_py2_pickle(
            root / split,
            {
                b"filenames": [b"f.png"] * n,
                b"batch_label": split.encode(),
                b"fine_labels": fine_y,
                b"coarse_labels": coarse_y,
                b"data": _rows(images),
            },
        )
        parts[split] = (images, fine_y)
    images, labels, classes = cifar.load_cifar(root, "train")
    assert len(classes) == 100 and classes[7] == "fine_7"
    assert np.array_equal(images, parts["train"][0]) and labels.tolist() == parts["train"][1]
    assert cifar.write_cifar100_split(tmp_path, tmp_path / "out", "test") == 2
    assert json.loads((tmp_path / "out" / "inputs" / "index.json").read_text())["ids"][0] == "cifar100-00000"


def test_cifar_python3_pickle_of_the_same_batch_is_accepted(tmp_path):
    truth = make_cifar10(tmp_path / "c10")
    batch = pickle.loads((tmp_path / "c10" / "data_batch_1").read_bytes(), encoding="bytes")
    (tmp_path / "c10" / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=4))
    images, _, _ = cifar.load_cifar(tmp_path / "c10", "train")
    assert np.array_equal(images, truth["train_x"])


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar_refuses_a_malicious_pickle(tmp_path):
    make_cifar10(tmp_path / "c10")
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _RunsShell(marker), b"labels": []}, protocol=2)
    (tmp_path / "c10" / "data_batch_3").write_bytes(evil)
    with pytest.raises(DatasetError, match=r"data_batch_3: not an official CIFAR .*refused to load the global"):
        cifar.load_cifar(tmp_path / "c10", "train")
    assert not marker.exists()
    pickle.loads(evil)  # the default unpickler does run the command: the payload is real
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(eval, protocol=2),  # a builtin global
        pickle.dumps({b"data": np.array([object()] * 0, dtype=object)}, protocol=4),  # object array
        b"\x80\x02cnumpy\ndtype\nX\x01\x00\x00\x00O\x85R.",  # numpy.dtype("O") built directly
        b"\x80\x02cnumpy\nndarray\nK\x05\x85R.",  # numpy.ndarray called directly
        b"not a pickle at all",
    ],
)
def test_cifar_refuses_anything_but_plain_data(tmp_path, payload):
    path = tmp_path / "batch"
    path.write_bytes(payload)
    with pytest.raises(DatasetError, match="not an official CIFAR"):
        cifar.read_pickle(path)


def test_cifar_structure_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        cifar.load_cifar(tmp_path / "missing", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a CIFAR folder"):
        cifar.load_cifar(tmp_path / "empty", "train")
    make_cifar10(tmp_path / "c10")
    with pytest.raises(DatasetError, match="no split `valid`"):
        cifar.load_cifar(tmp_path / "c10", "valid")
    write_py2_pickle(tmp_path / "c10" / "test_batch", {b"labels": [0], b"data": np.zeros((1, 100), np.uint8)})
    with pytest.raises(DatasetError, match=r"test_batch: `data` rows have 100 values, expected 3072"):
        cifar.load_cifar(tmp_path / "c10", "test")
    write_py2_pickle(tmp_path / "c10" / "test_batch", {b"labels": [10], b"data": np.zeros((1, 3072), np.uint8)})
    with pytest.raises(DatasetError, match=r"`labels` has values outside 0..9"):
        cifar.load_cifar(tmp_path / "c10", "test")
    write_py2_pickle(tmp_path / "c10" / "test_batch", {b"data": np.zeros((1, 3072), np.uint8)})
    with pytest.raises(DatasetError, match="lacks the entry `labels`"):
        cifar.load_cifar(tmp_path / "c10", "test")


# ----------------------------------------------------------------------------------------- ImageFolder


def make_tree(root: Path) -> dict[tuple[int, int, int], str]:
    """Two classes (created out of order), images of unique solid colours; returns colour → class."""
    colours = {}
    specs = [
        ("zebra", "a.png", (10, 20, 30), "RGB", (12, 9)),
        ("zebra", "b.jpg", (200, 0, 0), "RGB", (16, 16)),
        ("ant", "x.png", (0, 255, 0), "RGBA", (5, 7)),
        ("ant", "y.png", (90, 90, 90), "L", (8, 8)),
        ("ant", "z.PNG", (0, 0, 250), "RGB", (8, 8)),
    ]
    for cls, name, colour, mode, size in specs:
        (root / cls).mkdir(parents=True, exist_ok=True)
        fill = colour[0] if mode == "L" else (*colour, 255) if mode == "RGBA" else colour
        Image.new(mode, size, fill).save(root / cls / name, quality=100)
        colours[colour] = cls
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return colours


def test_imagefolder_scan_sorts_classes_and_skips_other_files(tmp_path):
    make_tree(tmp_path)
    paths, labels, classes = imagefolder.scan(tmp_path)
    assert classes == ["ant", "zebra"]
    assert [p.name for p in paths] == ["x.png", "y.png", "z.PNG", "a.png", "b.jpg"]
    assert labels.tolist() == [0, 0, 0, 1, 1]
    images, _, _ = imagefolder.load_imagefolder(tmp_path)
    assert [img.shape for img in images] == [(7, 5, 3), (8, 8, 3), (8, 8, 3), (9, 12, 3), (16, 16, 3)]
    assert images[1][0, 0].tolist() == [90, 90, 90]  # greyscale → RGB


def test_imagefolder_write_split_resizes_and_keeps_labels(tmp_path):
    colours = make_tree(tmp_path / "tree")
    assert imagefolder.write_split(tmp_path / "tree", tmp_path / "out", size=8) == 5
    split = read_classification_split(tmp_path / "out")
    assert split.classes == ["ant", "zebra"]
    assert split.ids == [f"sample-{i:05d}" for i in range(5)]
    for image, label in zip(split.images, split.labels, strict=True):
        assert image.shape == (8, 8, 3)
        colour = min(colours, key=lambda c: np.abs(image[4, 4].astype(int) - c).sum())  # JPEG is near
        assert split.classes[label] == colours[colour]
    files = json.loads((tmp_path / "out" / "inputs" / "index.json").read_text())["files"]
    assert not any("ant" in f or "zebra" in f for f in files)  # inputs never name the class


def test_imagefolder_from_root_with_splits(tmp_path):
    make_tree(tmp_path / "data" / "test")
    assert imagefolder.write_split_from_root(tmp_path / "data", tmp_path / "out", "test") == 5
    with pytest.raises(DatasetError, match=r"has no `train` folder \(found \['test'\]\)"):
        imagefolder.write_split_from_root(tmp_path / "data", tmp_path / "out2", "train")


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        imagefolder.scan(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders"):
        imagefolder.scan(tmp_path / "empty")
    make_tree(tmp_path / "tree")
    (tmp_path / "tree" / "bee").mkdir()
    (tmp_path / "tree" / "bee" / "readme.md").write_text("#")
    with pytest.raises(DatasetError, match="class folder.* without images: bee"):
        imagefolder.scan(tmp_path / "tree")
    (tmp_path / "tree" / "bee" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match=r"broken.png: not a readable image"):
        imagefolder.write_split(tmp_path / "tree", tmp_path / "out")
    with pytest.raises(DatasetError, match="not positive"):
        imagefolder.write_split(tmp_path / "tree", tmp_path / "out", size=0)
