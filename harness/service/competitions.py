"""Competitions: an organiser's bundle registered in the store, its phases, participants submitting under quotas,
evaluation on the phase's hidden test set split by a keyed hash into a public and a private part, and the boards
(the public one while a phase runs; the private one, the final standing, once the organiser closed it).

The rule that keeps the private part private: a competition run's own metrics (the `Run` row and its `Metric`
rows, which every verb, export and page reads) are the PUBLIC part's scores; the private part's go to
`private_scores`, which only `board(..., private=True)` reads, and only for a closed phase.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.config import settings
from harness.errors import CompetitionError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _utcnow() -> datetime:
    from harness.store.models import utcnow

    return utcnow()


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def key_path(competition: str) -> Path:
    return settings().keys_dir / f"{competition}.key"


# bundles -------------------------------------------------------------------------------------------------------


def create(root: Path, store: Any = None) -> dict[str, Any]:
    """Validate a bundle, keep an immutable copy of it, make the competition's secret split key (once), and
    register it: a new competition, a new version of it (other content), or nothing new (the same content)."""
    from harness.competitions.bundle import load_bundle
    from harness.competitions.split import load_or_create_key
    from harness.fs import publish_dir
    from harness.store import open_store
    from harness.store.competitions import register

    store = store or open_store()
    bundle = load_bundle(Path(root))
    kept = settings().competitions_dir / bundle.name / "bundles" / bundle.digest[:16]
    publish_dir(kept, lambda staging: _copy_bundle(bundle.root, staging))
    stored = load_bundle(kept)
    if stored.digest != bundle.digest:
        raise CompetitionError(
            f"the kept copy of bundle {bundle.name} at {kept} differs from {root} (digest {stored.digest[:12]} "
            f"instead of {bundle.digest[:12]})",
            f"delete {kept} and run `harness competition create` again",
        )
    load_or_create_key(key_path(bundle.name))
    phases = [phase.name for phase in bundle.phases]
    registered = register(store, bundle.name, bundle.title, bundle.digest, str(kept), bundle.to_dict(), phases)
    return {
        "name": bundle.name,
        "version": registered.version,
        "created": registered.created,
        "digest": bundle.digest,
        "bundle": str(kept),
        "phases": phases,
    }


def _copy_bundle(source: Path, staging: Path) -> None:
    shutil.copytree(source, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


@dataclass
class PhaseView:
    """One phase of a registered competition: the store's rows and the validated bundle's settings."""

    competition: Any  # harness.store.models.Competition
    bundle: Any  # harness.competitions.bundle.Bundle (the kept copy)
    spec: Any  # harness.competitions.bundle.PhaseSpec
    row: Any  # harness.store.models.Phase

    def state(self, now: datetime | None = None) -> str:
        """upcoming, open, ended (past its close time, not yet closed by the organiser) or closed."""
        now = now or _utcnow()
        if self.row.closed_at is not None:
            return "closed"
        if now < self.spec.opens:
            return "upcoming"
        return "open" if now < self.spec.closes else "ended"

    @property
    def card(self) -> Any:
        return self.bundle.card(self.spec)

    @property
    def profile(self) -> str:
        return self.spec.profile or self.card.profile

    @property
    def label(self) -> str:
        return f"phase `{self.spec.name}` of competition `{self.competition.name}`"


def _competition(store: Any, name: str) -> Any:
    from harness.plugins import suggest
    from harness.store.competitions import competition, competitions

    row = competition(store, name)
    if row is None:
        known = [c.name for c in competitions(store)]
        listing = f"registered: {', '.join(known) or 'none'} (`harness competition create DIR` registers one)"
        raise CompetitionError(f"no competition named `{name}`", suggest(name, known, listing))
    return row


def _bundle(row: Any) -> Any:
    """The registered bundle, from its stored spec over its kept copy (its cards and data folders checked; its
    files are hashed again only before an evaluation reads them: `_phase_split`)."""
    from harness.competitions.bundle import bundle_from_dict

    return bundle_from_dict(row.spec, Path(row.bundle_path))


def phase_view(store: Any, competition: str, phase: str | None = None, now: datetime | None = None) -> PhaseView:
    """A phase by name, or by default the open phase (else the latest that opened, else the first)."""
    row = _competition(store, competition)
    bundle = _bundle(row)
    rows = {p.name: p for p in row.phases}
    if phase is not None:
        spec = bundle.phase(phase)
        return PhaseView(row, bundle, spec, rows[spec.name])
    views = [PhaseView(row, bundle, spec, rows[spec.name]) for spec in bundle.phases]
    now = now or _utcnow()
    open_ = [v for v in views if v.state(now) == "open"]
    started = sorted((v for v in views if v.spec.opens <= now), key=lambda v: v.spec.opens)
    return (open_ or started[-1:] or views)[0]


def describe(store: Any, name: str, now: datetime | None = None) -> dict[str, Any]:
    """A competition as `competition show` prints it (no score of any kind)."""
    from harness.store.competitions import entries, participants

    row = _competition(store, name)
    bundle = _bundle(row)
    people = participants(store, row.id)
    phases = []
    for spec in bundle.phases:
        view = PhaseView(row, bundle, spec, next(p for p in row.phases if p.name == spec.name))
        info = spec.to_dict()
        info.update(state=view.state(now), entries=len(entries(store, view.row.id)), profile=view.profile)
        info["closed_at"] = view.row.closed_at.isoformat() + "Z" if view.row.closed_at else None
        phases.append(info)
    return {
        "name": row.name,
        "title": row.title,
        "description": bundle.description,
        "version": row.version,
        "digest": row.digest,
        "bundle": row.bundle_path,
        "participants": [{"name": p.name, "team": p.team} for p in people],
        "phases": phases,
    }


def listing(store: Any) -> list[dict[str, Any]]:
    from harness.store.competitions import competitions

    return [
        {"name": c.name, "title": c.title, "version": c.version, "phases": [p.name for p in c.phases]}
        for c in competitions(store)
    ]


def close_phase(store: Any, competition: str, phase: str, force: bool = False) -> dict[str, Any]:
    """Close a phase: submissions end and its private board becomes the final standing. Before its close time
    only with `force`."""
    from harness.store.competitions import close_phase as close

    view = phase_view(store, competition, phase)
    state = view.state()
    if state == "closed":
        raise CompetitionError(f"{view.label} was closed at {_when(view.row.closed_at)}")
    if state in ("upcoming", "open") and not force:
        raise CompetitionError(
            f"{view.label} closes at {_when(view.spec.closes)}; it is {state} now",
            "wait for its close time, or pass --force to close it now",
        )
    close(store, view.row.id)
    return {"competition": competition, "phase": view.spec.name, "closed": True}


# participants ----------------------------------------------------------------------------------------------------


def _check_name(value: str, what: str) -> str:
    if not NAME.fullmatch(value):
        raise CompetitionError(
            f"{what} `{value}` is not a valid name", "use 1-64 letters, digits, `_`, `-` or `.`, starting alphanumeric"
        )
    return value


def add_participant(
    store: Any, competition: str, name: str, team: str | None = None, exist_ok: bool = False
) -> dict[str, Any]:
    """Add a participant; with `exist_ok`, one of that name and team already there is no error (scripts)."""
    from harness.store.competitions import add_participant as add
    from harness.store.competitions import participant

    row = _competition(store, competition)
    _check_name(name, "participant")
    if team is not None:
        _check_name(team, "team")
    added = add(store, row.id, name, team)
    if added is None and exist_ok:
        existing = participant(store, row.id, name)
        if existing is not None and existing.removed_at is None and existing.team == team:
            return {"competition": competition, "name": name, "team": team, "created": False}
    if added is None:
        raise CompetitionError(
            f"competition `{competition}` has a participant named `{name}` already (removed participants keep "
            "their names)",
            "choose another name",
        )
    token = _new_token(store, added.id)
    return {"competition": competition, "name": name, "team": team, "created": True, "token": token}


TOKEN_PREFIX = "hxt_"


def token_hash(token: str) -> str:
    """What the store keeps of a token: its sha256 (tokens are 256-bit random, so a plain hash suffices)."""
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(store: Any, participant_id: int) -> str:
    import secrets

    from harness.store.competitions import set_token_hash

    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    set_token_hash(store, participant_id, token_hash(token))
    return token


def rotate_token(store: Any, competition: str, name: str, revoke: bool = False) -> str | None:
    """A participant's new submission-server token (the old one stops working), or none at all (`revoke`)."""
    from harness.store.competitions import set_token_hash

    person = current_participant(store, _competition(store, competition), name)
    if revoke:
        set_token_hash(store, person.id, None)
        return None
    return _new_token(store, person.id)


def authenticate(store: Any, competition_id: int, token: str | None) -> Any:
    """The current participant whose token this is, or None. The stored hash is compared in constant time."""
    import hmac

    from harness.store.competitions import participant_by_token

    if not token or len(token) > 256 or not token.startswith(TOKEN_PREFIX):
        return None
    digest = token_hash(token)
    person = participant_by_token(store, competition_id, digest)
    if person is None or not hmac.compare_digest(person.token_hash or "", digest):
        return None
    return person


def participant_rows(store: Any, competition: str) -> list[dict[str, Any]]:
    from harness.store.competitions import participants

    row = _competition(store, competition)
    return [
        {"name": p.name, "team": p.team, "joined": p.created_at.isoformat() + "Z", "removed": p.removed_at is not None}
        for p in participants(store, row.id, include_removed=True)
    ]


def remove_participant(store: Any, competition: str, name: str) -> dict[str, Any]:
    from harness.store.competitions import remove_participant as remove

    person = current_participant(store, _competition(store, competition), name)
    remove(store, person.id)
    return {"competition": competition, "name": name, "removed": True}


def current_participant(store: Any, row: Any, name: str) -> Any:
    """The participant of competition `row` named `name`, refused when unknown or removed."""
    from harness.plugins import suggest
    from harness.store.competitions import participant, participants

    person = participant(store, row.id, name)
    if person is None or person.removed_at is not None:
        known = [p.name for p in participants(store, row.id)]
        state = "was removed from" if person is not None else "is not a participant of"
        listing = f"participants: {', '.join(known) or 'none'}"
        raise CompetitionError(
            f"`{name}` {state} competition `{row.name}`",
            suggest(name, known, listing) if person is None else "the organiser adds participants",
        )
    return person


# submissions under quotas ------------------------------------------------------------------------------------------


class QuotaExceeded(CompetitionError):
    """A participant's submission was refused by the phase's quota."""


class PhaseNotOpen(CompetitionError):
    """A submission to a phase that is not open (upcoming, ended or closed)."""


def _quota_error(view: PhaseView, who: str, state: Any, wanted: int) -> QuotaExceeded:
    reason = state.refusal(wanted) or "the quota is used"
    if state.per_phase is not None and state.total + wanted > state.per_phase:
        hint = "no further submission is allowed in this phase"
    elif state.next_day >= view.spec.closes:
        hint = f"the phase closes at {_when(view.spec.closes)}, before the next day's quota"
    else:
        hint = f"the next submission is allowed at {_when(state.next_day)}"
    return QuotaExceeded(f"{who} in {view.label}: {reason}", hint)


def submit(
    path: Path, competition: str, as_name: str, store: Any = None, phase: str | None = None, runner: str | None = None
) -> list[dict[str, Any]]:
    """A participant's submission to a phase: the phase must be open, the participant known; places in the quota
    are reserved atomically before the check runs (two concurrent submissions at the limit: one gets them), and
    given back when the check fails. Entry names belong to their participant: the same name of two participants
    is two entries. The same content entered again is recognised and not counted."""
    from harness.store import open_store

    store = store or open_store()
    view = open_phase(store, competition, phase)
    person = current_participant(store, view.competition, as_name)
    manifest, entered = admissible(store, view, person, path)
    if entered:
        return entered
    reserved = reserve_places(store, view, person, manifest)
    return complete(store, view, person, path, reserved, runner)


def open_phase(store: Any, competition: str, phase: str | None = None) -> PhaseView:
    """The phase (default: the open one), refused unless it takes submissions now."""
    view = phase_view(store, competition, phase)
    state = view.state()
    if state != "open":
        when = {"upcoming": f"it opens at {_when(view.spec.opens)}", "ended": f"it ended at {_when(view.spec.closes)}"}
        raise PhaseNotOpen(f"{view.label} does not take submissions: {when.get(state, 'it is closed')}")
    return view


def admissible(store: Any, view: PhaseView, person: Any, path: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The project's manifest, once it is known to be for the phase's track; and its entries when this very
    content was entered before (else an empty list)."""
    from harness.submission import read_manifest

    manifest = read_manifest(path)
    if manifest.track != view.card.name:
        raise CompetitionError(
            f"{manifest.path}: the submission is for track `{manifest.track}`; {view.label} ranks `{view.card.name}`",
            f'set track = "{view.card.name}" under [tool.harness] in pyproject.toml',
        )
    return manifest, _entered(store, view, person, manifest)


def reserve_places(store: Any, view: PhaseView, person: Any, manifest: Any) -> list[Any]:
    """One pending entry per entry point, or `QuotaExceeded` with the time of the next allowed submission."""
    from harness.store.competitions import reserve

    quota = {"per_day": view.spec.quota.per_day, "per_phase": view.spec.quota.per_phase}
    names = list(manifest.entry_points)
    reserved = reserve(store, view.row.id, person.id, [(name, None) for name in names], quota)
    if not isinstance(reserved, list):
        raise _quota_error(view, person.name, reserved, len(names))
    return reserved


def complete(
    store: Any, view: PhaseView, person: Any, path: Path, reserved: list[Any], runner: str | None
) -> list[dict[str, Any]]:
    """Check the project (with `runner`: docker for strangers' code), store it, and accept the reserved
    entries; on any failure the places go back to the quota and the error goes on."""
    from harness.service.check import check
    from harness.service.submit import refuse_faults, store_submission
    from harness.store.competitions import confirm, entries_by_id, release

    ids = [entry.id for entry in reserved]
    try:
        reports = check(path, runner=runner)
        refuse_faults(reports)
        results = store_submission(path, store, reports={r.name: r for r in reports}, competition=True, runner=runner)
        stored = {result.name: result for result in results}
        confirm(store, ids, [stored[entry.name].id for entry in reserved])
    except BaseException:
        release(store, ids)
        raise
    return [
        _entry_dict(view, person.name, entry, stored[entry.name].content_hash, True)
        for entry in entries_by_id(store, ids)
    ]


def _entered(store: Any, view: PhaseView, person: Any, manifest: Any) -> list[dict[str, Any]]:
    """The participant's entries of this very content in this phase, when every entry point of it is entered
    already: the same submission again is recognised, neither stored twice nor counted against the quota."""
    from harness.store.competitions import entries
    from harness.submission import content_hash

    digest = content_hash(manifest.path)
    mine = {e.name: e for e in entries(store, view.row.id, person.id) if e.submission.content_hash == digest}
    if set(manifest.entry_points) - set(mine):
        return []
    return [_entry_dict(view, person.name, mine[name], digest, False) for name in manifest.entry_points]


def _entry_dict(view: PhaseView, who: str, entry: Any, digest: str, created: bool) -> dict[str, Any]:
    return {
        "entry_id": entry.id,
        "entry": entry.name,
        "participant": who,
        "competition": view.competition.name,
        "phase": view.spec.name,
        "submission_id": entry.submission_id,
        "content_hash": digest,
        "submitted_at": entry.submitted_at.isoformat() + "Z",
        "created": created,
    }


def select_entry(store: Any, competition: str, as_name: str, entry_id: int, selected: bool = True) -> dict[str, Any]:
    """Mark one of a participant's entries as selected for the final board (phases ranked by `selected`)."""
    from harness.store.competitions import entries, set_selected

    row = _competition(store, competition)
    person = current_participant(store, row, as_name)
    for phase in row.phases:
        mine = {e.id: e for e in entries(store, phase.id, person.id)}
        if entry_id not in mine:
            continue
        view = phase_view(store, competition, phase.name)
        if view.state() == "closed":
            raise CompetitionError(f"{view.label} is closed: its selections are final")
        limit = view.spec.max_selected
        chosen = sum(1 for e in mine.values() if e.selected and e.id != entry_id)
        if selected and view.spec.ranking == "selected" and limit is not None and chosen >= limit:
            raise CompetitionError(
                f"{as_name} has selected {chosen} entries in {view.label}, its limit",
                "unselect one first (`harness participants select --unselect`)",
            )
        set_selected(store, entry_id, selected)
        return {"entry_id": entry_id, "selected": selected, "phase": phase.name}
    raise CompetitionError(f"entry {entry_id} is not one of {as_name}'s in competition `{competition}`")


# evaluation -----------------------------------------------------------------------------------------------------


@dataclass
class PhaseScope:
    """What `harness.service.evaluate` needs to evaluate a phase: its card, its checked split, the submissions
    to run (the participants' entries and the baselines) and the two parts of the hidden test set."""

    phase_id: int
    card: Any
    split: Any  # harness.datasets.SplitData
    profile: str
    submissions: list[Any]
    parts: dict[str, tuple[list[str], Path]]  # "public"/"private": (ids, hidden folder of that part)
    registered_dataset: str | None  # None: a folder of the bundle (it has no calibration split)


def phase_scope(store: Any, view: PhaseView) -> PhaseScope:
    """Resolve and check a phase's data (its pin, or the bundle's recorded digest) and split it into its parts."""
    from harness.competitions.split import read_key, split_ids

    card = view.card
    split, registered = _phase_split(view, card)
    ids = split.index()["ids"]
    public, private = split_ids(ids, read_key(key_path(view.competition.name)), view.spec.public_fraction)
    if not public or not private:
        raise CompetitionError(
            f"{view.label}: its {len(ids)} test images leave the {'public' if not public else 'private'} part empty",
            "use a larger test set or a public_fraction nearer 0.5",
        )
    parts = _part_truths(view, card, split, {"public": public, "private": private})
    return PhaseScope(
        phase_id=view.row.id,
        card=card,
        split=split,
        profile=view.profile,
        submissions=_phase_submissions(store, view),
        parts=parts,
        registered_dataset=registered,
    )


def _phase_split(view: PhaseView, card: Any) -> tuple[Any, str | None]:
    from harness.competitions.bundle import bundle_digest
    from harness.datasets import SplitData, content_digest, materialize, read_index, require_pinned

    folder = view.bundle.dataset_folder(view.spec)
    if folder is None:
        split = materialize(view.spec.dataset, view.spec.split or card.split)
        require_pinned(split)
        return split, view.spec.dataset
    found = bundle_digest(view.bundle.root)
    if found != view.competition.digest:
        raise CompetitionError(
            f"the kept bundle of competition `{view.competition.name}` ({view.bundle.root}) changed since it was "
            f"registered (digest {found[:12]}, registered {view.competition.digest[:12]})",
            "register the bundle again with `harness competition create DIR` (a new version)",
        )
    count = len(read_index(folder / "inputs")["ids"])
    name = f"{view.competition.name}:{view.spec.dataset}"
    return SplitData(dataset=name, split=view.spec.name, root=folder, digest=content_digest(folder), count=count), None


def _part_truths(view: PhaseView, card: Any, split: Any, parts: dict[str, list[str]]) -> dict[str, Any]:
    """Each part's ground truth in a folder of its own (made once per data, key and fraction)."""
    import hashlib

    from harness.fs import publish_dir
    from harness.kinds import get_kind

    kind = get_kind(card.kind)
    tag = hashlib.sha256("\0".join([split.digest, *parts["public"]]).encode()).hexdigest()[:16]
    root = settings().competitions_dir / view.competition.name / "parts" / f"{view.spec.name}-{tag}"

    def write(staging: Path) -> None:
        for part, ids in parts.items():
            (staging / part).mkdir()
            kind.subset_truth(split.hidden_dir, ids, staging / part / "hidden")

    publish_dir(root, write)
    return {part: (ids, root / part / "hidden") for part, ids in parts.items()}


def _phase_submissions(store: Any, view: PhaseView) -> list[Any]:
    """The stored submissions a phase evaluates: every entry of a current participant, and the baselines (the
    latest stored submission of each name)."""
    from harness.store.competitions import entries

    chosen: dict[int, Any] = {}
    for entry in entries(store, view.row.id):
        if entry.participant.removed_at is None:
            chosen[entry.submission.id] = entry.submission
    for name in view.spec.baselines:
        stored = [s for s in store.submissions(names=[name]) if s.track == view.card.name]
        if not stored:
            raise CompetitionError(
                f"{view.label} names the baseline `{name}`, which is not a stored submission of track "
                f"`{view.card.name}`",
                "store it with `harness submit PATH` (the organiser's own submissions), or drop it from `baselines`",
            )
        chosen.setdefault(stored[-1].id, stored[-1])
    return list(chosen.values())


def evaluate(
    competition: str, phase: str | None = None, store: Any = None, progress: Any = None, **options: Any
) -> list[dict[str, Any]]:
    """Evaluate a phase's entries and baselines not yet run: each run is scored on the public and the private
    part in one scoring pass; the run keeps the public scores, the private ones are stored apart."""
    from harness.service.evaluate import EvaluationRequest, execute, plan
    from harness.store import open_store

    store = store or open_store()
    view = phase_view(store, competition, phase)
    scope = phase_scope(store, view)
    request = EvaluationRequest(scope.card.name, scope=scope, **options)
    return execute(plan(request, store), store, progress or _quiet)


def _quiet(event: str, info: dict[str, Any]) -> None:
    pass


def watch(
    competition: str,
    phase: str | None = None,
    store: Any = None,
    progress: Any = None,
    poll_s: float = 5.0,
    stop: Any = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Evaluate a phase's entries as they arrive, until SIGTERM (after the run it is on: nothing is lost) or
    Ctrl-C (claims released). Between evaluations it looks every `poll_s` seconds for entries without runs."""
    import threading
    import time

    from harness.service.leases import sigterm_drains
    from harness.store import open_store

    store = store or open_store()
    stop = stop or threading.Event()
    results: list[dict[str, Any]] = []
    with sigterm_drains(stop):
        while not stop.is_set():
            view = phase_view(store, competition, phase)
            if _has_work(store, view, options.get("variants")):
                results += evaluate(competition, view.spec.name, store, progress, stop=stop, **options)
            deadline = time.monotonic() + poll_s
            while not stop.is_set() and time.monotonic() < deadline:
                time.sleep(0.1)
    return results


def _has_work(store: Any, view: PhaseView, variants: Any) -> bool:
    """Whether some (submission, variant) of the phase has no finished run yet (cheap: no data is read)."""
    from harness.store.competitions import runs_of_submissions

    submissions = {s.id: s for s in _phase_submissions(store, view)}
    done = {
        (run.submission_id, run.variant)
        for run in runs_of_submissions(store, view.row.id, list(submissions))
        if run.status in ("ok", "failed", "unavailable")
    }
    wanted = {(sid, v) for sid, sub in submissions.items() for v in (variants or sub.variants)}
    return bool(wanted - done)


# boards ---------------------------------------------------------------------------------------------------------


def board(
    store: Any, competition: str, phase: str | None = None, private: bool = False, now: datetime | None = None
) -> dict[str, Any]:
    """A phase's board: one row per current participant (the run their phase's ranking rule picks, always by
    PUBLIC score or by time, never by private score) and one per baseline, ranked by the public scores, or, with
    `private` (only once the phase is closed), by the private ones, with both shown."""
    from harness.store.competitions import entries, phase_runs, private_scores

    view = phase_view(store, competition, phase, now)
    if private and view.state(now) != "closed":
        raise CompetitionError(
            f"the private board of {view.label} is shown only once the phase is closed (it is {view.state(now)})",
            "the organiser closes it with `harness competition close-phase` after its close time",
        )
    card = view.card
    runs = phase_runs(store, view.row.id, view.profile, view.spec.hardware_class)
    by_submission: dict[int, list[Any]] = {}
    for run in runs:
        by_submission.setdefault(run.submission_id, []).append(run)
    rows = _participant_rows(view, entries(store, view.row.id), by_submission, card.higher_is_better)
    rows += _baseline_rows(view, by_submission, card.higher_is_better)
    secret = private_scores(store, [r["run_id"] for r in rows]) if private else {}
    ranked = _rank(rows, secret, card, private)
    return {
        "competition": view.competition.name,
        "title": view.competition.title,
        "phase": view.spec.name,
        "state": view.state(now),
        "board": "private" if private else "public",
        "track": card.key,
        "primary_metric": card.primary_metric,
        "higher_is_better": card.higher_is_better,
        "ranking": view.spec.ranking,
        "profile": view.profile,
        "public_fraction": view.spec.public_fraction,
        "rows": ranked,
    }


def _best(runs: Sequence[Any], higher_is_better: bool) -> Any:
    scored = [r for r in runs if r.primary_value is not None]
    if not scored:
        return None
    return sorted(scored, key=lambda r: ((-r.primary_value if higher_is_better else r.primary_value), -r.id))[0]


def _participant_rows(view: PhaseView, all_entries: list[Any], runs: dict[int, list[Any]], hib: bool) -> list[dict]:
    """The run that stands for each current participant, by the phase's rule: `best` public score over all
    their entries; `last` (their latest entry that has a finished run); `selected` (the best public score among
    the entries they selected; none selected: their latest)."""
    mine: dict[int, list[Any]] = {}
    for entry in all_entries:
        if entry.participant.removed_at is None:
            mine.setdefault(entry.participant_id, []).append(entry)
    rows = []
    for person_entries in mine.values():
        evaluated = [e for e in person_entries if runs.get(e.submission_id)]
        if not evaluated:
            continue
        pool = evaluated
        if view.spec.ranking == "selected" and any(e.selected for e in evaluated):
            pool = [e for e in evaluated if e.selected]
        elif view.spec.ranking in ("last", "selected"):
            pool = [max(evaluated, key=lambda e: e.id)]
        run = _best([r for e in pool for r in runs[e.submission_id]], hib)
        if run is None:
            continue
        entry = next(e for e in pool if e.submission_id == run.submission_id)
        person = entry.participant
        rows.append(_row(run, person.name, person.team, entry.name, False, len(person_entries), entry))
    return rows


def _baseline_rows(view: PhaseView, runs: dict[int, list[Any]], hib: bool) -> list[dict]:
    rows = []
    for name in view.spec.baselines:
        candidates = [r for rs in runs.values() for r in rs if r.submission.name == name]
        run = _best(candidates, hib)
        if run is not None:
            rows.append(_row(run, "(organiser)", None, name, True, None, None))
    return rows


def _row(run: Any, who: str, team: str | None, entry: str, baseline: bool, count: int | None, e: Any) -> dict:
    from harness.records import RunRecord, ranked_summary

    record = RunRecord.from_row(run, True, False).to_dict()
    record["ranked_latency"] = (run.details or {}).get("ranked_latency", "device")
    return {
        "participant": who,
        "team": team,
        "entry": entry,
        "baseline": baseline,
        "entries": count,
        "entry_id": e.id if e is not None else None,
        "submitted_at": e.submitted_at.isoformat() + "Z" if e is not None else None,
        "run_id": run.id,
        "variant": run.variant,
        "public": {
            "value": run.primary_value,
            "interval": record.get("primary_interval"),
            "metrics": record["metrics"],
        },
        "params": record.get("params"),
        "macs": record.get("macs"),
        "bytes": record.get("bytes"),
        "latency_ms": (ranked_summary(record) or {}).get("ranked_ms"),
        "latency": record["ranked_latency"],
        "hardware_class": run.hardware_class,
    }


def _rank(rows: list[dict], secret: dict[int, Any], card: Any, private: bool) -> list[dict]:
    from harness.service.standings import rank_order, tie_with

    for row in rows:
        score = secret.get(row["run_id"])
        if private:
            interval = None
            if score is not None and score.primary_ci_low is not None:
                interval = [score.primary_ci_low, score.primary_ci_high]
            row["private"] = {
                "value": score.primary_value if score else None,
                "interval": interval,
                "metrics": dict(score.metrics) if score else {},
            }
    part = "private" if private else "public"
    order = rank_order(
        [row[part]["value"] for row in rows],
        [row["latency_ms"] for row in rows],
        [row["run_id"] for row in rows],
        card.higher_is_better,
    )
    ranked = [rows[i] for i in order]
    leader = next((row for row in ranked if not row["baseline"]), None)
    place = 0
    for row in ranked:
        row["primary_interval"] = row[part]["interval"]  # what `tie_with` compares
    for row in ranked:
        if not row["baseline"]:
            place += 1
        row["rank"] = None if row["baseline"] else place
        tied = leader is not None and not row["baseline"]
        row["tied_with_leader"], row["tie_reason"] = (
            tie_with(row, leader, card.primary_metric) if tied else (False, None)
        )
    for row in ranked:
        del row["primary_interval"]
    return ranked
