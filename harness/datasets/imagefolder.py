"""Classification data from an ImageFolder tree: `root/<class>/<image>.png|jpg|jpeg`.

Classes are the sub-folder names, sorted (label i = i-th name, as torchvision's `ImageFolder`); images are
decoded and converted to RGB. Files with other extensions and hidden entries are skipped. A split is
written with its samples in a seeded random order and ids `sample-NNNNN`, so that neither the ids nor the
order of `inputs/` follow the classes. `size` resizes every image to size×size (bilinear) so that a batch
can be stacked; without it images keep their sizes.

The harness's `imagefolder` dataset takes a root holding one tree per split: `root/<split>/<class>/...`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.datasets.classification_split import write_classification_split
from harness.errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
SEED = 0


def _visible_dirs(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def scan(src_root: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths, labels (int64) and sorted class names of an ImageFolder tree, in tree order."""
    src_root = Path(src_root)
    if not src_root.is_dir():
        raise DatasetError(f"{src_root}: no such folder", "pass a folder holding one sub-folder per class")
    class_dirs = _visible_dirs(src_root)
    if not class_dirs:
        raise DatasetError(
            f"{src_root}: no class folders in it", "lay the images out as ROOT/<class name>/<image>.png|jpg"
        )
    paths: list[Path] = []
    labels: list[int] = []
    empty = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(
            p
            for p in class_dir.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        if not files:
            empty.append(class_dir.name)
        paths.extend(files)
        labels.extend([label] * len(files))
    if empty:
        raise DatasetError(
            f"{src_root}: class folder(s) without images: {', '.join(empty[:10])}",
            f"put {'/'.join(IMAGE_EXTENSIONS)} files in every class folder, or remove the empty ones",
        )
    return paths, np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs]


def read_image(path: Path, size: int | None = None) -> np.ndarray:
    """Decode one image to H×W×3 uint8 RGB, resized to size×size (bilinear) when `size` is given."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})", "remove or replace the file") from exc
    if size is not None:
        rgb = rgb.resize((size, size), Image.BILINEAR)
    return np.asarray(rgb)


def _shuffled_order(count: int) -> np.ndarray:
    return np.random.default_rng(SEED).permutation(count)


def load_imagefolder(src_root: Path, size: int | None = None) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Images (list of H×W×3 uint8), labels (N,) int64 and classes, in tree order (class, then file)."""
    paths, labels, classes = scan(src_root)
    return [read_image(p, size) for p in paths], labels, classes


def write_split(src_root: Path, dest_split_dir: Path, size: int | None = None) -> int:
    """Materialise an ImageFolder tree as one split; returns the sample count."""
    if size is not None and size < 1:
        raise DatasetError(f"image size {size} is not positive", "pass a size such as 32 or 224, or none")
    paths, labels, classes = scan(src_root)
    order = _shuffled_order(len(paths))
    width = max(5, len(str(len(paths) - 1)))
    ids = [f"sample-{i:0{width}d}" for i in range(len(paths))]

    def images() -> Iterator[np.ndarray]:
        for i in order:
            yield read_image(paths[i], size)

    return write_classification_split(Path(dest_split_dir), ids, images(), labels[order], classes)


def write_split_from_root(root: Path, dest_split_dir: Path, split: str, size: int | None = None) -> int:
    """The `imagefolder` dataset: `root/<split>/<class>/<image>`."""
    root = Path(root)
    if not (root / split).is_dir():
        present = [p.name for p in _visible_dirs(root)] if root.is_dir() else []
        raise DatasetError(
            f"{root}: has no `{split}` folder (found {present or 'nothing'})",
            f"lay the tree out as ROOT/{split}/<class>/<image>",
        )
    return write_split(root / split, dest_split_dir, size)
