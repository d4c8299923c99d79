"""The NumPy raster operations the generated datasets are drawn with: exact on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.datasets import raster


def test_perspective_transform_maps_the_points_and_inverts():
    src = np.array([[0, 0], [40, 0], [40, 10], [0, 10]], np.float64)
    dst = np.array([[3.5, 2.0], [45.0, 6.0], [41.0, 19.0], [1.0, 14.5]])
    h = raster.perspective_transform(src, dst)
    assert np.allclose(raster.apply_homography(h, src), dst, atol=1e-9)
    back = raster.apply_homography(raster.invert(h), dst)
    assert np.allclose(back, src, atol=1e-9)
    with pytest.raises(ValueError, match="degenerate"):
        raster.perspective_transform(np.zeros((4, 2)), dst)


def test_warp_identity_and_integer_shift_are_exact():
    mask = np.random.default_rng(1).integers(0, 256, (9, 13), dtype=np.uint8)
    square = np.array([[0, 0], [13, 0], [13, 9], [0, 9]], np.float64)
    identity = raster.perspective_transform(square, square)
    assert np.array_equal(raster.warp_perspective(mask, identity, 9, 13), mask)
    shifted = raster.warp_perspective(mask, raster.perspective_transform(square, square + [2, 1]), 12, 16)
    assert np.array_equal(shifted[1:10, 2:15], mask)
    assert shifted[0].max() == 0 and shifted[:, :2].max() == 0 and shifted[10:].max() == 0


def test_resize_keeps_constants_and_interpolates_ramps():
    flat = np.full((3, 5, 3), 77.0)
    for cubic in (False, True):
        assert np.allclose(raster.resize(flat, 30, 50, cubic=cubic), 77.0)
    ramp = np.arange(4, dtype=np.float64)[None, :].repeat(2, axis=0)  # 0 1 2 3 across
    doubled = raster.resize(ramp, 2, 8)
    # Output centres at (j + 0.5) / 2 - 0.5 in input pixels; edges replicate.
    assert np.allclose(doubled[0], [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])


def test_gaussian_blur_keeps_constants_and_mass():
    flat = np.full((20, 30), 100, np.uint8)
    assert np.array_equal(raster.gaussian_blur(flat, 2.5), flat)
    dot = np.zeros((41, 41), np.uint8)
    dot[20, 20] = 255
    blurred = raster.gaussian_blur(dot, 1.5).astype(np.int64)
    assert blurred[20, 20] < 255 and blurred.sum() == pytest.approx(255, abs=10)
    assert np.array_equal(blurred, blurred[::-1, ::-1])  # symmetric


def test_filled_shapes_cover_pixel_centres():
    canvas = np.zeros((10, 10, 4), np.uint8)
    raster.fill_polygon(canvas, [(2, 2), (6, 2), (6, 5), (2, 5)], (1, 2, 3, 255))
    covered = canvas[..., 3] == 255
    assert covered.sum() == 12 and covered[2:5, 2:6].all()
    canvas[:] = 0
    raster.fill_rectangle(canvas, 2, 2, 6, 5, (1, 2, 3, 255))
    assert (canvas[..., 3] == 255).sum() == 12
    canvas[:] = 0
    raster.fill_ellipse(canvas, 5, 5, 3, 3, (9, 9, 9, 200))
    inside = canvas[..., 3] == 200
    assert inside[5, 5] and not inside[0, 0] and inside.sum() == 32  # pixel centres within radius 3 of (5, 5)
    canvas[:] = 0
    raster.draw_line(canvas, 0, 0, 10, 10, 1, (0, 0, 0, 255))
    assert all(canvas[i, i, 3] == 255 for i in range(10)) and canvas[0, 9, 3] == 0


def test_composite_blends_with_rounding():
    base = np.full((1, 2, 3), 100, np.uint8)
    overlay = np.array([[[200, 0, 50, 255], [200, 0, 50, 128]]], np.uint8)
    out = raster.composite(base, overlay)
    assert out[0, 0].tolist() == [200, 0, 50]
    assert out[0, 1].tolist() == [
        (200 * 128 + 100 * 127 + 127) // 255,
        (100 * 127 + 127) // 255,
        (50 * 128 + 100 * 127 + 127) // 255,
    ]
