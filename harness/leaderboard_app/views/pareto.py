"""Pareto page: the primary metric against latency and against MACs for one hardware class, the front of
entries nothing beats highlighted, the dominated ones faded, each point's run in its hover."""

import numpy as np
import streamlit as st

from harness.leaderboard_app import charts, common
from harness.leaderboard_app.ranking import pareto_mask, rank

board = common.board()
card = board.card
st.title("Accuracy / cost trade-off")
st.caption(
    f"Track {card.key} · each point is the latest run of one submission variant · the front links the entries "
    f"that no other entry beats on both {card.primary_metric} and cost"
)

entries = common.standings(board.url, board.key, board.macs_key, card.metrics)
left, right = st.columns([2, 1])
with left:
    hardware = common.hardware_picker(entries, key="pareto_hardware")
with right:
    include_noisy = st.toggle("Show noisy runs", value=True, key="pareto_noisy")
ranked = rank(entries, card.higher_is_better, include_noisy=include_noisy, hardware_class=hardware)


def trade_off_panel(cost_column: str, cost_title: str, cost_format: str | None) -> dict | None:
    costs = ranked[cost_column].to_numpy(dtype=float)
    frame = ranked[np.isfinite(costs) & (costs > 0) & ranked["primary_value"].notna().to_numpy()]
    if frame.empty:
        return None
    on_front = pareto_mask(
        frame["primary_value"].to_numpy(dtype=float), frame[cost_column].to_numpy(dtype=float), card.higher_is_better
    )
    return charts.trade_off(frame, on_front, cost_column, cost_title, card.primary_metric, cost_format)


panels = []
for cost, title, cost_format in (("latency_ms", "latency (ms, ranked figure)", None), ("macs", "MACs", "~s")):
    panel = trade_off_panel(cost, title, cost_format)
    if panel is None:
        st.info(f"No entry has a measured {title.split(' ')[0]}.")
    else:
        panels.append(panel)
if panels:
    st.container(key="pareto_charts").vega_lite_chart(spec=charts.side_by_side(panels), width="content")

front = ranked[
    pareto_mask(ranked["primary_value"].to_numpy(float), ranked["latency_ms"].to_numpy(float), card.higher_is_better)
]
st.subheader("On the latency front")
shown, config = common.run_table(front, card, leading=["rank", "submission", "variant"], trailing=["run_id"])
st.container(key="pareto_front_table").dataframe(shown, column_config=config, hide_index=True)
