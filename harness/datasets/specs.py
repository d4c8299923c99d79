"""The harness's own datasets, registered in `harness.datasets.DATASETS` exactly as a plugin's are (a plugin
points an entry point of the group `harness.datasets` at a `DatasetSpec`)."""

from __future__ import annotations

from harness.datasets import DatasetSpec

DIGITS = DatasetSpec(
    "digits",
    "classification",
    "scikit-learn's handwritten digits (1,797 real images) upscaled to 32x32 RGB; stratified split",
    "harness.datasets.digits:write_split",
    ("train", "test"),
    renderers=("numpy", "pillow", "scikit-learn"),
)
SHAPETEX = DatasetSpec(
    "shapetex",
    "classification",
    "50 classes of procedurally rendered textured shapes at 32x32 (pose, clutter, occlusion, blur, noise), from a seed",
    "harness.datasets.shapetex:write_split",
    ("train", "val", "test"),
    renderers=("numpy", "pillow"),
)
CIFAR10 = DatasetSpec(
    "cifar10",
    "classification",
    "CIFAR-10 from the official python-pickle batches (--data-dir cifar-10-batches-py)",
    "harness.datasets.cifar:write_cifar10_split",
    ("train", "test"),
    needs_source=True,
)
CIFAR100 = DatasetSpec(
    "cifar100",
    "classification",
    "CIFAR-100 (fine labels) from the official python-pickle files (--data-dir cifar-100-python)",
    "harness.datasets.cifar:write_cifar100_split",
    ("train", "test"),
    needs_source=True,
)
IMAGEFOLDER = DatasetSpec(
    "imagefolder",
    "classification",
    "any ImageFolder tree: --data-dir ROOT with ROOT/<split>/<class>/<image>",
    "harness.datasets.imagefolder:write_split_from_root",
    ("train", "test"),
    needs_source=True,
)
SMALLOBJ = DatasetSpec(
    "smallobj",
    "detection",
    "synthetic small objects (4-32 px, 5 classes) on cluttered 512x512 backgrounds, generated from a seed",
    "harness.datasets.smallobj:write_split",
    ("train", "val", "test"),
    renderers=("numpy", "pillow"),
)
COCO = DatasetSpec(
    "coco",
    "detection",
    "any COCO-format set: --data-dir DIR with DIR/annotations.json and DIR/images/ (ignore regions iscrowd=1)",
    "harness.datasets.coco_import:write_coco_source",
    ("test", "val"),
    needs_source=True,
)
VISDRONE = DatasetSpec(
    "visdrone",
    "detection",
    "VisDrone-DET: --data-dir DIR with DIR/images/*.jpg and DIR/annotations/*.txt (category 0 -> iscrowd=1)",
    "harness.datasets.visdrone:write_visdrone_source",
    ("test", "val"),
    needs_source=True,
)
SCENETEXT = DatasetSpec(
    "scenetext",
    "text",
    "synthetic scene text (glyphs from a shipped atlas, NumPy raster), ICDAR2015 gt, ### don't-care words",
    "harness.datasets.scenetext:write_split",
    ("train", "val", "test"),
    version=2,  # 2: drawn with NumPy from a glyph atlas; 1 drew with OpenCV and FreeType (pixels varied)
    renderers=("numpy",),
)
ICDAR = DatasetSpec(
    "icdar",
    "text",
    "an ICDAR2013/2015 folder: --data-dir DIR with img_N.jpg and gt_img_N.txt (or images/ and gt/ beside)",
    "harness.datasets.icdar_import:write_icdar_source",
    ("test",),
    needs_source=True,
)
