"""The sidebar's track picker: a labelled native `<select>` drawn by a light Streamlit component
(`st.components.v2`, no iframe), not `st.selectbox`.

Why: the sidebar is on every page, so its widgets are part of every reader's first view, and Streamlit fetches
and runs a widget kind's code the first time a page shows it; this picker runs on the component code that the
standings table (`table.py`) loads anyway (the measurements: docs/BENCHMARKS.md, "Leaderboard speed",
`scripts/bench_first_view.py`). A native select keeps the keyboard and screen-reader behaviour of the platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import streamlit as st

_COMPONENT = st.components.v2.component(
    "harness_picker",
    js=Path(__file__).with_name("picker.js").read_text(),
    css=Path(__file__).with_name("picker.css").read_text(),
)


def _rerun_only() -> None:
    """A choice reruns the script; the value is read from the component's result."""


def picker(label: str, options: dict[str, str], value: str, key: str) -> str:
    """One of `options` (value → text shown): the reader's last choice under `key`, or `value` when they have
    made none or chose one no longer offered. Call it inside `st.sidebar` or any other container."""
    # The choice is read before the picker is drawn, so the select shows what this run uses: the state that
    # the component returns would arrive one draw too late.
    remembered = st.session_state.get(key)
    chosen = remembered.get("value") if isinstance(remembered, Mapping) else None
    current = chosen if chosen in options else value
    _COMPONENT(
        data={"label": label, "options": [[name, text] for name, text in options.items()], "value": current},
        key=key,
        on_value_change=_rerun_only,
    )
    return current
