"""`submit`: check a submission, then store an immutable content-hashed copy, queued for evaluation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.config import submissions_dir
from harness.errors import RuleViolation, SubmissionError
from harness.fs import publish_dir
from harness.service.check import check
from harness.submission import Manifest, content_hash, copy_source, install, read_manifest


@dataclass
class SubmitResult:
    id: int
    name: str
    track: str
    content_hash: str
    created: bool
    stored_path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def submit(path: Path, store: Any = None, runner: str | None = None) -> list[SubmitResult]:
    """Check, then store an immutable content-hashed copy, queued for evaluation. Same content again is
    recognised and not duplicated. Nothing is stored if any entry point fails its check. A server taking
    strangers' submissions checks them with `runner="docker"`. A name another project owns is refused before
    anything runs (`refuse_taken_names`)."""
    from harness.store import open_store

    store = store or open_store()
    manifest = read_manifest(path)
    refuse_taken_names(store, manifest, list(manifest.entry_points))
    reports = check(path, runner=runner)
    refuse_faults(reports)
    return store_submission(path, store, reports={r.name: r for r in reports}, runner=runner)


def refuse_faults(reports: Sequence[Any]) -> None:
    """Refuse a submission any of whose entry points failed its check, naming each fault."""
    bad = [r for r in reports if not r.ok]
    if bad:
        lines = [f"{r.name}: {r.error or '; '.join(r.violations)}" for r in bad]
        cls = RuleViolation if all(r.violations and not r.error for r in bad) else SubmissionError
        own_fixes = all("\n  fix: " in line for line in lines)  # an import error's, say: no second, generic one
        hint = None if own_fixes else "fix the faults above and run `harness check` again"
        raise cls("submission refused:\n  " + "\n  ".join(lines), hint)


def store_submission(
    path: Path,
    store: Any = None,
    reports: dict[str, Any] | None = None,
    entries: Sequence[str] | None = None,
    competition: bool = False,
    runner: str | None = None,
) -> list[SubmitResult]:
    """Store an immutable content-hashed copy of a project, install it into its own site folder, and queue its
    entry points (all, or `entries`). `reports` are their check reports, whose complexity figures the rows keep;
    `submit` checks first. Called without reports (no check, no figures) only by tools that trust the code.
    A `competition` submission is not queued for its track's own boards (its phase evaluates it) and its names
    belong to its participant (`harness.service.competitions`), not to a project. The project is built as
    `runner` builds it (docker: in its sandbox), should its content differ from what the check built."""
    from harness.store import open_store

    store = store or open_store()
    manifest = read_manifest(path)
    names = list(entries or (reports.keys() if reports else manifest.entry_points))
    if not competition:
        refuse_taken_names(store, manifest, names)
    digest = content_hash(manifest.path)
    stored = submissions_dir() / digest
    publish_dir(stored, lambda staging: copy_source(manifest.path, staging))
    site = install(stored, digest, installer=_installer(runner))
    results = []
    for name in names:
        report = (reports or {}).get(name)
        row, created = store.add_submission(
            name=name,
            track=manifest.track,
            content_hash=digest,
            project=manifest.project,
            entry_point=manifest.entry_points[name],
            variants=list(manifest.variants),
            source_path=str(manifest.path),
            stored_path=str(stored),
            site_path=str(site),
            params=getattr(report, "params", None),
            macs=getattr(report, "macs", None),
            bytes=getattr(report, "bytes", None),
            build_options=manifest.build_options.get(name, {}),
            queued=manifest.queued(name) and not competition,
        )
        results.append(SubmitResult(row.id, row.name, row.track, digest, created, str(stored)))
    return results


def _installer(runner: str | None) -> Any:
    if runner is None:
        return None
    from harness.runners import get_runner
    from harness.service.check import runner_installer

    return runner_installer(get_runner(runner))


def _distribution(name: str) -> str:
    """A distribution name as packaging compares them (PEP 503): `My_Model` and `my-model` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def refuse_taken_names(store: Any, manifest: Manifest, names: Sequence[str]) -> None:
    """Refuse to store `names` for `manifest`'s project where another project owns one: a submission name belongs
    to the project (its distribution name) that first stored it, and only that project may store new versions
    under it; otherwise a stranger's model would take over the name's leaderboard row. The one place that decides
    who may use a name."""
    for name in names:
        stored = store.submissions(names=[name])
        if not stored:
            continue
        owner = stored[0].project
        if _distribution(owner) != _distribution(manifest.project):
            raise SubmissionError(
                f"{manifest.path}: the submission name `{name}` belongs to the project `{owner}`, "
                f"not to `{manifest.project}`",
                'choose another entry-point name in [project.entry-points."harness.submissions"]',
            )
