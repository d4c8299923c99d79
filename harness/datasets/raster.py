"""Raster operations for the generated datasets, in plain NumPy, so that their pixels depend on no image library.

OpenCV's warps, resizes and blurs change their pixels between releases (opencv-python-headless 4.14, 5.0 and
5.1 render the same scene-text sample three ways), and FreeType's glyphs change with Pillow's wheels: a
benchmark's test set cannot depend on either. Everything here is element-wise float64 arithmetic with a fixed
order of operations (no BLAS, no reductions whose order a library may change), rounded to uint8 at the end;
the 3×3 and 8×8 linear algebra of homographies is done in Python floats.

Conventions: an image is indexed `[row, column]`; continuous coordinates put pixel (i, j) on the unit square
[j, j+1) × [i, i+1), so its centre is (j + 0.5, i + 0.5) — the convention of the datasets' quadrilaterals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Matrix = list[list[float]]


# -- linear algebra of homographies (Python floats: IEEE arithmetic in a fixed order) -------------------------


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting."""
    n = len(b)
    rows = [list(a[i]) + [b[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        if rows[pivot][col] == 0.0:
            raise ValueError("singular system: the points are degenerate")
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, n):
            factor = rows[r][col] / rows[col][col]
            if factor != 0.0:
                for c in range(col, n + 1):
                    rows[r][c] -= factor * rows[col][c]
    solution = [0.0] * n
    for r in range(n - 1, -1, -1):
        acc = rows[r][n]
        for c in range(r + 1, n):
            acc -= rows[r][c] * solution[c]
        solution[r] = acc / rows[r][r]
    return solution


def perspective_transform(src: np.ndarray, dst: np.ndarray) -> Matrix:
    """The 3×3 homography H (H[2][2] = 1) that maps the four `src` points onto the four `dst` points."""
    a: list[list[float]] = []
    b: list[float] = []
    for (x, y), (u, v) in zip(np.asarray(src, np.float64).tolist(), np.asarray(dst, np.float64).tolist(), strict=True):
        a.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y])
        b.append(u)
        a.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y])
        b.append(v)
    h = _solve(a, b)
    return [[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1.0]]


def invert(m: Matrix) -> Matrix:
    """The inverse of a 3×3 matrix (adjugate over determinant)."""
    (a, b, c), (d, e, f), (g, h, i) = m
    cof = [
        [e * i - f * h, c * h - b * i, b * f - c * e],
        [f * g - d * i, a * i - c * g, c * d - a * f],
        [d * h - e * g, b * g - a * h, a * e - b * d],
    ]
    det = a * cof[0][0] + b * cof[1][0] + c * cof[2][0]
    if det == 0.0:
        raise ValueError("singular homography")
    return [[value / det for value in row] for row in cof]


def apply_homography(m: Matrix, points: np.ndarray) -> np.ndarray:
    """`points` (..., 2) mapped by `m`, element-wise (no matrix product, so no BLAS)."""
    pts = np.asarray(points, np.float64)
    x, y = pts[..., 0], pts[..., 1]
    w = m[2][0] * x + m[2][1] * y + m[2][2]
    return np.stack([(m[0][0] * x + m[0][1] * y + m[0][2]) / w, (m[1][0] * x + m[1][1] * y + m[1][2]) / w], axis=-1)


# -- resampling ---------------------------------------------------------------------------------------------


def _cubic_weights(t: np.ndarray) -> list[np.ndarray]:
    """Keys' cubic convolution (a = -0.75) for the taps at offsets -1, 0, 1, 2 from floor(x)."""
    a = -0.75

    def near(d: np.ndarray) -> np.ndarray:  # |d| <= 1
        return ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0

    def far(d: np.ndarray) -> np.ndarray:  # 1 < |d| < 2
        return ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a

    return [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)]


def _resize_axis(image: np.ndarray, size: int, axis: int, cubic: bool) -> np.ndarray:
    """Resample one axis to `size` samples (pixel centres aligned, edges replicated)."""
    n = image.shape[axis]
    centres = (np.arange(size, dtype=np.float64) + 0.5) * (n / size) - 0.5
    base = np.floor(centres)
    t = centres - base
    base = base.astype(np.int64)
    if cubic:
        offsets, weights = (-1, 0, 1, 2), _cubic_weights(t)
    else:
        offsets, weights = (0, 1), [1.0 - t, t]
    shape = [1] * image.ndim
    shape[axis] = size
    out = np.zeros(image.shape[:axis] + (size,) + image.shape[axis + 1 :], np.float64)
    for offset, weight in zip(offsets, weights, strict=True):
        taps = np.take(image, np.clip(base + offset, 0, n - 1), axis=axis)
        out += taps * weight.reshape(shape)
    return out


def resize(image: np.ndarray, height: int, width: int, cubic: bool = False) -> np.ndarray:
    """`image` (H×W or H×W×C) resampled to height×width, bilinear or bicubic, as float64."""
    out = _resize_axis(np.asarray(image, np.float64), height, 0, cubic)
    return _resize_axis(out, width, 1, cubic)


def warp_perspective(mask: np.ndarray, to_dst: Matrix, height: int, width: int) -> np.ndarray:
    """A uint8 H×W mask mapped by the homography `to_dst` (continuous coordinates) onto a height×width uint8
    canvas, bilinear, zero outside the source."""
    back = invert(to_dst)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    src = apply_homography(back, np.stack([xs + 0.5, ys + 0.5], axis=-1))
    # Continuous (x, y) to index space of pixel centres, then bilinear taps into a zero-padded source.
    u, v = src[..., 0] - 0.5, src[..., 1] - 0.5
    u0, v0 = np.floor(u), np.floor(v)
    tu, tv = u - u0, v - v0
    padded = np.pad(np.asarray(mask, np.float64), 1)
    rows, cols = padded.shape

    def tap(dv: int, du: int) -> np.ndarray:
        r = np.clip(v0.astype(np.int64) + 1 + dv, 0, rows - 1)
        c = np.clip(u0.astype(np.int64) + 1 + du, 0, cols - 1)
        return padded[r, c]

    value = (tap(0, 0) * (1.0 - tu) + tap(0, 1) * tu) * (1.0 - tv) + (tap(1, 0) * (1.0 - tu) + tap(1, 1) * tu) * tv
    return to_uint8(value)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A uint8 H×W image blurred by a separable Gaussian of `sigma` px (kernel 6σ+1 wide, mirrored borders)."""
    radius = max(1, int(math.floor(3.0 * sigma + 0.5)))
    taps = [math.exp(-(k * k) / (2.0 * sigma * sigma)) for k in range(-radius, radius + 1)]
    total = 0.0
    for weight in taps:
        total += weight
    taps = [weight / total for weight in taps]
    out = np.asarray(image, np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric" if n == 1 else "reflect")
        acc = np.zeros_like(out)
        for k, weight in enumerate(taps):
            acc += weight * np.take(padded, np.arange(k, k + n), axis=axis)
        out = acc
    return to_uint8(out)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Round half up and clip to 0..255."""
    return np.clip(np.floor(np.asarray(values, np.float64) + 0.5), 0, 255).astype(np.uint8)


# -- filled shapes (coverage of pixel centres) ----------------------------------------------------------------


def _box(height: int, width: int, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int] | None:
    """Rows and columns whose pixel centres may lie in [x0, x1] × [y0, y1], clipped to the image."""
    c0, c1 = max(0, int(math.floor(x0 - 0.5))), min(width, int(math.ceil(x1 - 0.5)) + 1)
    r0, r1 = max(0, int(math.floor(y0 - 0.5))), min(height, int(math.ceil(y1 - 0.5)) + 1)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def _centres(r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[r0:r1, c0:c1].astype(np.float64)
    return xs + 0.5, ys + 0.5


def fill_polygon(canvas: np.ndarray, points: Sequence[Sequence[float]], colour: Sequence[int]) -> None:
    """Paint the pixels whose centres lie inside the polygon (even-odd rule) with `colour`, in place."""
    pts = np.asarray(points, np.float64)
    box = _box(canvas.shape[0], canvas.shape[1], *pts.min(axis=0), *pts.max(axis=0))
    if box is None:
        return
    xs, ys = _centres(*box)
    inside = np.zeros(xs.shape, bool)
    for (xa, ya), (xb, yb) in zip(pts.tolist(), np.roll(pts, -1, axis=0).tolist(), strict=True):
        if ya == yb:
            continue
        crosses = (ya > ys) != (yb > ys)
        x_at = xa + (ys - ya) * ((xb - xa) / (yb - ya))
        inside ^= crosses & (xs < x_at)
    region = canvas[box[0] : box[1], box[2] : box[3]]
    region[inside] = colour


def fill_ellipse(canvas: np.ndarray, cx: float, cy: float, rx: float, ry: float, colour: Sequence[int]) -> None:
    """Paint the pixels whose centres lie inside the axis-aligned ellipse, in place."""
    box = _box(canvas.shape[0], canvas.shape[1], cx - rx, cy - ry, cx + rx, cy + ry)
    if box is None:
        return
    xs, ys = _centres(*box)
    dx, dy = (xs - cx) / rx, (ys - cy) / ry
    region = canvas[box[0] : box[1], box[2] : box[3]]
    region[dx * dx + dy * dy <= 1.0] = colour


def fill_rectangle(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: Sequence[int]) -> None:
    box = _box(canvas.shape[0], canvas.shape[1], x0, y0, x1, y1)
    if box is None:
        return
    xs, ys = _centres(*box)
    region = canvas[box[0] : box[1], box[2] : box[3]]
    region[(xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)] = colour


def draw_line(
    canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, width: float, colour: Sequence[int]
) -> None:
    """A straight stroke `width` px wide (a rectangle around the segment), in place."""
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0.0:
        return
    nx, ny = -(y1 - y0) / length * width / 2.0, (x1 - x0) / length * width / 2.0
    fill_polygon(canvas, [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], colour)


def composite(base: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """An RGBA uint8 `overlay` over an opaque RGB uint8 `base`: (c·a + b·(255 − a) + 127) // 255."""
    alpha = overlay[..., 3:4].astype(np.int32)
    blended = (overlay[..., :3].astype(np.int32) * alpha + base.astype(np.int32) * (255 - alpha) + 127) // 255
    return blended.astype(np.uint8)
