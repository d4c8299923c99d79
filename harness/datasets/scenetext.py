"""The text-detection track's default dataset: synthetic scene text rendered from a shipped glyph atlas.

Every sample is a pure function of (seed, split, index), so training can draw samples on the fly and the
evaluation splits can be written to disk and rebuilt anywhere. A sample is a 640×480 RGB image of words on
a cluttered background (colour fields, noise, stripes, shapes, lines) and, for each word, its quadrilateral
(4 points clockwise from the text's own top-left, as in ICDAR2015), the quadrilaterals of its characters
(transformed with the word) and its transcription. Words are drawn in lines of one to three words with
varied size, colour, letter spacing, a small rotation (±15°) and a mild perspective. Illegible words —
shorter than 8 px, or blurred beyond reading — are "don't care" (`###`), as in ICDAR.

Pixels depend on NumPy alone (its PCG64 streams and IEEE arithmetic): glyphs come from a shipped atlas
(`assets/glyphs_aileron.npz`: Pillow's bundled Aileron Regular, 7-72 px, rendered once by
`scripts/build_glyph_atlas.py`), and the warps, resizes, blurs and shapes are `harness.datasets.raster`'s.
Version 1 drew with OpenCV and FreeType at run time, and its pixels changed with their releases. The
shipped splits' content digests are pinned in the text-detection track card (`harness datasets verify`).
`font="dejavu"` renders with Debian's DejaVu Sans through FreeType instead (`fonts-dejavu-core`), for
training variety only; the shipped splits never use it.

Layout of a written split (shared with the harness core):

    <split_dir>/inputs/index.json        {"ids": ["img_1", ...], "files": ["img_1.png", ...]}
    <split_dir>/inputs/img_N.png
    <split_dir>/hidden/gt_img_N.txt      x1,y1,x2,y2,x3,y3,x4,y4,transcription   (UTF-8, no BOM, LF)
    <split_dir>/hidden/chars.json        {"img_N": [[[[x, y] × 4] per character] per word]}, words in gt order
    <split_dir>/hidden/meta.json         generator, version, seed, split, count, image size, font
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.datasets import raster
from harness.errors import DatasetError

GENERATOR_VERSION = 2
SEED = 20150613
IMAGE_WIDTH, IMAGE_HEIGHT = 640, 480
SPLITS: dict[str, int] = {"train": 100_000, "val": 50, "test": 200}
"""Samples per split. `train` is drawn on the fly (any index is valid); `val` and `test` are written. The
test split (about 2,300 words, 1,950 of them cared for) is sized so that the compact reference CRAFT scores it
on a 2-core CPU in about a minute."""
DONT_CARE = "###"
LEGIBLE_MIN_HEIGHT = 8.0
"""Words shorter than this (pixels, measured along the word's sides) are don't care."""
FONTS = ("aileron", "dejavu")
ATLAS_PATH = Path(__file__).with_name("assets") / "glyphs_aileron.npz"
DEJAVU_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_CONSONANTS = "bcdfghjklmnprstvwxz"
_VOWELS = "aeiouy"
_ALNUM_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Word:
    """One word of a sample, in pixel coordinates of the image (x right, y down)."""

    quad: np.ndarray  # (4, 2) float32: top-left, top-right, bottom-right, bottom-left of the text
    chars: np.ndarray  # (len(text), 4, 2) float32, same point order, inside `quad`
    text: str
    legible: bool

    @property
    def transcription(self) -> str:
        return self.text if self.legible else DONT_CARE

    @property
    def height(self) -> float:
        """Mean length of the word's left and right sides."""
        q = self.quad
        return float((np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2)


@dataclass(frozen=True)
class _Glyph:
    mask: np.ndarray  # uint8 coverage, rows × cols of the glyph's ink box
    x_offset: int  # ink box position relative to the pen position and the line's top
    y_offset: int
    advance: int


def _check_split(split: str) -> None:
    if split not in _SPLIT_CODES:
        raise DatasetError(f"unknown scene-text split {split!r}", f"use one of {sorted(_SPLIT_CODES)}")


@dataclass(frozen=True)
class _FontSize:
    ascent: int
    descent: int
    space: int  # advance of a space


@functools.cache
def _atlas() -> dict[str, np.ndarray]:
    try:
        with np.load(ATLAS_PATH) as data:
            return {key: data[key] for key in data.files}
    except OSError as exc:
        raise DatasetError(f"{ATLAS_PATH}: the glyph atlas cannot be read ({exc})", "reinstall the harness") from exc


def _dejavu(size: int):
    from PIL import ImageFont

    if not DEJAVU_PATH.is_file():
        raise DatasetError(f"font {DEJAVU_PATH} not found", "apt-get install fonts-dejavu-core, or use font='aileron'")
    return ImageFont.truetype(str(DEJAVU_PATH), size=size, layout_engine=ImageFont.Layout.BASIC)


def _check_font(name: str) -> None:
    if name not in FONTS:
        raise DatasetError(f"unknown font {name!r}", f"use one of {FONTS}")


@functools.lru_cache(maxsize=256)
def _font_size(font_name: str, size: int) -> _FontSize:
    _check_font(font_name)
    if font_name == "dejavu":
        font = _dejavu(size)
        ascent, descent = font.getmetrics()
        return _FontSize(ascent, descent, max(int(round(font.getlength(" "))), 2))
    atlas = _atlas()
    ascent, descent, space = (int(v) for v in atlas["metrics"][_atlas_size(atlas, size)])
    return _FontSize(ascent, descent, space)


def _atlas_size(atlas: dict[str, np.ndarray], size: int) -> int:
    sizes = atlas["sizes"]
    if not sizes[0] <= size <= sizes[-1]:
        raise DatasetError(f"the glyph atlas has sizes {sizes[0]}-{sizes[-1]} px, not {size}")
    return int(size - sizes[0])


@functools.lru_cache(maxsize=8192)
def _glyph(font_name: str, size: int, char: str) -> _Glyph:
    _check_font(font_name)
    if font_name == "dejavu":
        return _freetype_glyph(_dejavu(size), char)
    atlas = _atlas()
    chars = bytes(atlas["chars"]).decode("ascii")
    if char not in chars:
        raise DatasetError(f"the glyph atlas has no {char!r}")
    height, width, x_offset, y_offset, advance, offset = (
        int(v) for v in atlas["table"][_atlas_size(atlas, size), chars.index(char)]
    )
    mask = atlas["pixels"][offset : offset + height * width].reshape(height, width)
    return _Glyph(mask, x_offset, y_offset, advance)


def _freetype_glyph(font, char: str) -> _Glyph:
    """A glyph rendered by FreeType at run time, trimmed to its ink box (as the atlas's are)."""
    from PIL import Image

    core_mask, (off_x, off_y) = font.getmask2(char, mode="L")
    width, height = core_mask.size
    advance = int(round(font.getlength(char)))
    if width == 0 or height == 0:
        return _Glyph(np.zeros((0, 0), np.uint8), 0, 0, advance)
    mask = np.asarray(Image.frombytes("L", (width, height), bytes(core_mask)))
    rows = np.flatnonzero(mask.max(axis=1))
    cols = np.flatnonzero(mask.max(axis=0))
    if len(rows) == 0:
        return _Glyph(np.zeros((0, 0), np.uint8), 0, 0, advance)
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return _Glyph(np.ascontiguousarray(mask), int(off_x + cols[0]), int(off_y + rows[0]), advance)


def _random_word(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.55:  # pronounceable pseudo-words, in three cases
        syllables = []
        for _ in range(int(rng.integers(1, 4))):
            syl = _CONSONANTS[rng.integers(len(_CONSONANTS))] + _VOWELS[rng.integers(len(_VOWELS))]
            if rng.random() < 0.4:
                syl += _CONSONANTS[rng.integers(len(_CONSONANTS))]
            syllables.append(syl)
        word = "".join(syllables)
        case = rng.random()
        return word.upper() if case < 0.2 else word.capitalize() if case < 0.45 else word
    if kind < 0.72:
        return "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(2, 7))))
    if kind < 0.87:
        return "".join(_ALNUM_UPPER[i] for i in rng.integers(0, len(_ALNUM_UPPER), int(rng.integers(2, 7))))
    return "".join(_LETTERS[i] for i in rng.integers(0, len(_LETTERS), int(rng.integers(2, 9))))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour field + grain + optional stripes, then shapes and lines as clutter."""
    grid = rng.integers(0, 256, (int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)).astype(np.float64)
    base = raster.resize(grid, height, width, cubic=True)
    grain = rng.standard_normal((height // 8, width // 8)) * rng.uniform(0, 25)
    texture = raster.resize(grain, height, width)
    if rng.random() < 0.35:
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(6, 40)
        amplitude = rng.uniform(8, 30)
        freq = 2 * math.pi / period
        xs = np.arange(width, dtype=np.float64) * (math.cos(angle) * freq)
        ys = np.arange(height, dtype=np.float64) * (math.sin(angle) * freq)
        texture += np.sin(ys[:, None] + xs[None, :]) * amplitude
    base += texture[..., None]
    image = np.clip(base, 0, 255).astype(np.uint8)
    overlay = np.zeros((height, width, 4), np.uint8)
    for _ in range(int(rng.integers(4, 20))):
        colour = [int(c) for c in rng.integers(0, 256, 3)] + [int(rng.integers(60, 256))]
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(8, 140), rng.uniform(8, 140)
        kind = rng.integers(3)
        if kind == 0:
            raster.fill_rectangle(overlay, cx - rx, cy - ry, cx + rx, cy + ry, colour)
        elif kind == 1:
            raster.fill_ellipse(overlay, cx, cy, rx, ry, colour)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))
            raster.fill_polygon(overlay, [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles], colour)
    for _ in range(int(rng.integers(2, 14))):
        colour = [int(c) for c in rng.integers(0, 256, 3)] + [int(rng.integers(120, 256))]
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        length, angle = rng.uniform(20, 400), rng.uniform(0, np.pi)
        x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
        raster.draw_line(overlay, x0, y0, x1, y1, int(rng.integers(1, 5)), colour)
    return raster.composite(image, overlay)


def _luminance(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _text_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random colour whose luminance differs from the background's mean by at least 90 levels."""
    bg_lum = _luminance(background.reshape(-1, 3).mean(axis=0))
    for _ in range(12):
        colour = rng.integers(0, 256, 3)
        if abs(_luminance(colour) - bg_lum) >= 90:
            return colour.astype(np.int32)
    return np.array([0, 0, 0] if bg_lum > 127 else [255, 255, 255], np.int32)


def _render_line(words: list[str], font_name: str, size: int, tracking: int, pad: int):
    """The line's coverage mask and, per word, its characters' ink boxes (x0, y0, x1, y1), canvas coords."""
    metrics = _font_size(font_name, size)
    ascent, descent, space = metrics.ascent, metrics.descent, metrics.space
    glyphs = [[_glyph(font_name, size, char) for char in word] for word in words]
    inked = [g for word in glyphs for g in word if g.mask.size]
    # Glyphs may reach left of their pen position or above the ascender; the margins keep them on the canvas.
    left = pad + max([0] + [-g.x_offset for g in inked])
    top = pad + max([0] + [-g.y_offset for g in inked])
    placed = []  # (word index, glyph, pen x)
    pen = left
    for wi, word_glyphs in enumerate(glyphs):
        if wi:
            pen += space + tracking
        for ci, glyph in enumerate(word_glyphs):
            placed.append((wi, glyph, pen))
            pen += glyph.advance + (tracking if ci < len(word_glyphs) - 1 else 0)
    width = max([pen] + [p + g.x_offset + g.mask.shape[1] for _, g, p in placed if g.mask.size]) + pad
    height = max([ascent + descent] + [g.y_offset + g.mask.shape[0] for g in inked]) + top + pad
    canvas = np.zeros((height, width), np.uint8)
    boxes: list[list[tuple[int, int, int, int]]] = [[] for _ in words]
    for wi, glyph, pen_x in placed:
        x0, y0 = pen_x + glyph.x_offset, top + glyph.y_offset
        if glyph.mask.size:
            h, w = glyph.mask.shape
            np.maximum(canvas[y0 : y0 + h, x0 : x0 + w], glyph.mask, out=canvas[y0 : y0 + h, x0 : x0 + w])
            boxes[wi].append((x0, y0, x0 + w, y0 + h))
        else:
            boxes[wi].append((pen_x, top + ascent, pen_x + glyph.advance, top + ascent))
    right = max(b[2] for word_boxes in boxes for b in word_boxes)
    return canvas[:, : right + pad], boxes


def _char_quads(ink_boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Character boxes of one word in canvas coordinates: each spans the word's full ink height, and at
    least a quarter of it in width (thin glyphs such as 'i' get a usable box), clipped to the word."""
    top = min(b[1] for b in ink_boxes)
    bottom = max(b[3] for b in ink_boxes)
    left = min(b[0] for b in ink_boxes)
    right = max(b[2] for b in ink_boxes)
    min_width = 0.25 * (bottom - top)
    quads = []
    for x0, _, x1, _ in ink_boxes:
        if x1 - x0 < min_width:
            centre = (x0 + x1) / 2
            x0, x1 = max(left, centre - min_width / 2), min(right, centre + min_width / 2)
        quads.append([[x0, top], [x1, top], [x1, bottom], [x0, bottom]])
    return np.asarray(quads, np.float64)


def _overlaps(box: tuple[float, float, float, float], placed: list[tuple[float, float, float, float]]) -> bool:
    return any(box[0] < p[2] and p[0] < box[2] and box[1] < p[3] and p[1] < box[3] for p in placed)


def generate_sample(split: str, index: int, seed: int = SEED, font: str = "aileron") -> tuple[np.ndarray, list[Word]]:
    """The sample `index` of `split`: an H×W×3 uint8 RGB image and its words, in drawing order."""
    _check_split(split)
    _check_font(font)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODES[split], int(index)]))
    height, width = IMAGE_HEIGHT, IMAGE_WIDTH
    image = _background(rng, height, width)
    words: list[Word] = []
    occupied: list[tuple[float, float, float, float]] = []
    for _ in range(int(rng.integers(4, 15))):
        n_words = int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))
        texts = [_random_word(rng) for _ in range(n_words)]
        size = int(rng.integers(7, 14)) if rng.random() < 0.15 else int(round(math.exp(rng.uniform(2.77, 4.28))))
        tracking = int(round(rng.uniform(0.0, 0.08) * size))
        blurred = rng.random() < 0.07
        pad = 2 + (size // 2 if blurred else 0)
        mask, ink_boxes = _render_line(texts, font, size, tracking, pad)
        mh, mw = mask.shape
        # Random rotation about the canvas centre, then each corner nudged for a mild perspective.
        angle = 0.0 if rng.random() < 0.35 else math.radians(rng.uniform(-15, 15))
        src = np.array([[0, 0], [mw, 0], [mw, mh], [0, mh]], np.float64)
        centred = src - [mw / 2, mh / 2]
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        dst = centred @ rot.T
        if rng.random() < 0.6:
            dst = dst + rng.uniform(-0.12, 0.12, (4, 2)) * (mh - 2 * pad)
        dst -= dst.min(axis=0)
        span_x, span_y = dst.max(axis=0)
        if span_x + 4 > width or span_y + 4 > height:
            continue
        gap = 0.3 * (mh - 2 * pad) + 2
        for _attempt in range(25):
            ox = float(rng.uniform(2, width - span_x - 2))
            oy = float(rng.uniform(2, height - span_y - 2))
            box = (ox - gap, oy - gap, ox + span_x + gap, oy + span_y + gap)
            if not _overlaps(box, occupied):
                break
        else:
            continue
        occupied.append(box)
        x0, y0 = int(math.floor(ox)), int(math.floor(oy))
        x1, y1 = min(int(math.ceil(ox + span_x)) + 1, width), min(int(math.ceil(oy + span_y)) + 1, height)
        to_region = raster.perspective_transform(src, dst + [ox - x0, oy - y0])
        alpha = raster.warp_perspective(mask, to_region, y1 - y0, x1 - x0)
        line_height = mh - 2 * pad
        if blurred:
            sigma = float(rng.uniform(0.2, 0.35)) * line_height
            alpha = raster.gaussian_blur(alpha, sigma)
        region = image[y0:y1, x0:x1].astype(np.int32)
        colour = _text_colour(rng, region)
        if rng.random() < 0.15:  # a contrasting shadow under the text
            shadow_alpha = np.zeros_like(alpha)
            shift = max(1, line_height // 12)
            shadow_alpha[shift:, shift:] = alpha[:-shift, :-shift]
            shadow = 255 - colour
            sa = shadow_alpha.astype(np.int32)[..., None]
            region = (region * (255 - sa) + shadow * sa + 127) // 255
        a = alpha.astype(np.int32)[..., None]
        image[y0:y1, x0:x1] = ((region * (255 - a) + colour * a + 127) // 255).astype(np.uint8)
        to_image = raster.perspective_transform(src, dst + [ox, oy])
        for text, boxes in zip(texts, ink_boxes, strict=True):
            canvas_chars = _char_quads(boxes)
            left, right = canvas_chars[:, 0, 0].min(), canvas_chars[:, 1, 0].max()
            top, bottom = canvas_chars[0, 0, 1], canvas_chars[0, 2, 1]
            canvas_word = np.array([[left, top], [right, top], [right, bottom], [left, bottom]])
            # A projective map keeps the character boxes inside the word's box.
            quad = raster.apply_homography(to_image, canvas_word).astype(np.float32)
            chars = raster.apply_homography(to_image, canvas_chars).astype(np.float32)
            word = Word(quad, chars, text, legible=True)
            legible = not blurred and word.height >= LEGIBLE_MIN_HEIGHT
            words.append(Word(quad, chars, text, legible))
    if rng.random() < 0.5:
        noise = rng.standard_normal((height, width, 1)) * rng.uniform(1.0, 6.0)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image, words


def _format_gt_line(word: Word) -> str:
    coords = np.rint(word.quad).astype(np.int64)
    coords[:, 0] = np.clip(coords[:, 0], 0, IMAGE_WIDTH - 1)
    coords[:, 1] = np.clip(coords[:, 1], 0, IMAGE_HEIGHT - 1)
    return ",".join(str(int(v)) for v in coords.reshape(-1)) + "," + word.transcription


def sample_id(index: int) -> str:
    """The id of sample `index` in a written split: ICDAR style, counting from 1."""
    return f"img_{index + 1}"


def write_split(
    dest_split_dir: str | Path, split: str, count: int | None = None, seed: int = SEED, font: str = "aileron"
) -> Path:
    """Write samples 0..count-1 of `split` (default: SPLITS[split]) in the harness's split layout."""
    from PIL import Image

    _check_split(split)
    count = SPLITS[split] if count is None else int(count)
    if count < 0:
        raise DatasetError(f"count must be >= 0, got {count}")
    root = Path(dest_split_dir)
    inputs, hidden = root / "inputs", root / "hidden"
    inputs.mkdir(parents=True, exist_ok=True)
    hidden.mkdir(parents=True, exist_ok=True)
    ids, files, chars = [], [], {}
    for index in range(count):
        image, words = generate_sample(split, index, seed=seed, font=font)
        sid = sample_id(index)
        file_name = f"{sid}.png"
        Image.fromarray(image).save(inputs / file_name, format="PNG", compress_level=6)  # lossless: pixels kept
        lines = "".join(_format_gt_line(w) + "\n" for w in words)
        (hidden / f"gt_{sid}.txt").write_bytes(lines.encode("utf-8"))
        chars[sid] = [np.round(w.chars.astype(np.float64), 2).tolist() for w in words]
        ids.append(sid)
        files.append(file_name)
    (inputs / "index.json").write_bytes(json.dumps({"ids": ids, "files": files}).encode("utf-8"))
    (hidden / "chars.json").write_bytes(json.dumps(chars, separators=(",", ":")).encode("utf-8"))
    meta = {
        "generator": "harness.datasets.scenetext",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "split": split,
        "count": count,
        "image_size": [IMAGE_WIDTH, IMAGE_HEIGHT],
        "font": font,
    }
    (hidden / "meta.json").write_bytes(json.dumps(meta, indent=1).encode("utf-8"))
    return root
