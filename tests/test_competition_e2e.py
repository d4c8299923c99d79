"""A competition end to end, through the CLI as an organiser and two participants use it: the shipped example
bundle (competitions/smallobj-sprint) with the two Faster R-CNN references as baselines; quotas; evaluation on
the public part; no private score in any verb's output, export or page until the organiser closes the phase;
then the private board ranks them and its JSON carries both scores."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from tests.competition_fixtures import bob_submission
from tests.conftest import ROOT, run_cli

EXAMPLE = ROOT / "competitions" / "smallobj-sprint"
COMPETITION = "smallobj-sprint"


def _private_values(db_url: str) -> list[float]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT metrics FROM private_scores")).fetchall()
    engine.dispose()
    values = []
    for (metrics,) in rows:
        metrics = json.loads(metrics) if isinstance(metrics, str) else metrics
        values += [v for v in metrics.values() if v not in (-1.0, 0.0, 1.0)]
    return values


def _leaks(outputs: dict[str, str], private: list[float], public_texts: set[str]) -> list[str]:
    """Where a private figure shows (as stored, or as a 4-decimal table cell that no public figure also gives)."""
    found = []
    for value in private:
        forms = {repr(value)}
        short = f"{value:.4f}"
        if short not in public_texts:
            forms.add(short)
        for where, text in outputs.items():
            found += [f"{form} in {where}" for form in forms if form in text]
    return found


def _public_texts(board: dict) -> set[str]:
    """The public figures as a table prints them (metrics and intervals): a private figure that rounds to one
    of them is not searched for in its rounded form."""
    values = [v for row in board["rows"] for v in (*row["public"]["metrics"].values(), *row["public"]["interval"])]
    return {f"{v:.4f}" for v in values}


@pytest.mark.timeout(1800)
def test_a_competition_from_bundle_to_final_board(harness_env, tmp_path):
    env = harness_env

    def cli(*args: str, ok: bool = True):
        result = run_cli(*args, env=env, timeout=1500)
        if ok:
            assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
        return result

    # The organiser: the bundle, the baselines, the participants.
    assert "ok: competition smallobj-sprint" in cli("competition", "validate", str(EXAMPLE)).stdout
    created = json.loads(cli("competition", "create", str(EXAMPLE), "--json").stdout)
    assert created["version"] == 1 and created["created"] and created["phases"] == ["final"]
    cli("submit", str(ROOT / "submissions" / "fasterrcnn"))
    cli("participants", "add", "alice", "--competition", COMPETITION, "--team", "red")
    cli("participants", "add", "bob", "--competition", COMPETITION)

    # The participants: alice's two entry points count two of her three a day; the same content again is
    # recognised (not counted), an edited copy (two more) is refused with the time of the next allowed one.
    alice = json.loads(
        cli("submit", str(ROOT / "submissions" / "fasterrcnn"), "-c", COMPETITION, "--as", "alice", "--json").stdout
    )
    assert [e["entry"] for e in alice] == ["fasterrcnn_small", "fasterrcnn_default"]
    again = cli("submit", str(ROOT / "submissions" / "fasterrcnn"), "-c", COMPETITION, "--as", "alice", "--json")
    assert [(e["entry_id"], e["created"]) for e in json.loads(again.stdout)] == [(e["entry_id"], False) for e in alice]
    edited = tmp_path / "alice2"
    shutil.copytree(ROOT / "submissions" / "fasterrcnn", edited)
    (edited / "NOTES.txt").write_text("a second try\n")
    refused = cli("submit", str(edited), "-c", COMPETITION, "--as", "alice", ok=False)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "daily quota is 3 submission(s): 2 made today" in refused.stderr
    assert f"the next submission is allowed at {tomorrow} 00:00 UTC" in refused.stderr
    bob = json.loads(cli("submit", str(bob_submission(tmp_path)), "-c", COMPETITION, "--as", "bob", "--json").stdout)
    assert [e["entry"] for e in bob] == ["bob_frcnn"]

    # Evaluation: every entry and baseline once (alice's entries are the baselines' content: the same runs).
    evaluated = cli("evaluate", "--competition", COMPETITION, "--variant", "fp32", "--json")
    runs = json.loads(evaluated.stdout)
    assert sorted(r["submission"] for r in runs) == ["bob_frcnn", "fasterrcnn_default", "fasterrcnn_small"]
    assert all(r["status"] == "ok" for r in runs), [r["error"] for r in runs]

    board = json.loads(cli("leaderboard", "--competition", COMPETITION, "--json").stdout)
    assert board["board"] == "public" and board["state"] == "open"
    ranked = [(r["rank"], r["participant"], r["entry"]) for r in board["rows"] if not r["baseline"]]
    assert ranked == [(1, "alice", "fasterrcnn_small"), (2, "bob", "bob_frcnn")]
    assert {r["entry"] for r in board["rows"] if r["baseline"]} == {"fasterrcnn_small", "fasterrcnn_default"}
    assert next(r for r in board["rows"] if r["participant"] == "alice")["team"] == "red"
    assert all("private" not in row for row in board["rows"])
    refused = cli("leaderboard", "--competition", COMPETITION, "--private", ok=False)
    assert refused.returncode == 2 and "shown only once the phase is closed" in refused.stderr

    # No verb, export or page shows a private score while the phase is open.
    private = _private_values(env["HARNESS_DB_URL"])
    assert len(private) >= 3 * 10
    outputs = {"evaluate --json": evaluated.stdout, "evaluate": cli("evaluate", "-c", COMPETITION).stdout}
    outputs["leaderboard"] = cli("leaderboard", "--competition", COMPETITION).stdout
    outputs["leaderboard --json"] = json.dumps(board)
    outputs["track leaderboard"] = cli("leaderboard", "--track", "small-object", "--json").stdout
    outputs["competition show"] = cli("competition", "show", COMPETITION, "--json").stdout
    outputs["competition show text"] = cli("competition", "show", COMPETITION).stdout
    outputs["participants"] = cli("participants", "list", "--competition", COMPETITION, "--json").stdout
    for run in runs:
        outputs[f"show {run['run_id']}"] = cli("show", str(run["run_id"]), "--json").stdout
        outputs[f"show {run['run_id']} text"] = cli("show", str(run["run_id"])).stdout
    ids = [str(r["run_id"]) for r in runs]
    outputs["compare"] = cli("compare", *ids, "--json").stdout
    cli("export", *ids, "-o", str(tmp_path / "results.json"))
    outputs["export"] = (tmp_path / "results.json").read_text()
    outputs["page"] = _page_text(env["HARNESS_DB_URL"])
    assert not _leaks(outputs, private, _public_texts(board))
    assert json.loads(outputs["track leaderboard"]) == []  # phase runs rank only on their phase's board

    # The organiser closes the phase (before its close time: only with --force); the final board is private.
    early = cli("competition", "close-phase", COMPETITION, "final", ok=False)
    assert early.returncode == 2 and "--force" in early.stderr
    cli("competition", "close-phase", COMPETITION, "final", "--force")
    final = json.loads(cli("leaderboard", "--competition", COMPETITION, "--private", "--json").stdout)
    assert final["board"] == "private" and final["state"] == "closed"
    people = [r for r in final["rows"] if not r["baseline"]]
    assert [(r["rank"], r["participant"]) for r in people] == [(1, "alice"), (2, "bob")]
    for row in people:
        assert row["private"]["value"] in private and row["public"]["value"] is not None
        assert row["private"]["value"] != row["public"]["value"]
        assert row["private"]["interval"][0] <= row["private"]["value"] <= row["private"]["interval"][1]
    late = cli("submit", str(bob_submission(tmp_path / "again")), "-c", COMPETITION, "--as", "bob", ok=False)
    assert late.returncode == 2 and "it is closed" in late.stderr


def _page_text(db_url: str) -> str:
    """The competition page's whole text (tests/ui/competition_page.py), or nothing where Streamlit is absent."""
    pytest.importorskip("streamlit")
    from tests.ui.competition_page import competition_page_text

    return competition_page_text(db_url, COMPETITION)
