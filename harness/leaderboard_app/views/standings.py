"""Standings page: the current track version's latest `ok` run per submission and variant, ranked within one
hardware class, with filters and budgets that re-rank the entries within them."""

import streamlit as st

from harness.leaderboard_app import common
from harness.leaderboard_app.ranking import Budget, rank

board = common.board()
card = board.card
st.title(f"{card.title}")
direction = "higher" if card.higher_is_better else "lower"
st.caption(
    f"Track {card.key} · dataset {card.dataset}/{card.split} · ranked by {card.primary_metric} ({direction} is "
    "better), ties by latency · only runs of this track version are ranked"
)

entries = common.standings(board.url, card.name, card.version, board.macs_key, card.metrics)

filters = st.container(border=True)
top = filters.columns([2, 2, 1])
with top[0]:
    hardware = common.hardware_picker(entries, key="standings_hardware")
variant_options = sorted(entries["variant"].unique())
with top[1]:
    chosen_variants = st.multiselect("Variants", variant_options, default=variant_options, key="standings_variants")
with top[2]:
    include_noisy = st.toggle("Show noisy runs", value=True, key="standings_noisy")
limits = filters.columns(3)
max_macs_m = limits[0].number_input(
    "Max MACs (millions)", min_value=0.0, value=None, step=1.0, key="budget_macs", placeholder="no limit"
)
max_latency = limits[1].number_input(
    "Max latency (ms)", min_value=0.0, value=None, step=0.1, format="%.3f", key="budget_latency", placeholder="no limit"
)
max_bytes_mib = limits[2].number_input(
    "Max size (MiB)", min_value=0.0, value=None, step=0.5, key="budget_bytes", placeholder="no limit"
)
budget = Budget(
    max_macs=max_macs_m * 1e6 if max_macs_m is not None else None,
    max_latency_ms=max_latency,
    max_bytes=max_bytes_mib * 2**20 if max_bytes_mib is not None else None,
)

ranked = rank(
    entries,
    card.higher_is_better,
    budget=budget,
    include_noisy=include_noisy,
    variants=chosen_variants,
    hardware_class=hardware,
)
in_class = int((entries["hardware_class"] == hardware).sum())
summary = f"{len(ranked)} of {in_class} entries on {hardware}"
if budget != Budget():
    summary += " within the budget"
st.markdown(f"**{summary}**")

if ranked.empty:
    st.warning("No entry meets these filters. Widen the budget or show noisy runs.")
else:
    shown, config = common.run_table(
        ranked, card, leading=["rank", "submission", "variant"], trailing=["finished_at", "hardware_class", "run_id"]
    )
    st.container(key="standings_table").dataframe(shown, column_config=config, hide_index=True, width="stretch")
    if ranked["noisy"].fillna(False).any():
        st.caption("noisy: the latency of that run varied beyond the protocol's limits; see its submission page.")
