"""ICDAR2013/2015 folders (`img_N.jpg` + `gt_img_N.txt`, side by side or in `images/` and `gt/`) as a split."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from harness.errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def write_icdar_source(source: Path, dest: Path, split: str) -> None:
    images_dir = source / "images" if (source / "images").is_dir() else source
    gt_dir = source / "gt" if (source / "gt").is_dir() else source
    images = sorted(p for p in images_dir.iterdir() if p.suffix in IMAGE_SUFFIXES and p.stem.startswith("img_"))
    if not images:
        raise DatasetError(f"{images_dir}: no images named img_N.jpg/png", "point --data-dir at an ICDAR test folder")
    missing = [p.name for p in images if not (gt_dir / f"gt_{p.stem}.txt").is_file()]
    if missing:
        raise DatasetError(f"{gt_dir}: no ground truth for {missing[:3]} (expected gt_img_N.txt beside each image)")
    (dest / "inputs").mkdir(parents=True)
    (dest / "hidden").mkdir(parents=True)
    ids, files = [], []
    for image in images:
        target = dest / "inputs" / image.name
        try:
            os.link(image, target)
        except OSError:
            shutil.copy2(image, target)
        shutil.copy2(gt_dir / f"gt_{image.stem}.txt", dest / "hidden" / f"gt_{image.stem}.txt")
        ids.append(image.stem)
        files.append(image.name)
    (dest / "inputs" / "index.json").write_text(json.dumps({"ids": ids, "files": files}))
