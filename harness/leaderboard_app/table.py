"""The standings table: a light Streamlit component (`st.components.v2`, no iframe) instead of `st.dataframe`.

Why: the standings page is a reader's first view, and Streamlit's data grid costs every new tab its chunk and its
canvas (measured: docs/BENCHMARKS.md, "Leaderboard speed", `scripts/bench_first_view.py`). Python does everything
that decides what a reader sees (ranking, filters, budgets, number formats); `table.js` only draws the rows, sorts
them by a clicked column (by the raw values, over all rows) and shows them a hundred at a time. The other pages
keep `st.dataframe`.

The component's data is JSON, sent as bytes: `columns` (name, label, help, numeric), `values` (raw, what sorting
compares and what tests read) and `text` (formatted, what the reader sees), row by row in rank order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

_COMPONENT = st.components.v2.component(
    "harness_standings_table",
    js=Path(__file__).with_name("table.js").read_text(),
    css=Path(__file__).with_name("table.css").read_text(),
)


# Help texts of the run columns, shared with `common.run_table` (the other pages' `st.dataframe`).
COLUMN_HELP = {
    "params": "Parameters of the model as built",
    "bytes": "Size of the variant's weights, as the harness measured it",
    "latency_ms": "The ranked latency: median of the repeat medians (the track's: device, model only; or e2e)",
    "interval": "95 % confidence interval of the primary metric (bootstrap over the test images)",
    "tied": "Its interval overlaps the leader's: the two cannot be told apart on this test set",
    "noisy": "Latency flagged as noisy; see the submission page",
    "hardware_class": "Rankings compare only runs made on the same class of machine.",
    "finished_at": "When the run finished (UTC)",
}


def compact(value: float) -> str:
    """1234 → 1.23K, 3100000 → 3.1M: three significant digits, as the data grid's "compact" format."""
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return f"{value:.3g}"


def binary_bytes(value: float) -> str:
    """Bytes in binary units: 712.0 KiB, 1.40 MiB."""
    for threshold, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= threshold:
            return f"{value / threshold:.2f} {suffix}"
    return f"{value:.0f} B"


def _formats(metrics: list[str], macs_help: str) -> dict[str, tuple[str, str, Any]]:
    """Column name → (label, help, formatter of a present value)."""
    four = "{:.4f}".format
    formats: dict[str, tuple[str, str, Any]] = {
        "rank": ("#", "", str),
        "submission": ("submission", "", str),
        "variant": ("variant", "", str),
        "params": ("params", COLUMN_HELP["params"], compact),
        "macs": ("MACs", macs_help, compact),
        "bytes": ("bytes", COLUMN_HELP["bytes"], binary_bytes),
        "latency_ms": ("latency ms", COLUMN_HELP["latency_ms"], four),
        "p50_ms": ("p50 ms", "", four),
        "p90_ms": ("p90 ms", "", four),
        "noisy": ("noisy", COLUMN_HELP["noisy"], lambda v: "noisy" if v else ""),
        "interval": ("95% CI", COLUMN_HELP["interval"], str),
        "tied": ("tie", COLUMN_HELP["tied"], lambda v: "≈ leader" if v else ""),
        "hardware_class": ("hardware class", COLUMN_HELP["hardware_class"], str),
        "finished_at": ("date", COLUMN_HELP["finished_at"], lambda v: v[:16].replace("T", " ")),
        "run_id": ("run", "", str),
    }
    for name in metrics:
        formats[name] = (name.removeprefix("metric:"), "", four)
    return formats


def _raw(series: pd.Series) -> list[Any]:
    """A column as JSON values that sort like it: numbers as numbers, times as ISO text, missing as None."""
    if pd.api.types.is_datetime64_any_dtype(series):
        series = series.dt.strftime("%Y-%m-%dT%H:%M:%S")
    return series.astype(object).where(series.notna(), None).tolist()


def table_data(frame: pd.DataFrame, columns: list[str], macs_help: str) -> bytes:
    """What the component draws, as UTF-8 JSON: the frame's `columns` in order, raw and formatted, rows in the
    frame's order. Bytes, because Streamlit forwards them as they are: a dict would be walked value by value
    (looking for dataframes to send as Arrow) and serialised twice (docs/BENCHMARKS.md has the figures)."""
    metrics = [c for c in columns if c.startswith("metric:")]
    formats = _formats(metrics, macs_help)
    specs, raw_columns, text_columns = [], [], []
    for name in columns:
        label, help_text, formatter = formats.get(name, (name, "", str))
        raw = _raw(frame[name])
        numeric = pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name])
        numeric = numeric and name not in ("noisy", "tied")
        specs.append({"name": name, "label": label, "help": help_text, "numeric": numeric})
        raw_columns.append(raw)
        text_columns.append(["-" if v is None else formatter(v) for v in raw])
    data = {
        "columns": specs,
        "values": [list(row) for row in zip(*raw_columns, strict=True)] if columns else [],
        "text": [list(row) for row in zip(*text_columns, strict=True)] if columns else [],
    }
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def standings_table(data: bytes, key: str) -> None:
    """Draw the table from `table_data`'s bytes; `key` names the component (tests and the browser find it)."""
    _COMPONENT(data=data, key=key)
