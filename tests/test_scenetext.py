"""The synthetic scene-text dataset: determinism, geometry of words and characters, files on disk."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from harness.datasets.scenetext import (
    DONT_CARE,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    LEGIBLE_MIN_HEIGHT,
    SPLITS,
    _format_gt_line,
    generate_sample,
    write_split,
)
from harness.errors import DatasetError

# Pixels and ground truth of test sample 0 (generator version 2: NumPy only). A change means the shipped dataset
# changed: that is a new track version, not a test to update casually.
TEST_0_DIGEST = "d0c36abc473b14cbfef1d22b19d90cd7e1f161e34263411a6f3dceeed18eeeba"


def _digest(image: np.ndarray, words) -> str:
    digest = hashlib.sha256(image.tobytes())
    digest.update("".join(_format_gt_line(w) + "\n" for w in words).encode("utf-8"))
    return digest.hexdigest()


def test_samples_are_deterministic_and_distinct():
    image_a, words_a = generate_sample("test", 3)
    image_b, words_b = generate_sample("test", 3)
    assert image_a.shape == (IMAGE_HEIGHT, IMAGE_WIDTH, 3) and image_a.dtype == np.uint8
    assert np.array_equal(image_a, image_b)
    assert [w.text for w in words_a] == [w.text for w in words_b]
    for wa, wb in zip(words_a, words_b, strict=True):
        assert np.array_equal(wa.quad, wb.quad) and np.array_equal(wa.chars, wb.chars)
    assert not np.array_equal(image_a, generate_sample("test", 4)[0])
    assert not np.array_equal(generate_sample("val", 0)[0], generate_sample("test", 0)[0])


def test_golden_digest_of_first_test_sample():
    image, words = generate_sample("test", 0)
    assert _digest(image, words) == TEST_0_DIGEST


def test_generation_needs_no_image_library(tmp_path):
    """OpenCV and FreeType changed the pixels between releases; the generator must not reach them. Run it with
    both made unimportable: the same digest comes out."""
    script = f"""
import hashlib, sys
sys.modules["cv2"] = None
sys.modules["PIL.ImageFont"] = sys.modules["PIL.ImageDraw"] = sys.modules["PIL._imagingft"] = None
from harness.datasets.scenetext import generate_sample, _format_gt_line
image, words = generate_sample("test", 0)
digest = hashlib.sha256(image.tobytes())
digest.update("".join(_format_gt_line(w) + "\\n" for w in words).encode("utf-8"))
assert digest.hexdigest() == {TEST_0_DIGEST!r}, digest.hexdigest()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_words_and_characters_geometry():
    dont_care = legible = 0
    for index in range(12):
        _, words = generate_sample("val", index)
        for word in words:
            assert word.quad.shape == (4, 2) and word.chars.shape == (len(word.text), 4, 2)
            assert (word.quad[:, 0] >= 0).all() and (word.quad[:, 0] <= IMAGE_WIDTH).all()
            assert (word.quad[:, 1] >= 0).all() and (word.quad[:, 1] <= IMAGE_HEIGHT).all()
            # Clockwise in image coordinates (y down): positive shoelace area.
            x, y = word.quad[:, 0], word.quad[:, 1]
            assert 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0
            contour = word.quad.reshape(-1, 1, 2).astype(np.float32)
            for point in word.chars.reshape(-1, 2):
                assert cv2.pointPolygonTest(contour, (float(point[0]), float(point[1])), True) >= -0.01
            if word.legible:
                legible += 1
                assert word.height >= LEGIBLE_MIN_HEIGHT and word.transcription == word.text
            else:
                dont_care += 1
                assert word.transcription == DONT_CARE
    assert legible > 50 and dont_care > 0


def test_unknown_split_is_refused():
    with pytest.raises(DatasetError, match="unknown scene-text split"):
        generate_sample("training", 0)
    assert set(SPLITS) == {"train", "val", "test"}


def test_write_split_layout_and_formats(tmp_path):
    root = write_split(tmp_path / "val", "val", count=3)
    index = json.loads((root / "inputs" / "index.json").read_text(encoding="utf-8"))
    assert index == {"ids": ["img_1", "img_2", "img_3"], "files": ["img_1.png", "img_2.png", "img_3.png"]}
    assert sorted(p.name for p in (root / "inputs").iterdir()) == [
        "img_1.png",
        "img_2.png",
        "img_3.png",
        "index.json",
    ]
    chars = json.loads((root / "hidden" / "chars.json").read_text(encoding="utf-8"))
    assert list(chars) == index["ids"]
    saw_dont_care = False
    for i, sid in enumerate(index["ids"]):
        image = cv2.imread(str(root / "inputs" / f"{sid}.png"))[..., ::-1]
        expected_image, words = generate_sample("val", i)
        assert np.array_equal(image, expected_image)
        raw = (root / "hidden" / f"gt_{sid}.txt").read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
        lines = raw.decode("utf-8").splitlines()
        assert len(lines) == len(words) == len(chars[sid])
        for line, word, word_chars in zip(lines, words, chars[sid], strict=True):
            fields = line.split(",")
            assert len(fields) == 9
            coords = np.array([int(v) for v in fields[:8]]).reshape(4, 2)
            assert np.abs(coords - word.quad).max() <= 1.0
            assert fields[8] == word.transcription
            saw_dont_care |= fields[8] == DONT_CARE
            assert np.allclose(np.array(word_chars), word.chars, atol=0.006)
    assert saw_dont_care
