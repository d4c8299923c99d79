"""Dataset registry and materialisation: every dataset becomes a split folder of inputs + hidden truth.

A split folder holds `inputs/` (the images and `index.json`: all the sandbox ever sees) and `hidden/`
(ground truth, read only by the trusted scoring step). Generated datasets are written once per version and
hashed; real datasets (CIFAR, ImageFolder, COCO, VisDrone, ICDAR) are converted from a source folder
given with `--data-dir`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.config import datasets_dir
from harness.errors import DatasetError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # track kind it serves
    description: str
    writer: str  # "module:function"; generated: f(dest, split); sourced: f(source, dest, split)
    splits: tuple[str, ...]
    version: int = 1
    needs_source: bool = False

    def load_writer(self) -> Callable:
        module, attr = self.writer.split(":")
        return getattr(importlib.import_module(module), attr)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "digits",
            "classification",
            "scikit-learn's handwritten digits (1,797 real images) upscaled to 32x32 RGB; stratified split",
            "harness.datasets.digits:write_split",
            ("train", "test"),
        ),
        DatasetSpec(
            "cifar10",
            "classification",
            "CIFAR-10 from the official python-pickle batches (--data-dir cifar-10-batches-py)",
            "harness.datasets.cifar:write_cifar10_split",
            ("train", "test"),
            needs_source=True,
        ),
        DatasetSpec(
            "cifar100",
            "classification",
            "CIFAR-100 (fine labels) from the official python-pickle files (--data-dir cifar-100-python)",
            "harness.datasets.cifar:write_cifar100_split",
            ("train", "test"),
            needs_source=True,
        ),
        DatasetSpec(
            "imagefolder",
            "classification",
            "any ImageFolder tree: --data-dir ROOT with ROOT/<split>/<class>/<image>",
            "harness.datasets.imagefolder:write_split_from_root",
            ("train", "test"),
            needs_source=True,
        ),
    ]
}


def register(spec: DatasetSpec) -> None:
    """Tracks add their datasets here; a name taken twice is an error, never a silent overwrite."""
    if spec.name in DATASETS and DATASETS[spec.name] != spec:
        raise ValueError(f"dataset {spec.name!r} is registered twice")
    DATASETS[spec.name] = spec


def get_spec(name: str) -> DatasetSpec:
    _load_track_datasets()
    if name not in DATASETS:
        import difflib

        near = difflib.get_close_matches(name, list(DATASETS), n=1)
        hint = f"did you mean `{near[0]}`?" if near else "see `harness datasets list`"
        raise DatasetError(f"unknown dataset `{name}`", hint)
    return DATASETS[name]


def all_specs() -> dict[str, DatasetSpec]:
    _load_track_datasets()
    return dict(DATASETS)


def _load_track_datasets() -> None:
    """Datasets of the detection and text tracks are declared beside their generators."""
    for module in ("harness.datasets.detection_specs", "harness.datasets.text_specs"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


@dataclass(frozen=True)
class SplitData:
    """A materialised split: `inputs/` for the sandbox, `hidden/` for the scorer."""

    dataset: str
    split: str
    root: Path
    hash: str
    count: int

    @property
    def inputs_dir(self) -> Path:
        return self.root / "inputs"

    @property
    def hidden_dir(self) -> Path:
        return self.root / "hidden"

    def index(self) -> dict:
        return read_index(self.inputs_dir)


def read_index(inputs_dir: Path) -> dict:
    path = inputs_dir / "index.json"
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: missing", "materialise the split again (delete its folder)") from exc
    if len(index.get("ids", [])) != len(index.get("files", [])):
        raise DatasetError(f"{path}: `ids` and `files` differ in length")
    return index


def hash_tree(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "dataset.json"):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def materialize(name: str, split: str, source: Path | None = None) -> SplitData:
    """Write (once) and return the split folder of a dataset. Concurrent callers are safe: each writes
    to a temporary folder and the first rename wins."""
    spec = get_spec(name)
    if split not in spec.splits:
        raise DatasetError(f"dataset `{name}` has no split `{split}`", f"its splits: {', '.join(spec.splits)}")
    if spec.needs_source:
        if source is None:
            raise DatasetError(f"dataset `{name}` needs its source files", f"pass --data-dir; {spec.description}")
        source = Path(source).expanduser().resolve()
        if not source.exists():
            raise DatasetError(f"dataset path {source} does not exist", f"point --data-dir at {spec.description}")
        tag = hashlib.sha256(str(source).encode()).hexdigest()[:12]
        root = datasets_dir() / name / f"v{spec.version}-{tag}" / split
    else:
        if source is not None:
            raise DatasetError(f"dataset `{name}` is generated by the harness and takes no --data-dir")
        root = datasets_dir() / name / f"v{spec.version}" / split
    card_path = root / "dataset.json"
    if not card_path.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{split}-", dir=root.parent))
        try:
            writer = spec.load_writer()
            if spec.needs_source:
                writer(source, tmp, split)
            else:
                writer(tmp, split)
            count = len(read_index(tmp / "inputs")["ids"])
            card = {
                "dataset": name,
                "split": split,
                "version": spec.version,
                "count": count,
                "hash": hash_tree(tmp),
                "source": str(source) if source else None,
            }
            (tmp / "dataset.json").write_text(json.dumps(card, indent=1))
            try:
                os.rename(tmp, root)
            except OSError:
                if not card_path.exists():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    card = json.loads(card_path.read_text())
    return SplitData(dataset=name, split=split, root=root, hash=card["hash"], count=card["count"])
