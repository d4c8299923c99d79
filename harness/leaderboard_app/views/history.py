"""History page: the best primary score of the track's current version over time, on one hardware class,
with every `ok` run as a faded point and the runs that set a new best listed."""

import streamlit as st

from harness.leaderboard_app import charts, common
from harness.leaderboard_app.literal import literal
from harness.leaderboard_app.ranking import best_over_time

board = common.board()
card = board.card
st.title("Best score over time")
st.caption(f"Track {literal(card.key)} · every finished `ok` run of this version, in the order the runs finished")

finished = common.runs(
    board.url, card.name, track_version=card.version, macs_key=board.macs_key, latency_kind=card.ranked_latency
)
ok = finished[finished["status"] == "ok"]
hardware = common.hardware_picker(ok, key="history_hardware")
timeline = best_over_time(ok[ok["hardware_class"] == hardware], card.higher_is_better)

st.container(key="history_chart").vega_lite_chart(spec=charts.score_history(timeline, card.primary_metric))

records = timeline[timeline["record"]]
st.subheader(f"Runs that set a new best ({len(records)})")
shown, config = common.run_table(
    records.iloc[::-1], card, leading=["finished_at", "submission", "variant"], trailing=["run_id"]
)
st.container(key="records_table").dataframe(shown, column_config=config, hide_index=True)
