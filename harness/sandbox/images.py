"""Decoding the split's images inside the sandbox: one at a time, in batches ahead of the model, or lazily."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A fixed noise image: MACs of most models do not depend on pixel values, only on the size."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def decode_workers() -> int:
    """Threads that decode images (PNG and JPEG decoders release the GIL): half the cores, at most 8, so that
    decoding keeps up with a GPU's accuracy pass (a single decoding thread could not)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def iter_batches(
    inputs_dir: Path, ids: list[str], files: list[str], batch: int, ahead: int = 4, workers: int | None = None
) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """Batches of decoded images, in order, decoded by a pool of threads up to `ahead` batches in advance so
    that decoding overlaps with the model's work."""
    from concurrent.futures import Future, ThreadPoolExecutor

    starts = iter(range(0, len(ids), batch))
    pending: deque[tuple[list[str], list[Future]]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers or decode_workers(), thread_name_prefix="harness-decode")

    def submit_next() -> None:
        start = next(starts, None)
        if start is not None:
            chunk = files[start : start + batch]
            pending.append((ids[start : start + batch], [pool.submit(load_image, inputs_dir / f) for f in chunk]))

    try:
        for _ in range(ahead):
            submit_next()
        while pending:
            batch_ids, futures = pending.popleft()
            images = [future.result() for future in futures]
            submit_next()
            yield batch_ids, images
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class LazyImages(Sequence):
    """Image files decoded on first access: variants that need no calibration never pay for loading it."""

    def __init__(self, folder: Path, files: list[str]):
        self.folder, self.files = folder, files
        self._images: list[np.ndarray] | None = None

    def _load(self) -> list[np.ndarray]:
        if self._images is None:
            self._images = [load_image(self.folder / f) for f in self.files]
        return self._images

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: Any) -> Any:
        return self._load()[item]
