"""A reference-like classifier for variant tests: a reference submission of `submissions/` when one is there
(trained on shapetex, the classification track's default data since version 3), otherwise a small conv net
(conv + batch norm + ReLU blocks, global pooling, linear head) trained on the digits dataset in about ten
seconds and written as a real submission project. `classifier_split` gives the data each was trained for."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

MODEL_SOURCE = """
    from pathlib import Path

    from torch import nn

    from harness.contract import wrap_classifier

    WEIGHTS = Path(__file__).parent / "weights.safetensors"


    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


    class DigitNet(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.features = nn.Sequential(
                *block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 64),
                nn.AdaptiveAvgPool2d(1),
            )
            self.head = nn.Linear(64, num_classes)

        def forward(self, x):
            return self.head(self.features(x).flatten(1))


    def build(ctx):
        from safetensors.torch import load_file

        model = DigitNet(ctx.num_classes or 10)
        if WEIGHTS.exists():
            model.load_state_dict(load_file(str(WEIGHTS)))
        return wrap_classifier(model)
"""


def is_reference(folder: Path) -> bool:
    return folder.parent == ROOT / "submissions"


def num_classes_of(folder: Path) -> int:
    """The class count the classifier in `folder` was trained for: 50 (shapetex) or 10 (digits)."""
    return 50 if is_reference(folder) else 10


def classifier_split(folder: Path, split: str, limit: int = 1000) -> tuple[list[np.ndarray], np.ndarray]:
    """The first `limit` images and labels of the data the classifier in `folder` was trained for: shapetex
    for a reference (its test split or, for calibration, its train split), digits for the DigitNet."""
    if not is_reference(folder):
        images, labels = digits_split(split)
        return images[:limit], labels[:limit]
    from harness.datasets.shapetex import load_shapetex_split

    images, labels = load_shapetex_split(split)
    return list(images[:limit]), labels[:limit]


def digits_split(split: str) -> tuple[list[np.ndarray], np.ndarray]:
    """The split's images (H×W×3 uint8) and labels, in index order."""
    from harness.datasets import materialize
    from harness.sandbox.images import load_image

    data = materialize("digits", split)
    index = data.index()
    truth = json.loads((data.hidden_dir / "labels.json").read_text())
    label_of = dict(zip(truth["ids"], truth["labels"], strict=True))
    images = [load_image(data.inputs_dir / f) for f in index["files"]]
    return images, np.asarray([label_of[i] for i in index["ids"]])


def write_trained_submission(folder: Path, epochs: int = 6, seed: int = 0) -> Path:
    """Write the DigitNet submission into `folder` and train its weights on digits/train (CPU, 1 thread)."""
    import torch
    from safetensors.torch import save_file

    package = folder / "digitnet_pkg"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(textwrap.dedent(MODEL_SOURCE))
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "digitnet-submission"
            version = "0.1.0"

            [project.entry-points."harness.submissions"]
            digitnet = "digitnet_pkg:build"

            [tool.setuptools]
            packages = ["digitnet_pkg"]

            [tool.setuptools.package-data]
            digitnet_pkg = ["*.safetensors"]

            [tool.harness]
            track = "classification"
            variants = ["fp32", "int8-cpu", "onnxruntime"]
            """
        )
    )
    torch.manual_seed(seed)
    predictor = load_predictor(folder)  # no weights yet: freshly initialised
    images, labels = digits_split("train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        inputs = predictor.preprocess(images)
        targets = torch.from_numpy(labels)
        model = predictor.model.train()
        optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(epochs):
            order = torch.randperm(len(targets))
            for start in range(0, len(order), 64):
                chosen = order[start : start + 64]
                loss = torch.nn.functional.cross_entropy(model(inputs[chosen]), targets[chosen])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        # Batch-norm statistics averaged over the whole training set with the final weights: the running
        # averages of a few hundred steps lag behind a model that was still changing fast.
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        with torch.no_grad():
            for start in range(0, len(targets), 256):
                model(inputs[start : start + 256])
        for norm in norms:
            norm.momentum = 0.1
    finally:
        torch.set_num_threads(threads)
    save_file(model.eval().state_dict(), str(package / "weights.safetensors"))
    return folder


def reference_classifier(scratch: Path) -> Path:
    """The trained DigitNet (trained once per `scratch` folder: pass the session's base temporary folder to
    share it between modules). The variant tests are not about the default data: since track version 3 the
    repository's references are trained on shapetex, where int8's top-1 agreement with float32 is lower
    (gtsnet, FX flow: 0.93 on 1,000 test images), so these tests keep a digits classifier and the digits data."""
    folder = scratch / "digitnet"
    if (folder / "digitnet_pkg" / "weights.safetensors").is_file():
        return folder
    return write_trained_submission(folder)


def load_predictor(folder: Path):
    """Build the predictor of a submission folder in this process (tests only; the harness never does)."""
    import importlib.util
    import tomllib

    from harness.contract import BuildContext

    manifest = tomllib.loads((folder / "pyproject.toml").read_text())
    target = next(iter(manifest["project"]["entry-points"]["harness.submissions"].values()))
    module_name, _, attr = target.partition(":")
    spec = importlib.util.spec_from_file_location(
        f"_variant_test_{module_name}", folder / module_name / "__init__.py", submodule_search_locations=[]
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)(BuildContext(track="classification", num_classes=num_classes_of(folder)))
