"""CIFAR-10 and CIFAR-100 from the official python-pickle files, read with a restricted unpickler.

The official archives (`cifar-10-python.tar.gz`, `cifar-100-python.tar.gz`) hold Python 2 pickles
(protocol 2): a dict with byte-string keys (`b"data"`, `b"labels"` or `b"fine_labels"`, …) whose `b"data"`
is a numpy uint8 array of shape (N, 3072), rows laid out as 1,024 red, 1,024 green, 1,024 blue values of a
32×32 image. Building that array needs exactly three globals: `numpy.core.multiarray._reconstruct`,
`numpy.ndarray` and `numpy.dtype`. `pickle.load` with the default unpickler would run any callable a file
names, so a downloaded file would be arbitrary code; here `find_class` resolves only those three (and
numpy 2's `numpy._core.multiarray._reconstruct` spelling), each through a checking wrapper that builds
plain numeric arrays only. Anything else is refused with a `DatasetError` naming the file.

Folders (extract the archive and pass the folder, or the folder above it):
- CIFAR-10 `cifar-10-batches-py/`: `data_batch_1` … `data_batch_5` (train), `test_batch`, `batches.meta`
- CIFAR-100 `cifar-100-python/`: `train`, `test`, `meta`; the fine labels (100 classes) are used.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets.classification_split import write_classification_split
from harness.errors import DatasetError

SPLITS: tuple[str, ...] = ("train", "test")
IMAGE_SIZE = 32
_ROW_LENGTH = 3 * IMAGE_SIZE * IMAGE_SIZE
_ARCHIVE_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


@dataclass(frozen=True)
class CifarLayout:
    """Which CIFAR a folder holds and its files."""

    name: str  # "cifar10" | "cifar100"
    root: Path
    split_files: dict[str, tuple[str, ...]]
    meta_file: str
    label_key: str
    names_key: str


_LAYOUTS = {
    "cifar10": dict(
        split_files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
    ),
    "cifar100": dict(
        split_files={"train": ("train",), "test": ("test",)},
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
    ),
}


class _NdarrayType:
    """Stands in for `numpy.ndarray` inside a pickle: it may only be passed to `_reconstruct`."""


_NUMPY_RECONSTRUCT = np.zeros(0).__reduce__()[0]


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    if subtype is not _NdarrayType:
        raise pickle.UnpicklingError("_reconstruct called with something other than numpy.ndarray")
    if not (isinstance(shape, tuple) and all(isinstance(s, int) and 0 <= s <= 1 for s in shape)):
        raise pickle.UnpicklingError(f"_reconstruct called with an unexpected initial shape {shape!r}")
    return _NUMPY_RECONSTRUCT(np.ndarray, shape, typecode)


def _dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    if isinstance(spec, bytes):
        spec = spec.decode("ascii")
    if not isinstance(spec, str):
        raise pickle.UnpicklingError(f"numpy.dtype called with {type(spec).__name__}, expected a type code")
    dtype = np.dtype(spec)
    # Numbers only: object arrays would unpickle their elements, structured ones are never in CIFAR.
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise pickle.UnpicklingError(f"array dtype {spec!r} is not a plain numeric type")
    return np.dtype(spec, bool(align), bool(copy))


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): _dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, tuples, strings, bytes, numbers and numeric numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load the global {module}.{name}") from None


def read_pickle(path: Path) -> Any:
    """Unpickle a CIFAR file safely (Python 2 strings become bytes, as in the official files)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror})") from exc
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any failure of untrusted bytes is the file's fault, not a bug here
        raise DatasetError(
            f"{path}: not an official CIFAR python-pickle file ({exc})",
            "use the files of cifar-10-python.tar.gz / cifar-100-python.tar.gz from the CIFAR website",
        ) from exc


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _as_str_keys(path: Path, obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: holds a {type(obj).__name__}, expected a dict")
    return {_text(k): v for k, v in obj.items()}


def detect_layout(src_dir: Path) -> CifarLayout:
    """Find which CIFAR `src_dir` holds (the extracted folder itself, or the folder above it)."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise DatasetError(
            f"{src_dir}: no such folder",
            "extract cifar-10-python.tar.gz or cifar-100-python.tar.gz and pass the extracted folder",
        )
    candidates = [src_dir] + [src_dir / folder for folder in _ARCHIVE_FOLDERS.values()]
    for root in candidates:
        for name, layout in _LAYOUTS.items():
            files = [*layout["split_files"]["train"], *layout["split_files"]["test"], layout["meta_file"]]
            if all((root / f).is_file() for f in files):
                return CifarLayout(name=name, root=root, **layout)
    present = sorted(p.name for p in src_dir.iterdir())[:10]
    raise DatasetError(
        f"{src_dir}: not a CIFAR folder (found {present or 'nothing'})",
        "pass cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta) "
        "or cifar-100-python/ (train, test, meta)",
    )


def _read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _as_str_keys(path, read_pickle(path))
    for key in ("data", label_key):
        if key not in batch:
            raise DatasetError(f"{path}: lacks the entry `{key}` (has {sorted(batch)})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DatasetError(f"{path}: `data` is not a 2-D uint8 array")
    if data.shape[1] != _ROW_LENGTH:
        raise DatasetError(f"{path}: `data` rows have {data.shape[1]} values, expected {_ROW_LENGTH} (3×32×32)")
    labels = np.asarray(batch[label_key])
    if labels.dtype.kind not in "iu" or labels.shape != (data.shape[0],):
        raise DatasetError(f"{path}: `{label_key}` is not a list of {data.shape[0]} integers")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{path}: `{label_key}` has values outside 0..{num_classes - 1}")
    images = data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def read_classes(layout: CifarLayout) -> list[str]:
    path = layout.root / layout.meta_file
    meta = _as_str_keys(path, read_pickle(path))
    names = meta.get(layout.names_key)
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{path}: lacks the list `{layout.names_key}`")
    return [_text(n) for n in names]


def load_cifar(src_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, 32, 32, 3) uint8, labels (N,) int64 and class names of a CIFAR split."""
    if split not in SPLITS:
        raise DatasetError(f"CIFAR has no split `{split}`", f"use one of: {', '.join(SPLITS)}")
    layout = detect_layout(src_dir)
    classes = read_classes(layout)
    parts = [_read_batch(layout.root / name, layout.label_key, len(classes)) for name in layout.split_files[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, classes


def write_split(src_dir: Path, dest_split_dir: Path, split: str, expect: str | None = None) -> int:
    """Materialise a CIFAR split (ids `cifar10-NNNNN` / `cifar100-NNNNN`, in the official order, which is
    already shuffled); `expect` ("cifar10" | "cifar100") refuses a folder of the other dataset."""
    layout = detect_layout(src_dir)
    if expect is not None and layout.name != expect:
        raise DatasetError(
            f"{src_dir}: holds {layout.name}, not {expect}", f"pass the {_ARCHIVE_FOLDERS[expect]} folder"
        )
    images, labels, classes = load_cifar(layout.root, split)
    ids = [f"{layout.name}-{i:05d}" for i in range(len(labels))]
    return write_classification_split(Path(dest_split_dir), ids, images, labels, classes)


def write_cifar10_split(src_dir: Path, dest_split_dir: Path, split: str) -> int:
    return write_split(src_dir, dest_split_dir, split, expect="cifar10")


def write_cifar100_split(src_dir: Path, dest_split_dir: Path, split: str) -> int:
    return write_split(src_dir, dest_split_dir, split, expect="cifar100")
