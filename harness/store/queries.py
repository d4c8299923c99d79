"""Read-only queries behind the leaderboard: a read-only engine per store URL, results as pandas DataFrames.

The leaderboard never writes, never migrates and never creates a database: a SQLite store is opened with
`mode=ro`, a PostgreSQL session is set read-only. Every query names its columns explicitly (no ORM objects,
no latency sample blobs) so that the standings of thousands of runs load in one round trip each; the
per-iteration samples are read only for the few runs a page draws.

All frames use plain column names (`run_id`, `submission`, `variant`, ...); metric values are columns named
`metric:<name>` so that they cannot collide with the fixed ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Float, Integer, String, and_, create_engine, event, func, inspect, literal, select, type_coerce
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased

from harness.store import faults
from harness.store.models import Entry, Environment, LatencySummaryRow, Metric, Run, Submission
from harness.store.repo import BoardKey, busy_timeout_ms, sqlite_path, standing_run_ids

METRIC_PREFIX = "metric:"
REQUIRED_TABLES = {"submissions", "runs", "metrics", "latency_summaries", "environments"}


class StoreMissing(Exception):
    """There is no store at the URL yet (no database file, or no harness tables in it)."""


class StoreRefused(StoreMissing):
    """There is a database at the URL, but not one the board can read: some harness tables missing (damaged),
    harness tables without a migration record, written by an older harness (the board never migrates), or
    another program's SQLite file. `harness serve` refuses it at start; a page shows it as it shows no store."""


def read_only_engine(url: str) -> Engine:
    """An engine that can only read the store at `url`; `StoreMissing` when there is nothing to read."""
    path = sqlite_path(url)
    if path is not None:
        if not path.is_file():
            raise StoreMissing(f"no database file at {path}")
        # The URI form lets SQLite itself refuse writes; the leaderboard must never create or alter a store.
        engine = create_engine(
            f"sqlite:///file:{path.resolve()}?mode=ro&uri=true",
            connect_args={"timeout": busy_timeout_ms() / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_read_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "postgresql":
            event.listen(engine, "connect", _postgres_read_only)
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    missing = REQUIRED_TABLES - tables
    if missing:
        engine.dispose()
        if missing != REQUIRED_TABLES:
            raise StoreRefused(f"the store is damaged: its table(s) {', '.join(sorted(missing))} are missing")
        if path is not None and tables:
            raise StoreRefused(f"the file is another program's database (tables {', '.join(sorted(tables)[:5])})")
        raise StoreMissing(f"the database has no harness tables ({', '.join(sorted(missing))} missing)")
    if "alembic_version" not in tables:
        engine.dispose()
        raise StoreRefused("it holds harness tables but no migration record (alembic_version): not made by `harness`")
    if "primary_ci_low" not in {column["name"] for column in inspector.get_columns("runs")}:
        engine.dispose()  # the board never migrates; any CLI command that opens the store does
        raise StoreRefused(
            "the store was written by an older harness (no confidence intervals in it yet); "
            "run `harness leaderboard --track TRACK` once to upgrade it"
        )
    return engine


def _sqlite_read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
    cursor.execute("PRAGMA query_only=1")
    cursor.close()


def _postgres_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    dbapi_connection.commit()


def _frame(engine: Engine, query: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(query)
        # Plain tuples: pandas probes Row objects attribute by attribute, which costs more than the query.
        return pd.DataFrame([tuple(row) for row in result.fetchall()], columns=list(result.keys()))


def track_versions(engine: Engine) -> pd.DataFrame:
    """How many runs of each status every (track, track version) holds: what the store contains at all (a
    competition phase's runs belong to its own page, not to the track's)."""
    query = (
        select(Run.track, Run.track_version, Run.status, func.count(Run.id).label("runs"))
        .where(Run.phase_id.is_(None))
        .group_by(Run.track, Run.track_version, Run.status)
        .order_by(Run.track, Run.track_version, Run.status)
    )
    return _frame(engine, query)


def _run_columns(device_latency: Any, macs_key: str | None, metric_names: tuple[str, ...], detailed: bool) -> list[Any]:
    """The columns of a run row. Ranking thousands of runs must not spend its time in Python, so the SQL does
    the work: MACs are read at one input key by JSON extraction, each named metric is an indexed scalar
    subquery, and timestamps and flags come back raw (pandas converts whole columns at once). `detailed`
    adds what only a few rows need."""
    columns = [
        Run.id.label("run_id"),
        Submission.name.label("submission"),
        Run.submission_id,
        Run.variant,
        Run.track,
        Run.track_version,
        Run.status,
        Run.hardware_class,
        Run.primary_metric,
        Run.primary_value,
        Run.primary_ci_low,
        Run.primary_ci_high,
        Run.device,
        Run.params,
        Run.bytes,
        (Run.macs[macs_key].as_float() if macs_key else literal(None, Float)).label("macs"),
        type_coerce(Run.finished_at, String).label("finished_at"),
        device_latency.ranked_ms.label("latency_ms"),
        device_latency.p50_ms,
        device_latency.p90_ms,
        type_coerce(device_latency.noisy, Integer).label("noisy"),
        *[
            select(Metric.value)
            .where(Metric.run_id == Run.id, Metric.name == name)
            .scalar_subquery()
            .label(f"{METRIC_PREFIX}{name}")
            for name in metric_names
        ],
    ]
    if detailed:
        columns += [
            Run.macs.label("macs_by_input"),
            Run.profile,
            Run.runner,
            Run.dataset,
            Run.dataset_hash,
            Run.harness_version,
            Run.scorer_version,
            Run.environment_id,
            type_coerce(Run.started_at, String).label("started_at"),
            Run.error,
            device_latency.p99_ms,
            device_latency.cv.label("latency_cv"),
            device_latency.batch_size,
            device_latency.noise_reasons,
        ]
    return columns


def _runs_frame(
    engine: Engine,
    where: Any,
    macs_key: str | None,
    metric_names: tuple[str, ...] = (),
    detailed: bool = False,
    extra_columns: tuple[Any, ...] = (),
    latency_kind: str = "device",
) -> pd.DataFrame:
    """Runs as rows; metrics as `metric:<name>` columns: the named ones in the SQL, else every stored one. The
    latency columns are of `latency_kind` (the track's ranked latency)."""
    device_latency = aliased(LatencySummaryRow)
    query = (
        select(*_run_columns(device_latency, macs_key, metric_names, detailed), *extra_columns)
        .join(Submission, Submission.id == Run.submission_id)
        .outerjoin(device_latency, and_(device_latency.run_id == Run.id, device_latency.kind == latency_kind))
        .where(where)
        .order_by(Run.id)
    )
    frame = _frame(engine, query)
    frame["macs"] = pd.to_numeric(frame["macs"], errors="coerce")
    frame["noisy"] = frame["noisy"].astype("boolean")
    for column in ("started_at", "finished_at"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], format="ISO8601")
    if metric_names:
        return frame
    metrics = _metrics(engine, frame["run_id"].tolist() if len(frame) <= 500 else where)
    return frame.join(metrics, on="run_id") if not metrics.empty else frame


def _metrics(engine: Engine, runs: list[int] | Any) -> pd.DataFrame:
    """Metric values as one `metric:<name>` column each, indexed by run id. `runs` is a list of run ids or
    the WHERE clause that selected them (one join instead of a huge IN list)."""
    query = select(Metric.run_id, Metric.name, Metric.value)
    if isinstance(runs, list):
        if not runs:
            return pd.DataFrame()
        query = query.where(Metric.run_id.in_(runs))
    else:
        query = query.join(Run, Run.id == Metric.run_id).join(Submission, Submission.id == Run.submission_id)
        query = query.where(runs)
    long = _frame(engine, query)
    if long.empty:
        return pd.DataFrame()
    wide = long.pivot(index="run_id", columns="name", values="value")
    wide.columns = [f"{METRIC_PREFIX}{name}" for name in wide.columns]
    return wide


def standings(
    engine: Engine,
    key: BoardKey,
    macs_key: str | None = None,
    metric_names: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The run that stands for each entry of ONE board (`BoardKey`: track version, dataset and digest, profile),
    unranked; `metric_names` (the track card's metrics) are read in the same query, else every stored metric is.
    The latency columns are the board's ranked latency.

    Runs of any other board are never part of the result (the filter is in the SQL)."""
    where = Run.id.in_(standing_run_ids(key))
    return _runs_frame(engine, where, macs_key, tuple(metric_names), latency_kind=key.latency_kind)


def runs(
    engine: Engine,
    track: str,
    *,
    track_version: int | None = None,
    submission: str | None = None,
    run_ids: list[int] | None = None,
    macs_key: str | None = None,
    with_logs: bool = False,
    latency_kind: str = "device",
) -> pd.DataFrame:
    """Finished runs (any status, `running` claims left out) of a track, optionally of one version,
    one submission name, or given ids; `with_logs` adds the error and the log tail. A competition phase's runs
    are left out: they are scored on its public part, and shown on its own page."""
    conditions = [Run.track == track, Run.status != "running", Run.phase_id.is_(None)]
    if track_version is not None:
        conditions.append(Run.track_version == track_version)
    if submission is not None:
        conditions.append(Submission.name == submission)
    if run_ids is not None:
        conditions.append(Run.id.in_(run_ids))
    extra = (Run.log_tail,) if with_logs else ()
    return _runs_frame(
        engine, and_(*conditions), macs_key, detailed=True, extra_columns=extra, latency_kind=latency_kind
    )


def submissions(engine: Engine, track: str) -> pd.DataFrame:
    """The stored submissions of a track, newest content last, with the complexity measured at submit time.
    Participants' competition submissions (entered in a phase, never queued for the track) are left out."""
    only_entered = and_(Submission.queued.is_(False), Submission.id.in_(select(Entry.submission_id)))
    query = (
        select(
            Submission.id.label("submission_id"),
            Submission.name.label("submission"),
            Submission.project,
            Submission.entry_point,
            Submission.content_hash,
            Submission.variants,
            Submission.params,
            Submission.bytes,
            Submission.macs.label("macs_by_input"),
            Submission.created_at,
        )
        .where(Submission.track == track, ~only_entered)
        .order_by(Submission.id)
    )
    frame = _frame(engine, query)
    if not frame.empty:
        frame["created_at"] = pd.to_datetime(frame["created_at"])
    return frame


def latency_samples(engine: Engine, run_ids: list[int], kind: str = "device") -> dict[int, np.ndarray]:
    """The stored per-iteration latency samples (ms) of a few runs, by run id."""
    if not run_ids:
        return {}
    query = select(LatencySummaryRow.run_id, LatencySummaryRow.samples).where(
        LatencySummaryRow.run_id.in_(run_ids), LatencySummaryRow.kind == kind
    )
    with engine.connect() as conn:
        return {
            run_id: np.frombuffer(blob, dtype="<f4").astype(np.float64) for run_id, blob in conn.execute(query).all()
        }


def environments(engine: Engine, environment_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The stored machine fingerprints (GPU, driver, CUDA, torch, CPU, threads, ...) by environment id."""
    ids = [int(i) for i in environment_ids if i is not None and not pd.isna(i)]
    if not ids:
        return {}
    query = select(Environment.id, Environment.data).where(Environment.id.in_(ids))
    with engine.connect() as conn:
        return {env_id: dict(data or {}) for env_id, data in conn.execute(query).all()}


def store_label(url: str) -> str:
    """The store's URL without credentials, for display (a SQLite store: its file)."""
    path = sqlite_path(url)
    return str(path) if path is not None else faults.store_label(url)
