"""Dataset registry and materialisation: every dataset becomes a split folder of inputs + hidden truth.

A split folder holds `inputs/` (the images and `index.json`: all the sandbox ever sees) and `hidden/`
(ground truth, read only by the trusted scoring step). Generated datasets are written once per version;
real datasets (CIFAR, ImageFolder, COCO, VisDrone, ICDAR) are converted from a source folder given with
`--data-dir`.

Identity: a split's content digest covers its images (PNG by decoded pixels, since PNG encoders differ
between library builds; other files by their bytes) and its hidden ground truth. Track cards pin the
digests of the generated splits they read; `verify_split` checks a prepared split against its pin, and
`harness evaluate` refuses data that fails it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.config import datasets_dir
from harness.errors import DatasetError
from harness.fs import publish_dir
from harness.plugins import Entry, Registry, builtin_entries, load_target

GROUP = "harness.datasets"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # task kind it serves
    description: str
    writer: str  # "module:function"; generated: f(dest, split); sourced: f(source, dest, split)
    splits: tuple[str, ...]
    version: int = 1
    needs_source: bool = False
    renderers: tuple[str, ...] = ()  # distributions whose versions decide a generated split's pixels

    def load_writer(self) -> Callable:
        return load_target(self.writer, where=f"the writer of dataset `{self.name}`", error=DatasetError)


def _load(entry: Entry, _site: Path | None) -> DatasetSpec:
    spec = load_target(entry.target, where=f"dataset `{entry.name}` of `{entry.source}`", error=DatasetError)
    if not isinstance(spec, DatasetSpec) or spec.name != entry.name:
        raise DatasetError(
            f"dataset `{entry.name}` of `{entry.source}` is not a DatasetSpec named `{entry.name}`",
            "point the entry point at a harness.datasets.DatasetSpec whose name is the entry point's",
        )
    return spec


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    GROUP,
    loader=_load,
    builtins=builtin_entries(
        {
            name: f"harness.datasets.specs:{name.upper()}"
            for name in (
                "digits",
                "shapetex",
                "cifar10",
                "cifar100",
                "imagefolder",
                "smallobj",
                "coco",
                "visdrone",
                "scenetext",
                "icdar",
            )
        }
    ),
    error=DatasetError,
    listing="see `harness datasets list`",
)


def get_spec(name: str) -> DatasetSpec:
    return DATASETS.get(name)


def all_specs() -> dict[str, DatasetSpec]:
    return DATASETS.all()


@dataclass(frozen=True)
class SplitData:
    """A materialised split: `inputs/` for the sandbox, `hidden/` for the scorer."""

    dataset: str
    split: str
    root: Path
    digest: str  # content digest: images (PNG by pixels) + hidden ground truth
    count: int

    @property
    def inputs_dir(self) -> Path:
        return self.root / "inputs"

    @property
    def hidden_dir(self) -> Path:
        return self.root / "hidden"

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.split}"

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


CARD_NAME = "dataset.json"  # written by `materialize` beside inputs/ and hidden/; not part of the content


def _split_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] in ("inputs", "hidden"))


def content_digest(root: Path) -> str:
    """sha256 of a split folder's content: per file (sorted by relative path) its path, then for a PNG its
    decoded pixels (mode, size, bytes), for any other file its bytes. The same data gives the same digest
    whichever zlib wrote the PNGs; one changed pixel or label changes it."""
    from PIL import Image

    digest = hashlib.sha256()
    for path in _split_files(root):
        digest.update(str(path.relative_to(root).as_posix()).encode() + b"\0")
        if path.suffix.lower() == ".png":
            with Image.open(path) as image:
                image.load()
                digest.update(f"png:{image.mode}:{image.size[0]}x{image.size[1]}\0".encode())
                digest.update(image.tobytes())
        else:
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def renderer_versions(spec: DatasetSpec) -> dict[str, str]:
    """Installed versions of the distributions that render a generated dataset."""
    from importlib import metadata

    versions = {}
    for dist in spec.renderers:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _split_root(spec: DatasetSpec, split: str, source: Path | None) -> Path:
    if spec.needs_source:
        tag = hashlib.sha256(str(source).encode()).hexdigest()[:12]
        return datasets_dir() / spec.name / f"v{spec.version}-{tag}" / split
    return datasets_dir() / spec.name / f"v{spec.version}" / split


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
    elif source is not None:
        raise DatasetError(f"dataset `{name}` is generated by the harness and takes no --data-dir")
    root = _split_root(spec, split, source)

    def write(tmp: Path) -> None:
        writer = spec.load_writer()
        if spec.needs_source:
            writer(source, tmp, split)
        else:
            writer(tmp, split)
        card = {
            "dataset": name,
            "split": split,
            "version": spec.version,
            "count": len(read_index(tmp / "inputs")["ids"]),
            "digest": content_digest(tmp),
            "renderers": renderer_versions(spec),
            "source": str(source) if source else None,
        }
        (tmp / CARD_NAME).write_text(json.dumps(card, indent=1))

    publish_dir(root, write)
    return _read_split(root)


def _read_split(root: Path) -> SplitData:
    card_path = root / CARD_NAME
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{card_path}: unreadable ({exc})", f"delete {root} and prepare the split again") from exc
    if "digest" not in card:  # prepared by a harness before content digests: add it once
        card["digest"] = content_digest(root)
        card_path.write_text(json.dumps(card, indent=1))
    return SplitData(
        dataset=card["dataset"], split=card["split"], root=root, digest=card["digest"], count=card["count"]
    )


# identity: pins and verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """The outcome of checking one prepared split: its digest now, the digest it was prepared with, and the pin."""

    dataset: str
    split: str
    root: Path
    found: str
    prepared: str  # the digest computed when the split was written
    pin: str | None
    pinned_by: str | None  # the track card that pins it
    renderers_then: dict[str, str]
    renderers_now: dict[str, str]

    @property
    def expected(self) -> str:
        return self.pin or self.prepared

    @property
    def ok(self) -> bool:
        return self.found == self.expected

    def problem(self) -> str:
        """One paragraph naming the dataset, the split, both digests and the likely cause."""
        against = f"its pin in track card `{self.pinned_by}`" if self.pin else "the digest it was prepared with"
        lines = [
            f"dataset `{self.dataset}` split `{self.split}` does not match {against}: "
            f"expected content digest {self.expected}, found {self.found} (in {self.root})"
        ]
        then = ", ".join(f"{k} {v}" for k, v in self.renderers_then.items()) or "unrecorded library versions"
        now = ", ".join(f"{k} {v}" for k, v in self.renderers_now.items())
        if self.found != self.prepared:
            lines.append("likely cause: its files were changed after it was prepared (its digest then was different)")
        if self.pin and self.prepared != self.pin:
            lines.append(
                f"likely cause: it was rendered differently from the pinned data: the libraries that render it "
                f"({then} when it was prepared; {now or 'none'} now) differ from those the pin was made with"
            )
        return "\n  ".join(lines)

    def hint(self) -> str:
        prepare = f"harness datasets prepare {self.dataset} --split {self.split}"
        return f"install from the lock (scripts/setup.sh), delete {self.root} and run `{prepare}`"


def pins() -> dict[str, tuple[str, str]]:
    """{"dataset/split": (digest, track card name)} from every track card."""
    from harness.tracks import all_cards

    found: dict[str, tuple[str, str]] = {}
    for card in all_cards().values():
        for key, digest in card.digests.items():
            if key in found and found[key][0] != digest:
                raise DatasetError(
                    f"track cards `{found[key][1]}` and `{card.name}` pin different digests for `{key}`",
                    "a split has one content; fix the card that is out of date",
                )
            found.setdefault(key, (digest, card.name))
    return found


def verify_split(data: SplitData, recompute: bool = True) -> Verification:
    """Check a prepared split against its pin (generated data) or its prepare-time digest (sourced data)."""
    spec = get_spec(data.dataset)
    card = json.loads((data.root / CARD_NAME).read_text())
    pin = pins().get(data.key)
    return Verification(
        dataset=data.dataset,
        split=data.split,
        root=data.root,
        found=content_digest(data.root) if recompute else data.digest,
        prepared=data.digest,
        pin=pin[0] if pin else None,
        pinned_by=pin[1] if pin else None,
        renderers_then=dict(card.get("renderers") or {}),
        renderers_now=renderer_versions(spec),
    )


def require_pinned(data: SplitData) -> None:
    """Refuse a split whose content differs from its pin (the check `harness evaluate` makes before scoring)."""
    result = verify_split(data)
    if not result.ok:
        raise DatasetError(result.problem(), result.hint())


def prepared_splits(name: str | None = None) -> tuple[list[SplitData], list[Path]]:
    """The split folders prepared under the datasets folder (of one dataset, or all) by the current version of
    each generator or converter, and the folders of older versions (stale: nothing reads them)."""
    base = datasets_dir()
    specs = all_specs()
    names = [name] if name else sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    current, stale = [], []
    for dataset in names:
        spec = specs.get(dataset)
        for card_path in sorted((base / dataset).glob(f"v*/*/{CARD_NAME}")):
            version_dir = card_path.parent.parent.name
            if card_path.parent.name.startswith("."):
                continue  # a split being written
            if spec is not None and version_dir.split("-")[0] == f"v{spec.version}":
                current.append(_read_split(card_path.parent))
            else:
                stale.append(card_path.parent)
    return current, stale
