"""CRAFT post-processing: from region and affinity maps to word boxes, as in the published method.

Following the authors' `getDetBoxes_core`: binarise the region map at `low_text` and the affinity map
at `link_threshold`, take 4-connected components of their union, drop components smaller than 10 pixels
or whose peak region score is below `text_threshold`, remove the pixels that are link-only, dilate each
component with a square kernel of side 1 + niter, niter = int(2·sqrt(size·min(w, h)/(w·h))), fit
cv2.minAreaRect, use the axis-aligned box for near-square results (side ratio within 10 %), and start the
points at the one with the smallest x + y, in clockwise order. This implementation works inside each
component's window (same result, less work) and maps pixel centres to image coordinates exactly:
x_image = (x_map + 0.5)·map_scale / ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

TEXT_THRESHOLD = 0.7
LINK_THRESHOLD = 0.4
LOW_TEXT = 0.4
MIN_COMPONENT_SIZE = 10


@dataclass(frozen=True)
class MapBoxes:
    """Boxes found on a score map: K×4×2 points (map pixel indices) and the mean region score of each."""

    boxes: np.ndarray
    scores: np.ndarray


def detect_boxes(
    region: np.ndarray,
    affinity: np.ndarray,
    text_threshold: float = TEXT_THRESHOLD,
    link_threshold: float = LINK_THRESHOLD,
    low_text: float = LOW_TEXT,
) -> MapBoxes:
    """Word boxes on one pair of H×W score maps, in map pixel coordinates (pixel centres on integers)."""
    region = np.asarray(region, np.float32)
    affinity = np.asarray(affinity, np.float32)
    map_h, map_w = region.shape
    text_mask = region > low_text
    link_mask = affinity > link_threshold
    combined = (text_mask | link_mask).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(combined, connectivity=4)
    link_only = link_mask & ~text_mask
    boxes, scores = [], []
    for k in range(1, count):
        size = int(stats[k, cv2.CC_STAT_AREA])
        if size < MIN_COMPONENT_SIZE:
            continue
        x, y = int(stats[k, cv2.CC_STAT_LEFT]), int(stats[k, cv2.CC_STAT_TOP])
        w, h = int(stats[k, cv2.CC_STAT_WIDTH]), int(stats[k, cv2.CC_STAT_HEIGHT])
        niter = int(math.sqrt(size * min(w, h) / (w * h)) * 2)
        sx, sy = max(x - niter, 0), max(y - niter, 0)
        ex, ey = min(x + w + niter + 1, map_w), min(y + h + niter + 1, map_h)
        member = labels[sy:ey, sx:ex] == k
        component_scores = region[sy:ey, sx:ex][member]
        if component_scores.max() < text_threshold:
            continue
        segmap = np.where(member & ~link_only[sy:ey, sx:ex], np.uint8(255), np.uint8(0))
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (1 + niter, 1 + niter))
        segmap = cv2.dilate(segmap, kernel)
        ys, xs = np.nonzero(segmap)
        if len(xs) == 0:
            continue
        points = np.stack([xs + sx, ys + sy], axis=1).astype(np.float32)
        box = cv2.boxPoints(cv2.minAreaRect(points))
        side_a, side_b = np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[1] - box[2])
        if abs(1 - max(side_a, side_b) / (min(side_a, side_b) + 1e-5)) <= 0.1:
            left, right = points[:, 0].min(), points[:, 0].max()
            top, bottom = points[:, 1].min(), points[:, 1].max()
            box = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32)
        start = int(box.sum(axis=1).argmin())
        boxes.append(np.roll(box, 4 - start, axis=0))
        scores.append(float(component_scores.mean()))
    if not boxes:
        return MapBoxes(np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32))
    return MapBoxes(np.stack(boxes).astype(np.float32), np.asarray(scores, np.float32))


def to_image_coordinates(
    boxes: np.ndarray, ratio: float, image_width: int, image_height: int, map_scale: float = 2.0
) -> np.ndarray:
    """Map-pixel boxes to pixels of the original image: the map is `1/map_scale` of the network input,
    which was the image resized by `ratio`; points are clipped to the image."""
    out = (np.asarray(boxes, np.float64) + 0.5) * (map_scale / ratio)
    out[..., 0] = np.clip(out[..., 0], 0, image_width)
    out[..., 1] = np.clip(out[..., 1], 0, image_height)
    return out.astype(np.float32)
