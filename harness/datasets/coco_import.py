"""Materialise any COCO-format detection set (images folder + instances json) as a harness split.

The split layout (shared with the core):

    <split>/inputs/index.json      {"ids": [str(image id), ...], "files": [file_name, ...]}
    <split>/inputs/<file_name>     the images, hard-linked from the source where possible, else copied
    <split>/hidden/instances.json  the validated COCO ground truth (iscrowd and area filled in, sizes checked)

Everything is checked before anything is written, so a failed import leaves no half-made split.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from harness.errors import DatasetError
from harness.metrics.coco import load_json, validate_ground_truth

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _checked_file_name(file_name: Any, index: int, where: str) -> str:
    """A relative path inside the images folder, with an image suffix: nothing may escape the split."""
    if not isinstance(file_name, str) or not file_name.strip():
        raise DatasetError(f"{where}: images[{index}] has `file_name` {file_name!r}, expected a relative path")
    posix = PurePosixPath(file_name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or Path(file_name).is_absolute():
        raise DatasetError(
            f"{where}: images[{index}] has `file_name` {file_name!r}, which leaves the images folder",
            "use paths relative to the images folder",
        )
    if posix.suffix.lower() not in IMAGE_SUFFIXES:
        raise DatasetError(
            f"{where}: images[{index}] has `file_name` {file_name!r}; only {', '.join(IMAGE_SUFFIXES)} images are read",
            "convert the images to PNG or JPEG",
        )
    return str(posix)


def write_detection_split(
    images_dir: Path,
    ground_truth: dict[str, Any],
    dest_split_dir: Path,
    *,
    source: str = "ground truth",
    link: bool = True,
) -> None:
    """Write `ground_truth` (a COCO instances dict whose `file_name`s are relative to `images_dir`) and its
    images as a split in `dest_split_dir`, which must not exist or be empty. Image sizes are read from the
    files: a `width`/`height` that disagrees raises `DatasetError`, a missing one is filled in."""
    images_dir, dest_split_dir = Path(images_dir), Path(dest_split_dir)
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: images folder not found", "give the folder that holds the images")
    gt = validate_ground_truth(ground_truth, source)

    file_names: list[str] = []
    seen: set[str] = set()
    missing: list[str] = []
    for index, image in enumerate(gt["images"]):
        file_name = _checked_file_name(image.get("file_name"), index, source)
        if file_name in seen:
            raise DatasetError(
                f"{source}: images[{index}] repeats `file_name` {file_name!r}",
                "each image needs its own file",
            )
        seen.add(file_name)
        file_names.append(file_name)
        if not (images_dir / file_name).is_file():
            missing.append(file_name)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DatasetError(
            f"{source}: {len(missing)} of {len(file_names)} images are missing under {images_dir}: {shown}",
            "point to the folder the annotations' file_name entries are relative to",
        )

    for image, file_name in zip(gt["images"], file_names, strict=True):
        path = images_dir / file_name
        try:
            with Image.open(path) as opened:
                width, height = opened.size
        except OSError as exc:
            raise DatasetError(f"{path}: not a readable image ({exc})", "replace or remove the file") from exc
        for key, actual in (("width", width), ("height", height)):
            stated = image.get(key)
            if stated is None:
                image[key] = actual
            elif stated != actual:
                raise DatasetError(
                    f"{source}: image {image['id']} ({file_name}) has `{key}` {stated}, the file is {width}x{height}",
                    "fix the annotation's image size (boxes must be in pixels of the file)",
                )

    if dest_split_dir.exists() and (not dest_split_dir.is_dir() or any(dest_split_dir.iterdir())):
        raise DatasetError(f"{dest_split_dir}: already exists and is not empty", "remove it or choose another folder")
    inputs_dir, hidden_dir = dest_split_dir / "inputs", dest_split_dir / "hidden"
    inputs_dir.mkdir(parents=True)
    hidden_dir.mkdir()
    for file_name in file_names:
        target = inputs_dir / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(images_dir / file_name, target, link)
    index = {"ids": [str(image["id"]) for image in gt["images"]], "files": file_names}
    (inputs_dir / "index.json").write_text(json.dumps(index), encoding="utf-8")
    (hidden_dir / "instances.json").write_text(json.dumps(gt), encoding="utf-8")


def _link_or_copy(source: Path, target: Path, link: bool) -> None:
    if link:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system, or links not allowed: a copy is equally valid
    shutil.copyfile(source, target)


def import_coco(images_dir: Path, annotations: Path, dest_split_dir: Path, *, link: bool = True) -> None:
    """Materialise a COCO-format set (`annotations` = instances json, `file_name`s relative to `images_dir`)
    as a split in `dest_split_dir`. Raises `DatasetError` for missing folders, files, images or bad json."""
    annotations = Path(annotations)
    ground_truth = load_json(annotations, DatasetError)
    write_detection_split(Path(images_dir), ground_truth, Path(dest_split_dir), source=str(annotations), link=link)


def write_coco_source(source: Path, dest: Path, split: str) -> None:
    """`--data-dir` holds `annotations.json` (COCO) and `images/`; any split name maps to that folder."""
    annotations = source / "annotations.json"
    images = source / "images"
    if not annotations.is_file() or not images.is_dir():
        raise DatasetError(
            f"{source}: expected `annotations.json` (COCO json) and an `images/` folder",
            "convert the set to COCO json first (VisDrone: --dataset visdrone; AI-TOD ships COCO json)",
        )
    import_coco(images, annotations, dest)
