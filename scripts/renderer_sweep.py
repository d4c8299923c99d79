"""Which library releases change the generated datasets' pixels: digests under other versions of the renderers.

    .venv/bin/python scripts/renderer_sweep.py [--samples 6]

For each release below, the release alone is installed (`pip install --no-deps --target`) into a temporary folder
that goes first on PYTHONPATH, and a child process computes a digest over the first test samples of each
generator (pixels and ground truth) - the scene-text generator as it is and as it was at commit 9a80762
(version 1, which drew with OpenCV and FreeType at run time) - and over the glyphs Pillow's FreeType renders
for the scene-text atlas.
Everything else comes from the environment running the script. docs/BENCHMARKS.md ("Same numbers on every
machine") holds the result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASES = [
    ("(installed)", None),
    ("pillow", "11.3.0"),
    ("pillow", "12.3.0"),
    ("opencv-python-headless", "4.14.0.94"),
    ("opencv-python-headless", "5.0.0.93"),
    ("numpy", "2.0.0"),
    ("numpy", "2.1.3"),
]

PROBE = """
import hashlib, json, sys
import numpy, PIL
from harness.datasets import digits, scenetext, smallobj
count = int(sys.argv[1])

def digest(make):
    h = hashlib.sha256()
    for index in range(count):
        image, truth = make(index)
        h.update(image.tobytes())
        h.update(json.dumps(truth, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]

def text_sample(i):
    image, words = scenetext.generate_sample("test", i)
    return image, [scenetext._format_gt_line(w) for w in words]

def text_v1_sample(i):
    import importlib.util
    spec = importlib.util.spec_from_file_location("scenetext_v1", sys.argv[3])
    v1 = importlib.util.module_from_spec(spec)
    sys.modules["scenetext_v1"] = v1
    spec.loader.exec_module(v1)
    image, words = v1.generate_sample("test", i)
    return image, [v1._format_gt_line(w) for w in words]

def glyphs():
    import importlib.util
    spec = importlib.util.spec_from_file_location("atlas", sys.argv[2])
    atlas = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(atlas)
    built = atlas.build()
    return hashlib.sha256(b"".join(built[k].tobytes() for k in sorted(built) if k != "pillow")).hexdigest()[:16]

images, labels = digits.load_digits_split("test")
row = {
    "numpy": numpy.__version__,
    "pillow": PIL.__version__,
    "scenetext v2": digest(text_sample),
    "scenetext v1": digest(text_v1_sample),
    "smallobj": digest(lambda i: smallobj.generate_sample("test", i)),
    "digits": digest(lambda i: (images[i], int(labels[i]))),
    "glyphs (FreeType)": glyphs(),
}
try:
    import cv2
    row["opencv"] = cv2.__version__
except ImportError:
    row["opencv"] = "-"
print(json.dumps(row))
"""


def probe(path: Path | None, samples: int, scenetext_v1: Path) -> dict[str, str]:
    env_path = f"{path}:{ROOT}" if path else str(ROOT)
    atlas_script = str(ROOT / "scripts" / "build_glyph_atlas.py")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(samples), atlas_script, str(scenetext_v1)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="renderers-") as tmp:
        scenetext_v1 = Path(tmp) / "scenetext_v1.py"
        old = ["git", "-C", str(ROOT), "show", "9a80762:harness/datasets/scenetext.py"]
        scenetext_v1.write_text(subprocess.run(old, capture_output=True, text=True, check=True).stdout)
        for package, version in RELEASES:
            target = None
            if version:
                target = Path(tmp) / f"{package}-{version}"
                subprocess.run(
                    [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                     f"{package}=={version}"],
                    check=True,
                )  # fmt: skip
            row = probe(target, args.samples, scenetext_v1)
            rows.append({"release": f"{package} {version or ''}".strip(), **row})
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
