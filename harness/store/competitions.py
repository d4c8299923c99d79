"""The store's side of competitions: bundles registered as versions, phases, participants, entries under quotas,
and the runs of a phase with their private scores. Every write is one transaction; the quota check and the
entry it admits are one transaction that first takes the participant's row (`last_submitted_at`), so two
concurrent submissions of one participant are serialised on SQLite and PostgreSQL alike and exactly the quota
is admitted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
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


def _quota_state(s: Any, phase_id: int, participant_id: int, now: datetime, quota: dict[str, Any]) -> QuotaState:
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    mine = (Entry.phase_id == phase_id, Entry.participant_id == participant_id)
    total = int(s.scalar(select(func.count(Entry.id)).where(*mine)) or 0)
    today = int(s.scalar(select(func.count(Entry.id)).where(*mine, Entry.submitted_at >= day_start)) or 0)
    return QuotaState(today, total, quota.get("per_day"), quota.get("per_phase"), day_start)


def quota_state(
    store: Store, phase_id: int, participant_id: int, quota: dict[str, Any], now: datetime | None = None
) -> QuotaState:
    with store.session() as s:
        return _quota_state(s, phase_id, participant_id, now or utcnow(), quota)


def admit(
    store: Store,
    phase_id: int,
    participant_id: int,
    entries: list[tuple[str, int]],
    quota: dict[str, Any],
    now: datetime | None = None,
) -> list[Entry] | QuotaState:
    """Admit (entry name, submission id) pairs as one submission of a participant to a phase, or refuse them all
    (the `QuotaState` that refuses). Atomic: the participant's row is written first, which serialises concurrent
    submissions of the same participant before the quota is counted."""
    now = now or utcnow()
    with store.session() as s:
        lock = update(Participant).where(Participant.id == participant_id).values(last_submitted_at=now)
        s.execute(lock.execution_options(synchronize_session=False))
        state = _quota_state(s, phase_id, participant_id, now, quota)
        if state.refusal(len(entries)) is not None:
            s.rollback()
            return state
        rows = [
            Entry(phase_id=phase_id, participant_id=participant_id, name=name, submission_id=sid, submitted_at=now)
            for name, sid in entries
        ]
        s.add_all(rows)
        s.flush()
        return rows


def entries(store: Store, phase_id: int, participant_id: int | None = None) -> list[Entry]:
    with store.session() as s:
        query = (
            select(Entry)
            .where(Entry.phase_id == phase_id)
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
