"""Shared parts of the leaderboard pages: the one read-only engine, the cached queries, the track picker, the
empty-store message, and the column layout of run tables."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from harness.config import db_url
from harness.leaderboard_app import ranking
from harness.leaderboard_app.literal import literal
from harness.leaderboard_app.picker import picker
from harness.leaderboard_app.table import COLUMN_HELP, table_data
from harness.store import queries
from harness.store.repo import BoardKey
from harness.tracks import TrackCard, all_cards

HARDWARE_HELP = COLUMN_HELP["hardware_class"]
CACHE_TTL_S = 30  # results appear on the board at most this long after `harness evaluate` stores them


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Any:
    """ONE engine per store URL per process, shared by every session and rerun. Raises `StoreMissing`, which is
    not cached, so a store created after the app started is picked up on the next rerun."""
    return queries.read_only_engine(url)


class ReadOnlyStore:
    """The service layer's view of a store (`session()`, as `harness.store.Store` offers it) on the app's
    read-only engine: the competition functions of `harness.service.competitions` read through it. Never
    `Store(url)` here: that one migrates (writes) the store it opens."""

    def __init__(self, url: str):
        from sqlalchemy.orm import sessionmaker

        self.url = url
        self.engine = engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        session = self._sessions()
        try:
            yield session
            session.commit()  # ends the read transaction; rows stay loaded (a rollback would expire them)
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


@st.cache_resource(show_spinner=False)
def read_only_store(url: str) -> ReadOnlyStore:
    return ReadOnlyStore(url)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def track_versions(url: str) -> pd.DataFrame:
    return queries.track_versions(engine(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def standings(url: str, key: BoardKey, macs_key: str | None, metric_names: tuple[str, ...]) -> pd.DataFrame:
    return queries.standings(engine(url), key, macs_key, metric_names)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=64)
def standings_view(
    url: str,
    _card: TrackCard,
    card_key: str,
    hardware: str | None,
    variants: tuple[str, ...],
    include_noisy: bool,
    budget: ranking.Budget,
) -> tuple[int, bool, bytes]:
    """The standings page's entries under these filters as its table draws them: (entries, whether any is
    noisy, the table's bytes). Cached per setting, so a new session with the default filters neither ranks nor
    formats the entries again (docs/BENCHMARKS.md). `card_key` names the card in the cache key (`_card` itself
    is not hashed)."""
    entries = standings(url, BoardKey.for_card(_card), ranking.macs_key(_card), _card.metrics)
    ranked = ranking.rank(
        entries,
        _card.higher_is_better,
        budget=budget,
        include_noisy=include_noisy,
        variants=list(variants),
        hardware_class=hardware,
    )
    if ranked.empty:
        return 0, False, b""
    columns = run_columns(ranked, _card, leading=["rank", "submission", "variant"], trailing=_TRAILING)
    return len(ranked), bool(ranked["noisy"].fillna(False).any()), table_data(ranked, columns, macs_help(_card))


_TRAILING = ["finished_at", "hardware_class", "run_id"]


def standings_defaults(entries: pd.DataFrame) -> tuple[str | None, tuple[str, ...], bool, ranking.Budget]:
    """The standings page's filters before a reader sets any, as `standings_view` takes them: the hardware class
    with the most entries, every variant, noisy runs shown, no budget. One definition for the page and for the
    view `harness serve` fills at start."""
    classes = ranking.hardware_classes(entries)
    return (classes[0] if classes else None), tuple(ranking.variants(entries)), True, ranking.Budget()


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def runs(
    url: str,
    track: str,
    track_version: int | None = None,
    submission: str | None = None,
    macs_key: str | None = None,
    with_logs: bool = False,
    latency_kind: str = "device",
) -> pd.DataFrame:
    return queries.runs(
        engine(url),
        track,
        track_version=track_version,
        submission=submission,
        macs_key=macs_key,
        with_logs=with_logs,
        latency_kind=latency_kind,
    )


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def submissions(url: str, track: str) -> pd.DataFrame:
    return queries.submissions(engine(url), track)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def latency_samples(url: str, run_ids: tuple[int, ...]) -> dict[int, Any]:
    return queries.latency_samples(engine(url), list(run_ids))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def environments(url: str, environment_ids: tuple[int, ...]) -> dict[int, dict[str, Any]]:
    return queries.environments(engine(url), list(environment_ids))


@dataclass(frozen=True)
class Board:
    """What a page works on: the store URL and the current card of the chosen track."""

    url: str
    card: TrackCard

    @property
    def macs_key(self) -> str | None:
        return ranking.macs_key(self.card)

    @property
    def key(self) -> BoardKey:
        """The standings shown: the card's dataset (at its pinned digest), profile, ranking rule and latency."""
        return BoardKey.for_card(self.card)


def sidebar() -> None:
    """The track picker and the refresh button; called by the entry script before the page runs, so the choice
    is kept when the reader moves between pages."""
    cards = all_cards()
    names = list(cards)
    wanted = st.query_params.get("track") if "track" not in st.session_state else None
    if st.session_state.get("track") not in cards:
        keep_choice("track", names, wanted if wanted in cards else _busiest_track(cards))
    with st.sidebar:
        labels = {name: f"{cards[name].title} ({cards[name].key})" for name in names}
        st.session_state["track"] = picker("Track", labels, st.session_state["track"], key="track_picker")
    if st.sidebar.button("Refresh", help=f"Results are cached for {CACHE_TTL_S} s; this reads the store again."):
        st.cache_data.clear()
    st.sidebar.caption(f"Store: {literal(queries.store_label(db_url()))} (read-only)")


def _busiest_track(cards: dict[str, TrackCard]) -> str:
    try:
        counts = track_versions(db_url())
    except queries.StoreMissing:
        return next(iter(cards))
    return ranking.busiest_track(counts, cards)


def board() -> Board:
    """The page's store and track; shows what to run instead of the page (and stops it) when the store holds
    no finished run of the track's current version."""
    url = db_url()
    cards = all_cards()
    card = cards.get(st.session_state.get("track"), next(iter(cards.values())))
    try:
        counts = track_versions(url)
    except queries.StoreMissing as exc:
        _empty_store(card, f"There is no store yet ({literal(exc)}).")
        st.stop()
    mine = counts[counts["track"] == card.name]
    current_ok = mine[(mine["track_version"] == card.version) & (mine["status"] == "ok")]["runs"].sum()
    if current_ok == 0:
        if counts.empty:
            _empty_store(card, "The store holds no runs yet.")
        else:
            other = mine[mine["track_version"] != card.version]
            reason = f"The store holds no finished run of {literal(card.key)}."
            if not other.empty:
                versions = ", ".join(f"v{v}" for v in sorted(other["track_version"].unique()))
                reason += (
                    f" It holds {int(other['runs'].sum())} run(s) of other versions ({versions}) of this track;"
                    " runs of another track version are never ranked with the current one."
                )
            _empty_store(card, reason)
        st.stop()
    return Board(url=url, card=card)


def _empty_store(card: TrackCard, reason: str) -> None:
    st.info(reason)
    st.markdown("Evaluate submissions to fill it, then refresh this page:")
    st.code(f"harness submit ./my_model\nharness evaluate --track {shlex.quote(card.name)}", language="bash")
    st.caption(f"Store: {literal(queries.store_label(db_url()))} (set with `harness serve --db URL` or HARNESS_DB_URL)")


def fmt(value: Any, spec: str = ",.0f", missing: str = "-") -> str:
    """A number for hovers and captions; `missing` for None/NaN (runs that failed before measuring it)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return missing
    return format(value, spec)


def metric_label(name: str) -> str:
    return name.removeprefix(queries.METRIC_PREFIX)


def run_columns(frame: pd.DataFrame, card: TrackCard, leading: list[str], trailing: list[str]) -> list[str]:
    """The columns a reader compares, in order: `leading`, the track's metrics, the costs, `trailing`."""
    metrics = ranking.metric_columns(frame, card.metrics)
    middle = ["interval", "tied", "params", "macs", "bytes", "latency_ms", "p50_ms", "p90_ms", "noisy"]
    return [c for c in [*leading, *metrics, *middle, *trailing] if c in frame.columns]


def run_table(
    frame: pd.DataFrame, card: TrackCard, leading: list[str], trailing: list[str]
) -> tuple[pd.DataFrame, dict]:
    """A run frame cut down to the columns a reader compares, with labels and number formats."""
    columns = run_columns(frame, card, leading, trailing)
    metrics = [c for c in columns if c.startswith(queries.METRIC_PREFIX)]
    shown = frame[columns].copy()
    config: dict[str, Any] = {
        "rank": st.column_config.NumberColumn("#", format="%d", width="small"),
        "submission": st.column_config.TextColumn("submission"),
        "variant": st.column_config.TextColumn("variant"),
        "params": st.column_config.NumberColumn("params", format="compact", help=COLUMN_HELP["params"]),
        "macs": st.column_config.NumberColumn("MACs", format="compact", help=macs_help(card)),
        "bytes": st.column_config.NumberColumn("bytes", format="bytes", help=COLUMN_HELP["bytes"]),
        "latency_ms": st.column_config.NumberColumn("latency ms", format="%.4f", help=COLUMN_HELP["latency_ms"]),
        "p50_ms": st.column_config.NumberColumn("p50 ms", format="%.4f"),
        "p90_ms": st.column_config.NumberColumn("p90 ms", format="%.4f"),
        "noisy": st.column_config.CheckboxColumn("noisy", help=COLUMN_HELP["noisy"]),
        "interval": st.column_config.TextColumn("95% CI", help=COLUMN_HELP["interval"]),
        "tied": st.column_config.CheckboxColumn("≈ leader", help=COLUMN_HELP["tied"]),
        "hardware_class": st.column_config.TextColumn("hardware class", help=COLUMN_HELP["hardware_class"]),
        "finished_at": st.column_config.DatetimeColumn("date", format="YYYY-MM-DD HH:mm"),
        "run_id": st.column_config.NumberColumn("run", format="%d"),
        "status": st.column_config.TextColumn("status"),
        "delta_metric": st.column_config.NumberColumn(f"Δ {card.primary_metric}", format="%+.4f"),
        "latency_change_pct": st.column_config.NumberColumn("Δ latency %", format="%+.1f%%"),
        "bytes_change_pct": st.column_config.NumberColumn("Δ bytes %", format="%+.1f%%"),
        "error": st.column_config.TextColumn("error"),
        "track_version": st.column_config.NumberColumn("track version", format="v%d"),
    }
    for column in metrics:
        config[column] = st.column_config.NumberColumn(metric_label(column), format="%.4f")
    return shown, {k: v for k, v in config.items() if k in columns}


def macs_help(card: TrackCard) -> str:
    if card.mac_images:
        return f"Mean multiply-accumulates over {card.mac_images} fixed test images"
    height, width = card.input_sizes[0]
    return f"Multiply-accumulates of convolutions and linear layers at {height}×{width}"


def run_labels(frame: pd.DataFrame) -> dict[int, str]:
    """How runs are named in pickers, by run id: `#12 gtsnet@fp16 · v1 · ok` (column-wise: thousands of runs)."""
    columns = zip(
        frame["run_id"], frame["submission"], frame["variant"], frame["track_version"], frame["status"], strict=True
    )
    return {
        int(run): f"#{run} {name}@{variant} · v{version} · {status}" for run, name, variant, version, status in columns
    }


def keep_choice(key: str, options: list[Any], default: Any) -> None:
    """Set a picker's choice to `default` when none is remembered or the remembered one is no longer offered
    (another track, a new store); Streamlit would otherwise fall back to the first option, not the default."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


def hardware_picker(frame: pd.DataFrame, key: str) -> str | None:
    """One hardware class to rank within (the one with the most entries first); None when there is none."""
    options = ranking.hardware_classes(frame)
    if not options:
        return None
    keep_choice(key, options, options[0])
    return st.selectbox("Hardware class", options, key=key, help=HARDWARE_HELP)
