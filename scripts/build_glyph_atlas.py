"""Render the scene-text generator's glyph atlas once, so that the shipped dataset does not depend on FreeType.

    .venv/bin/python scripts/build_glyph_atlas.py          # writes harness/datasets/assets/glyphs_aileron.npz

The atlas holds, for every font size the generator draws (7-72 px) and every character it writes (a-z, A-Z,
0-9), the glyph's coverage mask trimmed to its ink box, the ink box's offset from the pen position and the
line's top, and the advance; per size also the font's ascent, descent and the advance of a space. The font is
Pillow's bundled Aileron Regular (`ImageFont.load_default(size=...)`), rasterised by the FreeType that Pillow
carries, with the basic layout engine. Rebuilding with another Pillow may change pixels, and so the dataset's
digest: `harness.datasets.scenetext` reads only the shipped file, and its generator version says which atlas it uses.
"""

from __future__ import annotations

import argparse
import hashlib
import string
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageFont

SIZES = range(7, 73)
CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits
OUT = Path(__file__).resolve().parents[1] / "harness" / "datasets" / "assets" / "glyphs_aileron.npz"


def glyph(font: ImageFont.FreeTypeFont, char: str) -> tuple[np.ndarray, int, int, int]:
    core_mask, (off_x, off_y) = font.getmask2(char, mode="L")
    width, height = core_mask.size
    advance = int(round(font.getlength(char)))
    empty = np.zeros((0, 0), np.uint8)
    if width == 0 or height == 0:
        return empty, 0, 0, advance
    mask = np.asarray(Image.frombytes("L", (width, height), bytes(core_mask)))
    rows = np.flatnonzero(mask.max(axis=1))
    cols = np.flatnonzero(mask.max(axis=0))
    if len(rows) == 0:
        return empty, 0, 0, advance
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return np.ascontiguousarray(mask), int(off_x + cols[0]), int(off_y + rows[0]), advance


def build() -> dict[str, np.ndarray]:
    sizes = np.array(list(SIZES), np.int32)
    metrics = np.zeros((len(sizes), 3), np.int32)
    table = np.zeros((len(sizes), len(CHARS), 6), np.int64)  # h, w, x_offset, y_offset, advance, offset
    chunks, offset = [], 0
    for si, size in enumerate(sizes):
        font = ImageFont.load_default(size=int(size)).font_variant(layout_engine=ImageFont.Layout.BASIC)
        ascent, descent = font.getmetrics()
        metrics[si] = (ascent, descent, max(int(round(font.getlength(" "))), 2))
        for ci, char in enumerate(CHARS):
            mask, x_offset, y_offset, advance = glyph(font, char)
            table[si, ci] = (*mask.shape, x_offset, y_offset, advance, offset)
            chunks.append(mask.reshape(-1))
            offset += mask.size
    return {
        "sizes": sizes,
        "chars": np.frombuffer(CHARS.encode("ascii"), np.uint8),
        "metrics": metrics,
        "table": table,
        "pixels": np.concatenate(chunks),
        "pillow": np.frombuffer(PIL.__version__.encode("ascii"), np.uint8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    atlas = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **atlas)
    digest = hashlib.sha256(b"".join(atlas[k].tobytes() for k in sorted(atlas) if k != "pillow")).hexdigest()
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size:,} bytes, {atlas['pixels'].size:,} pixels); content sha256 {digest}")


if __name__ == "__main__":
    main()
