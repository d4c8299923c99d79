"""Pareto page: the primary metric against latency and against MACs for one hardware class, the front of
entries nothing beats highlighted, the dominated ones faded, each point's run in its hover."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from harness.leaderboard_app import common
from harness.leaderboard_app.ranking import pareto_mask, rank

MAX_LABELS = 8

board = common.board()
card = board.card
st.title("Accuracy / cost trade-off")
st.caption(
    f"Track {card.key} · each point is the latest run of one submission variant · the front links the entries "
    f"that no other entry beats on both {card.primary_metric} and cost"
)

entries = common.standings(board.url, card.name, card.version, board.macs_key, card.metrics)
left, right = st.columns([2, 1])
with left:
    hardware = common.hardware_picker(entries, key="pareto_hardware")
with right:
    include_noisy = st.toggle("Show noisy runs", value=True, key="pareto_noisy")
ranked = rank(entries, card.higher_is_better, include_noisy=include_noisy, hardware_class=hardware)


def _spread(values: np.ndarray) -> bool:
    """A log axis helps once the costs span more than a factor of ten."""
    positive = values[np.isfinite(values) & (values > 0)]
    return len(positive) > 1 and positive.max() / positive.min() > 10


def _front_labels(front: pd.DataFrame, cost_column: str) -> list[str]:
    """One label per point; entries at the very same spot (e.g. fp32 and bf16 with equal MACs and score) share
    one label instead of printing over each other."""
    labels: list[str] = []
    seen: dict[tuple[float, float], int] = {}
    for row in front.itertuples():
        spot = (float(getattr(row, cost_column)), float(row.primary_value))
        name = f"{row.submission}@{row.variant}"
        if spot in seen:
            first = seen[spot]
            labels[first] += f", {row.variant}" if labels[first].startswith(f"{row.submission}@") else f", {name}"
            labels.append("")
        else:
            seen[spot] = len(labels)
            labels.append(name)
    return labels


def trade_off_figure(cost_column: str, cost_title: str) -> go.Figure | None:
    frame = ranked[np.isfinite(ranked[cost_column].astype(float)) & ranked["primary_value"].notna()]
    frame = frame[frame[cost_column].astype(float) > 0]
    if frame.empty:
        return None
    costs = frame[cost_column].to_numpy(dtype=float)
    values = frame["primary_value"].to_numpy(dtype=float)
    on_front = pareto_mask(values, costs, card.higher_is_better)
    hover = [
        f"<b>{row.submission}@{row.variant}</b><br>run #{row.run_id} · rank {row.rank}<br>"
        f"{card.primary_metric} {row.primary_value:.4f}<br>latency {common.fmt(row.latency_ms, '.4f')} ms"
        f"<br>MACs {common.fmt(row.macs)}<br>params {common.fmt(row.params)}" + (" · noisy" if row.noisy else "")
        for row in frame.itertuples()
    ]
    # Plain lists: Plotly validates a numpy object array element by element, ten times slower (0.5 s per
    # trace of 1,500 points), which a large board would pay on every rerun.
    front_order = np.flatnonzero(on_front)[np.argsort(costs[on_front], kind="stable")]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=costs[~on_front],
            y=values[~on_front],
            mode="markers",
            name="dominated",
            marker={"size": 9, "color": "#9aa5b1", "opacity": 0.35},
            hovertext=[hover[i] for i in np.flatnonzero(~on_front)],
            hoverinfo="text",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=costs[front_order],
            y=values[front_order],
            # Names on the points only while they stay legible; the hover and the table below always have them.
            mode="lines+markers+text" if len(front_order) <= MAX_LABELS else "lines+markers",
            name="Pareto front",
            line={"shape": "hv", "color": "#d62728", "width": 2},
            marker={"size": 12, "color": "#d62728", "opacity": 1.0},
            text=_front_labels(frame.iloc[front_order], cost_column),
            textposition="top center",
            cliponaxis=False,
            hovertext=[hover[i] for i in front_order],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        xaxis_title=cost_title,
        yaxis_title=card.primary_metric,
        height=440,
        margin={"l": 10, "r": 40, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    if _spread(costs):
        figure.update_xaxes(type="log")
    return figure


charts = st.columns(2)
for column, (cost, title, key) in zip(
    charts,
    (("latency_ms", "latency (ms, ranked figure)", "pareto_latency"), ("macs", "MACs", "pareto_macs")),
    strict=True,
):
    with column:
        st.subheader(f"{card.primary_metric} vs {title.split(' ')[0]}")
        figure = trade_off_figure(cost, title)
        if figure is None:
            st.info(f"No entry has a measured {title.split(' ')[0]}.")
        else:
            st.container(key=key).plotly_chart(figure, config={"displaylogo": False})

front = ranked[
    pareto_mask(ranked["primary_value"].to_numpy(float), ranked["latency_ms"].to_numpy(float), card.higher_is_better)
]
st.subheader("On the latency front")
shown, config = common.run_table(front, card, leading=["rank", "submission", "variant"], trailing=["run_id"])
st.container(key="pareto_front_table").dataframe(shown, column_config=config, hide_index=True)
