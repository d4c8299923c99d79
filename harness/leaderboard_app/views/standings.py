"""Standings page: the current track version's latest `ok` run per submission and variant, ranked within one
hardware class, with filters and budgets that re-rank the entries within them.

The filters sit behind a button and the table is `table.py`'s light component: this is the page a reader sees
first, and Streamlit loads a widget's or the data grid's code only when a page shows one (docs/BENCHMARKS.md,
"Leaderboard speed"). The filters' values are kept in the session while their widgets are hidden."""

import streamlit as st

from harness.leaderboard_app import common, ranking
from harness.leaderboard_app.literal import literal
from harness.leaderboard_app.ranking import Budget
from harness.leaderboard_app.table import standings_table

board = common.board()
card = board.card
st.title(literal(card.title))
direction = "higher" if card.higher_is_better else "lower"
st.caption(
    f"Board: {literal(board.key.describe())} · ranked by {literal(card.primary_metric)} ({direction} is better), "
    f"then by the {card.ranked_latency} latency · runs of another track version, dataset or profile are not ranked "
    "here · ≈ leader: its 95 % interval overlaps the leader's, the gap may be chance"
)

entries = common.standings(board.url, board.key, board.macs_key, card.metrics)
hardware_options = ranking.hardware_classes(entries)  # the class with the most entries first
variant_options = ranking.variants(entries)

# What the filters are set to, kept across runs that do not draw their widgets (Streamlit drops a widget's state
# in a run that does not draw it). Choices no longer offered (another track, a new store) fall back.
kept = st.session_state.setdefault("standings_kept", {})
default_hardware, default_variants, default_noisy, _ = common.standings_defaults(entries)
if kept.get("hardware") not in hardware_options:
    kept["hardware"] = default_hardware
if kept.get("variants") is None or not set(kept["variants"]) <= set(variant_options):
    kept["variants"] = list(default_variants)
kept.setdefault("noisy", default_noisy)
for name in ("macs_m", "latency_ms", "bytes_mib"):
    kept.setdefault(name, None)  # no budget


def _toggle_filters() -> None:
    st.session_state["standings_filters_open"] = not st.session_state.get("standings_filters_open", False)


st.button("Filters and budgets", key="standings_filters", icon=":material/tune:", on_click=_toggle_filters)
if st.session_state.get("standings_filters_open", False):
    filters = st.container(border=True)
    top = filters.columns([2, 2, 1])
    with top[0]:
        kept["hardware"] = st.selectbox(
            "Hardware class",
            hardware_options,
            index=hardware_options.index(kept["hardware"]) if kept["hardware"] in hardware_options else None,
            key="standings_hardware",
            help=common.HARDWARE_HELP,
        )
    with top[1]:
        kept["variants"] = st.multiselect(
            "Variants", variant_options, default=kept["variants"], key="standings_variants"
        )
    with top[2]:
        kept["noisy"] = st.toggle("Show noisy runs", value=kept["noisy"], key="standings_noisy")
    limits = filters.columns(3)
    kept["macs_m"] = limits[0].number_input(
        "Max MACs (millions)", min_value=0.0, value=kept["macs_m"], step=1.0, key="budget_macs", placeholder="no limit"
    )
    kept["latency_ms"] = limits[1].number_input(
        "Max latency (ms)",
        min_value=0.0,
        value=kept["latency_ms"],
        step=0.1,
        format="%.3f",
        key="budget_latency",
        placeholder="no limit",
    )
    kept["bytes_mib"] = limits[2].number_input(
        "Max size (MiB)", min_value=0.0, value=kept["bytes_mib"], step=0.5, key="budget_bytes", placeholder="no limit"
    )

hardware = kept["hardware"]
budget = Budget(
    max_macs=kept["macs_m"] * 1e6 if kept["macs_m"] is not None else None,
    max_latency_ms=kept["latency_ms"],
    max_bytes=kept["bytes_mib"] * 2**20 if kept["bytes_mib"] is not None else None,
)
shown, any_noisy, table = common.standings_view(
    board.url, card, card.key, hardware, tuple(kept["variants"]), kept["noisy"], budget
)
in_class = int((entries["hardware_class"] == hardware).sum())
summary = f"{shown} of {in_class} entries on {literal(hardware)}"
if budget != Budget():
    summary += " within the budget"
active = []
if set(kept["variants"]) != set(variant_options):
    active.append("variants " + ", ".join(map(literal, kept["variants"])) if kept["variants"] else "no variant")
if not kept["noisy"]:
    active.append("noisy runs hidden")
if kept["macs_m"] is not None:
    active.append(f"MACs ≤ {kept['macs_m']:g} M")
if kept["latency_ms"] is not None:
    active.append(f"latency ≤ {kept['latency_ms']:.3f} ms")
if kept["bytes_mib"] is not None:
    active.append(f"size ≤ {kept['bytes_mib']:g} MiB")
st.markdown(f"**{summary}**" + (f" ({'; '.join(active)})" if active else ""))

if not shown:
    st.warning("No entry meets these filters. Widen the budget or show noisy runs.")
else:
    standings_table(table, key="standings_table")
    if any_noisy:
        st.caption("noisy: the latency of that run varied beyond the protocol's limits; see its submission page.")
