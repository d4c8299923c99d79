"""The text-detection datasets: the shipped synthetic scene-text set, and ICDAR2013/2015 folders."""

from __future__ import annotations

from harness.datasets import DatasetSpec, register

register(
    DatasetSpec(
        "scenetext",
        "text",
        "synthetic scene text (glyphs from a shipped atlas, NumPy raster), ICDAR2015 gt, ### don't-care words",
        "harness.datasets.scenetext:write_split",
        ("train", "val", "test"),
        version=2,  # 2: drawn with NumPy from a glyph atlas; 1 drew with OpenCV and FreeType (pixels varied)
        renderers=("numpy",),
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
