"""Every leaderboard page, run by Streamlit's AppTest against a store seeded by the real flow (see conftest).

Expected values come from outside the app: the ranking from `harness leaderboard --json` (the CLI's own
standings code), everything else from the store read with sqlite3.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from harness.leaderboard_app import APP_SCRIPT
from harness.leaderboard_app.literal import literal
from harness.leaderboard_app.ranking import pareto_mask
from harness.tracks import get_card
from tests.conftest import run_cli

TIMEOUT_S = 120


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT_S).run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _db(seeded) -> sqlite3.Connection:
    return sqlite3.connect(seeded.url.removeprefix("sqlite:///"))


def _cli_standings(seeded, track: str = "classification") -> list[dict]:
    result = run_cli("leaderboard", "--track", track, "--json", env=seeded.env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _table(at: AppTest, key: str) -> pd.DataFrame:
    """The table the page draws with this key: an `st.dataframe` inside a keyed container, or the standings
    page's own table component, whose raw values (what it sorts and what the reader sees formatted) are decoded
    from the JSON that Streamlit sends to the browser."""
    element = at.get_by_key(key)
    if element.type == "bidi_component":
        data = json.loads(element.proto.bytes)
        assert element.proto.component_name == "harness_standings_table"
        assert len(data["text"]) == len(data["values"])
        return pd.DataFrame(data["values"], columns=[c["name"] for c in data["columns"]])
    (table,) = element.dataframe
    return table.value


def _tables(at: AppTest) -> list:
    """The standings tables the page drew (the sidebar's track picker is a component too, but no table)."""
    return [e for e in at.get("bidi_component") if e.proto.component_name == "harness_standings_table"]


def _open_filters(at: AppTest) -> AppTest:
    """The standings page's filters sit behind a button: open them as a reader would."""
    if not at.get("number_input"):
        at.button(key="standings_filters").click().run()
    return at


def _vega(at: AppTest, key: str) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The Vega-Lite chart the page draws inside the container with this key: its spec, and its named
    datasets decoded from the Arrow bytes that Streamlit sends to the browser."""
    (chart,) = at.get_by_key(key).get("vega_lite_chart")
    datasets = {d.name: pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets}
    return json.loads(chart.proto.spec), datasets


def _layers(spec: dict) -> dict[str, dict]:
    return {layer["name"]: layer for layer in spec["layer"]}


def test_standings_rank_like_the_cli(leaderboard_env):
    expected = _cli_standings(leaderboard_env)
    assert expected, "the seed produced no ok run"
    at = open_app()
    table = _table(at, "standings_table")
    hardware = _open_filters(at).selectbox(key="standings_hardware").value
    want = [
        (r["rank"], r["submission"], r["variant"], r["run_id"]) for r in expected if r["hardware_class"] == hardware
    ]
    got = list(zip(table["rank"], table["submission"], table["variant"], table["run_id"], strict=True))
    assert got == want
    assert {"metric:top1", "metric:top5", "params", "macs", "bytes", "latency_ms", "p50_ms", "p90_ms"} <= set(table)
    assert {"hardware_class", "finished_at"} <= set(table)
    by_run = {r["run_id"]: r for r in expected}
    for row in table.itertuples():
        stored = by_run[row.run_id]
        assert table.loc[row.Index, "metric:top1"] == pytest.approx(stored["metrics"]["top1"])
        assert row.macs == stored["macs"]["32x32"] and row.params == stored["params"] and row.bytes == stored["bytes"]
        assert row.p90_ms == pytest.approx(stored["latency"]["p90_ms"])
    assert leaderboard_env.failing not in set(table["submission"]), "a failed run must never be ranked"


def _picker(at: AppTest) -> dict:
    """What the sidebar's track picker offers and shows: its component data (label, options, value)."""
    element = at.get_by_key("track_picker")
    assert element.type == "bidi_component" and element.proto.component_name == "harness_picker"
    return json.loads(element.proto.json)


def _pick_track(at: AppTest, track: str) -> AppTest:
    """Choose a track in the sidebar as the reader's browser does: the picker's state value, then a rerun."""
    at.session_state["track_picker"] = {"value": track}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


ALL_TRACKS_SEEDED = "the seed without the reference submissions evaluates the classification track only"


def test_track_picker_switches_the_track_on_every_page(leaderboard_env):
    if not leaderboard_env.references:
        pytest.skip(ALL_TRACKS_SEEDED)
    at = open_app()
    offered = _picker(at)
    assert offered["label"] == "Track"
    assert [name for name, _ in offered["options"]] == ["classification", "small-object", "text-detection"]
    assert offered["value"] == "classification", "the busiest track is shown first"
    for track in ("small-object", "text-detection"):
        card = get_card(track)
        _pick_track(at, track)
        assert at.title[0].value == literal(card.title) and _picker(at)["value"] == track
        expected = _cli_standings(leaderboard_env, track)
        assert expected, f"the seed produced no ok run of {track}"
        hardware = _open_filters(at).selectbox(key="standings_hardware").value
        want = [(r["rank"], r["submission"], r["run_id"]) for r in expected if r["hardware_class"] == hardware]
        table = _table(at, "standings_table")
        assert list(zip(table["rank"], table["submission"], table["run_id"], strict=True)) == want
        assert {f"metric:{name}" for name in card.metrics} <= set(table)
    # The choice is kept when the reader moves to another page, and the picker still shows it there.
    at.switch_page("views/pareto.py").run()
    assert not at.exception and f"Track {literal(get_card('text-detection').key)}" in at.caption[0].value
    assert _picker(at)["value"] == "text-detection"
    # A choice no longer offered (a track retired since the reader picked it) keeps the track shown.
    _pick_track(at, "retired-track")
    assert _picker(at)["value"] == "text-detection"


def test_track_from_the_link(leaderboard_env):
    """`?track=NAME` opens that track (a link someone shared); an unknown name opens the busiest one."""
    if not leaderboard_env.references:
        pytest.skip(ALL_TRACKS_SEEDED)
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT_S)
    at.query_params["track"] = "small-object"
    at.run()
    assert not at.exception and at.title[0].value == literal(get_card("small-object").title)
    assert _picker(at)["value"] == "small-object"
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT_S)
    at.query_params["track"] = "no-such-track"
    at.run()
    assert not at.exception and _picker(at)["value"] == "classification"


def test_budgets_and_filters_rerank(leaderboard_env):
    at = open_app()
    full = _table(at, "standings_table")
    _open_filters(at)
    # A MACs budget between the cheapest and the dearest entry keeps exactly the entries within it, re-ranked.
    limit_m = float(np.median(full["macs"])) / 1e6
    at.number_input(key="budget_macs").set_value(limit_m).run()
    within = _table(at, "standings_table")
    assert list(within["run_id"]) == [
        r for r, m in zip(full["run_id"], full["macs"], strict=True) if m <= limit_m * 1e6
    ]
    assert list(within["rank"]) == list(range(1, len(within) + 1))
    assert 0 < len(within) <= len(full)
    at.number_input(key="budget_macs").set_value(None)
    latency_limit = float(full["latency_ms"].min())
    at.number_input(key="budget_latency").set_value(latency_limit).run()
    assert list(_table(at, "standings_table")["run_id"]) == list(
        full.loc[full["latency_ms"] <= latency_limit, "run_id"]
    )
    at.number_input(key="budget_latency").set_value(None)
    at.multiselect(key="standings_variants").set_value(["fp32"]).run()
    fp32 = _table(at, "standings_table")
    assert set(fp32["variant"]) == {"fp32"} and list(fp32["rank"]) == list(range(1, len(fp32) + 1))
    at.multiselect(key="standings_variants").set_value(sorted(set(full["variant"])))
    at.toggle(key="standings_noisy").set_value(False).run()
    expected_quiet = full.loc[~full["noisy"].astype(bool), "run_id"].tolist()
    if expected_quiet:
        assert list(_table(at, "standings_table")["run_id"]) == expected_quiet
    else:
        assert any("No entry meets these filters" in w.value for w in at.warning)
    # Closing the filters keeps them: the widgets are gone, the ranking and the summary still apply them.
    at.number_input(key="budget_latency").set_value(latency_limit).run()
    at.button(key="standings_filters").click().run()
    assert not at.get("number_input") and not at.get("toggle")
    summary = next(m.value for m in at.markdown if "entries on" in m.value)
    assert "within the budget" in summary and "noisy runs hidden" in summary and "latency ≤" in summary
    quiet_fast = full.loc[~full["noisy"].astype(bool) & (full["latency_ms"] <= latency_limit), "run_id"].tolist()
    if quiet_fast:
        assert list(_table(at, "standings_table")["run_id"]) == quiet_fast
    _open_filters(at)
    assert at.number_input(key="budget_latency").value == pytest.approx(latency_limit)
    assert at.toggle(key="standings_noisy").value is False


def test_pareto_page_highlights_the_front(leaderboard_env):
    at = open_app("pareto")
    standings = _table(open_app(), "standings_table")
    (spec, data), (macs_spec, macs_data) = _vega(at, "pareto_latency_ms_chart"), _vega(at, "pareto_macs_chart")
    assert [spec["title"], macs_spec["title"]] == ["top1 vs latency", "top1 vs MACs"]
    layers = {layer["name"]: layer for view in (spec, macs_spec) for layer in view["layer"]}
    data = {**data, **macs_data}
    by_run = standings.set_index("run_id")
    for cost in ("latency_ms", "macs"):
        front, dominated = data[f"{cost}_front"], data[f"{cost}_dominated"]
        mask = pareto_mask(standings["metric:top1"].to_numpy(float), standings[cost].to_numpy(float), True)
        assert sorted(front["run_id"]) == sorted(standings.loc[mask, "run_id"])
        assert sorted(dominated["run_id"]) == sorted(standings.loc[~mask, "run_id"])
        assert list(front["cost"]) == sorted(standings.loc[mask, cost]), "the front line runs in cost order"
        for point in pd.concat([front, dominated]).itertuples():
            entry = by_run.loc[point.run_id]
            assert point.cost == pytest.approx(entry[cost]) and point.value == pytest.approx(entry["metric:top1"])
            assert point.entry == f"{entry['submission']}@{entry['variant']}" and point.rank == entry["rank"]
        assert layers[f"{cost}_dominated"]["mark"]["opacity"] < layers[f"{cost}_front"]["mark"]["opacity"]
        assert layers[f"{cost}_front_line"]["data"] == {"name": f"{cost}_front"}
        for name in ("dominated", "front"):
            hover = {t["field"] for t in layers[f"{cost}_{name}"]["encoding"]["tooltip"]}
            assert {"entry", "run_id", "value", "latency_ms", "macs"} <= hover, "the hover names the run"
        costs = standings[cost].to_numpy(float)
        log_axis = costs.max() / costs.min() > 10
        assert (layers[f"{cost}_dominated"]["encoding"]["x"]["scale"].get("type") == "log") == log_axis
    front_table = _table(at, "pareto_front_table")
    assert len(front_table) >= 1


def test_submission_page_variants_latency_environment(leaderboard_env):
    at = open_app()
    best = _table(at, "standings_table").iloc[0]
    at.switch_page("views/submission.py").run()
    assert not at.exception
    assert at.selectbox(key="submission_name").value == best["submission"]
    variants = _table(at, "variants_table")
    with _db(leaderboard_env) as db:
        stored = db.execute(
            "select r.variant, r.status, r.primary_value, l.ranked_ms, l.iterations from runs r "
            "join submissions s on s.id = r.submission_id left join latency_summaries l on l.run_id = r.id and "
            "l.kind = 'device' where s.name = ? order by r.id",
            (best["submission"],),
        ).fetchall()
    latest = {variant: (status, value, ranked, iterations) for variant, status, value, ranked, iterations in stored}
    assert set(variants["variant"]) == set(latest)
    base = latest["fp32"]
    for row in variants.itertuples():
        status, value, ranked, _ = latest[row.variant]
        assert row.status == status
        if status == "ok":
            assert row.delta_metric == pytest.approx(value - base[1])
            assert row.latency_change_pct == pytest.approx(100 * (ranked - base[2]) / base[2])
    spec, data = _vega(at, "latency_distribution")
    ok_variants = {v for v, (status, *_rest) in latest.items() if status == "ok"}
    drawn = data["samples"].groupby("label").size()
    assert {label.split(" ")[0] for label in drawn.index} == ok_variants
    for label, count in drawn.items():
        assert count == latest[label.split(" ")[0]][3], "every stored sample is drawn"
    assert spec["mark"]["type"] == "boxplot"
    environment = _table(at, "environment_table")
    assert {"torch", "cpu_model", "threads"} <= set(environment.index)


def test_submission_page_shows_the_log_tail_of_failed_runs(leaderboard_env):
    at = open_app()
    at.session_state["submission_name"] = leaderboard_env.failing
    at.switch_page("views/submission.py").run()
    assert not at.exception
    with _db(leaderboard_env) as db:
        error, log_tail = db.execute(
            "select r.error, r.log_tail from runs r join submissions s on s.id = r.submission_id where s.name = ?",
            (leaderboard_env.failing,),
        ).fetchone()
    assert "cannot handle batches larger than 2" in error
    (expander,) = at.expander
    assert "failed" in expander.label and "cannot handle batches larger than 2" in expander.label
    code = expander.code[0].value
    assert code == "\n".join(log_tail.splitlines()[-40:]) and code.strip()
    assert len(at.get("vega_lite_chart")) == 0 and any("No latency samples" in i.value for i in at.info)


def test_compare_page_puts_two_runs_side_by_side(leaderboard_env):
    at = open_app()
    standings = _table(at, "standings_table")
    run_a, run_b = int(standings["run_id"].iloc[0]), int(standings["run_id"].iloc[-1])
    at.switch_page("views/compare.py").run()
    at.selectbox(key="compare_a").set_value(run_a)
    at.selectbox(key="compare_b").set_value(run_b).run()
    assert not at.exception
    table = _table(at, "compare_table").set_index("field")
    a = standings.set_index("run_id").loc[run_a]
    b = standings.set_index("run_id").loc[run_b]
    assert table.loc["submission", "run A"] == a["submission"] and table.loc["submission", "run B"] == b["submission"]
    assert table.loc["variant", "run B"] == b["variant"]
    assert (
        table.loc["latency ms (ranked)", "B vs A"]
        == f"{100 * (b['latency_ms'] - a['latency_ms']) / a['latency_ms']:+.1f}%"
    )
    assert table.loc["top1", "B vs A"] == f"{b['metric:top1'] - a['metric:top1']:+.4f}"
    spec, data = _vega(at, "compare_latency")
    with _db(leaderboard_env) as db:
        iterations = dict(db.execute("select run_id, iterations from latency_summaries where kind = 'device'"))
    drawn = data["samples"].groupby("label").size()
    assert dict(drawn) == {
        f"A: {a['submission']}@{a['variant']}": iterations[run_a],
        f"B: {b['submission']}@{b['variant']}": iterations[run_b],
    }
    assert spec["encoding"]["y"]["stack"] is None, "the two histograms are overlaid, not stacked"
    assert not at.warning, "runs of one version and machine are comparable"


def test_history_page_tracks_the_best_score(leaderboard_env):
    at = open_app("history")
    with _db(leaderboard_env) as db:
        ok = pd.read_sql(
            "select id as run_id, primary_value, finished_at from runs "
            "where status = 'ok' and track = 'classification' and track_version = ? order by finished_at, id",
            db,
            params=(get_card("classification").version,),
        )
    spec, data = _vega(at, "history_chart")
    assert list(data["runs"]["run_id"]) == list(ok["run_id"])
    assert list(data["runs"]["best_so_far"]) == pytest.approx(list(ok["primary_value"].cummax()))
    assert _layers(spec)["best_so_far"]["encoding"]["y"]["field"] == "best_so_far"
    records = _table(at, "records_table")
    assert records["run_id"].iloc[-1] == ok["run_id"].iloc[0], "the first run always sets the first best"
    assert list(records["metric:top1"].iloc[::-1]) == sorted(set(records["metric:top1"]))
    assert list(data["records"]["run_id"]) == list(records["run_id"].iloc[::-1]), "the chart marks the listed runs"


def test_empty_store_shows_the_commands_to_run(tmp_path, monkeypatch):
    missing = tmp_path / "nothing-here.db"
    monkeypatch.setenv("HARNESS_DB_URL", f"sqlite:///{missing}")
    for page in (None, "pareto", "submission", "compare", "history"):
        at = open_app(page)
        assert not at.dataframe and not at.get("vega_lite_chart") and not _tables(at)
        assert any("no store yet" in i.value.lower() for i in at.info)
        assert "harness evaluate --track classification" in at.code[0].value
    assert not missing.exists(), "the leaderboard must never create a store"


def test_store_without_runs_shows_the_commands_to_run(tmp_path, monkeypatch):
    from harness.store import Store

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).engine.dispose()  # created and migrated by the harness, as `harness submit` would
    monkeypatch.setenv("HARNESS_DB_URL", url)
    at = open_app()
    assert not at.dataframe and not _tables(at)
    assert any("holds no runs yet" in i.value for i in at.info)
    assert "harness submit ./my_model" in at.code[0].value


def test_runs_of_another_track_version_are_never_ranked(leaderboard_env, tmp_path, monkeypatch):
    """The card is bumped to the next version: every stored run is now of an older version and none is ranked."""
    import harness.tracks as tracks_base

    card_text = (tracks_base.CARDS_DIR / "classification.toml").read_text()
    current = get_card("classification").version
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "classification.toml").write_text(card_text.replace(f"version = {current}", f"version = {current + 1}"))
    monkeypatch.setattr(tracks_base, "CARDS_DIR", cards)
    assert get_card("classification").version == current + 1
    for page in (None, "pareto", "history"):
        at = open_app(page)
        assert not at.dataframe and not at.get("vega_lite_chart") and not _tables(at)
        (info,) = at.info
        assert f"no finished run of {literal(f'classification@v{current + 1}')}" in info.value
        assert f"(v{current})" in info.value and "never ranked with the current one" in info.value


def test_one_read_only_engine_per_process(leaderboard_env):
    from harness.leaderboard_app import common

    first = common.engine(leaderboard_env.url)
    for page in (None, "pareto", "submission", "compare", "history"):
        open_app(page)
    assert common.engine(leaderboard_env.url) is first, "the engine must be shared by every rerun and page"
    db_file = Path(leaderboard_env.url.removeprefix("sqlite:///"))
    before = db_file.stat().st_mtime_ns
    with first.connect() as conn, pytest.raises(Exception, match="readonly|read-only|query_only"):
        conn.exec_driver_sql("delete from metrics")
    assert db_file.stat().st_mtime_ns == before


def test_choices_no_longer_offered_fall_back(leaderboard_env):
    """A remembered submission, run or hardware class that the store no longer offers (another track, a new
    store) falls back to the page's default (the best entry), not to whatever option happens to come first."""
    at = open_app()
    best = _table(at, "standings_table").iloc[0]
    hardware = best["hardware_class"]
    at.session_state["standings_kept"] = {"hardware": "not a machine", "variants": ["not-a-variant"]}
    at.run()
    assert not at.exception and _table(at, "standings_table").iloc[0]["run_id"] == best["run_id"]
    assert any(f"entries on {literal(hardware)}" in m.value for m in at.markdown)
    at.session_state["submission_name"] = "not-a-submission"
    at.session_state["submission_hardware"] = "not a machine"
    at.switch_page("views/submission.py").run()
    assert not at.exception
    assert at.selectbox(key="submission_name").value == best["submission"]
    at.session_state["compare_a"] = 10**9
    at.switch_page("views/compare.py").run()
    assert not at.exception
    assert at.selectbox(key="compare_a").value == int(best["run_id"])
