"""The leaderboard's competition page on a small SYNTHETIC store: the shipped example bundle
(competitions/smallobj-sprint) registered through the service, three participants (two of one team), a stored
baseline, and one made-up `ok` run per entry written through the repository API, with public scores on the run
and private ones apart, as an evaluation of the phase stores them. Nothing here was measured.

The private values are distinctive (0.1234..., 0.2345..., ...) so that the page's full text (every element, every
table cell, the CSV download) can be searched for them: while the phase is open none may appear; once it is
closed the final board ranks by them and shows the public ones beside them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from harness.store.repo import RunOutcome, Store, idempotency_key
from tests.conftest import ROOT
from tests.ui.competition_page import download_payloads, open_competition_page, page_text

COMPETITION = "smallobj-sprint"
PHASE = "final"
BASELINE = "fasterrcnn_small"  # one of the bundle's baselines: a stored submission of the track, no entry
HARDWARE = "SYNTHETIC GPU / competition test"
# participant, team, entry, public AP and interval, private AP and interval, private AP50 (never shown)
ENTRIES = (
    ("alice", "red", "alice-net", 0.41, (0.40, 0.42), 0.123456, (0.113456, 0.133456), 0.612345),
    ("bob", "red", "bob-net", 0.405, (0.395, 0.415), 0.234567, (0.224567, 0.244567), 0.623456),
    ("carol", None, "carol-net", 0.30, (0.29, 0.31), 0.345678, (0.335678, 0.355678), 0.634567),
)
BASELINE_SCORES = (0.35, (0.34, 0.36), 0.111222, (0.101222, 0.121222), 0.645678)


def private_texts() -> list[str]:
    """Every private value as the page could write it: raw, and in the board's four-decimal format."""
    values = [
        v for *_, value, (low, high), ap50 in (*ENTRIES, (None, *BASELINE_SCORES)) for v in (value, low, high, ap50)
    ]
    return [text for v in values for text in (repr(v), f"{v:.4f}")]


@dataclass(frozen=True)
class CompetitionStore:
    url: str
    home: Path


def _latency(ms: float) -> dict:
    samples = [ms * (1 + 0.01 * (i % 5)) for i in range(20)]
    return {
        "batch_size": 1, "ranked_ms": ms, "p50_ms": ms, "p90_ms": ms * 1.04, "p95_ms": ms * 1.04, "p99_ms": ms * 1.04,
        "mean_ms": sum(samples) / 20, "std_ms": 0.01, "cv": 0.01, "repeats": 1, "iterations": 20, "timer": "synthetic",
        "noisy": False, "noise_reasons": [], "repeat_medians_ms": [ms], "repeat_sizes": [20], "samples_ms": samples,
    }  # fmt: skip


def _submission(store: Store, name: str, index: int) -> int:
    row, _ = store.add_submission(
        name=name,
        track="small-object",
        content_hash=f"competition{index:053d}",
        project=name,
        entry_point=f"{name}_pkg:build",
        variants=[],
        source_path="synthetic",
        stored_path="synthetic",
        site_path="synthetic",
        queued=False,
    )
    return row.id


def _run(store: Store, phase_id: int, submission_id: int, index: int, scores: tuple) -> None:
    from harness.tracks import get_card

    card = get_card("small-object")
    public, public_ci, private, private_ci, private_ap50 = scores
    run_id = store.claim_run(
        idempotency_key("competition-page", submission_id, index),
        submission_id=submission_id, variant="fp32", track=card.name, track_version=card.version,
        card_hash=card.card_hash, dataset="smallobj/test", dataset_hash=card.digests["smallobj/test"], device="cuda",
        profile="quick", runner="local", hardware_class=HARDWARE, harness_version="synthetic",
        scorer_version="synthetic", primary_metric=card.primary_metric, phase_id=phase_id,
    )  # fmt: skip
    store.finish_run(
        run_id,
        RunOutcome(
            status="ok",
            metrics={"AP": public, "AP50": 0.5 + index / 100},
            primary_value=public,
            primary_interval=public_ci,
            complexity={"params": 10**6 * (index + 1), "bytes": 4 * 10**6, "macs": {"512x512": 10**9 * (index + 1)}},
            latency={"device": _latency(2.0 + index)},
            environment={"device": "cuda", "gpu_name": "SYNTHETIC GPU"},
            private={"metrics": {"AP": private, "AP50": private_ap50}, "primary_value": private,
                     "primary_interval": private_ci},
        ),
    )  # fmt: skip


def build_competition_store(root: Path) -> CompetitionStore:
    """The registered example competition with its participants, entries and runs, in `root`."""
    from harness.service.competitions import add_participant, create
    from harness.store.competitions import admit, competition, participant

    url = f"sqlite:///{root / 'harness.db'}"
    store = Store(url)
    create(ROOT / "competitions" / COMPETITION, store)
    (phase,) = competition(store, COMPETITION).phases
    for index, (person, team, entry, *scores) in enumerate(ENTRIES):
        add_participant(store, COMPETITION, person, team)
        person_id = participant(store, phase.competition_id, person).id
        submission_id = _submission(store, entry, index)
        admitted = admit(store, phase.id, person_id, [(entry, submission_id)], {"per_day": 3, "per_phase": 20})
        assert isinstance(admitted, list)
        _run(store, phase.id, submission_id, index, tuple(scores))
    _run(store, phase.id, _submission(store, BASELINE, len(ENTRIES)), len(ENTRIES), BASELINE_SCORES)
    store.engine.dispose()
    return CompetitionStore(url=url, home=root / "home")


@pytest.fixture()
def competition_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CompetitionStore:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'harness.db'}"
    monkeypatch.setenv("HARNESS_DB_URL", url)
    return build_competition_store(tmp_path)


def _board(at) -> pd.DataFrame:
    (table,) = at.get_by_key("competition_board").dataframe
    return table.value


def _csv(at) -> pd.DataFrame:
    (payload,) = download_payloads(at).values()
    return pd.read_csv(io.BytesIO(payload))


def test_open_phase_shows_the_public_board_and_no_private_score(competition_store):
    at = open_competition_page(competition_store.url, COMPETITION)
    board = _board(at)
    assert list(board["participant"]) == ["alice", "bob", "(organiser)", "carol"]  # by public AP
    assert list(board["entry"]) == ["alice-net", "bob-net", BASELINE, "carol-net"]
    assert list(board["AP (public)"]) == pytest.approx([0.41, 0.405, 0.35, 0.30])
    assert list(board["#"].astype(object).where(board["#"].notna(), None)) == [1, 2, None, 3]  # baselines unranked
    assert list(board["baseline"]) == ["", "", "baseline", ""]
    assert list(board["tie"]) == ["", "≈ leader", "", ""]  # bob's interval overlaps the leader's
    assert list(board["team"]) == ["red", "red", "", ""]
    assert not [c for c in board.columns if "private" in c]
    csv = _csv(at)
    assert list(csv.columns) == list(board.columns) and list(csv["entry"]) == list(board["entry"])
    text = page_text(at)
    assert "Private scores appear here when the organiser closes the phase" in text
    assert "alice (team red)" in text and "carol" in text and "Final phase" in text
    leaked = [value for value in private_texts() if value in text]
    assert not leaked, f"private scores of an open phase on the page: {leaked}"


def test_closed_phase_shows_the_final_board_ranked_by_private_score(competition_store):
    from harness.store.competitions import close_phase, competition

    store = Store(competition_store.url)
    (phase,) = competition(store, COMPETITION).phases
    assert close_phase(store, phase.id)
    store.engine.dispose()
    at = open_competition_page(competition_store.url, COMPETITION, PHASE)
    board = _board(at)
    assert list(board["participant"]) == ["carol", "bob", "alice", "(organiser)"]  # by private AP
    assert list(board["AP (private)"]) == pytest.approx([0.345678, 0.234567, 0.123456, 0.111222])
    assert list(board["AP (public)"]) == pytest.approx([0.30, 0.405, 0.41, 0.35])
    assert list(board["95% CI (private)"])[0] == "[0.3357, 0.3557]"
    assert list(board["#"].astype(object).where(board["#"].notna(), None)) == [1, 2, 3, None]
    assert list(board["tie"]) == ["", "", "", ""]  # the private intervals do not overlap
    csv = _csv(at)
    assert list(csv.columns) == list(board.columns)
    assert list(csv["AP (private)"]) == pytest.approx(list(board["AP (private)"]))
    assert list(csv["AP (public)"]) == pytest.approx(list(board["AP (public)"]))
    text = page_text(at)
    assert "Final standing" in text
    assert repr(0.123456) in text and "[0.1135, 0.1335]" in text  # what the open phase's search looks for


def _track_page_text(url: str, page: str | None) -> str:
    from streamlit.testing.v1 import AppTest

    from harness.leaderboard_app import APP_SCRIPT

    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=60)
    at.query_params["track"] = "small-object"
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return page_text(at)


@pytest.mark.parametrize("page", [None, "pareto"])
def test_track_boards_leave_competition_runs_out(competition_store, page):
    text = _track_page_text(competition_store.url, page)
    assert not [entry for _, _, entry, *_ in ENTRIES if entry in text]


@pytest.mark.parametrize("page", ["submission", "compare", "history"])
def test_run_pages_leave_competition_runs_out(competition_store, page):
    text = _track_page_text(competition_store.url, page)
    assert not [entry for _, _, entry, *_ in ENTRIES if entry in text]


def test_no_competition_says_how_to_create_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'harness.db'}"
    Store(url).engine.dispose()
    text = page_text(open_competition_page(url))
    assert "No competition is registered" in text and "harness competition create" in text


def test_missing_store_says_how_to_create_a_competition(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    text = page_text(open_competition_page(f"sqlite:///{tmp_path / 'none.db'}"))
    assert "There is no store yet" in text and "harness competition create" in text
    assert not (tmp_path / "none.db").exists()  # the page never creates a store
