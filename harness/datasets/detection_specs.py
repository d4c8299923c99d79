"""The detection datasets: the shipped synthetic small-object set, and converters for real COCO-format sets."""

from __future__ import annotations

from pathlib import Path

from harness.datasets import DatasetSpec, register
from harness.errors import DatasetError


def write_coco_source(source: Path, dest: Path, split: str) -> None:
    """`--data-dir` holds `annotations.json` (COCO) and `images/`; any split name maps to that folder."""
    from harness.datasets.coco_import import import_coco

    annotations = source / "annotations.json"
    images = source / "images"
    if not annotations.is_file() or not images.is_dir():
        raise DatasetError(
            f"{source}: expected `annotations.json` (COCO json) and an `images/` folder",
            "convert the set to COCO json first (VisDrone: --dataset visdrone; AI-TOD ships COCO json)",
        )
    import_coco(images, annotations, dest)


def write_visdrone_source(source: Path, dest: Path, split: str) -> None:
    from harness.datasets.visdrone import convert_visdrone

    convert_visdrone(source, dest)


register(
    DatasetSpec(
        "smallobj",
        "detection",
        "synthetic small objects (4-32 px, 5 classes) on cluttered 512x512 backgrounds, generated from a seed",
        "harness.datasets.smallobj:write_split",
        ("train", "val", "test"),
        renderers=("numpy", "pillow"),
    )
)
register(
    DatasetSpec(
        "coco",
        "detection",
        "any COCO-format set: --data-dir DIR with DIR/annotations.json and DIR/images/ (ignore regions iscrowd=1)",
        "harness.datasets.detection_specs:write_coco_source",
        ("test", "val"),
        needs_source=True,
    )
)
register(
    DatasetSpec(
        "visdrone",
        "detection",
        "VisDrone-DET: --data-dir DIR with DIR/images/*.jpg and DIR/annotations/*.txt (category 0 -> iscrowd=1)",
        "harness.datasets.detection_specs:write_visdrone_source",
        ("test", "val"),
        needs_source=True,
    )
)
