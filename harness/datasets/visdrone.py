"""Convert VisDrone-DET (images/*.jpg + annotations/*.txt) into COCO json and a harness split.

Each annotation line is `bbox_left,bbox_top,bbox_width,bbox_height,score,object_category,truncation,occlusion`
(pixels, top-left corner). In ground truth, `score` is 1 for a box that counts and 0 for one to ignore.
Categories 1-10 are the classes scored; 0 marks an ignored region and 11 "others" (objects of no scored
class), and both become ignore regions.

How they map to COCO:
- category 1-10 with score 1: a normal annotation (`iscrowd` 0);
- category 1-10 with score 0: an ignore region (`iscrowd` 1) of that category;
- category 0 or 11: an ignore region repeated once per scored category, because COCOeval matches crowd
  annotations per category and VisDrone's ignored regions hold for every class;
- a box of zero width or height is dropped: nothing can ever match it.
`area` is the box's w*h; `truncation` and `occlusion` are kept on each annotation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image

from harness.datasets.coco_import import IMAGE_SUFFIXES, write_detection_split
from harness.errors import DatasetError

VISDRONE_CATEGORIES = {
    1: "pedestrian",
    2: "people",
    3: "bicycle",
    4: "car",
    5: "van",
    6: "truck",
    7: "tricycle",
    8: "awning-tricycle",
    9: "bus",
    10: "motor",
}
IGNORED_REGION, OTHERS = 0, 11
FIELDS = (
    "bbox_left",
    "bbox_top",
    "bbox_width",
    "bbox_height",
    "score",
    "object_category",
    "truncation",
    "occlusion",
)


def _parse_number(text: str, path: Path, line_number: int, field: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DatasetError(f"{path}:{line_number}: `{field}` is {text!r}, expected a number")
    return value


def _parse_annotation_file(path: Path) -> list[tuple[list[int | float], int, int, int, int]]:
    """(bbox, score, category, truncation, occlusion) per non-empty line."""
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from exc
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.strip().split(",")]
        if fields[-1] == "":  # some VisDrone files end lines with a comma
            fields.pop()
        if len(fields) != 8:
            raise DatasetError(f"{path}:{line_number}: {len(fields)} fields, expected 8 ({','.join(FIELDS)})")
        values = [_parse_number(field, path, line_number, name) for field, name in zip(fields, FIELDS, strict=True)]
        bbox = values[:4]
        score, category, truncation, occlusion = values[4:]
        for name, value in (("score", score), ("object_category", category)):
            if not isinstance(value, int):
                raise DatasetError(f"{path}:{line_number}: `{name}` is {value!r}, expected an integer")
        if score not in (0, 1):
            raise DatasetError(
                f"{path}:{line_number}: `score` is {score}, ground truth uses 1 (counts) or 0 (ignored)",
                "convert ground-truth annotations, not detection results",
            )
        if category not in VISDRONE_CATEGORIES and category not in (IGNORED_REGION, OTHERS):
            raise DatasetError(f"{path}:{line_number}: `object_category` is {category}, expected 0-11")
        if bbox[2] < 0 or bbox[3] < 0:
            raise DatasetError(f"{path}:{line_number}: box {bbox} has a negative width or height")
        rows.append((bbox, int(score), int(category), int(truncation), int(occlusion)))
    return rows


def visdrone_to_coco(root: Path) -> dict[str, Any]:
    """COCO instances dict for a VisDrone-DET folder (`root/images`, `root/annotations`); image ids are
    1..N in file-name order and `file_name`s are relative to `root/images`."""
    root = Path(root)
    images_dir, annotations_dir = root / "images", root / "annotations"
    for folder in (images_dir, annotations_dir):
        if not folder.is_dir():
            raise DatasetError(
                f"{folder}: folder not found", f"{root} must hold VisDrone-DET's images/ and annotations/"
            )
    image_paths = sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not image_paths:
        raise DatasetError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    annotation_paths = {p.stem: p for p in annotations_dir.glob("*.txt")}
    lacking = [p.name for p in image_paths if p.stem not in annotation_paths]
    if lacking:
        raise DatasetError(
            f"{annotations_dir}: no annotation file for {len(lacking)} images: {', '.join(lacking[:5])}",
            "each image NAME.jpg needs annotations/NAME.txt (empty if it has no objects)",
        )
    orphans = sorted(set(annotation_paths) - {p.stem for p in image_paths})
    if orphans:
        raise DatasetError(
            f"{images_dir}: no image for {len(orphans)} annotation files: {', '.join(orphans[:5])}",
            "give the images/ and annotations/ folders of one VisDrone split",
        )

    images, annotations = [], []
    for image_id, image_path in enumerate(image_paths, start=1):
        try:
            with Image.open(image_path) as opened:
                width, height = opened.size
        except OSError as exc:
            raise DatasetError(f"{image_path}: not a readable image ({exc})") from exc
        images.append({"id": image_id, "file_name": image_path.name, "width": width, "height": height})
        for bbox, score, category, truncation, occlusion in _parse_annotation_file(annotation_paths[image_path.stem]):
            if bbox[2] == 0 or bbox[3] == 0:
                continue
            if category in (IGNORED_REGION, OTHERS):
                targets, iscrowd = list(VISDRONE_CATEGORIES), 1
            else:
                targets, iscrowd = [category], 1 - score
            for category_id in targets:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": category_id,
                        "bbox": bbox,
                        "area": bbox[2] * bbox[3],
                        "iscrowd": iscrowd,
                        "truncation": truncation,
                        "occlusion": occlusion,
                    }
                )
    categories = [{"id": cid, "name": name, "supercategory": "none"} for cid, name in VISDRONE_CATEGORIES.items()]
    return {"images": images, "annotations": annotations, "categories": categories}


def convert_visdrone(root: Path, dest_split_dir: Path, *, link: bool = True) -> None:
    """Write the VisDrone-DET folder `root` as a harness split in `dest_split_dir` (see the module doc)."""
    root = Path(root)
    ground_truth = visdrone_to_coco(root)
    write_detection_split(
        root / "images", ground_truth, Path(dest_split_dir), source=str(root / "annotations"), link=link
    )


def write_visdrone_source(source: Path, dest: Path, split: str) -> None:
    convert_visdrone(source, dest)
