"""The leaderboard's Vega-Lite specs, built from small frames whose expected content is worked out here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.leaderboard_app import charts


def _entries(costs: list[float], values: list[float], variants: list[str] | None = None) -> pd.DataFrame:
    n = len(costs)
    return pd.DataFrame(
        {
            "submission": [f"s{i}" for i in range(n)],
            "variant": variants or ["fp32"] * n,
            "run_id": np.arange(100, 100 + n),
            "rank": np.arange(1, n + 1),
            "primary_value": values,
            "latency_ms": costs,
            "macs": [1e6 * (i + 1) for i in range(n)],
            "params": [1000.0] * n,
            "noisy": [False, True] + [None] * (n - 2),
        }
    )


def _layers(spec: dict) -> dict[str, dict]:
    return {layer["name"]: layer for layer in spec["layer"]}


def test_trade_off_splits_front_and_dominated():
    entries = _entries([4.0, 1.0, 2.0, 3.0], [0.9, 0.5, 0.8, 0.7])
    on_front = np.array([True, True, True, False])  # 3.0 ms for 0.7 is beaten by 2.0 ms for 0.8
    spec = charts.trade_off(entries, on_front, "latency_ms", "latency (ms)", "top1", name="lat")
    front, dominated = spec["datasets"]["lat_front"], spec["datasets"]["lat_dominated"]
    # The front in cost order (the step line joins it left to right), each point with its run and name.
    assert list(front["cost"]) == [1.0, 2.0, 4.0] and list(front["run_id"]) == [101, 102, 100]
    assert list(front["entry"]) == ["s1@fp32", "s2@fp32", "s0@fp32"]
    assert list(front["label"]) == ["s1@fp32", "s2@fp32", "s0@fp32"]
    assert list(dominated["run_id"]) == [103] and list(dominated["value"]) == [0.7]
    assert list(front["noisy"]) == [True, False, False], "a missing noisy flag is not noisy"
    layers = _layers(spec)
    assert layers["lat_dominated"]["mark"]["opacity"] < layers["lat_front"]["mark"]["opacity"]
    assert layers["lat_front_line"]["mark"]["interpolate"] == "step-after"
    assert layers["lat_front_line"]["data"] == layers["lat_front"]["data"] == {"name": "lat_front"}
    for name in ("lat_dominated", "lat_front"):
        fields = {t["field"] for t in layers[name]["encoding"]["tooltip"]}
        assert {"entry", "run_id", "rank", "value", "latency_ms", "macs", "params", "noisy"} <= fields
    x_scale = layers["lat_dominated"]["encoding"]["x"]["scale"]
    assert x_scale == {"zero": False, "padding": charts.SCALE_PADDING_PX}, "1..4 ms spans less than 10x"
    assert spec["config"]["aria"] is False and spec["title"] == "top1 vs latency"


def test_trade_off_log_axis_and_labels_only_while_legible():
    n = charts.MAX_LABELS + 1
    costs = [0.1 * 2**i for i in range(n)]  # 0.1 .. 25.6 ms: over a factor of ten
    values = [0.1 * (i + 1) for i in range(n)]  # each dearer entry is better: all on the front
    spec = charts.trade_off(_entries(costs, values), np.ones(n, bool), "latency_ms", "latency", "top1", "~s")
    layers = _layers(spec)
    assert layers["latency_ms_front"]["encoding"]["x"]["scale"] == {"type": "log", "padding": charts.SCALE_PADDING_PX}
    assert layers["latency_ms_front"]["encoding"]["x"]["axis"] == {"format": "~s"}
    assert "latency_ms_front_labels" not in layers and set(spec["datasets"]["latency_ms_front"]["label"]) == {""}
    assert len(spec["datasets"]["latency_ms_dominated"]) == 0


def test_trade_off_fits_its_container_and_keeps_labels_clear_of_the_axes():
    entries = _entries([1.0, 2.0, 4.0, 3.0], [0.5, 0.7, 0.9, 0.6])
    on_front = np.array([True, True, True, False])
    spec = charts.trade_off(entries, on_front, "latency_ms", "latency", "top1", value_domain=(0.4, 0.95))
    assert spec["width"] == "container" and spec["autosize"] == {"type": "fit-x", "contains": "padding"}
    layers = _layers(spec)
    assert layers["latency_ms_front"]["encoding"]["y"]["scale"]["domain"] == [0.4, 0.95], "panels share the y scale"
    # Points in the left half of the x range (all points: 1..4 ms) are named to their right, the others to their
    # left, each name at most LABEL_LIMIT_PX long.
    start, end = layers["latency_ms_front_labels"], layers["latency_ms_front_labels_end"]
    assert (start["mark"]["align"], end["mark"]["align"]) == ("left", "right")
    assert start["mark"]["dx"] > 0 > end["mark"]["dx"] and start["mark"]["limit"] == charts.LABEL_LIMIT_PX
    assert list(spec["datasets"]["latency_ms_labels"]["label"]) == ["s0@fp32", "s1@fp32"]
    assert list(spec["datasets"]["latency_ms_labels_end"]["label"]) == ["s2@fp32"]
    assert spec["usermeta"]["embedOptions"]["renderer"] == "svg"


def test_label_sides_halve_the_scale():
    assert list(charts.label_sides([1.0, 2.5, 3.0], [1.0, 4.0], log=False)) == [True, True, False]
    assert list(charts.label_sides([1.0, 9.0, 11.0], [1.0, 100.0], log=True)) == [True, True, False]
    assert list(charts.label_sides([2.0], [2.0], log=False)) == [True], "a single point is named to its right"


def test_front_labels_share_one_spot():
    front = pd.DataFrame(
        {
            "cost": [1.0, 1.0, 1.0, 2.0],
            "value": [0.5, 0.5, 0.5, 0.6],
            "submission": ["a", "a", "b", "c"],
            "variant": ["fp32", "bf16", "fp32", "fp32"],
        }
    )
    assert charts.front_labels(front) == ["a@fp32, bf16, b@fp32", "", "", "c@fp32"]


def test_score_history_layers():
    timeline = pd.DataFrame(
        {
            "finished_at": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
            "primary_value": [0.5, 0.4, 0.7],
            "best_so_far": [0.5, 0.5, 0.7],
            "submission": ["a", "b", "c"],
            "variant": ["fp32"] * 3,
            "run_id": [1, 2, 3],
            "record": [True, False, True],
        }
    )
    spec = charts.score_history(timeline, "top1")
    runs, records = spec["datasets"]["runs"], spec["datasets"]["records"]
    assert list(runs["best_so_far"]) == [0.5, 0.5, 0.7] and list(records["run_id"]) == [1, 3]
    layers = _layers(spec)
    assert layers["best_so_far"]["encoding"]["y"]["field"] == "best_so_far"
    assert layers["best_so_far"]["mark"]["interpolate"] == "step-after"
    assert layers["runs"]["mark"]["opacity"] < layers["records"]["mark"]["opacity"]
    assert {t["field"] for t in layers["records"]["encoding"]["tooltip"]} >= {"entry", "run_id", "value"}


def test_latency_boxes_every_sample_and_log_rule():
    narrow = {"fp32 (#1)": np.linspace(1.0, 2.0, 50), "bf16 (#2)": np.linspace(0.5, 1.0, 30)}
    spec = charts.latency_boxes(narrow)
    samples = spec["datasets"]["samples"]
    assert samples.groupby("label").size().to_dict() == {"fp32 (#1)": 50, "bf16 (#2)": 30}
    assert spec["mark"]["type"] == "boxplot" and spec["mark"]["extent"] == 1.5
    assert spec["encoding"]["y"]["sort"] == ["fp32 (#1)", "bf16 (#2)"]
    assert spec["encoding"]["x"]["scale"] == {"zero": False}
    # One run whose 99th percentile is over ten times its 1st: a log axis.
    wide = {"fp32 (#1)": np.concatenate([np.full(90, 1.0), np.full(10, 50.0)])}
    assert charts.latency_boxes(wide)["encoding"]["x"]["scale"] == {"type": "log"}


def test_latency_histograms_overlaid():
    spec = charts.latency_histograms({"A: x@fp32": np.ones(7), "B: y@bf16": np.arange(5.0)}, bins=20)
    assert spec["datasets"]["samples"].groupby("label")["ms"].sum().to_dict() == pytest.approx(
        {"A: x@fp32": 7.0, "B: y@bf16": 10.0}
    )
    assert spec["encoding"]["x"]["bin"] == {"maxbins": 20}
    assert spec["encoding"]["y"]["aggregate"] == "count" and spec["encoding"]["y"]["stack"] is None
    assert spec["mark"]["opacity"] < 1


def test_wide_spread():
    assert charts.wide_spread(np.array([0.5, 5.1]))
    assert not charts.wide_spread(np.array([0.5, 5.0, np.nan, 0.0, -3.0]))
    assert not charts.wide_spread(np.array([7.0]))
