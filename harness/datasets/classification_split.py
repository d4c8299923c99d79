"""Writing and reading a materialised classification split (`inputs/` images + `hidden/labels.json`).

Layout (shared with the harness core):

    <split_dir>/inputs/index.json   {"ids": [...], "files": [...]}, same order
    <split_dir>/inputs/<id>.png     the images, nothing else: this is all the sandbox sees
    <split_dir>/hidden/labels.json  {"ids": [...], "labels": [int, ...], "classes": ["name", ...]}

File names carry only the sample id, never the class, and writers assign ids in an order that does not
follow the labels, so neither the names nor the order of `inputs/` give the answer away.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from harness.errors import DatasetError


@dataclass(frozen=True)
class ClassificationSplit:
    """A classification split read back from disk."""

    ids: list[str]
    images: list[np.ndarray]  # H×W×3 uint8 each
    labels: np.ndarray  # (N,) int64
    classes: list[str]


def write_classification_split(
    dest_split_dir: Path,
    ids: Sequence[str],
    images: Iterable[np.ndarray],
    labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
) -> int:
    """Write images as `inputs/<id>.png`, the index and `hidden/labels.json`; returns the sample count."""
    dest = Path(dest_split_dir)
    inputs_dir, hidden_dir = dest / "inputs", dest / "hidden"
    inputs_dir.mkdir(parents=True, exist_ok=True)
    hidden_dir.mkdir(parents=True, exist_ok=True)
    labels_list = [int(x) for x in labels]
    if len(set(ids)) != len(ids):
        raise ValueError("sample ids must be unique")
    files = []
    count = 0
    for sample_id, image in zip(ids, images, strict=True):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{sample_id}: expected an H×W×3 uint8 image, got {image.dtype} {image.shape}")
        name = f"{sample_id}.png"
        Image.fromarray(image).save(inputs_dir / name, format="PNG")
        files.append(name)
        count += 1
    if count != len(labels_list):
        raise ValueError(f"{count} images but {len(labels_list)} labels")
    (inputs_dir / "index.json").write_text(json.dumps({"ids": list(ids), "files": files}))
    (hidden_dir / "labels.json").write_text(
        json.dumps({"ids": list(ids), "labels": labels_list, "classes": [str(c) for c in classes]})
    )
    return count


def read_classification_split(split_dir: Path) -> ClassificationSplit:
    """Read a split written by `write_classification_split` (images decoded to RGB uint8)."""
    split_dir = Path(split_dir)
    index_path = split_dir / "inputs" / "index.json"
    labels_path = split_dir / "hidden" / "labels.json"
    for path in (index_path, labels_path):
        if not path.is_file():
            raise DatasetError(f"{path}: missing", "materialise the split again")
    index = json.loads(index_path.read_text())
    truth = json.loads(labels_path.read_text())
    if index["ids"] != truth["ids"]:
        raise DatasetError(f"{labels_path}: `ids` differ from those of {index_path}")
    images = []
    for name in index["files"]:
        with Image.open(split_dir / "inputs" / name) as img:
            images.append(np.asarray(img.convert("RGB")))
    return ClassificationSplit(
        ids=list(index["ids"]),
        images=images,
        labels=np.asarray(truth["labels"], dtype=np.int64),
        classes=list(truth["classes"]),
    )
