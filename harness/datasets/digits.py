"""The classification track's default dataset: scikit-learn's real handwritten digits at 32×32 RGB.

Source: `sklearn.datasets.load_digits` (ships inside scikit-learn, no download): 1,797 scans of handwritten
digits, 8×8 pixels, integer intensities 0–16, ten classes "0"–"9".

Conversion (version 1 of the dataset; changing any step changes every image):
1. intensity `v` (0–16) → `round(v * 255 / 16)` as uint8, so 16 maps to 255 (ink is bright, background 0);
2. PIL bilinear resize of that 8×8 grey image to 32×32 (`Image.resize((32, 32), Image.BILINEAR)`);
3. the grey channel replicated to three channels → (32, 32, 3) uint8 RGB.

Split: `train_test_split(indices, test_size=0.2, stratify=target, random_state=0)` over the 1,797 samples:
train 1,437, test 360, each split kept in the order that call returns (shuffled). Sample ids are
`digits-NNNNN`, the position within the split: the original order cycles 0, 1, …, 9, so ids derived from
it would leak the label.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from harness.datasets.classification_split import write_classification_split
from harness.errors import DatasetError

CLASSES: list[str] = [str(d) for d in range(10)]
SPLITS: tuple[str, ...] = ("train", "test")
IMAGE_SIZE = 32
CALIBRATION_SIZE = 128
SEED = 0


@cache
def _source() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target.astype(np.int64)


@cache
def _split_indices() -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    _, target = _source()
    train, test = train_test_split(np.arange(len(target)), test_size=0.2, stratify=target, random_state=SEED)
    return {"train": np.asarray(train), "test": np.asarray(test)}


def upscale(image_8x8: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """One 8×8 digits image (values 0–16) → size×size×3 uint8 RGB, as described in the module docstring."""
    from PIL import Image

    grey = np.round(np.asarray(image_8x8, dtype=np.float64) * 255.0 / 16.0).astype(np.uint8)
    resized = np.asarray(Image.fromarray(grey).resize((size, size), Image.BILINEAR))
    return np.repeat(resized[:, :, None], 3, axis=2)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"the digits dataset has no split `{split}`", f"use one of: {', '.join(SPLITS)}")


def source_indices(split: str) -> np.ndarray:
    """Indices into `sklearn.datasets.load_digits()` of the split's samples, in split order."""
    _check_split(split)
    return _split_indices()[split].copy()


@cache
def _load(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, target = _source()
    idx = _split_indices()[split]
    upscaled = np.stack([upscale(images[i]) for i in idx])
    upscaled.setflags(write=False)
    labels = target[idx]
    labels.setflags(write=False)
    return upscaled, labels


def load_digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) int64 of `split` ("train": 1,437, "test": 360)."""
    _check_split(split)
    images, labels = _load(split)
    return images.copy(), labels.copy()


def split_ids(split: str) -> list[str]:
    """Sample ids of `split`, in the order of `load_digits_split`."""
    _check_split(split)
    return [f"digits-{i:05d}" for i in range(len(_split_indices()[split]))]


def calibration_indices() -> np.ndarray:
    """A fixed 128 positions in the train split (sorted) for int8 calibration, drawn with seed 0."""
    n_train = len(_split_indices()["train"])
    rng = np.random.default_rng(SEED)
    return np.sort(rng.choice(n_train, size=CALIBRATION_SIZE, replace=False))


def write_split(dest_split_dir: Path, split: str) -> int:
    """Materialise `split` as PNG inputs + `hidden/labels.json` in `dest_split_dir`; returns the count."""
    images, labels = load_digits_split(split)
    return write_classification_split(Path(dest_split_dir), split_ids(split), images, labels, CLASSES)
