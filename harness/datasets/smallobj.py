"""Synthetic small-object detection dataset: five shape classes, 4–32 px, on cluttered 512×512 images.

Every image is a pure function of (`BASE_SEED`, split, index), so DataLoader workers can make training
images on the fly in any order, and a materialised split is byte-identical wherever numpy and Pillow are
the same versions. Only numpy and Pillow are used.

What makes it a small-object benchmark rather than a toy:
- objects' longest sides run from 4 to 32 px, about 40 % of them under 12 px;
- backgrounds are gradients plus multi-scale texture, with low-contrast shapes, lines and specks;
- each class has its own hue family (with variation), so even a 4 px object is decidable from its
  pixels, but distractors of the same hues in other shapes (bars, stars, L-shapes, crescents) make a
  detector look at shape once objects are large enough to have one;
- objects overlap each other and are partly hidden by occluders (each object stays at least half
  visible, objects under 8 px stay whole); boxes are the tight boxes of the visible pixels and `area`
  the visible pixel count, as in COCO;
- about a third of the images hold a dense cluster of one class's tiny objects, annotated as a single
  `iscrowd=1` ignore region (its members are not annotated one by one).
"""

from __future__ import annotations

import colorsys
import json
import math
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from harness.errors import DatasetError

BASE_SEED = 20_251_117
GENERATOR_VERSION = "smallobj-1"
IMAGE_SIZE = 512
SPLITS = {"train": 4000, "val": 100, "test": 120}
CATEGORIES = (
    {"id": 1, "name": "disc", "supercategory": "shape"},
    {"id": 2, "name": "square", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
    {"id": 4, "name": "cross", "supercategory": "shape"},
    {"id": 5, "name": "ring", "supercategory": "shape"},
)
CATEGORY_NAMES = {c["id"]: c["name"] for c in CATEGORIES}

# Hue (degrees) of each class; neighbouring families are >= 55 degrees apart and jitter is +-9, so the
# colour alone separates the classes.
CLASS_HUES = {1: 0.0, 2: 120.0, 3: 225.0, 4: 55.0, 5: 300.0}
MIN_SIDE, MAX_SIDE = 4, 32
TINY_SIDE = 12  # objects whose longest side is under this count as tiny for the size mix
TINY_FRACTION = 0.4
WHOLE_BELOW = 8  # objects smaller than this are never occluded
OBJECTS_PER_IMAGE = (5, 40)
CLUSTER_PROBABILITY = 0.33

_SUPERSAMPLE = 4
_UNTRACKED = 255  # id-map value of distractors and occluders
_MEMBER_ID0 = 64  # cluster members get ids from here; objects get 1..40


@dataclass
class _Shape:
    """One rendered item: its soft mask (alpha in [0, 1]) placed with its top-left corner at (x, y)."""

    alpha: np.ndarray
    x: int = 0
    y: int = 0

    @property
    def height(self) -> int:
        return self.alpha.shape[0]

    @property
    def width(self) -> int:
        return self.alpha.shape[1]

    @property
    def solid(self) -> np.ndarray:
        """The pixels the item owns: those it covers at least a quarter of."""
        return self.alpha >= 0.25


def _rng(split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([BASE_SEED, zlib.crc32(split.encode()), index]))


@lru_cache(maxsize=1)
def _grain_tile() -> np.ndarray:
    """Sensor-like grain, made once; each image adds a random window of it (cheaper than fresh noise)."""
    return np.random.default_rng(BASE_SEED + 1).standard_normal((2 * IMAGE_SIZE, 2 * IMAGE_SIZE), np.float32)


def _hsv(hue_deg: float, sat: float, val: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, sat, val), np.float32) * 255.0


def _muted(rng: np.random.Generator, low: float = 0.15, high: float = 0.85) -> np.ndarray:
    return _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.25), rng.uniform(low, high))


def _class_colour(rng: np.random.Generator, category_id: int) -> np.ndarray:
    return _hsv(CLASS_HUES[category_id] + rng.uniform(-9, 9), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))


def _value_noise(rng: np.random.Generator, cells: int, size: int, channels: int = 1) -> np.ndarray:
    """Value noise in [-1, 1]: a cells×cells random grid upsampled bicubically to size×size."""
    shape = (cells, cells) if channels == 1 else (cells, cells, channels)
    grid = rng.integers(0, 256, shape, dtype=np.uint8)
    up = Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)
    return (np.asarray(up, np.float32) - 127.5) / 127.5


_COARSE = 64  # the smooth part of the background is made at this resolution, then upsampled


def _background(rng: np.random.Generator) -> Image.Image:
    """Gradient, blotchy luminance and faint colour variation (fine texture is added at the end)."""
    start, end = _muted(rng), _muted(rng)
    theta = rng.uniform(0, 2 * math.pi)
    coords = np.linspace(0.0, 1.0, _COARSE, dtype=np.float32)
    ramp = math.cos(theta) * coords[None, :] + math.sin(theta) * coords[:, None]
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    coarse = start + (end - start) * ramp[..., None]
    luminance = _value_noise(rng, int(rng.integers(3, 8)), _COARSE) * rng.uniform(15, 35)
    luminance += _value_noise(rng, int(rng.integers(12, 32)), _COARSE) * rng.uniform(6, 14)
    coarse += luminance[..., None]
    coarse += _value_noise(rng, int(rng.integers(4, 16)), _COARSE, 3) * rng.uniform(4, 10)
    small = Image.fromarray(np.clip(coarse + 0.5, 0, 255).astype(np.uint8))
    return small.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)


def _draw_clutter(rng: np.random.Generator, canvas: Image.Image) -> None:
    """Low-contrast shapes, lines and specks in the background's own muted colours."""
    draw = ImageDraw.Draw(canvas)
    size = IMAGE_SIZE
    shapes, specks = int(rng.integers(30, 80)), int(rng.integers(20, 80))
    total = shapes + specks
    centres = rng.uniform(0, size, (total, 2))
    contrast = np.concatenate([rng.uniform(10, 35, shapes), rng.uniform(15, 45, specks)])
    signs = rng.choice([-1.0, 1.0], total)
    tint = rng.normal(0, 5, (total, 3))
    pixels = np.asarray(canvas)[centres[:, 1].astype(int), centres[:, 0].astype(int)].astype(np.float32)
    colours = np.clip(pixels + (signs * contrast)[:, None] + tint, 0, 255).astype(int).tolist()
    extents = np.exp(rng.uniform(math.log(6), math.log(160), shapes))
    kinds = rng.integers(0, 4, shapes)
    ratios = rng.uniform(0.2, 1.0, shapes)
    for k in range(shapes):
        cx, cy = centres[k]
        colour, extent = tuple(colours[k]), float(extents[k])
        half_w, half_h = extent / 2, extent * float(ratios[k]) / 2
        if kinds[k] == 0:
            draw.ellipse([cx - half_w, cy - half_h, cx + half_w, cy + half_h], fill=colour)
        elif kinds[k] == 1:
            draw.rectangle([cx - half_w, cy - half_h, cx + half_w, cy + half_h], fill=colour)
        elif kinds[k] == 2:
            count = int(rng.integers(3, 8))
            angles = np.sort(rng.uniform(0, 2 * math.pi, count))
            radii = half_w * rng.uniform(0.4, 1.0, count)
            points = list(
                zip(
                    (cx + radii * np.cos(angles)).tolist(),
                    (cy + radii * np.sin(angles)).tolist(),
                    strict=True,
                )
            )
            draw.polygon(points, fill=colour)
        else:
            angle = rng.uniform(0, math.pi)
            length = extent * (1.0 + 1.5 * float(ratios[k]))
            dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
            draw.line([cx - dx, cy - dy, cx + dx, cy + dy], fill=colour, width=int(rng.integers(1, 4)))
    radii = rng.uniform(0.7, 1.8, specks)
    for k in range(specks):
        cx, cy = centres[shapes + k]
        r = float(radii[k])
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(colours[shapes + k]))


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]], np.float32)


_POLYGONS = {
    "square": np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float32),
    "triangle": np.array([(math.cos(a), math.sin(a)) for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)], np.float32),
}


def _cross(arm: float) -> np.ndarray:
    k = arm
    return np.array(
        [
            (-k, -1),
            (k, -1),
            (k, -k),
            (1, -k),
            (1, k),
            (k, k),
            (k, 1),
            (-k, 1),
            (-k, k),
            (-1, k),
            (-1, -k),
            (-k, -k),
        ],
        np.float32,
    )


def _star(inner: float) -> np.ndarray:
    angles = [-math.pi / 2 + i * math.pi / 5 for i in range(10)]
    return np.array(
        [
            ((1 if i % 2 == 0 else inner) * math.cos(a), (1 if i % 2 == 0 else inner) * math.sin(a))
            for i, a in enumerate(angles)
        ],
        np.float32,
    )


def _l_shape(arm: float) -> np.ndarray:
    return np.array([(0, 0), (1, 0), (1, arm), (arm, arm), (arm, 1), (0, 1)], np.float32) * 2 - 1


def _rasterise(width: float, height: float, draw_fn: Any) -> np.ndarray:
    """Supersampled mask: `draw_fn(draw, scale)` draws in a canvas `scale` times larger; box-filtered down."""
    w, h = max(1, round(width)), max(1, round(height))
    canvas = Image.new("L", (w * _SUPERSAMPLE, h * _SUPERSAMPLE), 0)
    draw_fn(ImageDraw.Draw(canvas), w * _SUPERSAMPLE, h * _SUPERSAMPLE)
    return np.asarray(canvas.resize((w, h), Image.Resampling.BOX), np.float32) / 255.0


def _polygon_mask(points: np.ndarray, longest: float, stretch: float, angle: float) -> np.ndarray:
    """A polygon (unit coordinates) rotated, stretched along x and scaled so its longest side is `longest`."""
    pts = _rotate(points, angle) * np.array([stretch, 1.0], np.float32)
    pts = pts - pts.min(axis=0)
    extent = pts.max(axis=0)
    pts = pts * (longest / float(extent.max()))
    width, height = max(1.0, float(pts[:, 0].max())), max(1.0, float(pts[:, 1].max()))

    def draw(d: ImageDraw.ImageDraw, cw: int, ch: int) -> None:
        scale = np.array([cw / width, ch / height], np.float32)
        d.polygon([tuple(p) for p in (pts * scale).tolist()], fill=255)

    return _rasterise(width, height, draw)


def _ellipse_mask(
    width: float, height: float, hole: float = 0.0, bite: tuple[float, float] | None = None
) -> np.ndarray:
    """A filled ellipse; `hole` cuts a concentric one (ring), `bite` an offset one (crescent)."""

    def draw(d: ImageDraw.ImageDraw, cw: int, ch: int) -> None:
        d.ellipse([0, 0, cw - 1, ch - 1], fill=255)
        if hole > 0:
            tx, ty = hole * cw, hole * ch
            d.ellipse([tx, ty, cw - 1 - tx, ch - 1 - ty], fill=0)
        if bite is not None:
            ox, oy = bite[0] * cw, bite[1] * ch
            d.ellipse([ox, oy, ox + cw - 1, oy + ch - 1], fill=0)

    return _rasterise(width, height, draw)


def _object_mask(rng: np.random.Generator, category_id: int, side: float) -> np.ndarray:
    squash = rng.uniform(0.8, 1.0)
    name = CATEGORY_NAMES[category_id]
    if name in ("disc", "ring"):
        w, h = (side, max(MIN_SIDE, side * squash)) if rng.random() < 0.5 else (max(MIN_SIDE, side * squash), side)
        return _ellipse_mask(w, h, hole=rng.uniform(0.2, 0.3) if name == "ring" else 0.0)
    if name == "square":
        return _polygon_mask(_POLYGONS["square"], side, squash, rng.uniform(-0.45, 0.45))
    if name == "triangle":
        return _polygon_mask(_POLYGONS["triangle"], side, squash, rng.uniform(0, 2 * math.pi))
    return _polygon_mask(_cross(rng.uniform(0.28, 0.38)), side, squash, rng.uniform(-0.35, 0.35))


def _distractor_mask(rng: np.random.Generator) -> np.ndarray:
    kind = int(rng.integers(0, 4))
    if kind == 0:  # a bar: too elongated for any class
        length = rng.uniform(12, 40)
        thickness = rng.uniform(0.1, 0.2)
        bar = np.array([(-1, -thickness), (1, -thickness), (1, thickness), (-1, thickness)], np.float32)
        return _polygon_mask(bar, length, 1.0, rng.uniform(0, math.pi))
    side = rng.uniform(12, 32)
    if kind == 1:
        return _polygon_mask(_star(rng.uniform(0.38, 0.5)), side, 1.0, rng.uniform(0, 2 * math.pi))
    if kind == 2:
        return _polygon_mask(_l_shape(rng.uniform(0.3, 0.4)), side, 1.0, rng.uniform(0, 2 * math.pi))
    angle = rng.uniform(0, 2 * math.pi)
    offset = rng.uniform(0.3, 0.5)
    return _ellipse_mask(side, side, bite=(offset * math.cos(angle), offset * math.sin(angle)))


def _occluder_mask(rng: np.random.Generator, side: float) -> np.ndarray:
    width, height = side * rng.uniform(0.6, 1.3), side * rng.uniform(0.6, 1.3)
    if rng.random() < 0.5:
        return _ellipse_mask(width, height)
    angle = rng.uniform(0, math.pi)
    return _polygon_mask(_POLYGONS["square"], max(width, height), min(width, height) / max(width, height), angle)


def _sample_side(rng: np.random.Generator) -> float:
    low, high = (MIN_SIDE, TINY_SIDE - 0.5) if rng.random() < TINY_FRACTION else (TINY_SIDE, MAX_SIDE)
    return math.exp(rng.uniform(math.log(low), math.log(high)))


class _Canvas:
    """The image being composed, with an id map that records which item owns each pixel."""

    def __init__(self, image: np.ndarray):
        self.image = image
        self.ids = np.zeros(image.shape[:2], np.uint8)
        self.drawn: dict[int, int] = {}  # tracked id -> solid pixels when drawn
        self.visible: dict[int, int] = {}
        self.min_visible: dict[int, int] = {}
        self.shapes: dict[int, _Shape] = {}

    def inside(self, shape: _Shape) -> bool:
        return (
            shape.x >= 0
            and shape.y >= 0
            and shape.x + shape.width <= IMAGE_SIZE
            and shape.y + shape.height <= IMAGE_SIZE
        )

    def _covered(self, shape: _Shape) -> dict[int, int]:
        window = self.ids[shape.y : shape.y + shape.height, shape.x : shape.x + shape.width]
        counts = np.bincount(window[shape.solid], minlength=256)
        return {int(i): int(counts[i]) for i in np.nonzero(counts[1:_UNTRACKED])[0] + 1}

    def fits(self, shape: _Shape) -> bool:
        """True when drawing `shape` on top leaves every tracked item at least its minimum visible pixels."""
        if not self.inside(shape):
            return False
        return all(self.visible[i] - n >= self.min_visible[i] for i, n in self._covered(shape).items())

    def draw(self, shape: _Shape, colour: np.ndarray, item_id: int, min_visible_fraction: float = 0.0) -> None:
        for i, n in self._covered(shape).items():
            self.visible[i] -= n
        region = self.image[shape.y : shape.y + shape.height, shape.x : shape.x + shape.width]
        region += (colour - region) * shape.alpha[..., None]
        window = self.ids[shape.y : shape.y + shape.height, shape.x : shape.x + shape.width]
        window[shape.solid] = item_id
        if item_id != _UNTRACKED:
            solid = int(shape.solid.sum())
            self.drawn[item_id] = self.visible[item_id] = solid
            self.min_visible[item_id] = math.ceil(min_visible_fraction * solid)
            self.shapes[item_id] = shape

    def visible_box(self, item_id: int) -> tuple[list[float], int] | None:
        shape = self.shapes[item_id]
        window = self.ids[shape.y : shape.y + shape.height, shape.x : shape.x + shape.width] == item_id
        ys, xs = np.nonzero(window)
        if len(xs) == 0:
            return None
        box = [
            float(shape.x + xs.min()),
            float(shape.y + ys.min()),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        ]
        return box, len(xs)


def _place(rng: np.random.Generator, canvas: _Canvas, shape: _Shape, near: _Shape | None = None) -> None:
    if near is not None:
        spread = 0.7 * (near.width + shape.width) / 2
        cx = near.x + near.width / 2 + rng.uniform(-spread, spread)
        cy = near.y + near.height / 2 + rng.uniform(-spread, spread)
        shape.x, shape.y = round(cx - shape.width / 2), round(cy - shape.height / 2)
    else:
        shape.x = int(rng.integers(0, IMAGE_SIZE - shape.width + 1))
        shape.y = int(rng.integers(0, IMAGE_SIZE - shape.height + 1))


def _overlaps(shape: _Shape, box: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = box
    return shape.x < x1 and x0 < shape.x + shape.width and shape.y < y1 and y0 < shape.y + shape.height


def _compose(split: str, index: int) -> tuple[np.ndarray, list[dict[str, Any]], list[dict[str, Any]]]:
    """The image, its annotations, and the individual boxes of crowd-cluster members (for training). The steps
    draw from one random stream in a fixed order: changing the order changes every image."""
    if split not in SPLITS:
        raise DatasetError(f"unknown small-object split {split!r}", f"use one of {sorted(SPLITS)}")
    if index < 0:
        raise DatasetError(f"sample index {index} of split {split!r} is negative")
    rng = _rng(split, index)
    background = _background(rng)
    _draw_clutter(rng, background)
    canvas = _Canvas(np.asarray(background, np.float32).copy())
    annotations: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    reserved: list[tuple[int, int, int, int]] = []
    if rng.random() < CLUSTER_PROBABILITY:
        reserved.append(_draw_cluster(rng, canvas, annotations, members))
    object_ids, categories = _draw_items(rng, canvas, reserved)
    _draw_occluders(rng, canvas, object_ids)
    for item_id in object_ids:
        found = canvas.visible_box(item_id)
        if found is None:  # cannot happen: fits() keeps at least half of every object visible
            raise AssertionError(f"object {item_id} of {split}/{index} vanished")
        annotations.append(
            {"category_id": categories[item_id], "bbox": found[0], "area": float(found[1]), "iscrowd": 0}
        )
    image = canvas.image
    ox, oy = (int(v) for v in rng.integers(0, IMAGE_SIZE, 2))
    texture = _grain_tile()[oy : oy + IMAGE_SIZE, ox : ox + IMAGE_SIZE] * rng.uniform(2, 6)
    texture += _value_noise(rng, int(rng.integers(48, 128)), IMAGE_SIZE) * rng.uniform(3, 8)
    texture += 0.5  # rounds on the cast below
    image += texture[..., None]
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8), annotations, members


def _draw_cluster(
    rng: np.random.Generator, canvas: _Canvas, annotations: list[dict[str, Any]], members: list[dict[str, Any]]
) -> tuple[int, int, int, int]:
    """A dense cluster of one class's tiny objects: one `iscrowd=1` annotation, its members for training; the
    region (with a margin) that other items keep clear of."""
    category_id = int(rng.integers(1, 6))
    region = int(rng.integers(24, 52))
    rx, ry = (int(v) for v in rng.integers(0, IMAGE_SIZE - region, 2))
    member_ids = []
    for k in range(int(rng.integers(8, 21))):
        shape = _Shape(_object_mask(rng, category_id, rng.uniform(MIN_SIDE, 7.5)))
        shape.x = rx + int(rng.integers(0, region - shape.width + 1))
        shape.y = ry + int(rng.integers(0, region - shape.height + 1))
        canvas.draw(shape, _class_colour(rng, category_id), _MEMBER_ID0 + k)
        member_ids.append(_MEMBER_ID0 + k)
    boxes = [b for b in (canvas.visible_box(i) for i in member_ids) if b is not None]
    x0 = min(b[0][0] for b in boxes)
    y0 = min(b[0][1] for b in boxes)
    x1 = max(b[0][0] + b[0][2] for b in boxes)
    y1 = max(b[0][1] + b[0][3] for b in boxes)
    annotations.append(
        {"category_id": category_id, "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 1}
    )
    for i in member_ids:
        found = canvas.visible_box(i)
        if found is not None and found[1] >= 0.5 * canvas.drawn[i]:
            members.append({"category_id": category_id, "bbox": found[0], "area": float(found[1]), "iscrowd": 0})
    return int(x0) - 2, int(y0) - 2, int(x1) + 2, int(y1) + 2


def _draw_items(
    rng: np.random.Generator, canvas: _Canvas, reserved: list[tuple[int, int, int, int]]
) -> tuple[list[int], dict[int, int]]:
    """Objects and distractors in a random order, each placed where it leaves the others visible enough."""
    items = [("object", int(rng.integers(1, 6))) for _ in range(int(rng.integers(*OBJECTS_PER_IMAGE, endpoint=True)))]
    items += [("distractor", 0)] * int(rng.integers(4, 21))
    order = rng.permutation(len(items))
    object_ids: list[int] = []
    categories: dict[int, int] = {}
    for position in order:
        kind, category_id = items[position]
        if kind == "object":
            side = _sample_side(rng)
            shape = _Shape(_object_mask(rng, category_id, side))
            colour = _class_colour(rng, category_id)
            min_visible = 1.0 if side < WHOLE_BELOW else 0.5
        else:
            shape = _Shape(_distractor_mask(rng))
            hue = (
                CLASS_HUES[int(rng.integers(1, 6))] + rng.uniform(-9, 9) if rng.random() < 0.75 else rng.uniform(0, 360)
            )
            colour = _hsv(hue, rng.uniform(0.5, 1.0), rng.uniform(0.55, 1.0))
        for _attempt in range(30):
            near = None
            if object_ids and rng.random() < 0.15:
                near = canvas.shapes[object_ids[int(rng.integers(0, len(object_ids)))]]
            _place(rng, canvas, shape, near)
            if canvas.fits(shape) and not any(_overlaps(shape, box) for box in reserved):
                break
        else:
            continue
        if kind == "object":
            item_id = len(object_ids) + 1
            canvas.draw(shape, colour, item_id, min_visible)
            object_ids.append(item_id)
            categories[item_id] = category_id
        else:
            canvas.draw(shape, colour, _UNTRACKED)
    return object_ids, categories


def _draw_occluders(rng: np.random.Generator, canvas: _Canvas, object_ids: list[int]) -> None:
    """Sometimes, a few occluders beside larger objects (each object stays at least half visible)."""
    occludable = [i for i in object_ids if max(canvas.shapes[i].width, canvas.shapes[i].height) >= 10]
    if occludable and rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 6))):
            target = canvas.shapes[occludable[int(rng.integers(0, len(occludable)))]]
            side = max(target.width, target.height)
            shape = _Shape(_occluder_mask(rng, side))
            angle, distance = rng.uniform(0, 2 * math.pi), side * rng.uniform(0.45, 0.8)
            cx = target.x + target.width / 2 + distance * math.cos(angle)
            cy = target.y + target.height / 2 + distance * math.sin(angle)
            shape.x, shape.y = round(cx - shape.width / 2), round(cy - shape.height / 2)
            if canvas.fits(shape):
                canvas.draw(shape, _muted(rng, 0.1, 0.9), _UNTRACKED)


def generate_sample(split: str, index: int, crowd_members: bool = False) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Image `index` of `split`: a 512×512×3 uint8 RGB array and its COCO-style annotations
    (`category_id`, `bbox` [x, y, w, h] in pixels, `area`, `iscrowd`), deterministic from
    (`BASE_SEED`, split, index).

    `crowd_members=True` is for training: each crowd region is replaced by boxes of its members that are
    at least half visible, so a detector is not taught that tiny objects in a cluster are background.
    """
    image, annotations, members = _compose(split, index)
    if crowd_members:
        annotations = [a for a in annotations if not a["iscrowd"]] + members
    return image, annotations


def split_size(split: str) -> int:
    if split not in SPLITS:
        raise DatasetError(f"unknown small-object split {split!r}", f"use one of {sorted(SPLITS)}")
    return SPLITS[split]


def coco_instances(split: str, annotations_per_image: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The COCO json of the first `len(annotations_per_image)` images of `split`, given their annotations
    (as `generate_sample` returns them); image `index` gets id `index + 1` and file `{id:06d}.png`."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index, sample_annotations in enumerate(annotations_per_image):
        image_id = index + 1
        images.append({"id": image_id, "file_name": f"{image_id:06d}.png", "width": IMAGE_SIZE, "height": IMAGE_SIZE})
        for annotation in sample_annotations:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **annotation})
    return {
        "info": {
            "description": f"synthetic small-object detection set, split {split}",
            "version": GENERATOR_VERSION,
            "seed": BASE_SEED,
        },
        "images": images,
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }


def write_split(dest_split_dir: Path, split: str, count: int | None = None) -> None:
    """Materialise `split` (or its first `count` images) in the harness layout:
    `inputs/index.json` + PNG images, `hidden/instances.json` (COCO, ignore regions as iscrowd=1)."""
    count = split_size(split) if count is None else count
    dest_split_dir = Path(dest_split_dir)
    inputs, hidden = dest_split_dir / "inputs", dest_split_dir / "hidden"
    inputs.mkdir(parents=True, exist_ok=True)
    hidden.mkdir(parents=True, exist_ok=True)
    annotations_per_image = []
    for index in range(count):
        image, annotations = generate_sample(split, index)
        Image.fromarray(image).save(inputs / f"{index + 1:06d}.png", format="PNG", compress_level=3)
        annotations_per_image.append(annotations)
    coco = coco_instances(split, annotations_per_image)
    index_json = {
        "ids": [str(r["id"]) for r in coco["images"]],
        "files": [r["file_name"] for r in coco["images"]],
    }
    (inputs / "index.json").write_text(json.dumps(index_json) + "\n")
    (hidden / "instances.json").write_text(json.dumps(coco) + "\n")
