"""Shared fixtures: an isolated harness home and store per test, and a factory for small real submissions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
