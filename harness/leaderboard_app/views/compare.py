"""Compare page: two runs of the track side by side, field by field, with the change from the first to the
second, their latency distributions overlaid, and a warning when they are not comparable."""

import numpy as np
import pandas as pd
import streamlit as st

from harness.leaderboard_app import charts, common
from harness.leaderboard_app.literal import literal
from harness.leaderboard_app.ranking import metric_columns, order

board = common.board()
card = board.card
st.title("Compare two runs")

finished = common.runs(board.url, card.name, macs_key=board.macs_key, latency_kind=card.ranked_latency)
finished = finished.sort_values("run_id", ascending=False).reset_index(drop=True)
labels = common.run_labels(finished)
ids = list(labels)

# Defaults: the two best entries of the current standings, else the two latest runs.
best = order(common.standings(board.url, board.key, board.macs_key, card.metrics), card.higher_is_better)
defaults = [int(i) for i in best["run_id"]][:2] or ids[:2]
for key, param, fallback in (("compare_a", "a", defaults[0]), ("compare_b", "b", defaults[-1])):
    wanted = st.query_params.get(param) if key not in st.session_state else None
    chosen = int(wanted) if wanted and wanted.isdigit() and int(wanted) in labels else fallback
    common.keep_choice(key, ids, chosen)

pick = st.columns(2)
run_a = pick[0].selectbox("Run A (reference)", ids, key="compare_a", format_func=labels.get)
run_b = pick[1].selectbox("Run B", ids, key="compare_b", format_func=labels.get)
a = finished[finished["run_id"] == run_a].iloc[0]
b = finished[finished["run_id"] == run_b].iloc[0]

if a["track_version"] != b["track_version"]:
    st.warning(
        f"Run A is of {literal(card.name)}@v{a['track_version']}, run B of {literal(card.name)}@v{b['track_version']}: "
        "their scores are not comparable and are never ranked together."
    )
if a["hardware_class"] != b["hardware_class"]:
    st.warning(
        f"The runs were made on different hardware classes ({literal(a['hardware_class'])} vs "
        f"{literal(b['hardware_class'])}): "
        "their latencies are not comparable."
    )

FIELDS = [
    ("submission", "submission"),
    ("variant", "variant"),
    ("status", "status"),
    ("track_version", "track version"),
    ("hardware_class", "hardware class"),
    *[(c, common.metric_label(c)) for c in metric_columns(finished, card.metrics)],
    ("params", "params"),
    ("macs", f"MACs ({board.macs_key})"),
    ("bytes", "bytes"),
    ("latency_ms", "latency ms (ranked)"),
    ("p50_ms", "p50 ms"),
    ("p90_ms", "p90 ms"),
    ("p99_ms", "p99 ms"),
    ("latency_cv", "latency CV"),
    ("noisy", "noisy"),
    ("device", "device"),
    ("profile", "latency profile"),
    ("runner", "runner"),
    ("dataset", "dataset"),
    ("dataset_hash", "dataset hash"),
    ("harness_version", "harness version"),
    ("scorer_version", "scorer version"),
    ("finished_at", "finished"),
    ("error", "error"),
]


def cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return str(value)


def change(field: str, x: object, y: object) -> str:
    if isinstance(x, bool | np.bool_) or isinstance(y, bool | np.bool_) or field == "track_version":
        return "" if cell(x) == cell(y) else "differs"
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        return "" if cell(x) == cell(y) else "differs"
    if np.isnan(x) or np.isnan(y):
        return ""
    if field.startswith("metric:") or field == "latency_cv":
        return f"{y - x:+.4f}"
    return f"{100.0 * (y - x) / x:+.1f}%" if x else ""


table = pd.DataFrame(
    [
        {
            "field": label,
            "run A": cell(a.get(field)),
            "run B": cell(b.get(field)),
            "B vs A": change(field, a.get(field), b.get(field)),
        }
        for field, label in FIELDS
        if field in finished.columns
    ]
)
st.container(key="compare_table").dataframe(table, hide_index=True, height=36 * (len(table) + 1))

samples = common.latency_samples(board.url, tuple(sorted({int(run_a), int(run_b)})))
distributions = {
    f"{label}: {run['submission']}@{run['variant']}": samples[int(run["run_id"])]
    for label, run in (("A", a), ("B", b))
    if int(run["run_id"]) in samples and len(samples[int(run["run_id"])])
}
st.subheader("Latency samples")
if distributions:
    st.container(key="compare_latency").vega_lite_chart(spec=charts.latency_histograms(distributions))
else:
    st.info("Neither run stored latency samples (a run that failed has none).")
st.caption(f"The same comparison in a terminal: `harness compare {run_a} {run_b}`")
