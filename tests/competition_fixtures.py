"""What the competition and submission-server tests (and scripts/bench_server.py) build: an organiser's bundle
whose hidden test set is a folder of its own, a participant's own Faster R-CNN project, and a small detection
test set taken from the small-object split."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def digits_bundle(
    root: Path, name: str = "digits-cup", per_day: int | None = 1, ranking: str = "best", extra: str = ""
) -> Path:
    """A classification competition whose hidden test set is a folder of the bundle (the digits test split);
    `per_day` None: no quota."""
    from harness.datasets.digits import write_split

    folder = root / "cup"
    write_split(folder / "data" / "test", "test")
    quota = f"[phases.quota]\nper_day = {per_day}\n" if per_day is not None else ""
    text = textwrap.dedent(
        f"""\
        name = "{name}"
        title = "Digits cup"
        description = "Classify handwritten digits."

        [[phases]]
        name = "dev"
        track = "classification"
        dataset = "data/test"
        opens = 2026-01-01T00:00:00Z
        closes = 2099-01-01T00:00:00Z
        public_fraction = 0.3
        ranking = "{ranking}"
        """
    )
    (folder / "competition.toml").write_text(text + (extra + "\n" if extra else "") + quota)
    return folder


def bob_submission(root: Path) -> Path:
    """Bob's own project: the default-anchor Faster R-CNN reference under his project and entry-point name."""
    folder = root / "bob"
    shutil.copytree(ROOT / "submissions" / "fasterrcnn" / "fasterrcnn_ref", folder / "fasterrcnn_ref")
    text = (ROOT / "submissions" / "fasterrcnn" / "pyproject.toml").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("fasterrcnn_small =")]
    text = "\n".join(lines).replace("fasterrcnn_default =", "bob_frcnn =").replace("harness-fasterrcnn-ref", "bob-det")
    (folder / "pyproject.toml").write_text(text + "\n")
    return folder


def smallobj_folder(dest: Path, count: int = 16) -> None:
    """A bundle's own hidden test set: the first images of the small-object test split, with their truth."""
    from harness.datasets import materialize
    from harness.kinds import get_kind

    split = materialize("smallobj", "test")
    index = split.index()
    ids, files = index["ids"][:count], index["files"][:count]
    (dest / "inputs").mkdir(parents=True)
    for name in files:
        shutil.copyfile(split.inputs_dir / name, dest / "inputs" / name)
    (dest / "inputs" / "index.json").write_text(json.dumps({**index, "ids": ids, "files": files}))
    get_kind("detection").subset_truth(split.hidden_dir, ids, dest / "hidden")
