"""Submission folders: the manifest, the content hash, and installation into the harness's own folder.

A submission is an installable Python project whose `pyproject.toml` declares entry points in the group
`harness.submissions` and a `[tool.harness]` table (`track`, optional `variants`). It is installed with
`pip install --target` into a folder of the harness, never into the user's environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import harness_home
from harness.errors import SubmissionError
from harness.fs import publish_dir
from harness.plugins import Entry, Registry, load_target

GROUP = "harness.submissions"


def _load_build(entry: Entry, site_dir: Path | None) -> object:
    build = load_target(entry.target, site_dir, f"entry point `{entry.target}`", SubmissionError)
    if not callable(build):
        raise SubmissionError(f"entry point `{entry.target}` is not callable; it must be `build(ctx) -> Predictor`")
    return build


# Entry points of the group `harness.submissions`: of the folder a submission was installed into (its own,
# and only those), or of this environment. Loading one imports the submission's code: the sandbox's job.
SUBMISSIONS: Registry[object] = Registry("submission", GROUP, loader=_load_build, error=SubmissionError, site_only=True)

IGNORED_PARTS = {
    ".git",
    "__pycache__",
    "build",
    "dist",
    ".venv",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
}


@dataclass(frozen=True)
class Manifest:
    path: Path
    project: str
    entry_points: dict[str, str]  # name -> "module:attr"
    track: str
    variants: tuple[str, ...]
    build_options: dict[str, dict] = field(default_factory=dict)  # entry name -> ctx.extra
    unqueued: frozenset[str] = frozenset()  # entries evaluated only when named

    def queued(self, name: str) -> bool:
        return name not in self.unqueued


def read_manifest(path: Path) -> Manifest:
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise SubmissionError(f"{path}: not a folder", "pass the folder that holds the submission's pyproject.toml")
    toml_path = path / "pyproject.toml"
    if not toml_path.is_file():
        raise SubmissionError(f"{toml_path}: missing", "a submission is an installable project with a pyproject.toml")
    try:
        data = tomllib.loads(toml_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SubmissionError(f"{toml_path}: invalid TOML ({exc})") from exc
    project = data.get("project", {})
    entry_points = project.get("entry-points", {}).get(GROUP, {})
    if not entry_points:
        raise SubmissionError(
            f"{toml_path}: no entry point in the group `{GROUP}`",
            f'add\n    [project.entry-points."{GROUP}"]\n    my_model = "my_package:build"',
        )
    for name, target in entry_points.items():
        if ":" not in str(target):
            raise SubmissionError(
                f"{toml_path}: entry point `{name} = {target!r}` is not of the form 'module:function'"
            )
    tool = data.get("tool", {}).get("harness", {})
    track = tool.get("track")
    if not track:
        raise SubmissionError(
            f"{toml_path}: [tool.harness] has no `track`",
            'add `track = "classification"` (or small-object, text-detection)',
        )
    from harness.tracks import get_card

    try:
        get_card(track)
    except Exception as exc:
        raise SubmissionError(f"{toml_path}: [tool.harness] track: {exc}") from exc
    variants = tuple(tool.get("variants", ["fp32"]))
    from harness.variants import GROUP as VARIANT_GROUP
    from harness.variants import check_variant_names

    try:
        check_variant_names(variants, dict(project.get("entry-points", {}).get(VARIANT_GROUP, {})))
    except Exception as exc:
        raise SubmissionError(f"{toml_path}: [tool.harness] variants: {exc}") from exc
    build_options: dict[str, dict] = {}
    unqueued: set[str] = set()
    for name, options in tool.get("entry", {}).items():
        if name not in entry_points:
            raise SubmissionError(
                f"{toml_path}: [tool.harness.entry.{name}] names no entry point",
                f"entry points: {', '.join(entry_points)}",
            )
        if not isinstance(options, dict):
            raise SubmissionError(f"{toml_path}: [tool.harness.entry.{name}] must be a table")
        build_options[name] = dict(options.get("build-options", {}))
        if options.get("queue", True) is False:
            unqueued.add(name)
    return Manifest(
        path=path,
        project=project.get("name", path.name),
        entry_points=dict(entry_points),
        track=track,
        variants=variants,
        build_options=build_options,
        unqueued=frozenset(unqueued),
    )


def _files(path: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_PARTS and not d.endswith(".egg-info"))
        out.extend(Path(root) / f for f in sorted(files) if not f.endswith(".pyc"))
    return out


def content_hash(path: Path) -> str:
    """sha256 over relative paths and contents: the same content is the same submission."""
    digest = hashlib.sha256()
    for file in _files(path):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def copy_source(path: Path, dest: Path) -> None:
    for file in _files(path):
        target = dest / file.relative_to(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)


def install(path: Path, digest: str) -> Path:
    """Install the submission into `$HARNESS_HOME/sites/<hash>` (once per content hash); return that folder."""
    site = harness_home() / "sites" / digest

    def pip_install(staging: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="harness-src-") as tmp:
            source = Path(tmp) / "src"
            copy_source(path, source)  # builds write into the copy, never into the participant's folder
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-compile",
                "--disable-pip-version-check",
                "--target",
                str(staging),
                str(source),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
            raise SubmissionError(
                f"{path}: `pip install` of the submission failed:\n{tail}",
                "make sure `pip install .` works in the submission folder",
            )
        (staging / ".installed").write_text(digest)

    publish_dir(site, pip_install)
    return site
