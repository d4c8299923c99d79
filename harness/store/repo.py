"""The repository: the only code that writes the store. Runs are claimed, then finished in one transaction.

A run row is inserted as `running` before the submission is executed (its idempotency key is unique, so two
evaluators never run the same job twice) and completed with its metrics and latency rows in a single
transaction, so a reader never sees a half-written run. A claim is a lease (`Lease`): its evaluator renews it
while it works; an interrupted evaluation deletes its claim; a claim whose lease ran out (its evaluator was
killed, or hangs) is taken over by the next evaluator as a new attempt of the same run, and an operator may
release a stuck one (`release_stuck`). Every write of a claim's evaluator is conditional on still holding its
lease, so an evaluator that lost it can never overwrite the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, delete, event, func, inspect, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from harness.config import db_url
from harness.errors import StoreError
from harness.store.faults import check_schema, is_store_fault, store_error, store_label
from harness.store.models import (
    Base,
    Environment,
    HardwarePeak,
    LatencySummaryRow,
    Metric,
    PrivateScore,
    Run,
    Submission,
    utcnow,
)

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (also of the `sqlite:///file:PATH?mode=ro&uri=true` form)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path.removeprefix("file:"))


def busy_timeout_ms() -> int:
    from harness.config import settings

    return settings().db_busy_timeout_ms


@dataclass
class RunOutcome:
    """What an evaluation produced for one claimed run, ready to be stored in one transaction."""

    status: str
    error: str | None = None
    metrics: dict[str, float] | None = None
    primary_value: float | None = None
    primary_interval: tuple[float, float] | None = None  # the primary metric's confidence interval
    complexity: dict[str, Any] | None = None
    latency: dict[str, dict[str, Any]] | None = None
    environment: dict[str, Any] | None = None
    details: dict[str, Any] | None = None
    log_tail: str | None = None
    # A competition run's scores on the private part (metrics, primary_value, primary_interval): stored apart.
    private: dict[str, Any] | None = None


@dataclass(frozen=True)
class Lease:
    """One evaluator's hold on the runs it claims: a token of its own, and how long a claim lasts unheard."""

    owner: str
    seconds: float

    @classmethod
    def new(cls, seconds: float | None = None) -> Lease:
        from harness.config import settings

        return cls(uuid.uuid4().hex, seconds if seconds is not None else settings().run_lease_s)

    def expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Claim:
    """What `Store.claim` got: the run and its attempt number, or (run_id None) the row that stands in the way."""

    run_id: int | None
    attempt: int = 0
    holder: Run | None = field(default=None, compare=False)  # a live claim, or the finished run


class LeaseLost(StoreError):
    """The evaluator no longer holds the run it worked on: its result is not stored."""


_process_lease: Lease | None = None


def _default_lease() -> Lease:
    global _process_lease
    if _process_lease is None:
        _process_lease = Lease.new()
    return _process_lease


class Store:
    def __init__(self, url: str | None = None):
        self.url = url or db_url()
        path = sqlite_path(self.url)
        if path is not None and not path.parent.exists():
            raise StoreError(f"the folder {path.parent} of the store does not exist", "create it or set HARNESS_DB_URL")
        kwargs: dict[str, Any] = {}
        if path is not None:
            kwargs["connect_args"] = {"timeout": busy_timeout_ms() / 1000}
        if self.url.startswith("postgresql"):
            kwargs["json_serializer"] = _json_without_nan  # PostgreSQL's json type refuses NaN and Infinity
        try:  # a URL that does not parse, an unknown dialect, a driver that is not installed
            self.engine: Engine = create_engine(self.url, **kwargs)
        except (SQLAlchemyError, ImportError) as exc:
            raise store_error(self.url, exc) from exc
        if path is not None:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        from alembic.util.exc import CommandError  # here, as _migrate imports alembic: a reader of repo never pays it

        try:
            self._migrate(path)
        except (StoreError, SQLAlchemyError, CommandError) as exc:  # not a database, damaged, locked, newer
            self.engine.dispose()
            raise store_error(self.url, exc) from exc

    def _migrate(self, sqlite_path: Path | None) -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        label, tables = store_label(self.url), set(Base.metadata.tables)
        own_file = sqlite_path is not None  # a SQLite file is one program's; a server's database may be shared
        with self.engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
            if revision == head:
                check_schema(label, revision, head, inspect(conn).get_table_names(), tables, own_file)
                return
        lock = _migration_lock(sqlite_path)
        with lock, self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(726172)")
            revision = MigrationContext.configure(conn).get_current_revision()
            check_schema(label, revision, head, inspect(conn).get_table_names(), tables, own_file)
            if revision != head:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                # A store that lacks a table after its upgrade is damaged: refused, and the upgrade rolled back.
                check_schema(label, head, head, inspect(conn).get_table_names(), tables, own_file)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except DBAPIError as exc:
            session.rollback()
            if is_store_fault(exc):  # locked, read-only, a table missing, not a database; not a bug of ours
                raise store_error(self.url, exc) from exc
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # Submissions ---------------------------------------------------------------------------------------

    def add_submission(self, **fields: Any) -> tuple[Submission, bool]:
        """Insert a submission unless the same name and content exist; returns (row, created)."""
        with self.session() as s:
            existing = s.scalar(
                select(Submission).where(
                    Submission.name == fields["name"], Submission.content_hash == fields["content_hash"]
                )
            )
            if existing is not None:
                return existing, False
            row = Submission(**fields)
            s.add(row)
        return row, True

    def submissions(self, track: str | None = None, names: list[str] | None = None) -> list[Submission]:
        with self.session() as s:
            query = select(Submission).order_by(Submission.id)
            if track:
                query = query.where(Submission.track == track)
            if names:
                query = query.where(Submission.name.in_(names))
            return list(s.scalars(query))

    # Runs ----------------------------------------------------------------------------------------------

    def claim_run(self, key: str, lease: Lease | None = None, **fields: Any) -> int | None:
        """The id of the run this claims (`claim`), or None when the job is done or being done."""
        return self.claim(key, lease or _default_lease(), **fields).run_id

    def claim(self, key: str, lease: Lease, **fields: Any) -> Claim:
        """Claim the run with this idempotency key under `lease`: a new `running` row, or the takeover of one
        whose lease expired (or that an operator released) as its next attempt. A live claim or a finished run
        is left alone and returned as the holder."""
        with self.session() as s:
            existing = s.scalar(select(Run).where(Run.idempotency_key == key))
        now = utcnow()
        if existing is None:
            try:
                with self.session() as s:
                    row = Run(idempotency_key=key, status="running", **_lease_values(lease, now), **fields)
                    s.add(row)
                    s.flush()
                    return Claim(row.id, 1)
            except IntegrityError:
                return self.claim(key, lease, **fields)  # another evaluator claimed it between check and insert
        if existing.status == "running" and lease_is_live(existing, now):
            return Claim(None, holder=existing)
        if existing.status not in ("running", "released"):
            return Claim(None, holder=existing)
        taken_over = (
            update(Run)
            .where(
                Run.id == existing.id,
                Run.status == existing.status,
                Run.attempt == existing.attempt,
                _lease_ran_out(now),
            )
            .values(
                status="running",
                error=None,
                finished_at=None,
                attempt=existing.attempt + 1,
                **_lease_values(lease, now),
                **fields,
            )
            .execution_options(synchronize_session=False)
        )
        with self.session() as s:
            if s.execute(taken_over).rowcount == 1:
                return Claim(existing.id, existing.attempt + 1)
        return self.claim(key, lease, **fields)  # another evaluator took it over first: see who holds it now

    def renew_leases(self, lease: Lease) -> int:
        """The heartbeat: extend every running claim of this lease's owner; returns how many it holds."""
        now = utcnow()
        renew = (
            update(Run)
            .where(Run.lease_owner == lease.owner, Run.status == "running")
            .values(heartbeat_at=now, lease_expires_at=lease.expiry(now))
            .execution_options(synchronize_session=False)
        )
        with self.session() as s:
            return s.execute(renew).rowcount

    def release_run(self, run_id: int, lease: Lease | None = None) -> None:
        """Forget a claim (interrupted evaluation): the job is queued again. With a lease: only while it holds."""
        with self.session() as s:
            s.execute(delete(Run).where(*_running_claim(run_id, lease)))

    def release_stuck(self, run_id: int, reason: str, force: bool = False) -> bool:
        """An operator gives up a running run: it becomes `released` (with the reason) and the next `evaluate`
        runs it again. Refused (False) while its lease is live, unless forced, or when it is not running."""
        now = utcnow()
        condition = _running_claim(run_id)
        if not force:
            condition.append(_lease_ran_out(now))
        release = (
            update(Run)
            .where(*condition)
            .values(status="released", error=f"[released] {reason}", finished_at=now, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        with self.session() as s:
            return s.execute(release).rowcount == 1

    def finish_run(self, run_id: int, outcome: RunOutcome, lease: Lease | None = None) -> None:
        """Store a claimed run's outcome in one transaction, only while it is still running (and, with a lease,
        still held by it): an evaluator whose claim was released or taken over raises `LeaseLost`."""
        values: dict[str, Any] = {
            "status": outcome.status,
            "error": outcome.error,
            "primary_value": outcome.primary_value,
            "log_tail": outcome.log_tail,
            "details": outcome.details,
            "finished_at": utcnow(),
            "lease_expires_at": None,
        }
        if outcome.primary_interval is not None:
            values["primary_ci_low"], values["primary_ci_high"] = (float(v) for v in outcome.primary_interval)
        for name in ("params", "bytes", "macs", "macs_std") if outcome.complexity else ():
            values[name] = outcome.complexity.get(name)
        finish = (
            update(Run)
            .where(*_running_claim(run_id, lease))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        with self.session() as s:
            if s.execute(finish).rowcount != 1:  # the conditional write comes first: it takes the write lock
                raise LeaseLost(
                    f"run {run_id} is no longer this evaluator's (released, or taken over after its lease expired)",
                    "its result was not stored; `harness runs stuck` shows who holds the run now",
                )
            run = s.get(Run, run_id)
            if outcome.environment:
                run.environment_id = self._environment_id(s, outcome.environment, run.hardware_class)
            for name, value in (outcome.metrics or {}).items():
                s.add(Metric(run_id=run_id, name=name, value=float(value)))
            for kind, summary in (outcome.latency or {}).items():
                s.add(_latency_row(run_id, kind, summary))
            if outcome.private is not None:
                s.add(_private_row(run_id, outcome.private))

    def _environment_id(self, s: Session, env: dict[str, Any], hardware_class: str) -> int:
        from harness.measure.environment import fingerprint_hash

        fp = fingerprint_hash(env)
        row = s.scalar(select(Environment).where(Environment.fingerprint == fp))
        dialect = self.engine.dialect.name
        if row is None and dialect in ("postgresql", "sqlite"):
            # Concurrent writers (PostgreSQL) may insert the same new machine at once: the loser's insert
            # does nothing, and it reads the winner's row instead of failing on the unique fingerprint.
            import importlib

            insert = importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert
            values = {"fingerprint": fp, "hardware_class": hardware_class, "data": env}
            s.execute(insert(Environment).values(**values).on_conflict_do_nothing(index_elements=["fingerprint"]))
            row = s.scalar(select(Environment).where(Environment.fingerprint == fp))
        if row is None:
            row = Environment(fingerprint=fp, hardware_class=hardware_class, data=env)
            s.add(row)
            s.flush()
        return row.id

    def hardware_peak(self, hardware_class: str) -> dict[str, Any] | None:
        """The stored peak of a hardware class (`harness.measure.peak`'s figures), if it was measured."""
        with self.session() as s:
            row = s.get(HardwarePeak, hardware_class)
            return {**row.details, "macs_per_s": row.macs_per_s} if row is not None else None

    def record_hardware_peak(self, hardware_class: str, device: str, measured: dict[str, Any]) -> dict[str, Any]:
        """Keep a measured peak; the first one stored for a hardware class wins (concurrent evaluators agree on
        one ceiling). Returns the peak that stands."""
        rate = float(measured["macs_per_s"])
        try:
            with self.session() as s:
                s.add(HardwarePeak(hardware_class=hardware_class, device=device, macs_per_s=rate, details=measured))
        except IntegrityError:
            pass
        return self.hardware_peak(hardware_class) or measured

    def get_run(self, run_id: int) -> Run | None:
        with self.session() as s:
            return s.scalar(_run_query().where(Run.id == run_id))

    def runs(
        self,
        track: str | None = None,
        status: str | None = None,
        ids: list[int] | None = None,
        track_version: int | None = None,
        submission: str | None = None,
        variant: str | None = None,
    ) -> list[Run]:
        with self.session() as s:
            query = _run_query().order_by(Run.id)
            if track:
                query = query.where(Run.track == track)
            if track_version is not None:
                query = query.where(Run.track_version == track_version)
            if status:
                query = query.where(Run.status == status)
            if ids:
                query = query.where(Run.id.in_(ids))
            if submission:
                query = query.join(Submission).where(Submission.name == submission)
            if variant:
                query = query.where(Run.variant == variant)
            return list(s.scalars(query))

    def count_runs(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count(Run.id))) or 0)

    def standings(self, key: BoardKey, hardware_class: str | None = None) -> list[Run]:
        """The runs that stand on a board (`standing_run_ids`), with everything a run record needs."""
        with self.session() as s:
            return list(s.scalars(_run_query().where(Run.id.in_(standing_run_ids(key, hardware_class)))))


@dataclass(frozen=True)
class BoardKey:
    """Which runs may be ranked together: one track version, on one dataset (and content digest), timed under
    one latency profile. Within a board, an entry is a (submission name, variant, hardware class, device), and
    `ranking` picks the run that stands for it: its `latest` finished `ok` run, or its `best` one (best primary
    value; among equals, the latest). `dataset_hash` None (a dataset the track does not pin): each digest
    seen makes entries of its own."""

    track: str
    track_version: int
    dataset: str
    dataset_hash: str | None
    profile: str
    ranking: str = "latest"
    higher_is_better: bool = True
    latency_kind: str = "device"  # the latency the board ranks and shows: "device" (forward only) or "e2e"

    @classmethod
    def for_card(cls, card: Any, dataset: str | None = None, profile: str | None = None) -> BoardKey:
        """The board of a track card's current version: its dataset and profile (or the ones named), the digest
        the card pins for that dataset's split (None when it pins none), its ranking rule and latency."""
        name = f"{dataset or card.dataset}/{card.split}"  # as runs store it: dataset/split
        return cls(
            track=card.name,
            track_version=card.version,
            dataset=name,
            dataset_hash=card.digests.get(name),
            profile=profile or card.profile,
            ranking=card.ranking,
            higher_is_better=card.higher_is_better,
            latency_kind=card.ranked_latency,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "track": self.track,
            "track_version": self.track_version,
            "dataset": self.dataset,
            "dataset_hash": self.dataset_hash,
            "profile": self.profile,
            "ranking": self.ranking,
            "latency": self.latency_kind,
        }

    def describe(self) -> str:
        digest = f" @ {self.dataset_hash[:12]}" if self.dataset_hash else " (any digest)"
        return (
            f"{self.track} v{self.track_version} · {self.dataset}{digest} · {self.profile} profile · "
            f"{self.latency_kind} latency · {self.ranking} run of each entry"
        )


def standing_run_ids(key: BoardKey, hardware_class: str | None = None) -> Any:
    """The SELECT of the runs that stand on a board (`BoardKey`): one per entry, chosen in the SQL by a window
    function. The CLI's standings, exports and the board's query all use it."""
    conditions = [
        Run.track == key.track,
        Run.track_version == key.track_version,
        Run.status == "ok",
        Run.dataset == key.dataset,
        Run.profile == key.profile,
        Run.phase_id.is_(None),  # a competition's runs rank only on its phase's boards (harness.store.competitions)
    ]
    if key.dataset_hash is not None:
        conditions.append(Run.dataset_hash == key.dataset_hash)
    if hardware_class:
        conditions.append(Run.hardware_class == hardware_class)
    order = [Run.id.desc()]
    if key.ranking == "best":
        value = Run.primary_value.desc() if key.higher_is_better else Run.primary_value.asc()
        order.insert(0, value.nulls_last())
    entry = (Submission.name, Run.variant, Run.hardware_class, Run.device, Run.dataset_hash)
    chosen = (
        select(Run.id.label("id"), func.row_number().over(partition_by=entry, order_by=order).label("place"))
        .join(Submission, Submission.id == Run.submission_id)
        .where(*conditions)
        .subquery()
    )
    return select(chosen.c.id).where(chosen.c.place == 1)


def _run_query():
    return select(Run).options(
        selectinload(Run.submission),
        selectinload(Run.metrics),
        selectinload(Run.latencies),
        selectinload(Run.environment),
    )


def _latency_row(run_id: int, kind: str, summary: dict[str, Any]) -> LatencySummaryRow:
    samples = np.asarray(summary.get("samples_ms", []), dtype="<f4").tobytes()
    return LatencySummaryRow(
        run_id=run_id,
        kind=kind,
        batch_size=summary["batch_size"],
        ranked_ms=summary["ranked_ms"],
        p50_ms=summary["p50_ms"],
        p90_ms=summary["p90_ms"],
        p95_ms=summary["p95_ms"],
        p99_ms=summary["p99_ms"],
        mean_ms=summary["mean_ms"],
        std_ms=summary["std_ms"],
        cv=summary["cv"],
        repeats=summary["repeats"],
        iterations=summary["iterations"],
        timer=summary["timer"],
        noisy=summary["noisy"],
        noise_reasons=summary["noise_reasons"],
        repeat_medians_ms=summary["repeat_medians_ms"],
        repeat_sizes=summary.get("repeat_sizes", []),
        samples=samples,
    )


def _private_row(run_id: int, private: dict[str, Any]) -> PrivateScore:
    low, high = private.get("primary_interval") or (None, None)
    return PrivateScore(
        run_id=run_id,
        metrics={name: float(value) for name, value in private["metrics"].items()},
        primary_value=private.get("primary_value"),
        primary_ci_low=low,
        primary_ci_high=high,
    )


def latency_samples(row: LatencySummaryRow) -> np.ndarray:
    return np.frombuffer(row.samples, dtype="<f4").astype(np.float64)


def lease_is_live(run: Run, now: datetime | None = None) -> bool:
    """Whether a claim's lease still runs (a claim made before leases existed has none: expired)."""
    return run.lease_expires_at is not None and run.lease_expires_at > (now or utcnow())


def _lease_ran_out(now: datetime) -> Any:
    """`lease_is_live`'s negation in SQL: the claim has no lease, or it expired by `now`."""
    return or_(Run.lease_expires_at.is_(None), Run.lease_expires_at <= now)


def _running_claim(run_id: int, lease: Lease | None = None) -> list[Any]:
    """The conditions of a write to a running claim: it is still running (and, with a lease, still held by it)."""
    condition = [Run.id == run_id, Run.status == "running"]
    if lease is not None:
        condition.append(Run.lease_owner == lease.owner)
    return condition


def _lease_values(lease: Lease, now: datetime) -> dict[str, Any]:
    return {
        "lease_owner": lease.owner,
        "heartbeat_at": now,
        "lease_expires_at": lease.expiry(now),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": now,
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
    cursor.execute("PRAGMA foreign_keys=ON")
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except Exception:
        pass  # a read-only database cannot switch journal mode; reads still work
    cursor.close()


@contextlib.contextmanager
def _migration_lock(sqlite_path: Path | None) -> Iterator[None]:
    if sqlite_path is None:
        yield
        return
    lock_path = sqlite_path.with_name(sqlite_path.name + ".migrate-lock")
    try:
        fh = open(lock_path, "a+")
    except OSError:
        yield  # read-only folder: the upgrade itself will report it
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _json_without_nan(value: Any) -> str:
    """JSON for PostgreSQL: a non-finite float (NaN, ±Infinity) becomes null instead of failing the write."""
    import json

    from harness.records import finite_or_none

    return json.dumps(finite_or_none(value))


def idempotency_key(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


_stores: dict[str, Store] = {}


def open_store(url: str | None = None) -> Store:
    """One engine per URL per process (never one per request)."""
    key = url or db_url()
    if key not in _stores:
        _stores[key] = Store(key)
    return _stores[key]
