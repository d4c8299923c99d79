"""The classification track's default dataset (track version 3): 50 classes of procedurally rendered
textured shapes at 32×32 RGB, generated from a seed with NumPy alone.

A class is a (shape, texture) pair: ten shapes (disc, square, triangle, ring, cross, ellipse, half-disc,
hexagram, crescent, L) times five textures painted in the object's own frame (solid, stripes, checker,
dots, concentric rings), so no single cue names the class: the shape is shared by five classes, the texture
by ten, and colour by none (both colours of every object are drawn at random).

What makes it hard for a small network at 32×32:
- pose: any rotation (a uniformly random direction), scale 0.55–0.85 of the half-width, aspect 0.8–1.2,
  centre shifted up to 0.15 of the half-width (objects may be cut by the border);
- texture frequency varies per object (1.2–2.0 bands per radius: stripes 4–11 px wide), and its two colours
  may be close;
- background: a gradient between two random colours under a faint stripe pattern, plus one to three smaller
  distractor objects drawn from every class (so a texture or shape seen in a corner is no answer);
- occlusion: 35 % of the images carry a bar of random colour across the object;
- blur (a 3×3 binomial filter on 35 % of the images) and Gaussian noise (σ up to 8 grey levels).

Determinism: every split is a pure function of (`BASE_SEED`, split): one `numpy.random.Generator` (PCG64)
per split draws every parameter and the noise in a fixed order. Per-pixel arithmetic uses only +, −, ×, ÷,
`sqrt`, `floor` and comparisons (correctly rounded in IEEE 754), no trigonometry and no reductions whose
order could change between NumPy builds; rotations come from normalised Gaussian vectors and the fixed
polygon vertices are decimal constants. Each object is drawn at 64×64 and averaged 2×2 down (anti-aliasing).

Labels are balanced (every class has exactly `count / 50` images per split) and shuffled; sample ids are
`shapetex-<split>-NNNNN`, the position in that shuffled order, so neither ids nor file order leak labels.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from harness.datasets.classification_split import write_classification_split
from harness.errors import DatasetError

BASE_SEED = 20_261_205
SPLITS: dict[str, int] = {"train": 20_000, "val": 5_000, "test": 10_000}
SHAPES: tuple[str, ...] = (
    "disc",
    "square",
    "triangle",
    "ring",
    "cross",
    "ellipse",
    "halfdisc",
    "hexagram",
    "crescent",
    "ell",
)
TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker", "dots", "rings")
CLASSES: list[str] = [f"{shape}-{texture}" for shape in SHAPES for texture in TEXTURES]
IMAGE_SIZE = 32
CALIBRATION_SIZE = 128
_SUPER = 2  # objects are drawn at IMAGE_SIZE * _SUPER and averaged down
_CHUNK = 500  # images rendered at once (bounds memory: about 60 MB of float32 per chunk)
_DISTRACTORS = 3  # at most; each image has 1-3
# Unit half-planes (nx, ny, c): a point is inside when nx*x + ny*y < c for all three. An upward triangle and
# its downward twin (the hexagram is their union); cos 30° = 0.866025, sin 30° = 0.5.
_TRIANGLE_UP = ((0.0, -1.0, 0.5), (0.866025, 0.5, 0.5), (-0.866025, 0.5, 0.5))
_TRIANGLE_DOWN = ((0.0, 1.0, 0.5), (0.866025, -0.5, 0.5), (-0.866025, -0.5, 0.5))


def _inside_polygon(x: np.ndarray, y: np.ndarray, planes: tuple, scale: float) -> np.ndarray:
    inside = np.ones(x.shape, dtype=bool)
    for nx, ny, c in planes:
        inside &= nx * x + ny * y < c * scale
    return inside


def _shape_mask(shape: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether each point (object frame, radius 1) is inside shape number `shape`."""
    r2 = x * x + y * y
    ax, ay = np.abs(x), np.abs(y)
    if shape == 0:
        return r2 < 1.0
    if shape == 1:
        return np.maximum(ax, ay) < 0.8
    if shape == 2:
        return _inside_polygon(x, y - 0.15, _TRIANGLE_UP, 2.0)
    if shape == 3:
        return (r2 < 1.0) & (r2 > 0.36)
    if shape == 4:
        return ((ax < 0.3) & (ay < 0.95)) | ((ay < 0.3) & (ax < 0.95))
    if shape == 5:
        return x * x + y * y * 3.0 < 1.0
    if shape == 6:
        return (r2 < 1.0) & (y > -0.25)
    if shape == 7:
        return _inside_polygon(x, y, _TRIANGLE_UP, 1.9) | _inside_polygon(x, y, _TRIANGLE_DOWN, 1.9)
    if shape == 8:
        return (r2 < 1.0) & ((x - 0.45) * (x - 0.45) + y * y > 0.6)
    return (np.maximum(ax, ay) < 0.85) & ~((x > -0.2) & (y < 0.2))


def _texture(texture: int, x: np.ndarray, y: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """The mix between an object's two colours (0 or 1) at each point of its frame."""
    u, v = x * freq, y * freq
    if texture == 0:
        return np.zeros(x.shape, dtype=np.float32)
    if texture == 1:
        return (np.floor(u) % 2.0).astype(np.float32)
    if texture == 2:
        return ((np.floor(u) + np.floor(v)) % 2.0).astype(np.float32)
    if texture == 3:
        du, dv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
        return (du * du + dv * dv < 0.09).astype(np.float32)
    return (np.floor(np.sqrt(u * u + v * v)) % 2.0).astype(np.float32)


def _draw_params(rng: np.random.Generator, labels: np.ndarray, scale: tuple[float, float], spread: float) -> dict:
    """Every random choice of one object per image, drawn in a fixed order."""
    n = len(labels)
    direction = rng.standard_normal((n, 2))
    norm = np.sqrt(direction[:, 0] * direction[:, 0] + direction[:, 1] * direction[:, 1]) + 1e-12
    colour_a = rng.random((n, 3))
    colour_b = np.clip(1.0 - colour_a + rng.uniform(-0.2, 0.2, (n, 3)), 0.0, 1.0)
    return {
        "shape": labels // len(TEXTURES),
        "texture": labels % len(TEXTURES),
        "cos": direction[:, 0] / norm,
        "sin": direction[:, 1] / norm,
        "radius": rng.uniform(scale[0], scale[1], n),
        "aspect": rng.uniform(0.8, 1.2, n),
        "cx": rng.uniform(-spread, spread, n),
        "cy": rng.uniform(-spread, spread, n),
        "freq": rng.uniform(1.2, 2.0, n),
        "colour_a": colour_a,
        "colour_b": colour_b,
    }


def _grid() -> tuple[np.ndarray, np.ndarray]:
    size = IMAGE_SIZE * _SUPER
    centres = (np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0
    return centres[None, :, None], centres[None, None, :]  # y down the rows, x along the columns


def _paint(canvas: np.ndarray, params: dict, rows: slice, visible: np.ndarray) -> None:
    """Draw one object per image of the chunk `rows` onto `canvas` (n, S, S, 3), where `visible`."""
    gy, gx = _grid()
    p = {k: v[rows] for k, v in params.items()}
    dx = gx - p["cx"][:, None, None]
    dy = gy - p["cy"][:, None, None]
    cos, sin = p["cos"][:, None, None], p["sin"][:, None, None]
    radius = p["radius"][:, None, None]
    x = (cos * dx + sin * dy) / (radius * p["aspect"][:, None, None])
    y = (cos * dy - sin * dx) * p["aspect"][:, None, None] / radius
    mask = np.zeros(x.shape, dtype=bool)
    mix = np.zeros(x.shape, dtype=np.float32)
    freq = p["freq"][:, None, None]
    for shape in range(len(SHAPES)):
        sel = np.flatnonzero(p["shape"] == shape)
        if len(sel):
            mask[sel] = _shape_mask(shape, x[sel], y[sel])
    for texture in range(len(TEXTURES)):
        sel = np.flatnonzero(p["texture"] == texture)
        if len(sel):
            mix[sel] = _texture(texture, x[sel], y[sel], freq[sel])
    a, b = p["colour_a"][:, None, None, :], p["colour_b"][:, None, None, :]
    colour = a + (b - a) * mix[..., None]
    where = (mask & visible[:, None, None])[..., None]
    canvas[:] = np.where(where, colour, canvas)


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """A gradient between two random colours in a random direction, under a faint stripe pattern."""
    gy, gx = _grid()
    start, end = rng.random((n, 3)), rng.random((n, 3))
    direction = rng.standard_normal((n, 2))
    norm = np.sqrt(direction[:, 0] * direction[:, 0] + direction[:, 1] * direction[:, 1]) + 1e-12
    cos, sin = (direction[:, 0] / norm)[:, None, None], (direction[:, 1] / norm)[:, None, None]
    ramp = (cos * gx + sin * gy) * 0.5 + 0.5
    freq = rng.uniform(2.0, 6.0, n)[:, None, None]
    pattern = (np.floor((sin * gx - cos * gy) * freq) % 2.0) * rng.uniform(0.0, 0.08, n)[:, None, None]
    canvas = start[:, None, None, :] + (end - start)[:, None, None, :] * ramp[..., None]
    return canvas + pattern[..., None]


def _occlude(rng: np.random.Generator, canvas: np.ndarray) -> None:
    """A bar of random colour, width and direction across the centre region of half the images."""
    n = canvas.shape[0]
    gy, gx = _grid()
    on = rng.random(n) < 0.35
    direction = rng.standard_normal((n, 2))
    norm = np.sqrt(direction[:, 0] * direction[:, 0] + direction[:, 1] * direction[:, 1]) + 1e-12
    cos, sin = (direction[:, 0] / norm)[:, None, None], (direction[:, 1] / norm)[:, None, None]
    offset = rng.uniform(-0.4, 0.4, n)[:, None, None]
    half_width = rng.uniform(0.05, 0.12, n)[:, None, None]
    colour = rng.random((n, 3))[:, None, None, :]
    bar = np.abs(cos * gx + sin * gy - offset) < half_width
    canvas[:] = np.where((bar & on[:, None, None])[..., None], colour, canvas)


def _downsample(canvas: np.ndarray) -> np.ndarray:
    """2×2 average, written as explicit sums so the order of additions is fixed."""
    return (canvas[:, 0::2, 0::2] + canvas[:, 1::2, 0::2] + canvas[:, 0::2, 1::2] + canvas[:, 1::2, 1::2]) * 0.25


def _blur(images: np.ndarray, on: np.ndarray) -> np.ndarray:
    """A 3×3 binomial blur (edges repeated) on the images where `on`."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    rows = padded[:, :-2] + 2.0 * padded[:, 1:-1] + padded[:, 2:]
    both = (rows[:, :, :-2] + 2.0 * rows[:, :, 1:-1] + rows[:, :, 2:]) * (1.0 / 16.0)
    return np.where(on[:, None, None, None], both, images)


def _render_chunk(rng: np.random.Generator, main: dict, distractors: list[dict], rows: slice) -> np.ndarray:
    n = rows.stop - rows.start
    canvas = _background(rng, n)
    count = rng.integers(1, _DISTRACTORS + 1, n)
    for k, params in enumerate(distractors):
        _paint(canvas, params, rows, count > k)
    _paint(canvas, main, rows, np.ones(n, dtype=bool))
    _occlude(rng, canvas)
    images = _blur(_downsample(canvas), rng.random(n) < 0.35)
    noise = rng.standard_normal(images.shape) * rng.uniform(0.0, 8.0 / 255.0, n)[:, None, None, None]
    return np.clip(np.floor((images + noise) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"the shapetex dataset has no split `{split}`", f"use one of: {', '.join(SPLITS)}")


def _split_rng(split: str) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, list(SPLITS).index(split)])


def _balanced_labels(rng: np.random.Generator, count: int) -> np.ndarray:
    """Every class `count / 50` times, shuffled: the first draw of a split's generator."""
    return rng.permutation(np.repeat(np.arange(len(CLASSES), dtype=np.int64), count // len(CLASSES)))


def split_labels(split: str) -> np.ndarray:
    """The labels of `split` without rendering its images (the same first draw `generate` makes)."""
    _check_split(split)
    return _balanced_labels(_split_rng(split), SPLITS[split])


def generate(split: str, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render `split` (or, for tests, a `count`-image set from the split's seed: not a prefix of the split)."""
    _check_split(split)
    count = SPLITS[split] if count is None else count
    if count % len(CLASSES):
        raise ValueError(f"count must be a multiple of {len(CLASSES)} (balanced classes), got {count}")
    rng = _split_rng(split)
    labels = _balanced_labels(rng, count)
    main = _draw_params(rng, labels, (0.55, 0.85), 0.15)
    distractors = [
        _draw_params(rng, rng.integers(0, len(CLASSES), count), (0.12, 0.25), 0.85) for _ in range(_DISTRACTORS)
    ]
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for start in range(0, count, _CHUNK):
        rows = slice(start, min(start + _CHUNK, count))
        images[rows] = _render_chunk(rng, main, distractors, rows)
    return images, labels


@cache
def _generate(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = generate(split)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_shapetex_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) int64 of `split` (sizes in `SPLITS`)."""
    _check_split(split)
    images, labels = _generate(split)
    return images.copy(), labels.copy()


def split_ids(split: str) -> list[str]:
    """Sample ids of `split`, in the order of `load_shapetex_split`."""
    _check_split(split)
    return [f"shapetex-{split}-{i:05d}" for i in range(SPLITS[split])]


def write_split(dest_split_dir: Path, split: str) -> int:
    """Materialise `split` as PNG inputs + `hidden/labels.json` in `dest_split_dir`; returns the count."""
    images, labels = load_shapetex_split(split)
    return write_classification_split(Path(dest_split_dir), split_ids(split), images, labels, CLASSES)
