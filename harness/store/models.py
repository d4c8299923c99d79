"""The store's tables as SQLAlchemy 2.0 typed models. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Submission(Base):
    """One named entry point of one submitted folder content (content-hashed, immutable)."""

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("name", "content_hash", name="uq_submission_name_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    track: Mapped[str] = mapped_column(String(100), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    project: Mapped[str] = mapped_column(String(200))
    entry_point: Mapped[str] = mapped_column(String(400))
    variants: Mapped[list[Any]] = mapped_column(JSON)
    build_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # handed to build(ctx) as ctx.extra
    queued: Mapped[bool] = mapped_column(Boolean, default=True)  # False: evaluated only when named
    source_path: Mapped[str] = mapped_column(Text)
    stored_path: Mapped[str] = mapped_column(Text)
    site_path: Mapped[str] = mapped_column(Text)
    params: Mapped[int | None] = mapped_column(BigInteger)
    macs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    runs: Mapped[list[Run]] = relationship(back_populates="submission")


class Environment(Base):
    """A machine as fingerprinted at run time; shared by the runs made on it."""

    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    hardware_class: Mapped[str] = mapped_column(String(300), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class Run(Base):
    """One evaluation of one (submission, variant) on one track version, dataset and machine."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_board", "track", "track_version", "status", "hardware_class"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    variant: Mapped[str] = mapped_column(String(100))
    track: Mapped[str] = mapped_column(String(100))
    track_version: Mapped[int] = mapped_column(Integer)
    card_hash: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(200))
    dataset_hash: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(50))
    profile: Mapped[str] = mapped_column(String(20))
    runner: Mapped[str] = mapped_column(String(20))
    # running | ok | failed | unavailable | released (an operator gave up a stuck run: evaluated again)
    status: Mapped[str] = mapped_column(String(20), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    hardware_class: Mapped[str] = mapped_column(String(300))
    environment_id: Mapped[int | None] = mapped_column(ForeignKey("environments.id"))
    harness_version: Mapped[str] = mapped_column(String(40))
    scorer_version: Mapped[str] = mapped_column(String(100))
    primary_metric: Mapped[str] = mapped_column(String(100))
    primary_value: Mapped[float | None] = mapped_column(Float)
    # The primary metric's confidence interval (bootstrap over the test images; details["confidence"] says how).
    primary_ci_low: Mapped[float | None] = mapped_column(Float)
    primary_ci_high: Mapped[float | None] = mapped_column(Float)
    params: Mapped[int | None] = mapped_column(BigInteger)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    macs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    macs_std: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # timings, crosscheck, dtypes, peak memory
    log_tail: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)  # for the operator only: liveness is the lease, never a pid
    # A running run's lease: the evaluator holding it, its last heartbeat, when it runs out (migration 0004).
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # evaluators that took it
    # A competition phase's run (migration 0005): its metrics are the public part's; the private part's are in
    # `private_scores`, shown only once the phase is closed. NULL: a run of the track's own boards.
    phase_id: Mapped[int | None] = mapped_column(ForeignKey("phases.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    submission: Mapped[Submission] = relationship(back_populates="runs")
    environment: Mapped[Environment | None] = relationship()
    metrics: Mapped[list[Metric]] = relationship(back_populates="run", cascade="all, delete-orphan")
    latencies: Mapped[list[LatencySummaryRow]] = relationship(back_populates="run", cascade="all, delete-orphan")


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_metric_run_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)

    run: Mapped[Run] = relationship(back_populates="metrics")


class LatencySummaryRow(Base):
    """Latency statistics of one run and kind (device: model only; e2e: copy, model, post-processing)."""

    __tablename__ = "latency_summaries"
    __table_args__ = (UniqueConstraint("run_id", "kind", name="uq_latency_run_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    batch_size: Mapped[int] = mapped_column(Integer)
    ranked_ms: Mapped[float] = mapped_column(Float)
    p50_ms: Mapped[float] = mapped_column(Float)
    p90_ms: Mapped[float] = mapped_column(Float)
    p95_ms: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)
    mean_ms: Mapped[float] = mapped_column(Float)
    std_ms: Mapped[float] = mapped_column(Float)
    cv: Mapped[float] = mapped_column(Float)
    repeats: Mapped[int] = mapped_column(Integer)
    iterations: Mapped[int] = mapped_column(Integer)
    timer: Mapped[str] = mapped_column(String(40))
    noisy: Mapped[bool] = mapped_column(Boolean)
    noise_reasons: Mapped[list[Any]] = mapped_column(JSON)
    repeat_medians_ms: Mapped[list[Any]] = mapped_column(JSON)
    repeat_sizes: Mapped[list[Any]] = mapped_column(JSON)
    samples: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian per-iteration samples (ms)

    run: Mapped[Run] = relationship(back_populates="latencies")


class HardwarePeak(Base):
    """The most MACs per second a hardware class delivers (harness.measure.peak), measured once and kept."""

    __tablename__ = "hardware_peaks"

    hardware_class: Mapped[str] = mapped_column(String(300), primary_key=True)
    device: Mapped[str] = mapped_column(String(50))
    macs_per_s: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    measured_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Competition(Base):
    """An organiser's competition: its current bundle version (the bundle's files are kept under
    $HARNESS_HOME/competitions/<name>/v<version>; `spec` is the validated competition.toml)."""

    __tablename__ = "competitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))  # the bundle's content digest at this version
    bundle_path: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    phases: Mapped[list[Phase]] = relationship(back_populates="competition", order_by="Phase.id")


class CompetitionVersion(Base):
    """Every bundle version a competition had (an edited bundle registered again is a new version)."""

    __tablename__ = "competition_versions"
    __table_args__ = (UniqueConstraint("competition_id", "version", name="uq_competition_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    bundle_path: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Phase(Base):
    """One phase of a competition (its settings live in the competition's spec); `closed_at` is set when the
    organiser closes it, and only then are private scores shown."""

    __tablename__ = "phases"
    __table_args__ = (UniqueConstraint("competition_id", "name", name="uq_phase_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)

    competition: Mapped[Competition] = relationship(back_populates="phases")


class Participant(Base):
    """A competitor (optionally in a team). Removed participants keep their rows and entries (`removed_at`)."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("competition_id", "name", name="uq_participant_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_submitted_at: Mapped[datetime | None] = mapped_column(DateTime)  # written first: the quota's lock
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # sha256 of their server token
    token_created_at: Mapped[datetime | None] = mapped_column(DateTime)


class Entry(Base):
    """One submission of a participant to a phase: an entry point (`name`, unique per participant) of stored
    content. Quotas count these rows; `selected` marks the ones a `selected` ranking may rank. A `pending`
    entry is a reservation of the quota while its check runs (no submission yet); `accepted` ones are ranked."""

    __tablename__ = "entries"
    __table_args__ = (Index("ix_entries_quota", "phase_id", "participant_id", "submitted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("phases.id"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    name: Mapped[str] = mapped_column(String(200))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"), index=True)
    submitted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    selected: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="accepted", server_default="accepted")

    participant: Mapped[Participant] = relationship()
    submission: Mapped[Submission | None] = relationship()


class Upload(Base):
    """A project the submission server took from a participant, once per idempotency key: its state
    (checking, queued, rejected), the check's error, and the entries it made."""

    __tablename__ = "uploads"
    __table_args__ = (UniqueConstraint("participant_id", "idempotency_key", name="uq_upload_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    archive_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    entry_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class PrivateScore(Base):
    """A competition run's scores on the private part of the hidden test set: read only by the final board."""

    __tablename__ = "private_scores"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    primary_value: Mapped[float | None] = mapped_column(Float)
    primary_ci_low: Mapped[float | None] = mapped_column(Float)
    primary_ci_high: Mapped[float | None] = mapped_column(Float)
