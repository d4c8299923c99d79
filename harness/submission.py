"""Submission folders: the manifest, the content hash, and installation into the harness's own folder.

A submission is an installable Python project whose `pyproject.toml` declares entry points in the group
`harness.submissions` and a `[tool.harness]` table (`track`, optional `variants`). It is installed with
`pip install --target` into a folder of the harness, never into the user's environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import MIB, settings
from harness.errors import SubmissionError
from harness.formats.limits import clipped, read_bounded
from harness.fs import publish_dir
from harness.plugins import Entry, Registry, load_target
from harness.records import brief

GROUP = "harness.submissions"
HASH_CHUNK_BYTES = 1 << 20


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
    data = _read_toml(toml_path)
    project = _table(data, "project", toml_path)
    entry_points = _table(_table(project, "entry-points", toml_path, "project"), GROUP, toml_path, "entry-points")
    if not entry_points:
        raise SubmissionError(
            f"{toml_path}: no entry point in the group `{GROUP}`",
            f'add\n    [project.entry-points."{GROUP}"]\n    my_model = "my_package:build"',
        )
    for name, target in entry_points.items():
        if not isinstance(target, str) or ":" not in target:
            raise SubmissionError(
                f"{toml_path}: entry point `{clipped(str(name))} = {brief(target)}` is not of the form "
                "'module:function'"
            )
    tool = _table(_table(data, "tool", toml_path), "harness", toml_path, "tool")
    track = tool.get("track")
    if not track or not isinstance(track, str):
        raise SubmissionError(
            f"{toml_path}: [tool.harness] has no `track`",
            'add `track = "classification"` (or small-object, text-detection)',
        )
    from harness.tracks import get_card

    try:
        get_card(track)
    except Exception as exc:
        raise SubmissionError(f"{toml_path}: [tool.harness] track: {clipped(str(exc), 300)}") from exc
    variants = tool.get("variants", ["fp32"])
    if not isinstance(variants, list) or not variants or not all(isinstance(v, str) for v in variants):
        raise SubmissionError(
            f"{toml_path}: [tool.harness] variants must be a non-empty list of names", 'e.g. ["fp32"]'
        )
    variants = tuple(variants)
    from harness.variants import GROUP as VARIANT_GROUP
    from harness.variants import check_variant_names

    try:
        check_variant_names(variants, dict(project.get("entry-points", {}).get(VARIANT_GROUP, {})))
    except Exception as exc:
        raise SubmissionError(f"{toml_path}: [tool.harness] variants: {clipped(str(exc), 300)}") from exc
    build_options: dict[str, dict] = {}
    unqueued: set[str] = set()
    for name, options in _table(tool, "entry", toml_path, "tool.harness").items():
        if name not in entry_points:
            raise SubmissionError(
                f"{toml_path}: [tool.harness.entry.{clipped(name)}] names no entry point",
                f"entry points: {clipped(', '.join(entry_points), 300)}",
            )
        if not isinstance(options, dict):
            raise SubmissionError(f"{toml_path}: [tool.harness.entry.{clipped(name)}] must be a table")
        build_options[name] = dict(_table(options, "build-options", toml_path, f"tool.harness.entry.{name}"))
        if options.get("queue", True) is False:
            unqueued.add(name)
    return Manifest(
        path=path,
        project=str(project.get("name", path.name)),
        entry_points=dict(entry_points),
        track=track,
        variants=variants,
        build_options=build_options,
        unqueued=frozenset(unqueued),
    )


def _read_toml(toml_path: Path) -> dict:
    """The parsed manifest; one no larger than the submission may be is read, and any fault is a `SubmissionError`."""
    raw = read_bounded(toml_path, settings().max_submission_bytes, "HARNESS_MAX_SUBMISSION_MB", SubmissionError)
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{toml_path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        raise SubmissionError(f"{toml_path}: invalid TOML ({brief(str(exc))})") from exc


def _table(parent: dict, key: str, toml_path: Path, where: str = "") -> dict:
    """`parent[key]`, a TOML table ({} when absent); anything else is a `SubmissionError` naming it."""
    value = parent.get(key, {})
    if not isinstance(value, dict):
        name = f"{where}.{key}" if where else key
        raise SubmissionError(f"{toml_path}: `{clipped(name)}` must be a table, not a {type(value).__name__}")
    return value


def _files(path: Path) -> list[Path]:
    """The submission's files, in a fixed order, once they are known to be within the settings' limits: no more
    than `HARNESS_MAX_SUBMISSION_FILES` files of `HARNESS_MAX_SUBMISSION_MB` together, counted by their apparent
    sizes (a sparse file counts in full), all regular files. Nothing is read or copied before this walk ends."""
    limits = settings()
    out, total = [], 0
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_PARTS and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            file = Path(root) / name
            total += _regular_size(file)
            out.append(file)
            if len(out) > limits.max_submission_files:
                raise SubmissionError(
                    f"{path}: holds more than {limits.max_submission_files:,} files",
                    "leave data sets and build outputs out of the folder, or raise HARNESS_MAX_SUBMISSION_FILES",
                )
            if total > limits.max_submission_bytes:
                raise SubmissionError(
                    f"{path}: its files hold more than {limits.max_submission_bytes / MIB:,.0f} MiB "
                    f"(reached at {file.relative_to(path)}, {file.stat().st_size / MIB:,.1f} MiB)",
                    "leave large files (data, checkpoints) out of the folder, or raise HARNESS_MAX_SUBMISSION_MB",
                )
    return out


def _regular_size(file: Path) -> int:
    """The apparent size (st_size) of a regular file, following links; anything else is refused (a link to a
    device or a pipe would be read without end)."""
    try:
        info = file.stat()
    except OSError as exc:
        raise SubmissionError(f"{file}: cannot be read ({exc.strerror or exc})", "remove it or fix it") from exc
    if not stat.S_ISREG(info.st_mode):
        raise SubmissionError(f"{file}: not a regular file", "a submission holds plain files; remove it")
    return info.st_size


def content_hash(path: Path) -> str:
    """sha256 over relative paths and contents: the same content is the same submission. Files are hashed in
    chunks, never read whole into memory."""
    digest = hashlib.sha256()
    for file in _files(path):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as stream:
            while chunk := stream.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def copy_source(path: Path, dest: Path) -> None:
    for file in _files(path):
        target = dest / file.relative_to(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)


# How a submission is built: `installer(source, staging)` runs `pip install` of the folder `source` (a copy
# of the submission, its own to write into) with `--target` the folder `staging`, and returns pip's exit status
# and output. Building runs the project's code (setup.py, an in-tree build backend, ...): the default builds
# on this host, for code one trusts; the docker runner's installer builds in its sandbox.
Installer = Callable[[Path, Path], tuple[int, str]]


def pip_arguments(source: str, target: str) -> list[str]:
    """The arguments of `python -m pip` that install a submission: no dependencies, no build isolation (the
    build tools of this environment), no byte-code."""
    return [
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-compile",
        "--disable-pip-version-check",
        "--target",
        target,
        source,
    ]


def host_installer(source: Path, staging: Path) -> tuple[int, str]:
    """Build and install on this host, with this interpreter's pip: the submission's build code runs here."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *pip_arguments(str(source), str(staging))], capture_output=True, text=True
    )
    return proc.returncode, proc.stderr or proc.stdout


def install(path: Path, digest: str, installer: Installer | None = None) -> Path:
    """Install the submission into `$HARNESS_HOME/sites/<hash>` (once per content hash); return that folder.
    `installer` builds it (default: `host_installer`); a site that exists is not built again."""
    site = settings().sites_dir / digest
    build = installer or host_installer

    def pip_install(staging: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="harness-src-") as tmp:
            source = Path(tmp) / "src"
            copy_source(path, source)  # builds write into the copy, never into the participant's folder
            returncode, output = build(source, staging)
        if returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-12:])
            raise SubmissionError(
                f"{path}: `pip install` of the submission failed:\n{tail}",
                "make sure `pip install .` works in the submission folder",
            )
        (staging / ".installed").write_text(digest)

    publish_dir(site, pip_install)
    return site
