"""A store seeded ONCE per test session by the real flow (`harness submit` + `harness evaluate`), for the
leaderboard's AppTest and browser tests.

The reference submissions in `submissions/` are used when they are present: a copy of the session's reference
store (tests/conftest.py, `reference_store`), where they were submitted and evaluated on all three tracks (the
classifiers as fp32 and channels-last).
Where they are not yet, the seed is a small real project with four entry points: two nearest-centroid
classifiers whose centroids are computed here from the digits TRAIN split (so they score well above chance on
the test split), an untrained CNN (many more MACs, chance accuracy: a dominated entry), and a classifier that
breaks on full batches (failed runs with a log
tail). A failing submission is seeded in both cases.

Seeding takes minutes on a busy machine. For work on the UI, set HARNESS_TEST_SEED_DIR to a folder: the seeded
store is kept there, in a subfolder per store schema, and reused by later sessions (delete the folder to seed
again).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, TINY_CNN, make_submission, run_cli

REFERENCE_SUBMISSIONS = ("gtsnet", "mobilenet_v2", "shufflenet_v2_x0_5", "ghostnet")
CENTROID_SIDES = (4, 8)

FRAGILE = """
    import torch
    from torch import nn
    from harness.contract import ClassifierPredictor

    class Fragile(ClassifierPredictor):
        def predict(self, images):
            if len(images) > 2:
                raise RuntimeError("cannot handle batches larger than 2")
            return super().predict(images)

    def build_fragile(ctx):
        model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, ctx.num_classes or 10))
        return Fragile(model, (0.5,) * 3, (0.5,) * 3)
"""

CENTROID = """
    class NearestCentroid(nn.Module):
        \"\"\"Grey channel pooled to side x side; logits -|x - c|^2 + |x|^2 = 2 x.c - |c|^2 per class centroid c.\"\"\"

        def __init__(self, side):
            super().__init__()
            centroids = torch.tensor(CENTROIDS[side], dtype=torch.float32)
            self.pool = nn.AdaptiveAvgPool2d(side)
            self.head = nn.Linear(side * side, centroids.shape[0])
            with torch.no_grad():
                self.head.weight.copy_(2 * centroids)
                self.head.bias.copy_(-(centroids**2).sum(1))

        def forward(self, x):
            return self.head(self.pool(x[:, :1]).flatten(1))


    def build_centroid4(ctx):
        return wrap_classifier(NearestCentroid(4))


    def build_centroid8(ctx):
        return wrap_classifier(NearestCentroid(8))
"""


@dataclass(frozen=True)
class SeededStore:
    """The seeded store and what went into it."""

    env: dict[str, str]
    url: str
    submissions: tuple[str, ...]
    failing: str
    references: bool


def digits_centroids(side: int) -> list[list[float]]:
    """Class means of the digits train split as the model sees it: normalised like `wrap_classifier`
    ((x/255 - 0.5) / 0.5), grey channel, averaged over side x side blocks."""
    from PIL import Image

    from harness.datasets import materialize

    split = materialize("digits", "train")
    index = split.index()
    labels = json.loads((split.hidden_dir / "labels.json").read_text())
    label_of = dict(zip(labels["ids"], labels["labels"], strict=True))
    sums = np.zeros((len(labels["classes"]), side * side))
    counts = np.zeros(len(labels["classes"]))
    for sample_id, file in zip(index["ids"], index["files"], strict=True):
        grey = np.asarray(Image.open(split.inputs_dir / file), dtype=np.float64)[:, :, 0] / 255.0
        grey = (grey - 0.5) / 0.5
        block = grey.shape[0] // side
        pooled = grey.reshape(side, block, side, block).mean(axis=(1, 3)).ravel()
        sums[label_of[sample_id]] += pooled
        counts[label_of[sample_id]] += 1
    return np.round(sums / counts[:, None], 5).tolist()


def _digits_models(root: Path) -> Path:
    centroids = {side: digits_centroids(side) for side in CENTROID_SIDES}
    body = (
        TINY_CNN.replace("def build(ctx):", "def build_tinycnn(ctx):")
        + "\n    CENTROIDS = "
        + json.dumps({str(k): v for k, v in centroids.items()}).replace('"4"', "4").replace('"8"', "8")
        + "\n"
        + CENTROID
    )
    return make_submission(
        root,
        "digits_models",
        module_body=body,
        variants=["fp32", "bf16"],
        entry_points={
            "centroid8": "digits_models_pkg:build_centroid8",
            "centroid4": "digits_models_pkg:build_centroid4",
            "tinycnn": "digits_models_pkg:build_tinycnn",
        },
    )


def _cli(*args: str, env: dict[str, str]) -> str:
    result = run_cli(*args, env=env, timeout=1800)
    assert result.returncode == 0, f"harness {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _submit(folder: Path, env: dict[str, str]) -> list[str]:
    """Submit a folder; the names of its classification entry points."""
    return [
        r["name"] for r in json.loads(_cli("submit", str(folder), "--json", env=env)) if r["track"] == "classification"
    ]


SEED_DIR_ENV = "HARNESS_TEST_SEED_DIR"  # opt-in: keep the seeded store in this folder and reuse it next session


def _schema_digest() -> str:
    """A hash of what shapes the store's tables: the models and the migrations."""
    from tests.benchmarks.synthetic_store import schema_digest

    return schema_digest()[:12]


@pytest.fixture(scope="session")
def seeded_store(
    session_home: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> SeededStore:
    kept = os.environ.get(SEED_DIR_ENV)
    # A kept store is reused only by code of the same store schema: each schema seeds its own subfolder.
    root = Path(kept) / f"schema-{_schema_digest()}" if kept else tmp_path_factory.mktemp("leaderboard-seed")
    record = root / "seed.json"
    if kept and record.exists():
        data = json.loads(record.read_text())
        return SeededStore(**{**data, "submissions": tuple(data["submissions"])})
    root.mkdir(parents=True, exist_ok=True)
    references = [n for n in REFERENCE_SUBMISSIONS if (ROOT / "submissions" / n).is_dir()]
    if references:
        # The session's reference store (tests/conftest.py): the references evaluated once, fp32 and
        # channels-last, by the real CLI; copied, so that the failing submission below lands in this copy only.
        reference_store = request.getfixturevalue("reference_store")
        env = reference_store.copy_to(root)
        names = [r["submission"] for r in reference_store.fp32("classification")]
        assert sorted(names) == sorted(references), names
    else:
        env = {"HARNESS_HOME": str(session_home), "HARNESS_DB_URL": f"sqlite:///{root / 'harness.db'}"}
        names = _submit(_digits_models(root), env)
        _cli("evaluate", "--track", "classification", *[a for n in names for a in ("--submission", n)], env=env)
    fragile = make_submission(
        root, "fragile", module_body=FRAGILE, entry_points={"fragile": "fragile_pkg:build_fragile"}
    )
    _submit(fragile, env)
    _cli("evaluate", "--track", "classification", "--submission", "fragile", env=env)
    seeded = SeededStore(
        env=env, url=env["HARNESS_DB_URL"], submissions=tuple(names), failing="fragile", references=bool(references)
    )
    record.write_text(json.dumps(asdict(seeded)))
    return seeded


@pytest.fixture()
def leaderboard_env(seeded_store: SeededStore, monkeypatch: pytest.MonkeyPatch) -> SeededStore:
    """The seeded store as the store of in-process code (AppTest runs the app in this process)."""
    for key, value in seeded_store.env.items():
        monkeypatch.setenv(key, value)
    return seeded_store


@pytest.fixture(scope="session")
def synthetic_store(request: pytest.FixtureRequest):
    """The large SYNTHETIC store of the speed benchmarks (see tests/benchmarks/synthetic_store.py)."""
    from tests.benchmarks.synthetic_store import cached_synthetic_store, synthetic_cache_dir

    return cached_synthetic_store(synthetic_cache_dir(request.config))
