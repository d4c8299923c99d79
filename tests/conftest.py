"""Shared fixtures: an isolated harness home and store per test, and a factory for small real submissions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Datasets and installed submissions are content-addressed, so tests can share them safely."""
    return tmp_path_factory.mktemp("harness-home")


@pytest.fixture()
def harness_env(session_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh store for each test; `HARNESS_*` variables set for in-process calls and returned for CLI calls."""
    from harness.store import repo

    db = tmp_path / "harness.db"
    monkeypatch.setenv("HARNESS_HOME", str(session_home))
    monkeypatch.setenv("HARNESS_DB_URL", f"sqlite:///{db}")
    repo._stores.clear()
    return {"HARNESS_HOME": str(session_home), "HARNESS_DB_URL": f"sqlite:///{db}"}


REFERENCE_TRACKS = ("classification", "small-object", "text-detection")
# The classifiers are also evaluated as channels-last: the leaderboard's tests need variants side by side.
REFERENCE_VARIANTS = {"classification": ("fp32", "channels-last")}


@dataclass(frozen=True)
class ReferenceStore:
    """A store holding the reference submissions and their runs, made by the real CLI."""

    env: dict[str, str]
    db: Path
    runs: dict[str, list[dict]]  # `harness evaluate --json` output per track

    def fp32(self, track: str) -> list[dict]:
        return [run for run in self.runs[track] if run["variant"] == "fp32"]

    def copy_to(self, folder: Path) -> dict[str, str]:
        """A private copy of the store (same HARNESS_HOME) for a test that writes: its env."""
        import sqlite3

        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "harness.db"
        with sqlite3.connect(self.db) as source, sqlite3.connect(target) as copy:
            source.backup(copy)  # consistent with the WAL, unlike copying the file
        return {**self.env, "HARNESS_DB_URL": f"sqlite:///{target}"}


@pytest.fixture(scope="session")
def reference_store(session_home: Path, tmp_path_factory: pytest.TempPathFactory) -> ReferenceStore:
    """Every reference submission in `submissions/` submitted and evaluated ONCE per test session through the real
    CLI on CPU (quick profile): fp32 on all three tracks, channels-last too for the classifiers. The references'
    figures, the leaderboard's seeded store and the local half of the local/docker parity test all read it, so
    the suite pays for the slow CPU evaluations of the detectors once. Read-only: copy it (`copy_to`) to write."""
    root = tmp_path_factory.mktemp("references")
    env = {"HARNESS_HOME": str(session_home), "HARNESS_DB_URL": f"sqlite:///{root / 'harness.db'}"}
    for folder in sorted((ROOT / "submissions").iterdir()):
        if (folder / "pyproject.toml").is_file():
            result = run_cli("submit", str(folder), env=env, timeout=1800)
            assert result.returncode == 0, result.stdout + result.stderr
    runs = {}
    for track in REFERENCE_TRACKS:
        variants = [a for v in REFERENCE_VARIANTS.get(track, ("fp32",)) for a in ("--variant", v)]
        result = run_cli("evaluate", "--track", track, *variants, "--json", env=env, timeout=3600)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[track] = json.loads(result.stdout)
    return ReferenceStore(env=env, db=root / "harness.db", runs=runs)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run the real `harness` console script as a user would."""
    full_env = {**os.environ, **(env or {})}
    exe = Path(sys.executable).parent / "harness"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


TINY_CNN = """
    import torch
    from torch import nn

    from harness.contract import wrap_classifier


    class TinyCNN(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            )
            self.head = nn.Linear(16, num_classes)

        def forward(self, x):
            return self.head(self.features(x).flatten(1))


    def build(ctx):
        torch.manual_seed(0)
        return wrap_classifier(TinyCNN(ctx.num_classes or 10))
"""


# The tiny CNN, plus an exit hook that rewrites measurements.json after the harness's driver wrote it: the
# submission's code runs in the driver's process under every runner, so no runner may trust that file.
TAMPERING_CNN = (
    TINY_CNN
    + """

    import atexit
    import json
    import os


    def _tamper():  # in evaluate mode only (its predictions are there): `submit` checks the model first
        path = os.path.join(os.getcwd(), "measurements.json")
        if os.path.exists(path) and os.path.exists(os.path.join(os.getcwd(), "predictions.npz")):
            data = json.load(open(path))
            data["complexity"]["params"] = -1
            json.dump(data, open(path, "w"))


    atexit.register(_tamper)
"""
)


def assert_tampering_caught(result: subprocess.CompletedProcess) -> None:
    """`harness evaluate --json` of a TAMPERING_CNN submission stored a failed run naming the tampered field."""
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = json.loads(result.stdout)
    assert run["status"] == "failed" and run["params"] is None
    assert "[tampered] measurements.json: `complexity.params` is -1" in run["error"]


def make_submission(
    root: Path,
    name: str = "tiny",
    module_body: str = TINY_CNN,
    track: str = "classification",
    variants: list[str] | None = None,
    entry_points: dict[str, str] | None = None,
    extra_toml: str = "",
    with_entry_group: bool = True,
) -> Path:
    """Write a small real submission project (pyproject + one module) and return its folder."""
    folder = root / name
    package = f"{name}_pkg"
    (folder / package).mkdir(parents=True, exist_ok=True)
    (folder / package / "__init__.py").write_text(textwrap.dedent(module_body))
    eps = entry_points or {name: f"{package}:build"}
    ep_lines = "\n".join(f'{k} = "{v}"' for k, v in eps.items())
    group = f'[project.entry-points."harness.submissions"]\n{ep_lines}\n' if with_entry_group else ""
    variant_line = f"variants = {variants!r}\n".replace("'", '"') if variants else ""
    (folder / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name.replace("_", "-")}-submission"
version = "0.1.0"

{group}
[tool.setuptools]
packages = ["{package}"]

[tool.harness]
track = "{track}"
{variant_line}{extra_toml}"""
    )
    return folder
