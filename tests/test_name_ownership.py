"""Submission names belong to the project (distribution name) that first stored them: another project claiming
the name is refused (exit 2, naming the owner) and the owner's leaderboard row stays its own; new versions from
the owner keep working. Through the real CLI."""

from __future__ import annotations

import json

from tests.conftest import TINY_CNN, make_submission, run_cli


def leaderboard(env: dict[str, str]) -> list[dict]:
    result = run_cli("leaderboard", "--track", "classification", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_another_project_cannot_take_over_a_name(harness_env, tmp_path):
    owner = make_submission(tmp_path / "a", "owner", entry_points={"shared_name": "owner_pkg:build"})
    stored = run_cli("submit", str(owner), "--json", env=harness_env)
    assert stored.returncode == 0, stored.stderr
    evaluated = run_cli("evaluate", "--track", "classification", "--profile", "quick", "--json", env=harness_env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    before = leaderboard(harness_env)
    assert [row["submission"] for row in before] == ["shared_name"]

    # A different project (distribution `intruder-submission`) declaring the same entry-point name.
    intruder = make_submission(
        tmp_path / "b",
        "intruder",
        module_body=TINY_CNN + "    # another model\n",
        entry_points={"shared_name": "intruder_pkg:build"},
    )
    refused = run_cli("submit", str(intruder), env=harness_env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    first = refused.stderr.splitlines()[0]
    assert "the submission name `shared_name` belongs to the project `owner-submission`" in first, refused.stderr
    assert "intruder-submission" in first and "Traceback" not in refused.stderr

    # Nothing of the intruder was stored or queued: evaluating again has nothing to do, the row is unchanged.
    again = run_cli("evaluate", "--track", "classification", "--profile", "quick", "--json", env=harness_env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout) == []
    assert leaderboard(harness_env) == before


def test_the_owner_stores_new_versions_under_its_name(harness_env, tmp_path):
    first = make_submission(tmp_path / "v1", "owner", entry_points={"kept_name": "owner_pkg:build"})
    assert run_cli("submit", str(first), env=harness_env).returncode == 0
    # The same project, spelled as packaging compares names (Owner_Submission is owner-submission), new code.
    second = make_submission(
        tmp_path / "v2",
        "owner",
        module_body=TINY_CNN + "    # version 2\n",
        entry_points={"kept_name": "owner_pkg:build"},
    )
    pyproject = second / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('name = "owner-submission"', 'name = "Owner_Submission"'))
    result = run_cli("submit", str(second), "--json", env=harness_env)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["name"] == "kept_name" and row["created"] is True
