"""Pareto page: the primary metric against latency and against MACs for one hardware class, the front of
entries nothing beats highlighted, the dominated ones faded, each point's run in its hover."""

import numpy as np
import pandas as pd
import streamlit as st

from harness.leaderboard_app import charts, common
from harness.leaderboard_app.literal import literal
from harness.leaderboard_app.ranking import pareto_mask, rank

board = common.board()
card = board.card
st.title("Accuracy / cost trade-off")
st.caption(
    f"Track {literal(card.key)} · each point is the latest run of one submission variant · the front links the "
    f"entries that no other entry beats on both {literal(card.primary_metric)} and cost"
)

entries = common.standings(board.url, board.key, board.macs_key, card.metrics)
left, right = st.columns([2, 1])
with left:
    hardware = common.hardware_picker(entries, key="pareto_hardware")
with right:
    include_noisy = st.toggle("Show noisy runs", value=True, key="pareto_noisy")
ranked = rank(entries, card.higher_is_better, include_noisy=include_noisy, hardware_class=hardware)


def with_cost(cost_column: str) -> pd.DataFrame:
    """The ranked entries that can be placed on this cost's panel: a finite positive cost and a value."""
    costs = ranked[cost_column].to_numpy(dtype=float)
    return ranked[np.isfinite(costs) & (costs > 0) & ranked["primary_value"].notna().to_numpy()]


panels = {}
for cost, title, cost_format in (("latency_ms", "latency (ms, ranked figure)", None), ("macs", "MACs", "~s")):
    frame = with_cost(cost)
    if frame.empty:
        st.info(f"No entry has a measured {title.split(' ')[0]}.")
    else:
        panels[cost] = (frame, title, cost_format)
# Each panel in a column of its own, as wide as the column; the panels share the y scale.
values = np.concatenate([frame["primary_value"].to_numpy(dtype=float) for frame, _, _ in panels.values()] or [[]])
domain = (float(values.min()), float(values.max())) if len(values) else None
for column, (cost, (frame, title, cost_format)) in zip(st.columns(2) if panels else [], panels.items(), strict=False):
    on_front = pareto_mask(
        frame["primary_value"].to_numpy(dtype=float), frame[cost].to_numpy(dtype=float), card.higher_is_better
    )
    spec = charts.trade_off(
        frame, on_front, cost, title, card.primary_metric, cost_format=cost_format, value_domain=domain
    )
    column.container(key=f"pareto_{cost}_chart").vega_lite_chart(spec=spec, width="stretch")

front = ranked[
    pareto_mask(ranked["primary_value"].to_numpy(float), ranked["latency_ms"].to_numpy(float), card.higher_is_better)
]
st.subheader("On the latency front")
shown, config = common.run_table(front, card, leading=["rank", "submission", "variant"], trailing=["run_id"])
st.container(key="pareto_front_table").dataframe(shown, column_config=config, hide_index=True)
