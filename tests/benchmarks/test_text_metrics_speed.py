"""Speed of the text-detection scorers: 500 images × 50 words must score in under 1 s on one core.

Run with figures: `PYTHONPATH=. pytest tests/benchmarks/test_text_metrics_speed.py --benchmark-only`.
The scene is a deterministic mix of the cases the protocols handle: slightly rotated words on a grid,
jittered detections, splits, merges of neighbours, misses, false positives and don't-care words.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics.deteval import deteval
from harness.metrics.icdar15 import icdar15
from harness.metrics.text_records import ImageDet, ImageGT

IMAGES = 500
WORDS = 50


def _rotated_box(cx: float, cy: float, width: float, height: float, angle: float) -> np.ndarray:
    corners = np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return corners @ rotation.T + [cx, cy]


def synthetic_scenes(seed: int = 0) -> tuple[list[ImageGT], list[ImageDet]]:
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(IMAGES):
        words, dont_care, found = [], [], []
        for index in range(WORDS):
            row, column = divmod(index, 5)
            cx, cy = 130 + 250 * column + rng.uniform(-10, 10), 36 + 70 * row + rng.uniform(-5, 5)
            width, height, angle = rng.uniform(60, 200), rng.uniform(15, 40), rng.uniform(-0.25, 0.25)
            words.append(_rotated_box(cx, cy, width, height, angle))
            dont_care.append(rng.random() < 0.1)
            fate = rng.random()
            if fate < 0.75:
                found.append(
                    _rotated_box(
                        cx + rng.normal(0, 3),
                        cy + rng.normal(0, 2),
                        width * rng.uniform(0.9, 1.1),
                        height,
                        angle,
                    )
                )
            elif fate < 0.85:
                for side in (-1, 1):
                    shift = side * width / 4
                    found.append(
                        _rotated_box(
                            cx + shift * np.cos(angle), cy + shift * np.sin(angle), width / 2, height, angle
                        )
                    )
            elif fate < 0.9 and column < 4:
                found.append(_rotated_box(cx + 125, cy, width + 250, height * 1.2, 0.0))
        for _ in range(5):
            found.append(
                _rotated_box(
                    rng.uniform(0, 1280), rng.uniform(0, 720), rng.uniform(20, 100), 20, rng.uniform(-1, 1)
                )
            )
        gts.append(ImageGT(polygons=np.array(words), dont_care=np.array(dont_care)))
        dets.append(ImageDet(polygons=np.array(found), scores=np.ones(len(found))))
    return gts, dets


@pytest.fixture(scope="module")
def scenes() -> tuple[list[ImageGT], list[ImageDet]]:
    return synthetic_scenes()


@pytest.mark.parametrize("form", ["rect", "quad"])
def test_deteval_speed(benchmark, scenes, form: str) -> None:
    gt, det = scenes
    result = benchmark.pedantic(deteval, args=(gt, det, form), rounds=3, iterations=1)
    assert 0.5 < result["deteval_hmean"] < 1.0
    if benchmark.stats is not None:
        assert benchmark.stats.stats.min < 1.0


def test_icdar15_speed(benchmark, scenes) -> None:
    gt, det = scenes
    result = benchmark.pedantic(icdar15, args=(gt, det), rounds=3, iterations=1)
    assert 0.5 < result["iou_hmean"] < 1.0
    if benchmark.stats is not None:
        assert benchmark.stats.stats.min < 1.0
