"""Submission page: one submission's variants in one table with the change against fp32, their latency
distributions from the stored samples, the machines they ran on, and the log tail of failed runs."""

import shlex

import pandas as pd
import streamlit as st

from harness.leaderboard_app import charts, common
from harness.leaderboard_app.literal import literal
from harness.leaderboard_app.ranking import order, variant_changes

LOG_TAIL_LINES = 40

board = common.board()
card = board.card
stored = common.submissions(board.url, card.name)
entries = order(common.standings(board.url, board.key, board.macs_key, card.metrics), card.higher_is_better)
# Best-placed first, then the submissions without an `ok` run (they may only have failed).
names = list(dict.fromkeys([*entries["submission"], *stored["submission"]]))
wanted = st.query_params.get("submission") if "submission_name" not in st.session_state else None
common.keep_choice("submission_name", names, wanted if wanted in names else names[0])
name = st.selectbox("Submission", names, key="submission_name")
st.title(literal(name))

versions = stored[stored["submission"] == name]
latest_content = versions.iloc[-1]
st.caption(
    f"project {literal(latest_content['project'])} · entry point {literal(latest_content['entry_point'])} · "
    f"content {literal(latest_content['content_hash'][:12])} · submitted {latest_content['created_at']:%Y-%m-%d %H:%M}"
    f" · declared variants: {', '.join(map(literal, latest_content['variants'] or ['fp32']))}"
    + (f" · {len(versions)} stored contents" if len(versions) > 1 else "")
)

all_runs = common.runs(
    board.url, card.name, submission=name, macs_key=board.macs_key, with_logs=True, latency_kind=card.ranked_latency
)
runs = all_runs[all_runs["track_version"] == card.version]
other_versions = len(all_runs) - len(runs)
if other_versions:
    st.caption(f"{other_versions} run(s) of other versions of {literal(card.name)} are not shown.")
if runs.empty:
    st.info(f"No finished run of {literal(name)} on {literal(card.key)} yet:")
    st.code(f"harness evaluate --track {shlex.quote(card.name)} --submission {shlex.quote(name)}", language="bash")
    st.stop()

hardware = common.hardware_picker(runs, key="submission_hardware")
here = runs[runs["hardware_class"] == hardware]
latest = here.sort_values("run_id").groupby("variant", sort=False).tail(1)
declared = list(latest_content["variants"] or [])
rank_of = {v: i for i, v in enumerate(["fp32", *declared])}
latest = latest.sort_values("variant", key=lambda s: s.map(lambda v: rank_of.get(v, len(rank_of))))
changes = variant_changes(latest, baseline="fp32")
changes["error"] = changes["error"].fillna("")

st.subheader("Variants")
shown, config = common.run_table(
    changes,
    card,
    leading=["variant", "status"],
    trailing=["delta_metric", "latency_change_pct", "bytes_change_pct", "finished_at", "run_id", "error"],
)
st.container(key="variants_table").dataframe(shown, column_config=config, hide_index=True)
if "fp32" not in set(latest.loc[latest["status"] == "ok", "variant"]):
    st.caption("No `ok` fp32 run on this hardware class, so no change against fp32 is shown.")
else:
    st.caption("Δ: the change against this submission's fp32 run on the same hardware class.")

st.subheader("Latency distribution")
ok = latest[latest["status"] == "ok"]
samples = common.latency_samples(board.url, tuple(int(i) for i in ok["run_id"]))
distributions = {
    f"{row.variant} (#{row.run_id})": samples[int(row.run_id)]
    for row in ok.itertuples()
    if int(row.run_id) in samples and len(samples[int(row.run_id)])
}
if distributions:
    st.container(key="latency_distribution").vega_lite_chart(spec=charts.latency_boxes(distributions))
    stats = ok[["variant", "p50_ms", "p90_ms", "p99_ms", "latency_cv", "noisy", "noise_reasons"]].copy()
    stats["samples"] = [len(samples.get(int(i), [])) for i in ok["run_id"]]
    stats["noise_reasons"] = ["; ".join(r or []) for r in stats["noise_reasons"]]
    st.container(key="latency_stats").dataframe(
        stats,
        hide_index=True,
        column_config={
            "p50_ms": st.column_config.NumberColumn("p50 ms", format="%.4f"),
            "p90_ms": st.column_config.NumberColumn("p90 ms", format="%.4f"),
            "p99_ms": st.column_config.NumberColumn("p99 ms", format="%.4f"),
            "latency_cv": st.column_config.NumberColumn("CV", format="percent"),
            "noise_reasons": st.column_config.TextColumn("why noisy"),
        },
    )
else:
    st.info("No latency samples stored for these runs (no variant finished `ok`).")

st.subheader("Environment")
env_ids = tuple(sorted({int(i) for i in here["environment_id"].dropna()}))
machines = common.environments(board.url, env_ids)
if machines:
    table = pd.DataFrame({f"environment {k}": {key: str(v) for key, v in data.items()} for k, data in machines.items()})
    table.index.name = "field"
    st.container(key="environment_table").dataframe(table)
else:
    st.info("No environment stored for these runs.")

failed = here[here["status"].isin(["failed", "unavailable"])].sort_values("run_id", ascending=False)
st.subheader(f"Failed runs ({len(failed)})")
if failed.empty:
    st.caption("Every run of this submission on this hardware class finished `ok`.")
for row in failed.itertuples():
    reason = row.error or "no reason stored"
    with st.expander(f"#{row.run_id} {literal(f'[{row.variant}] {row.status}: {reason}')}"):
        tail = "\n".join((row.log_tail or "").splitlines()[-LOG_TAIL_LINES:])
        st.code(tail or "(the run left no log)", language="text")
