"""CRAFT training targets: region and affinity score maps made of warped 2-D Gaussians.

As in the paper (Baek et al., CVPR 2019, §3.1): an isotropic 2-D Gaussian drawn on a square is warped by
the perspective transform from the square onto each character box (region score), and onto each affinity
box (affinity score). The affinity box of two neighbouring characters of a word joins the centres of the
upper and lower triangles that each character box's diagonals cut out: (top of the first, top of the
second, bottom of the second, bottom of the first). Maps are at `scale` (½) of the image resolution.

Coordinates: quads are in continuous image pixels (a pixel i spans [i, i+1)); OpenCV puts pixel centres on
integers, hence the half-pixel shifts below.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np

TEMPLATE_SIZE = 64
GAUSSIAN_SIGMA = 0.30
"""σ of the Gaussian as a fraction of the square's side (value 0.25 at the middle of each side). Chosen so
that the published post-processing applied to perfect maps of the synthetic set finds every word with
boxes a little larger than the words (σ = 0.25 splits some words; larger σ only loosens the fit): on 30
validation images, ICDAR2015 IoU h-mean 1.00, mean IoU 0.75, mean area recall 0.996."""


@functools.lru_cache(maxsize=8)
def gaussian_template(size: int = TEMPLATE_SIZE, sigma: float = GAUSSIAN_SIGMA) -> np.ndarray:
    """A size×size isotropic Gaussian, peak 1 at the square's centre, σ = sigma·size."""
    coords = np.arange(size, dtype=np.float64) + 0.5 - size / 2
    g = np.exp(-(coords**2) / (2 * (sigma * size) ** 2))
    template = np.outer(g, g).astype(np.float32)
    template.setflags(write=False)
    return template


def affinity_quads(chars: np.ndarray) -> np.ndarray:
    """(n-1)×4×2 affinity boxes of a word's n character boxes (n×4×2, points TL, TR, BR, BL)."""
    chars = np.asarray(chars, np.float64)
    if len(chars) < 2:
        return np.zeros((0, 4, 2), np.float64)
    centres = chars.mean(axis=1)
    top = (chars[:, 0] + chars[:, 1] + centres) / 3  # centre of the upper triangle (TL, TR, centre)
    bottom = (chars[:, 2] + chars[:, 3] + centres) / 3  # centre of the lower triangle (BR, BL, centre)
    return np.stack([top[:-1], top[1:], bottom[1:], bottom[:-1]], axis=1)


def draw_gaussian(score: np.ndarray, quad: np.ndarray, template: np.ndarray | None = None) -> None:
    """Warp the Gaussian template onto `quad` (map pixel coordinates, continuous) and max it into `score`."""
    template = gaussian_template() if template is None else template
    quad = np.asarray(quad, np.float64)
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = quad.tolist()
    # Degenerate quads (collinear points, NaN) have no perspective transform and cover no area anyway.
    if not abs((cx - ax) * (dy - by) - (cy - ay) * (dx - bx)) > 2e-3:
        return
    h, w = score.shape
    x0 = max(math.floor(min(ax, bx, cx, dx)), 0)
    y0 = max(math.floor(min(ay, by, cy, dy)), 0)
    x1 = min(math.ceil(max(ax, bx, cx, dx)) + 1, w)
    y1 = min(math.ceil(max(ay, by, cy, dy)) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    size = template.shape[0]
    src = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [size - 0.5, size - 0.5], [-0.5, size - 0.5]], np.float32)
    dst = (quad - [x0 + 0.5, y0 + 0.5]).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(
        template,
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    np.maximum(score[y0:y1, x0:x1], warped, out=score[y0:y1, x0:x1])


def score_maps(
    words_chars: Sequence[np.ndarray],
    image_shape: tuple[int, int],
    scale: float = 0.5,
    ignore_quads: Sequence[np.ndarray] = (),
    sigma: float = GAUSSIAN_SIGMA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region map, affinity map and loss weight map (0 inside `ignore_quads`, e.g. `###` words), each of
    shape ceil(H·scale)×ceil(W·scale), for the character boxes of each word (image pixels)."""
    height, width = image_shape
    shape = (int(np.ceil(height * scale)), int(np.ceil(width * scale)))
    region = np.zeros(shape, np.float32)
    affinity = np.zeros(shape, np.float32)
    template = gaussian_template(TEMPLATE_SIZE, sigma)
    for chars in words_chars:
        chars = np.asarray(chars, np.float64) * scale
        for quad in chars:
            draw_gaussian(region, quad, template)
        for quad in affinity_quads(chars):
            draw_gaussian(affinity, quad, template)
    weight = np.ones(shape, np.float32)
    if len(ignore_quads):
        polygons = [np.rint(np.asarray(q, np.float64) * scale - 0.5).astype(np.int32) for q in ignore_quads]
        cv2.fillPoly(weight, polygons, 0.0)
    return region, affinity, weight
