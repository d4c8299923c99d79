"""Competitions page: a registered competition's phase, its settings, and its board: the PUBLIC board (scores on
the public part of the hidden test set) while the phase is not closed, the FINAL board (ranked by the private
part's scores, the public ones beside them) once the organiser has closed it.

Every row comes from `harness.service.competitions.board`, the one function that reads private scores and that
refuses them for a phase that is not closed: this page asks for the private board only for a closed phase, and
nothing else on it (the table, the CSV download) is made from anything but that function's rows. Competition
runs are never on the track pages (`standing_run_ids` leaves out runs of a phase)."""

from __future__ import annotations

import shlex
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.exc import DBAPIError

from harness.config import db_url
from harness.errors import HarnessError
from harness.leaderboard_app import common
from harness.leaderboard_app.literal import literal
from harness.leaderboard_app.table import COLUMN_HELP
from harness.service import competitions
from harness.store import queries

RULES = {
    "best": "each participant's best public score over all their entries stands",
    "last": "each participant's latest evaluated entry stands",
    "selected": "the best public score among the entries each participant selected stands (none selected: their "
    "latest)",
}
STATES = {
    "upcoming": "upcoming: it does not take submissions yet",
    "open": "open: it takes submissions",
    "ended": "ended: past its close time, waiting for the organiser to close it",
    "closed": "closed: its final standing is published",
}


@st.cache_data(ttl=common.CACHE_TTL_S, show_spinner=False)
def _listing(url: str) -> list[dict[str, Any]]:
    return competitions.listing(common.read_only_store(url))


@st.cache_data(ttl=common.CACHE_TTL_S, show_spinner=False)
def _describe(url: str, name: str) -> dict[str, Any]:
    return competitions.describe(common.read_only_store(url), name)


@st.cache_data(ttl=common.CACHE_TTL_S, show_spinner=False)
def _default_phase(url: str, name: str) -> str:
    """The phase a reader sees first: the open one, else the latest that opened, else the first."""
    return competitions.phase_view(common.read_only_store(url), name).spec.name


@st.cache_data(ttl=common.CACHE_TTL_S, show_spinner=False)
def _board(url: str, name: str, phase: str, private: bool) -> dict[str, Any]:
    """The phase's board from the service, which refuses `private` unless the phase is closed."""
    return competitions.board(common.read_only_store(url), name, phase, private=private)


def _how_to_create(reason: str) -> None:
    st.info(reason)
    st.markdown("An organiser registers a competition from its bundle folder (which holds `competition.toml`):")
    st.code(
        "harness competition init ./my-competition     # a commented competition.toml to start from\n"
        "harness competition create ./my-competition   # register it in the store\n"
        "harness participants add --competition NAME PARTICIPANT",
        language="bash",
    )
    st.caption(f"Store: {literal(queries.store_label(db_url()))} (read-only)")


def _registered(url: str) -> list[dict[str, Any]]:
    """The registered competitions; shows what to do instead (and stops the page) when there are none."""
    try:
        listed = _listing(url)
    except queries.StoreMissing as exc:
        _how_to_create(f"There is no store yet ({literal(exc)}).")
        st.stop()
    except DBAPIError:
        st.warning(
            "This store has no competition tables yet: it was written by an older harness. Any `harness` command "
            "that opens it upgrades it (the board only reads)."
        )
        st.stop()
    if not listed:
        _how_to_create("No competition is registered in this store.")
        st.stop()
    return listed


def _pick(key: str, param: str, options: list[str], default: str) -> str:
    """A choice kept in the session; `?param=NAME` chooses on a session's first view, as the other pages do."""
    wanted = st.query_params.get(param) if key not in st.session_state else None
    common.keep_choice(key, options, wanted if wanted in options else default)
    return st.session_state[key]


def _phase_header(info: dict[str, Any], phase: dict[str, Any]) -> None:
    st.title(literal(info["title"]))
    st.caption(
        f"competition {literal(info['name'])} · version {info['version']} · bundle {literal(info['digest'][:12])}"
    )
    if info["description"]:
        st.markdown(literal(info["description"]))
    st.subheader(f"{literal(phase['title'] or phase['name'])} ({literal(phase['name'])})")
    quota = phase["quota"]
    per_day = quota.get("per_day") or "no limit"
    per_phase = quota.get("per_phase") or "no limit"
    rule = RULES.get(phase["ranking"], phase["ranking"])
    if phase["ranking"] == "selected" and phase.get("max_selected"):
        rule += f"; at most {phase['max_selected']} selected"
    facts = [
        f"**State:** {literal(STATES.get(phase['state'], phase['state']))}",
        f"**Dates:** opens {literal(_when(phase['opens']))}, closes {literal(_when(phase['closes']))}"
        + (f", closed by the organiser {literal(_when(phase['closed_at']))}" if phase.get("closed_at") else ""),
        f"**Track:** {literal(phase['track'])} on {literal(phase['dataset'])}, latency profile "
        f"{literal(phase['profile'])}"
        + (f", hardware class {literal(phase['hardware_class'])}" if phase.get("hardware_class") else ""),
        f"**Quota per participant:** {per_day} per UTC day, {per_phase} in the phase",
        f"**Ranking rule:** {literal(rule)}",
        f"**Public part:** {phase['public_fraction']:.0%} of the hidden test images; the rest is private",
        f"**Entries:** {phase['entries']}",
    ]
    st.markdown("\n".join(f"- {fact}" for fact in facts))
    people = info["participants"]
    names = ", ".join(literal(p["name"]) + (f" (team {literal(p['team'])})" if p["team"] else "") for p in people)
    st.caption(f"Participants ({len(people)}): {names or 'none yet'}")


def _when(iso: str) -> str:
    return iso.replace("T", " ").removesuffix("Z")[:16] + " UTC"


def _interval(interval: list[float] | None) -> str | None:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else None


def board_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The board's rows as the page shows them and the CSV holds them, in rank order (baselines where their
    score puts them, unranked). The private columns exist only on the final board of a closed phase."""
    metric = result["primary_metric"]
    parts = ["private", "public"] if result["board"] == "private" else ["public"]
    records = []
    for row in result["rows"]:
        record: dict[str, Any] = {
            "#": row["rank"],
            "tie": "≈ leader" if row["tied_with_leader"] else "",
            "participant": row["participant"],
            "team": row["team"] or "",
            "entry": row["entry"],
            "baseline": "baseline" if row["baseline"] else "",
            "variant": row["variant"],
        }
        for part in parts:
            record[f"{metric} ({part})"] = row[part]["value"]
            record[f"95% CI ({part})"] = _interval(row[part]["interval"])
        record.update(
            {
                "params": row["params"],
                "MACs": next(iter((row["macs"] or {}).values()), None),
                "latency ms": row["latency_ms"],
                "hardware class": row["hardware_class"],
                "submitted": row["submitted_at"],
                "run": row["run_id"],
            }
        )
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame["#"] = frame["#"].astype("Int64")
    return frame


def _column_config(frame: pd.DataFrame) -> dict[str, Any]:
    config: dict[str, Any] = {
        "#": st.column_config.NumberColumn("#", format="%d", width="small", help="Baselines are not ranked"),
        "tie": st.column_config.TextColumn("tie", help=COLUMN_HELP["tied"]),
        "params": st.column_config.NumberColumn("params", format="compact", help=COLUMN_HELP["params"]),
        "MACs": st.column_config.NumberColumn("MACs", format="compact"),
        "latency ms": st.column_config.NumberColumn("latency ms", format="%.4f", help=COLUMN_HELP["latency_ms"]),
        "hardware class": st.column_config.TextColumn("hardware class", help=COLUMN_HELP["hardware_class"]),
        "run": st.column_config.NumberColumn("run", format="%d"),
    }
    for column in frame.columns:
        if column.startswith("95% CI"):
            config[column] = st.column_config.TextColumn(column, help=COLUMN_HELP["interval"])
        elif column.endswith(("(public)", "(private)")):
            config[column] = st.column_config.NumberColumn(column, format="%.4f")
    return config


def _board_note(result: dict[str, Any]) -> None:
    public = f"{result['public_fraction']:.0%}"
    if result["board"] == "private":
        st.success(
            f"Final standing: the phase is closed, and entries are ranked by their scores on the private part of "
            f"the test set; their public scores ({public} of the test images) are shown beside them."
        )
        return
    ended = " The phase has ended;" if result["state"] == "ended" else ""
    st.info(
        f"Public board: scores on the public part of the test set ({public} of the test images). The private "
        f"part decides the final standing.{ended} Private scores appear here when the organiser closes the phase."
    )


def _show_board(result: dict[str, Any]) -> None:
    _board_note(result)
    frame = board_frame(result)
    direction = "higher" if result["higher_is_better"] else "lower"
    st.caption(
        f"Ranked by {literal(result['primary_metric'])} ({direction} is better), then by latency · "
        f"{literal(RULES.get(result['ranking'], result['ranking']))} · baselines are the organiser's reference "
        "submissions, shown but not ranked · ≈ leader: its 95 % interval overlaps the leader's, the gap may be "
        "chance"
    )
    if frame.empty:
        st.info("No entry of this phase has been evaluated yet. The organiser evaluates the entries with:")
        command = f"harness evaluate --competition {shlex.quote(result['competition'])} --phase "
        st.code(command + shlex.quote(result["phase"]), language="bash")
        return
    st.container(key="competition_board").dataframe(frame, column_config=_column_config(frame), hide_index=True)
    st.download_button(
        "Download CSV",
        frame.to_csv(index=False).encode(),
        file_name=f"{result['competition']}-{result['phase']}-{result['board']}.csv",
        mime="text/csv",
        key="competition_csv",
        icon=":material/download:",
    )


def page() -> None:
    url = db_url()
    listed = _registered(url)
    names = [c["name"] for c in listed]
    titles = {c["name"]: c["title"] for c in listed}
    top = st.columns(2)
    name = _pick("competition_name", "competition", names, names[0])
    top[0].selectbox("Competition", names, key="competition_name", format_func=lambda n: f"{titles[n]} ({n})")
    try:
        info = _describe(url, name)
        phases = {p["name"]: p for p in info["phases"]}
        phase_name = _pick("competition_phase", "phase", list(phases), _default_phase(url, name))
        top[1].selectbox(
            "Phase", list(phases), key="competition_phase", format_func=lambda n: f"{phases[n]['title'] or n} ({n})"
        )
        phase = phases[phase_name]
        _phase_header(info, phase)
        # The private board only for a closed phase; `board` refuses it otherwise.
        result = _board(url, name, phase_name, phase["state"] == "closed")
    except HarnessError as exc:
        st.error(literal(exc.message))
        if exc.hint:
            st.caption(f"fix: {literal(exc.hint)}")
        st.stop()
    _show_board(result)


page()
