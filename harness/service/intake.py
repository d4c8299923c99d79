"""The submission server's work, apart from HTTP (`harness.server`): take a participant's upload once per
idempotency key, unpack it in a fresh folder under the upload limits (`harness.uploads.unpack`), check that it
is the content the client hashed, reserve its places in the quota, and leave the check to a background
checker, which runs it in the docker sandbox and accepts or rejects the reserved entries. A refused upload
leaves nothing: its folder and its row go. And what a participant may read: their own uploads, entries and
runs, and the public board."""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.config import settings
from harness.errors import CompetitionError, HarnessError, UploadError


class IdempotencyConflict(CompetitionError):
    """An idempotency key already used for a different archive."""


def take_upload(
    store: Any, competition: str, person: Any, archive: Path, key: str, content_hash: str | None
) -> tuple[dict[str, Any], bool]:
    """Take one upload: (its status, whether a check must now run). The same key again answers with the
    first upload's status, whatever happened to it; a refusal (archive, manifest, track, quota) raises and
    leaves no row and no file."""
    from harness.service.competitions import admissible, open_phase, reserve_places
    from harness.store.competitions import begin_upload, finish_upload, forget_upload, set_upload_entries, upload_row

    digest = _file_sha256(archive)
    view = open_phase(store, competition)
    upload, created = begin_upload(store, person.id, key, digest)
    if not created:
        if upload.archive_sha256 != digest:
            raise IdempotencyConflict(
                f"the idempotency key `{key}` was used for another archive (upload {upload.id})",
                "use a new key for new content (`harness submit --server` makes one per submission)",
            )
        return upload_status(store, upload), False
    folder = settings().uploads_dir / f"{upload.id}-{uuid.uuid4().hex[:12]}"
    try:
        project = _unpacked(archive, folder, content_hash)
        manifest, entered = admissible(store, view, person, project)
        if entered:  # this very content was entered before: nothing new, nothing counted
            shutil.rmtree(folder, ignore_errors=True)
            finish_upload(store, upload.id, "queued", entry_ids=[e["entry_id"] for e in entered])
            return upload_status(store, upload_row(store, upload.id)), False
        reserved = reserve_places(store, view, person, manifest)
        set_upload_entries(store, upload.id, [entry.id for entry in reserved])
        (folder / "phase").write_text(view.spec.name)
    except HarnessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        forget_upload(store, upload.id)
        raise _without_paths(exc, folder) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        forget_upload(store, upload.id)
        raise
    return upload_status(store, upload_row(store, upload.id)), True


def _without_paths(exc: HarnessError, folder: Path) -> HarnessError:
    """The same error, naming files relative to the uploaded project: a participant learns nothing of the
    server's folders."""

    def strip(text: str | None) -> str | None:
        if text is None:
            return None
        return text.replace(str(folder / "project") + "/", "").replace(str(folder / "project"), "the project")

    clean = type(exc).__new__(type(exc))
    HarnessError.__init__(clean, strip(exc.message) or "", strip(exc.hint))
    return clean


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unpacked(archive: Path, folder: Path, declared: str | None) -> Path:
    """The project unpacked under the upload limits, and checked to be the content the client hashed."""
    from harness.submission import content_hash
    from harness.uploads import unpack

    config = settings()
    folder.mkdir(parents=True)
    project = folder / "project"
    unpack(archive, project, config.max_submission_bytes, config.max_upload_files, config.max_upload_bytes)
    found = content_hash(project)
    if declared is not None and found != declared:
        raise UploadError(
            f"the upload unpacks to content {found[:12]}, not the {declared[:12]} the client hashed",
            "upload again (the archive was damaged on the way)",
        )
    return project


def check_upload(store: Any, competition: str, upload_id: int, runner: str = "docker") -> str:
    """Check an upload's project (in the sandbox), store it and accept its reserved entries; or reject it with
    the error (its places go back to the quota). Its folder goes either way. Returns the final state."""
    from harness.service.competitions import complete, current_participant, phase_view
    from harness.store.competitions import entries_by_id, finish_upload, release, upload_row
    from harness.store.models import Participant

    upload = upload_row(store, upload_id)
    folders = sorted(settings().uploads_dir.glob(f"{upload_id}-*"))
    if upload is None or upload.state != "checking":
        return upload.state if upload is not None else "missing"
    if not folders:  # the server stopped between taking it and unpacking it: nothing to check
        release(store, list(upload.entry_ids))
        finish_upload(store, upload_id, "failed", "the server lost this upload before checking it; submit it again")
        return "failed"
    folder = folders[0]
    try:
        with store.session() as s:
            person = s.get(Participant, upload.participant_id)
        view = phase_view(store, competition, (folder / "phase").read_text())
        reserved = entries_by_id(store, list(upload.entry_ids))
        person = current_participant(store, view.competition, person.name)  # removed since the upload: rejected
        complete(store, view, person, folder / "project", reserved, runner)
        state, error = "queued", None
    except HarnessError as exc:
        state, error = "rejected", str(exc)
    except Exception as exc:  # a harness fault: the participant learns that it was not theirs
        state, error = "failed", f"the server failed to check the upload ({type(exc).__name__}); try again later"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    finish_upload(store, upload_id, state, error)
    return state


class Checker:
    """Runs upload checks in the background, a few at a time (each in its own sandbox container). With no
    workers, uploads stay `checking` (their places reserved) until a server with workers resumes them."""

    def __init__(self, store: Any, competition: str, runner: str = "docker", workers: int = 1):
        self.store, self.competition, self.runner = store, competition, runner
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="harness-check") if workers else None

    def submit(self, upload_id: int) -> None:
        if self.pool is not None:
            self.pool.submit(check_upload, self.store, self.competition, upload_id, self.runner)

    def resume(self) -> int:
        """Queue the checks a stopped server left unfinished; returns how many."""
        from harness.store.competitions import checking_uploads

        pending = [u.id for u in checking_uploads(self.store)]
        for upload_id in pending:
            self.submit(upload_id)
        return len(pending)

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


# what a participant may read -----------------------------------------------------------------------------------


def upload_status(store: Any, upload: Any) -> dict[str, Any]:
    from harness.store.competitions import entries_by_id

    entries = entries_by_id(store, list(upload.entry_ids or []))
    return {
        "upload_id": upload.id,
        "state": upload.state,
        "error": upload.error,
        "archive_sha256": upload.archive_sha256,
        "created_at": upload.created_at.isoformat() + "Z",
        "entries": [
            {"entry_id": e.id, "entry": e.name, "status": e.status, "submission_id": e.submission_id} for e in entries
        ],
    }


def own_upload(store: Any, person: Any, upload_id: int) -> dict[str, Any] | None:
    """One of the participant's uploads (None for anybody else's: not theirs to know it exists)."""
    from harness.store.competitions import upload_row

    upload = upload_row(store, upload_id)
    if upload is None or upload.participant_id != person.id:
        return None
    return upload_status(store, upload)


def own_submissions(store: Any, competition: str, person: Any) -> dict[str, Any]:
    """The participant's uploads, and the runs of their entries with public scores and errors (and the
    sandbox's log tail of their failed runs). Nothing of anybody else's; nothing private."""
    from harness.service.competitions import phase_view
    from harness.store.competitions import entries, runs_of_submissions, uploads

    view = phase_view(store, competition)
    mine = entries(store, view.row.id, person.id)
    runs = runs_of_submissions(store, view.row.id, sorted({e.submission_id for e in mine}))
    by_submission: dict[int, list[Any]] = {}
    for run in runs:
        by_submission.setdefault(run.submission_id, []).append(_run_dict(run))
    return {
        "participant": person.name,
        "team": person.team,
        "competition": competition,
        "phase": view.spec.name,
        "uploads": [upload_status(store, u) for u in uploads(store, person.id)],
        "entries": [
            {
                "entry_id": e.id,
                "entry": e.name,
                "submitted_at": e.submitted_at.isoformat() + "Z",
                "selected": e.selected,
                "runs": by_submission.get(e.submission_id, []),
            }
            for e in mine
        ],
    }


def own_run(store: Any, competition: str, person: Any, run_id: int) -> dict[str, Any] | None:
    """One run of the participant's own entries, or None (another's run, or none at all: the same answer)."""
    from harness.service.competitions import phase_view
    from harness.store.competitions import entries

    view = phase_view(store, competition)
    mine = {e.submission_id for e in entries(store, view.row.id, person.id)}
    run = store.get_run(run_id)
    if run is None or run.phase_id != view.row.id or run.submission_id not in mine:
        return None
    return _run_dict(run)


def _run_dict(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "variant": run.variant,
        "status": run.status,
        "primary_metric": run.primary_metric,
        "public_value": run.primary_value,  # a phase run's own figures are its public part's
        "public_interval": [run.primary_ci_low, run.primary_ci_high] if run.primary_ci_low is not None else None,
        "error": run.error,
        "log_tail": run.log_tail if run.status != "ok" else None,
        "finished_at": run.finished_at.isoformat() + "Z" if run.finished_at else None,
    }
