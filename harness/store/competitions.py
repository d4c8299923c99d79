"""The store's side of competitions: bundles registered as versions, phases, participants, entries under quotas,
and the runs of a phase with their private scores. Every write is one transaction; the quota check and the
entry it admits are one transaction that first takes the participant's row (`last_submitted_at`), so two
concurrent submissions of one participant are serialised on SQLite and PostgreSQL alike and exactly the quota
is admitted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from harness.store.models import (
    Competition,
    CompetitionVersion,
    Entry,
    Participant,
    Phase,
    PrivateScore,
    Run,
    Upload,
    utcnow,
)
from harness.store.repo import Store, _run_query


@dataclass(frozen=True)
class Registered:
    competition: Competition
    created: bool  # False: the same bundle content was registered before (nothing changed)
    version: int


def register(
    store: Store, name: str, title: str, digest: str, bundle_path: str, spec: dict[str, Any], phases: list[str]
) -> Registered:
    """Register a bundle: a new competition (version 1), a new version of it (other content), or nothing (the
    same content). Phases named by the bundle get their rows; phases a newer version dropped keep theirs."""
    now = utcnow()
    with store.session() as s:
        row = s.scalar(select(Competition).where(Competition.name == name))
        if row is not None and row.digest == digest:
            return Registered(row, False, row.version)
        if row is None:
            row = Competition(name=name, title=title, version=1, digest=digest, bundle_path=bundle_path, spec=spec)
            row.created_at = row.updated_at = now
            s.add(row)
            s.flush()
        else:
            row.version += 1
            row.title, row.digest, row.bundle_path, row.spec, row.updated_at = title, digest, bundle_path, spec, now
        s.add(
            CompetitionVersion(
                competition_id=row.id, version=row.version, digest=digest, bundle_path=bundle_path, spec=spec
            )
        )
        known = set(s.scalars(select(Phase.name).where(Phase.competition_id == row.id)))
        for phase in phases:
            if phase not in known:
                s.add(Phase(competition_id=row.id, name=phase))
        s.flush()
        return Registered(row, True, row.version)


def competition(store: Store, name: str) -> Competition | None:
    with store.session() as s:
        return s.scalar(select(Competition).where(Competition.name == name).options(selectinload(Competition.phases)))


def competitions(store: Store) -> list[Competition]:
    with store.session() as s:
        return list(s.scalars(select(Competition).order_by(Competition.name).options(selectinload(Competition.phases))))


def close_phase(store: Store, phase_id: int, when: datetime | None = None) -> bool:
    """Close a phase (its private board becomes visible); False when it was closed already."""
    with store.session() as s:
        closing = update(Phase).where(Phase.id == phase_id, Phase.closed_at.is_(None))
        closing = closing.values(closed_at=when or utcnow())
        return s.execute(closing.execution_options(synchronize_session=False)).rowcount == 1


# participants -------------------------------------------------------------------------------------------------


def add_participant(store: Store, competition_id: int, name: str, team: str | None) -> Participant | None:
    """A new participant, or None when the name is taken in this competition (removed participants included)."""
    try:
        with store.session() as s:
            row = Participant(competition_id=competition_id, name=name, team=team)
            s.add(row)
            s.flush()
            return row
    except IntegrityError:
        return None


def participants(store: Store, competition_id: int, include_removed: bool = False) -> list[Participant]:
    with store.session() as s:
        query = select(Participant).where(Participant.competition_id == competition_id).order_by(Participant.name)
        if not include_removed:
            query = query.where(Participant.removed_at.is_(None))
        return list(s.scalars(query))


def participant(store: Store, competition_id: int, name: str) -> Participant | None:
    with store.session() as s:
        return s.scalar(
            select(Participant).where(Participant.competition_id == competition_id, Participant.name == name)
        )


def remove_participant(store: Store, participant_id: int) -> bool:
    """Mark a participant removed: no further submissions, off the boards; their rows and runs stay."""
    with store.session() as s:
        removing = (
            update(Participant)
            .where(Participant.id == participant_id, Participant.removed_at.is_(None))
            .values(removed_at=utcnow())
        )
        return s.execute(removing.execution_options(synchronize_session=False)).rowcount == 1


# entries under quotas -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaState:
    """How many entries a participant has in a phase today (UTC) and in all, against the phase's limits."""

    today: int
    total: int
    per_day: int | None
    per_phase: int | None
    day_start: datetime

    def refusal(self, wanted: int) -> str | None:
        """Why `wanted` more entries are refused now, or None."""
        asked = f"{wanted} more asked (each entry point counts)"
        if self.per_phase is not None and self.total + wanted > self.per_phase:
            return f"the phase's quota is {self.per_phase} submission(s) per participant: {self.total} made, {asked}"
        if self.per_day is not None and self.today + wanted > self.per_day:
            return f"the daily quota is {self.per_day} submission(s): {self.today} made today (UTC), {asked}"
        return None

    @property
    def next_day(self) -> datetime:
        return self.day_start + timedelta(days=1)


# A reservation whose check never finished (its server stopped) stops counting against the quota after this.
PENDING_FOR = timedelta(hours=2)


def _quota_state(s: Any, phase_id: int, participant_id: int, now: datetime, quota: dict[str, Any]) -> QuotaState:
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counted = or_(Entry.status == "accepted", and_(Entry.status == "pending", Entry.submitted_at > now - PENDING_FOR))
    mine = (Entry.phase_id == phase_id, Entry.participant_id == participant_id, counted)
    total = int(s.scalar(select(func.count(Entry.id)).where(*mine)) or 0)
    today = int(s.scalar(select(func.count(Entry.id)).where(*mine, Entry.submitted_at >= day_start)) or 0)
    return QuotaState(today, total, quota.get("per_day"), quota.get("per_phase"), day_start)


def quota_state(
    store: Store, phase_id: int, participant_id: int, quota: dict[str, Any], now: datetime | None = None
) -> QuotaState:
    with store.session() as s:
        return _quota_state(s, phase_id, participant_id, now or utcnow(), quota)


def reserve(
    store: Store,
    phase_id: int,
    participant_id: int,
    entries: list[tuple[str, int | None]],
    quota: dict[str, Any],
    now: datetime | None = None,
    status: str = "pending",
) -> list[Entry] | QuotaState:
    """Take places in a participant's quota for (entry name, submission id or None) pairs, all or none: their
    entries (`pending`: reserved while a check runs, to be `confirm`ed or `release`d; `accepted`: ranked), or
    the `QuotaState` that refuses them. Atomic: the participant's row is written first, which serialises
    concurrent submissions of the same participant before the quota is counted."""
    now = now or utcnow()
    with store.session() as s:
        lock = update(Participant).where(Participant.id == participant_id).values(last_submitted_at=now)
        s.execute(lock.execution_options(synchronize_session=False))
        state = _quota_state(s, phase_id, participant_id, now, quota)
        if state.refusal(len(entries)) is not None:
            s.rollback()
            return state
        rows = [
            Entry(
                phase_id=phase_id,
                participant_id=participant_id,
                name=name,
                submission_id=sid,
                submitted_at=now,
                status=status,
            )
            for name, sid in entries
        ]
        s.add_all(rows)
        s.flush()
        return rows


def admit(
    store: Store,
    phase_id: int,
    participant_id: int,
    entries: list[tuple[str, int]],
    quota: dict[str, Any],
    now: datetime | None = None,
) -> list[Entry] | QuotaState:
    """`reserve` of stored submissions, accepted at once."""
    return reserve(store, phase_id, participant_id, entries, quota, now, status="accepted")


def confirm(store: Store, entry_ids: list[int], submission_ids: list[int]) -> None:
    """Reserved entries become accepted, each with its stored submission."""
    with store.session() as s:
        for entry_id, submission_id in zip(entry_ids, submission_ids, strict=True):
            accept = update(Entry).where(Entry.id == entry_id).values(status="accepted", submission_id=submission_id)
            s.execute(accept.execution_options(synchronize_session=False))


def release(store: Store, entry_ids: list[int]) -> None:
    """Give back reserved places (the check failed): the rows go, the quota is as it was."""
    if entry_ids:
        with store.session() as s:
            s.execute(delete(Entry).where(Entry.id.in_(entry_ids), Entry.status == "pending"))


def entries(store: Store, phase_id: int, participant_id: int | None = None) -> list[Entry]:
    """A phase's accepted entries (of one participant)."""
    with store.session() as s:
        query = (
            select(Entry)
            .where(Entry.phase_id == phase_id, Entry.status == "accepted")
            .options(selectinload(Entry.participant), selectinload(Entry.submission))
            .order_by(Entry.id)
        )
        if participant_id is not None:
            query = query.where(Entry.participant_id == participant_id)
        return list(s.scalars(query))


def set_selected(store: Store, entry_id: int, selected: bool) -> None:
    with store.session() as s:
        s.execute(update(Entry).where(Entry.id == entry_id).values(selected=selected))


# runs of a phase ----------------------------------------------------------------------------------------------


def phase_runs(store: Store, phase_id: int, profile: str, hardware_class: str | None = None) -> list[Run]:
    """The finished `ok` runs of a phase under its ranking profile (and hardware class, when it names one)."""
    with store.session() as s:
        query = _run_query().where(Run.phase_id == phase_id, Run.status == "ok", Run.profile == profile)
        if hardware_class:
            query = query.where(Run.hardware_class == hardware_class)
        return list(s.scalars(query.order_by(Run.id)))


def private_scores(store: Store, run_ids: list[int]) -> dict[int, PrivateScore]:
    """The private part's scores of these runs. Callers show them only for a closed phase."""
    if not run_ids:
        return {}
    with store.session() as s:
        return {row.run_id: row for row in s.scalars(select(PrivateScore).where(PrivateScore.run_id.in_(run_ids)))}


# server tokens and uploads -----------------------------------------------------------------------------------


def set_token_hash(store: Store, participant_id: int, token_hash: str | None) -> None:
    """Store the hash of a participant's new token (the old one stops working), or None: revoked."""
    with store.session() as s:
        values = {"token_hash": token_hash, "token_created_at": utcnow() if token_hash else None}
        s.execute(update(Participant).where(Participant.id == participant_id).values(**values))


def participant_by_token(store: Store, competition_id: int, token_hash: str) -> Participant | None:
    """The current participant of this competition whose token has this hash."""
    with store.session() as s:
        return s.scalar(
            select(Participant).where(
                Participant.token_hash == token_hash,
                Participant.competition_id == competition_id,
                Participant.removed_at.is_(None),
            )
        )


def begin_upload(store: Store, participant_id: int, key: str, archive_sha256: str) -> tuple[Upload, bool]:
    """The upload of this participant and idempotency key: a new one (`checking`), or the one made before."""
    try:
        with store.session() as s:
            row = Upload(
                participant_id=participant_id, idempotency_key=key, archive_sha256=archive_sha256, state="checking"
            )
            row.entry_ids = []
            s.add(row)
            s.flush()
            return row, True
    except IntegrityError:
        with store.session() as s:
            row = s.scalar(select(Upload).where(Upload.participant_id == participant_id, Upload.idempotency_key == key))
        if row is None:  # deleted between the two statements (its archive was refused): take the key again
            return begin_upload(store, participant_id, key, archive_sha256)
        return row, False


def finish_upload(
    store: Store, upload_id: int, state: str, error: str | None = None, entry_ids: list[int] | None = None
) -> None:
    with store.session() as s:
        values: dict[str, Any] = {"state": state, "error": error, "finished_at": utcnow()}
        if entry_ids is not None:
            values["entry_ids"] = entry_ids
        s.execute(update(Upload).where(Upload.id == upload_id).values(**values))


def set_upload_entries(store: Store, upload_id: int, entry_ids: list[int]) -> None:
    with store.session() as s:
        s.execute(update(Upload).where(Upload.id == upload_id).values(entry_ids=entry_ids))


def upload_row(store: Store, upload_id: int) -> Upload | None:
    with store.session() as s:
        return s.get(Upload, upload_id)


def forget_upload(store: Store, upload_id: int) -> None:
    """Delete an upload whose archive was refused: nothing of it stays in the store."""
    with store.session() as s:
        s.execute(delete(Upload).where(Upload.id == upload_id))


def uploads(store: Store, participant_id: int, state: str | None = None) -> list[Upload]:
    with store.session() as s:
        query = select(Upload).where(Upload.participant_id == participant_id).order_by(Upload.id)
        if state is not None:
            query = query.where(Upload.state == state)
        return list(s.scalars(query))


def checking_uploads(store: Store) -> list[Upload]:
    """Uploads whose check has not finished (a restarted server takes them up again)."""
    with store.session() as s:
        return list(s.scalars(select(Upload).where(Upload.state == "checking").order_by(Upload.id)))


def entries_by_id(store: Store, entry_ids: list[int]) -> list[Entry]:
    if not entry_ids:
        return []
    with store.session() as s:
        query = select(Entry).where(Entry.id.in_(entry_ids)).options(selectinload(Entry.submission))
        return list(s.scalars(query.order_by(Entry.id)))


def runs_of_submissions(store: Store, phase_id: int, submission_ids: list[int]) -> list[Run]:
    """A phase's runs (any status) of these submissions: what a participant may see of their own."""
    if not submission_ids:
        return []
    with store.session() as s:
        query = _run_query().where(Run.phase_id == phase_id, Run.submission_id.in_(submission_ids))
        return list(s.scalars(query.order_by(Run.id)))
