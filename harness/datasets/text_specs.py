"""The text-detection datasets: the shipped synthetic scene-text set, and ICDAR2013/2015 folders."""

from __future__ import annotations

from harness.datasets import DatasetSpec, register

register(
    DatasetSpec(
        "scenetext",
        "text",
        "synthetic scene text rendered with Pillow's bundled TrueType font, ICDAR2015 gt, ### don't-care words",
        "harness.datasets.scenetext:write_split",
        ("train", "val", "test"),
    )
)
register(
    DatasetSpec(
        "icdar",
        "text",
        "an ICDAR2013/2015 folder: --data-dir DIR with img_N.jpg and gt_img_N.txt (or images/ and gt/ beside)",
        "harness.datasets.icdar_import:write_icdar_source",
        ("test",),
        needs_source=True,
    )
)
