"""Standings compare like with like: a board is one (track version, dataset and digest, latency profile), an
entry one (submission, variant, hardware class, device), and the card's rule picks the run that stands for it.
Runs are stored through the repository as `harness evaluate` stores them; the standings are read back through
`harness leaderboard --json` and the board's own query."""

from __future__ import annotations

import json

import pytest

from harness.store.repo import BoardKey, RunOutcome, Store, idempotency_key
from harness.tracks import get_card
from tests.conftest import make_submission, run_cli

HW = "CPU T / 1 threads"


def _add_run(store: Store, sub_id: int, card, top1: float, latency: float, *, interval=None, **overrides) -> int:
    fields = {
        "submission_id": sub_id, "variant": "fp32", "track": card.name, "track_version": card.version,
        "card_hash": "c", "dataset": f"{card.dataset}/{card.split}",
        "dataset_hash": card.digests.get(f"{card.dataset}/{card.split}", "d"), "device": "cpu",
        "profile": card.profile, "runner": "local", "hardware_class": HW, "harness_version": "0",
        "scorer_version": "0", "primary_metric": card.primary_metric,
    } | overrides  # fmt: skip
    run_id = store.claim_run(idempotency_key(json.dumps(fields, sort_keys=True), top1, latency), **fields)
    summary = {
        "batch_size": 1, "ranked_ms": latency, "p50_ms": latency, "p90_ms": latency, "p95_ms": latency,
        "p99_ms": latency, "mean_ms": latency, "std_ms": 0.0, "cv": 0.0, "repeats": 1, "iterations": 1,
        "timer": "perf_counter_ns", "noisy": False, "noise_reasons": [], "repeat_medians_ms": [latency],
        "repeat_sizes": [1], "samples_ms": [latency],
    }  # fmt: skip
    store.finish_run(
        run_id,
        RunOutcome(
            status="ok", metrics={"top1": top1, "top5": 1.0}, primary_value=top1, primary_interval=interval,
            complexity={"params": 10, "bytes": 10, "macs": {}, "dtypes": {}},
            latency={"device": summary, "e2e": summary}, environment={"device": "cpu", "threads": 1},
            details={"ranked_latency": card.ranked_latency},
        ),
    )  # fmt: skip
    return run_id


def _submission(store: Store, card, name: str) -> int:
    row, _ = store.add_submission(
        name=name, track=card.name, content_hash=name * 8, project=name, entry_point=f"{name}:build",
        variants=["fp32"], source_path="/x", stored_path="/x", site_path="/x", params=10, macs={}, bytes=10,
        build_options={}, queued=True,
    )  # fmt: skip
    return row.id


def _board(env: dict, track: str, *options: str) -> list[dict]:
    shown = run_cli("leaderboard", "--track", track, *options, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


@pytest.fixture
def store_env(tmp_path):
    url = f"sqlite:///{tmp_path / 'boards.db'}"
    return Store(url), {"HARNESS_DB_URL": url, "HARNESS_HOME": str(tmp_path / "home")}


def test_runs_on_another_dataset_digest_or_profile_never_appear_in_the_default_standings(store_env):
    store, env = store_env
    card = get_card("classification")
    sub = _submission(store, card, "model")
    default = _add_run(store, sub, card, 0.90, 5.0)
    # Better figures, each from a run that is not comparable with the board's: they must not replace it.
    other_profile = _add_run(store, sub, card, 0.99, 1.0, profile="standard")
    _add_run(store, sub, card, 0.99, 1.0, dataset="cifar10/test", dataset_hash="c" * 64)
    _add_run(store, sub, card, 0.99, 1.0, dataset_hash="e" * 64)  # the track's dataset, other content
    rows = _board(env, "classification")
    assert [row["run_id"] for row in rows] == [default]
    key = rows[0]["board"]
    assert key == BoardKey.for_card(card).to_dict()
    assert key["profile"] == card.profile and key["dataset"] == "shapetex/test"
    assert key["dataset_hash"] == card.digests["shapetex/test"] and key["ranking"] == "latest"
    # The other profile is a board of its own, and the text output names the board it shows.
    assert [row["run_id"] for row in _board(env, "classification", "--profile", "standard")] == [other_profile]
    text = run_cli("leaderboard", "--track", "classification", env=env)
    assert f"board: {BoardKey.for_card(card).describe()}" in text.stdout.replace("\n", " ")
    wrong = run_cli("leaderboard", "--track", "classification", "--profile", "fastest", env=env)
    assert wrong.returncode == 2 and "unknown profile `fastest`" in wrong.stderr and "Traceback" not in wrong.stderr


def test_entries_differ_by_hardware_class_and_device(store_env):
    store, env = store_env
    card = get_card("classification")
    sub = _submission(store, card, "model")
    cpu = _add_run(store, sub, card, 0.90, 5.0)
    gpu = _add_run(store, sub, card, 0.90, 0.5, device="cuda:0", hardware_class="NVIDIA X / driver 1 / CUDA 12")
    rows = _board(env, "classification")
    assert sorted(row["run_id"] for row in rows) == sorted([cpu, gpu]) and all(row["rank"] == 1 for row in rows)


def _card_with_rule(tmp_path, rule: str):
    from harness.tracks import CARDS_DIR
    from harness.tracks.card import load_card

    folder = tmp_path / f"cards-{rule}"
    folder.mkdir()
    text = (CARDS_DIR / "classification.toml").read_text()
    text = text.replace('name = "classification"', f'name = "digits-{rule}"')
    text = text.replace('ranking = "latest"', f'ranking = "{rule}"')
    (folder / "card.toml").write_text(text)
    return load_card(folder / "card.toml"), folder


@pytest.mark.parametrize(("rule", "stands"), [("latest", "worse"), ("best", "better")])
def test_the_cards_rule_picks_the_run_that_stands_from_a_better_then_worse_pair(store_env, tmp_path, rule, stands):
    store, env = store_env
    card, folder = _card_with_rule(tmp_path, rule)
    assert card.ranking == rule
    env = {**env, "HARNESS_TRACKS_PATH": str(folder)}
    sub = _submission(store, card, "model")
    runs = {"better": _add_run(store, sub, card, 0.95, 5.0), "worse": _add_run(store, sub, card, 0.80, 5.0)}
    rows = _board(env, card.name)
    assert [row["run_id"] for row in rows] == [runs[stands]]
    assert rows[0]["board"]["ranking"] == rule
    # The board's query selects the same run (one selection for the CLI, exports and the board).
    from harness.store import queries

    engine = queries.read_only_engine(env["HARNESS_DB_URL"])
    assert queries.standings(engine, BoardKey.for_card(card)).run_id.tolist() == [runs[stands]]
    engine.dispose()


def test_leaderboard_json_carries_intervals_and_marks_entries_tied_with_the_leader(store_env):
    store, env = store_env
    card = get_card("classification")
    leader = _add_run(store, _submission(store, card, "a"), card, 0.99, 5.0, interval=(0.975, 0.997))
    tied = _add_run(store, _submission(store, card, "b"), card, 0.98, 1.0, interval=(0.965, 0.992))
    apart = _add_run(store, _submission(store, card, "c"), card, 0.90, 1.0, interval=(0.87, 0.93))
    plain = _add_run(store, _submission(store, card, "d"), card, 0.85, 1.0)  # stored without an interval
    rows = {row["run_id"]: row for row in _board(env, "classification")}
    assert [rows[r]["rank"] for r in (leader, tied, apart, plain)] == [1, 2, 3, 4]  # ranks stay ordered
    assert rows[leader]["primary_interval"] == [0.975, 0.997] and not rows[leader]["tied_with_leader"]
    assert rows[tied]["tied_with_leader"] and "overlaps the leader's [0.9750, 0.9970]" in rows[tied]["tie_reason"]
    assert not rows[apart]["tied_with_leader"] and rows[apart]["tie_reason"] is None
    assert rows[plain]["primary_interval"] is None and not rows[plain]["tied_with_leader"]
    text = run_cli("leaderboard", "--track", "classification", env=env).stdout
    assert "2≈" in text and "statistically tied" in text
    # The board marks the same entry.
    from harness.leaderboard_app.ranking import rank
    from harness.store import queries

    engine = queries.read_only_engine(env["HARNESS_DB_URL"])
    board = rank(queries.standings(engine, BoardKey.for_card(card)), True).set_index("run_id")
    engine.dispose()
    assert board.loc[tied, "tied"] and not board.loc[apart, "tied"] and not board.loc[leader, "tied"]
    assert board.loc[leader, "interval"] == "[0.9750, 0.9970]"


def test_an_evaluated_run_stores_its_interval_and_shows_it(harness_env, tmp_path):
    """Through the real flow: the interval comes from the bootstrap over the test images and contains the
    metric; `evaluate`, `show` and `leaderboard` all carry it."""
    assert run_cli("submit", str(make_submission(tmp_path, "tiny")), env=harness_env).returncode == 0
    evaluated = run_cli("evaluate", "--track", "classification", "--json", env=harness_env)
    assert evaluated.returncode == 0, evaluated.stderr
    (run,) = json.loads(evaluated.stdout)
    assert run["status"] == "ok", run["error"]
    low, high = run["primary_interval"]
    assert low <= run["metrics"]["top1"] <= high and high - low > 0
    confidence = run["details"]["confidence"]
    assert confidence["metric"] == "top1" and confidence["level"] == 0.95 and confidence["images"] == 10_000
    shown = json.loads(run_cli("show", str(run["run_id"]), "--json", env=harness_env).stdout)
    assert shown["primary_interval"] == [low, high]
    (row,) = _board(harness_env, "classification")
    assert row["primary_interval"] == [low, high] and row["board"]["profile"] == "quick"
