"""History page: the best primary score of the track's current version over time, on one hardware class,
with every `ok` run as a faded point and the runs that set a new best listed."""

import plotly.graph_objects as go
import streamlit as st

from harness.leaderboard_app import common
from harness.leaderboard_app.ranking import best_over_time

board = common.board()
card = board.card
st.title("Best score over time")
st.caption(f"Track {card.key} · every finished `ok` run of this version, in the order the runs finished")

finished = common.runs(board.url, card.name, track_version=card.version, macs_key=board.macs_key)
ok = finished[finished["status"] == "ok"]
hardware = common.hardware_picker(ok, key="history_hardware")
timeline = best_over_time(ok[ok["hardware_class"] == hardware], card.higher_is_better)

hover = [
    f"<b>{row.submission}@{row.variant}</b><br>run #{row.run_id}<br>{card.primary_metric} {row.primary_value:.4f}"
    f"<br>{row.finished_at:%Y-%m-%d %H:%M:%S}"
    for row in timeline.itertuples()
]
figure = go.Figure()
figure.add_trace(
    go.Scatter(
        x=timeline["finished_at"],
        y=timeline["primary_value"],
        mode="markers",
        name="runs",
        marker={"size": 7, "color": "#9aa5b1", "opacity": 0.45},
        hovertext=hover,
        hoverinfo="text",
    )
)
figure.add_trace(
    go.Scatter(
        x=timeline["finished_at"],
        y=timeline["best_so_far"],
        mode="lines",
        name="best so far",
        line={"shape": "hv", "color": "#1f77b4", "width": 3},
        hoverinfo="skip",
    )
)
records = timeline[timeline["record"]]
figure.add_trace(
    go.Scatter(
        x=records["finished_at"],
        y=records["primary_value"],
        mode="markers",
        name="new best",
        marker={"size": 12, "color": "#1f77b4", "symbol": "star"},
        hovertext=[h for h, r in zip(hover, timeline["record"], strict=True) if r],
        hoverinfo="text",
    )
)
figure.update_layout(
    xaxis_title="finished",
    yaxis_title=card.primary_metric,
    height=420,
    margin={"l": 10, "r": 10, "t": 10, "b": 10},
    legend={"orientation": "h", "y": -0.25},
)
st.container(key="history_chart").plotly_chart(figure, config={"displaylogo": False})

st.subheader(f"Runs that set a new best ({len(records)})")
shown, config = common.run_table(
    records.iloc[::-1], card, leading=["finished_at", "submission", "variant"], trailing=["run_id"]
)
st.container(key="records_table").dataframe(shown, column_config=config, hide_index=True)
