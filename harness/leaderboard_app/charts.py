"""The leaderboard's charts as Vega-Lite specs (plain dicts with their data as named pandas datasets), drawn
with `st.vega_lite_chart`. Pure pandas/numpy, no Streamlit, so the specs are tested directly.

Vega-Lite rather than Plotly: Streamlit loads a chart library the first time a browser tab shows one of its charts,
and Plotly.js is several times larger (the measured cost: docs/BENCHMARKS.md, leaderboard section). Specs use no
expression transforms and no per-point aria labels: Streamlit runs Vega's expression interpreter, which costs per
point.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

FRONT_COLOUR = "#d62728"
FADED_COLOUR = "#9aa5b1"
BEST_COLOUR = "#1f77b4"
PAIR_COLOURS = ["#1f77b4", "#ff7f0e"]  # run A and run B of the compare page
FRONT_OPACITY = 1.0
DOMINATED_OPACITY = 0.35
MAX_LABELS = 8  # names on the front's points only while they stay legible; the hover and tables have them
LOG_SPREAD = 10.0  # a log axis once the values span more than this factor
PANEL_HEIGHT = 420
# A front label runs from its point towards the middle of the plot, at most this many pixels: half of the plot
# area of a panel in a half-width column of a 1280 px window (about 155 px) is wider, so no label reaches an axis.
LABEL_LIMIT_PX = 130
LABEL_OFFSET_PX = 8  # between a point and its label, horizontally
# Pixels between the outermost points and the plot's edges (a Vega scale's padding widens its domain), so that a
# point is not drawn over an axis and the label above the topmost point stays inside the plot.
SCALE_PADDING_PX = 20
CHART_MARGIN_PX = 10

Spec = dict[str, Any]

_RENDERING: Spec = {
    # No per-point aria descriptions: Vega-Lite would compute one string per point through the interpreter.
    "config": {"aria": False},
    # SVG even past 2,000 points, where Streamlit would switch to canvas: every point stays an element (the
    # browser tests count them), and canvas drew the Pareto page no faster when measured.
    "usermeta": {"embedOptions": {"renderer": "svg"}},
}


def wide_spread(values: np.ndarray | pd.Series) -> bool:
    """True when the positive finite values span more than a factor of LOG_SPREAD (a log axis helps)."""
    array = np.asarray(values, dtype=np.float64)
    positive = array[np.isfinite(array) & (array > 0)]
    return len(positive) > 1 and positive.max() / positive.min() > LOG_SPREAD


def _base(height: int) -> Spec:
    return {"height": height, **copy.deepcopy(_RENDERING)}


def _tooltip(metric: str) -> list[dict[str, Any]]:
    """The hover of a leaderboard entry: which run it is, its score and its costs."""
    return [
        {"field": "entry", "title": "entry"},
        {"field": "run_id", "title": "run", "format": "d"},
        {"field": "rank", "title": "rank", "format": "d"},
        {"field": "value", "title": metric, "format": ".4f"},
        {"field": "latency_ms", "title": "latency ms", "format": ".4f"},
        {"field": "macs", "title": "MACs", "format": ",.0f"},
        {"field": "params", "title": "params", "format": ",.0f"},
        {"field": "noisy", "title": "noisy latency"},
    ]


def front_labels(front: pd.DataFrame) -> list[str]:
    """One label per front point (in the given order); entries at the very same spot (e.g. fp32 and bf16 with
    equal MACs and score) share one label instead of printing over each other."""
    labels: list[str] = []
    seen: dict[tuple[float, float], int] = {}
    for cost, value, submission, variant in zip(
        front["cost"], front["value"], front["submission"], front["variant"], strict=True
    ):
        spot = (float(cost), float(value))
        name = f"{submission}@{variant}"
        if spot in seen:
            first = seen[spot]
            labels[first] += f", {variant}" if labels[first].startswith(f"{submission}@") else f", {name}"
            labels.append("")
        else:
            seen[spot] = len(labels)
            labels.append(name)
    return labels


def label_sides(costs: np.ndarray | pd.Series, every_cost: np.ndarray | pd.Series, log: bool) -> np.ndarray:
    """True for the points (`costs`) in the left half of the x range of all the chart's points (`every_cost`):
    their labels run to the right, away from the y axis; False for the right half, whose labels run to the
    left, away from the plot's right edge. Halves of the scale's own space (logarithms on a log axis)."""
    scale = np.log if log else np.asarray
    position = scale(np.asarray(costs, dtype=float))
    extent = scale(np.asarray(every_cost, dtype=float))
    if len(extent) == 0 or extent.max() <= extent.min():
        return np.ones(len(position), dtype=bool)
    return position <= (extent.min() + extent.max()) / 2


def _label_layers(name: str, x: Spec, y: Spec) -> list[Spec]:
    """The front's names: one layer for labels that start at their point, one for labels that end there,
    each shortened to LABEL_LIMIT_PX (the hover has the whole name)."""
    mark = {"type": "text", "dy": -12, "fontSize": 11, "color": "#333333", "limit": LABEL_LIMIT_PX}
    return [
        {
            "name": f"{name}_front_labels{suffix}",
            "data": {"name": f"{name}_labels{suffix}"},
            "mark": {**mark, "align": align, "dx": dx},
            "encoding": {"x": x, "y": y, "text": {"field": "label"}},
        }
        for suffix, align, dx in (("", "left", LABEL_OFFSET_PX), ("_end", "right", -LABEL_OFFSET_PX))
    ]


def _trade_off_points(entries: pd.DataFrame, cost_column: str) -> pd.DataFrame:
    """One row per entry: where it is drawn (`cost`, `value`) and what its hover says."""
    return pd.DataFrame(
        {
            "cost": entries[cost_column].to_numpy(dtype=float),
            "value": entries["primary_value"].to_numpy(dtype=float),
            "entry": (entries["submission"] + "@" + entries["variant"]).to_numpy(),
            "submission": entries["submission"].to_numpy(),
            "variant": entries["variant"].to_numpy(),
            "run_id": entries["run_id"].to_numpy(dtype=np.int64),
            "rank": entries["rank"].to_numpy(dtype=np.int64),
            "latency_ms": entries["latency_ms"].to_numpy(dtype=float),
            "macs": pd.to_numeric(entries["macs"], errors="coerce").to_numpy(dtype=float),
            "params": pd.to_numeric(entries["params"], errors="coerce").to_numpy(dtype=float),
            "noisy": entries["noisy"].fillna(False).astype(bool).to_numpy(),
        }
    )


def trade_off(
    entries: pd.DataFrame,
    on_front: np.ndarray,
    cost_column: str,
    cost_title: str,
    metric: str,
    cost_format: str | None = None,
    name: str | None = None,
    value_domain: tuple[float, float] | None = None,
) -> Spec:
    """Primary metric against one cost: the front (entries nothing beats, `on_front`) as red points joined by
    a step line, the dominated entries faded; every point's hover names its run. `entries` are ranked
    standings rows with a finite positive cost and a value. Layers and datasets are named `<name>_dominated`,
    `<name>_front`, ... (`name` defaults to the cost column). The chart is as wide as its container;
    `value_domain` fixes the y scale, so that panels side by side share it."""
    name = name or cost_column
    points = _trade_off_points(entries, cost_column)
    front = points[on_front].sort_values("cost", kind="stable").reset_index(drop=True)
    front["label"] = front_labels(front) if len(front) <= MAX_LABELS else ""
    dominated = points[~on_front].reset_index(drop=True)
    log = wide_spread(points["cost"])
    x = {
        "field": "cost",
        "type": "quantitative",
        "title": cost_title,
        "scale": {"type": "log"} if log else {"zero": False},
        **({"axis": {"format": cost_format}} if cost_format else {}),
    }
    x["scale"]["padding"] = SCALE_PADDING_PX
    y_scale: Spec = {"zero": False, "padding": SCALE_PADDING_PX}
    if value_domain is not None and value_domain[0] < value_domain[1]:
        y_scale["domain"] = [float(value_domain[0]), float(value_domain[1])]
    y = {"field": "value", "type": "quantitative", "title": metric, "scale": y_scale}
    legend = {
        "scale": {"domain": ["Pareto front", "dominated"], "range": [FRONT_COLOUR, FADED_COLOUR]},
        "legend": {"orient": "bottom", "title": None, "symbolOpacity": 1},
    }
    layers: list[Spec] = [
        {
            "name": f"{name}_dominated",
            "data": {"name": f"{name}_dominated"},
            "mark": {"type": "circle", "size": 70, "opacity": DOMINATED_OPACITY},
            "encoding": {"x": x, "y": y, "color": {"datum": "dominated", **legend}, "tooltip": _tooltip(metric)},
        },
        {
            "name": f"{name}_front_line",
            "data": {"name": f"{name}_front"},
            "mark": {"type": "line", "interpolate": "step-after", "color": FRONT_COLOUR, "strokeWidth": 2},
            "encoding": {"x": x, "y": y},
        },
        {
            "name": f"{name}_front",
            "data": {"name": f"{name}_front"},
            "mark": {"type": "circle", "size": 140, "opacity": FRONT_OPACITY},
            "encoding": {"x": x, "y": y, "color": {"datum": "Pareto front", **legend}, "tooltip": _tooltip(metric)},
        },
    ]
    datasets = {f"{name}_dominated": dominated, f"{name}_front": front}
    if len(front) <= MAX_LABELS:
        layers.extend(_label_layers(name, x, y))
        labelled = front[front["label"] != ""]
        starts = label_sides(labelled["cost"], points["cost"], log)
        datasets[f"{name}_labels"] = labelled[starts].reset_index(drop=True)
        datasets[f"{name}_labels_end"] = labelled[~starts].reset_index(drop=True)
    return {
        **_base(PANEL_HEIGHT),
        "width": "container",
        # Only the width fits the container (the plot keeps its height, axes and legend below it); padding
        # included, so that axis labels and titles stay inside the container too.
        "autosize": {"type": "fit-x", "contains": "padding"},
        # Vega sizes the view by its estimate of the text's extent, which the browser's fonts exceed by a few
        # pixels (the y axis title, the chart title): a margin keeps them inside the container.
        "padding": dict.fromkeys(("left", "top", "right", "bottom"), CHART_MARGIN_PX),
        "title": f"{metric} vs {cost_title.split(' ')[0]}",
        "layer": layers,
        "datasets": datasets,
    }


def score_history(timeline: pd.DataFrame, metric: str) -> Spec:
    """Every `ok` run as a faded point over the time it finished, the best score so far as a step line, and
    the runs that set a new best as diamonds; `timeline` is `ranking.best_over_time`'s frame."""
    runs = pd.DataFrame(
        {
            "finished_at": timeline["finished_at"].to_numpy(),
            "value": timeline["primary_value"].to_numpy(dtype=float),
            "best_so_far": timeline["best_so_far"].to_numpy(dtype=float),
            "entry": (timeline["submission"] + "@" + timeline["variant"]).to_numpy(),
            "run_id": timeline["run_id"].to_numpy(dtype=np.int64),
            "record": timeline["record"].to_numpy(dtype=bool),
        }
    )
    x = {"field": "finished_at", "type": "temporal", "title": "finished"}
    y = {"field": "value", "type": "quantitative", "title": metric, "scale": {"zero": False}}
    tooltip = [
        {"field": "entry", "title": "entry"},
        {"field": "run_id", "title": "run", "format": "d"},
        {"field": "value", "title": metric, "format": ".4f"},
        {"field": "finished_at", "title": "finished", "type": "temporal", "format": "%Y-%m-%d %H:%M:%S"},
    ]
    legend = {
        "scale": {"domain": ["runs", "best so far", "new best"], "range": [FADED_COLOUR, BEST_COLOUR, BEST_COLOUR]},
        "legend": {"orient": "bottom", "title": None, "symbolOpacity": 1},
    }
    layers = [
        {
            "name": "runs",
            "data": {"name": "runs"},
            "mark": {"type": "circle", "size": 50, "opacity": 0.45},
            "encoding": {"x": x, "y": y, "color": {"datum": "runs", **legend}, "tooltip": tooltip},
        },
        {
            "name": "best_so_far",
            "data": {"name": "runs"},
            "mark": {"type": "line", "interpolate": "step-after", "strokeWidth": 3},
            "encoding": {
                "x": x,
                "y": {**y, "field": "best_so_far"},
                "color": {"datum": "best so far", **legend},
            },
        },
        {
            "name": "records",
            "data": {"name": "records"},
            "mark": {"type": "point", "shape": "diamond", "size": 160, "filled": True, "opacity": 1.0},
            "encoding": {"x": x, "y": y, "color": {"datum": "new best", **legend}, "tooltip": tooltip},
        },
    ]
    records = runs[runs["record"]].reset_index(drop=True)
    return {**_base(420), "layer": layers, "datasets": {"runs": runs, "records": records}}


def latency_boxes(samples: dict[str, np.ndarray]) -> Spec:
    """One horizontal box per label (quartiles, whiskers at 1.5 IQR, outliers as points) over every stored
    per-iteration latency sample; a log axis when one label's 99th percentile is over ten times its 1st."""
    frame = _long_samples(samples)
    spread = [np.percentile(v, 99) / max(np.percentile(v, 1), 1e-9) for v in samples.values() if len(v)]
    x = {
        "field": "ms",
        "type": "quantitative",
        "title": "device latency per iteration (ms)",
        "scale": {"type": "log"} if spread and max(spread) > LOG_SPREAD else {"zero": False},
    }
    return {
        **_base(60 + 50 * len(samples)),
        "data": {"name": "samples"},
        "mark": {"type": "boxplot", "extent": 1.5, "size": 28},
        "encoding": {
            "x": x,
            "y": {
                "field": "label",
                "type": "nominal",
                "title": None,
                "sort": list(samples),
                "axis": {"labelLimit": 300},
            },
            "color": {"field": "label", "type": "nominal", "legend": None, "sort": list(samples)},
        },
        "datasets": {"samples": frame},
    }


def latency_histograms(samples: dict[str, np.ndarray], bins: int = 60) -> Spec:
    """Histograms of the per-iteration latency samples of each label, overlaid (not stacked)."""
    frame = _long_samples(samples)
    return {
        **_base(360),
        "data": {"name": "samples"},
        "mark": {"type": "bar", "opacity": 0.6, "binSpacing": 0},
        "encoding": {
            "x": {
                "field": "ms",
                "type": "quantitative",
                "bin": {"maxbins": bins},
                "title": "device latency per iteration (ms)",
            },
            "y": {"aggregate": "count", "type": "quantitative", "title": "iterations", "stack": None},
            "color": {
                "field": "label",
                "type": "nominal",
                "sort": list(samples),
                "legend": {"orient": "bottom", "title": None, "symbolOpacity": 1},
            },
        },
        "datasets": {"samples": frame},
    }


def _long_samples(samples: dict[str, np.ndarray]) -> pd.DataFrame:
    labels = [np.full(len(values), label, dtype=object) for label, values in samples.items()]
    values = [np.asarray(v, dtype=float) for v in samples.values()]
    return pd.DataFrame(
        {
            "label": np.concatenate(labels) if labels else np.array([], dtype=object),
            "ms": np.concatenate(values) if values else np.array([], dtype=float),
        }
    )
