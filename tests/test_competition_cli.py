"""Competitions through the CLI on a bundle of the organiser's own (a dataset folder in the bundle, tiny
classifiers): quotas that two processes race for, a bundle's mistakes named by field, the verbs' refusals,
phases, participants, selection, and the quota's atomicity in the store under many concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

from tests.competition_fixtures import digits_bundle
from tests.conftest import make_submission, run_cli


def _bundle(root: Path, per_day: int = 1, ranking: str = "best", extra: str = "") -> Path:
    """A classification competition whose hidden test set is a folder of the bundle (the digits test split)."""
    return digits_bundle(root, per_day=per_day, ranking=ranking, extra=extra)


def _cli(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = run_cli(*args, env=env)
    if ok:
        assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
    return result


def _user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_two_concurrent_submissions_at_the_quota_limit_admit_exactly_one(harness_env, tmp_path):
    env = harness_env
    _cli(env, "competition", "create", str(_bundle(tmp_path)))
    _cli(env, "participants", "add", "carol", "--competition", "digits-cup")
    folders = [make_submission(tmp_path, name) for name in ("tiny_a", "tiny_b")]
    exe = Path(sys.executable).parent / "harness"
    full_env = {**__import__("os").environ, **env}
    procs = [
        subprocess.Popen(
            [str(exe), "submit", str(f), "-c", "digits-cup", "--as", "carol", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        for f in folders
    ]
    outcomes = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    assert sorted(rc for rc, _, _ in outcomes) == [0, 2], outcomes
    (refused,) = [err for rc, _, err in outcomes if rc == 2]
    assert "daily quota is 1 submission(s)" in refused and "the next submission is allowed at" in refused
    shown = json.loads(_cli(env, "competition", "show", "digits-cup", "--json").stdout)
    assert shown["phases"][0]["entries"] == 1

    # The admitted entry is evaluated on the bundle's own data, and ranks on the public part.
    runs = json.loads(_cli(env, "evaluate", "-c", "digits-cup", "--json").stdout)
    assert [r["status"] for r in runs] == ["ok"] and runs[0]["dataset"] == "digits-cup:data/test/dev"
    board = json.loads(_cli(env, "leaderboard", "-c", "digits-cup", "--json").stdout)
    (row,) = board["rows"]
    assert row["participant"] == "carol" and row["rank"] == 1 and row["public"]["value"] == runs[0]["metrics"]["top1"]


def test_a_bundle_s_mistakes_are_named_by_field(harness_env, tmp_path):
    env = harness_env
    good = _bundle(tmp_path)
    text = (good / "competition.toml").read_text()
    mistakes = {
        "phases[0].track": text.replace('track = "classification"', 'track = "clasification"'),
        "phases[0].closes": text.replace("closes = 2099-01-01T00:00:00Z", "closes = 2025-01-01T00:00:00Z"),
        "phases[0].public_fraction": text.replace("public_fraction = 0.3", "public_fraction = 1.5"),
        "phases[0].quota.per_day": text.replace("per_day = 1", "per_day = -1"),
    }
    for field, broken in mistakes.items():
        (good / "competition.toml").write_text(broken)
        _user_error(_cli(env, "competition", "validate", str(good), ok=False), field)
        _user_error(_cli(env, "competition", "create", str(good), ok=False), field)
    (good / "competition.toml").write_text(text)
    (good / "data" / "test" / "hidden" / "labels.json").unlink()
    _user_error(_cli(env, "competition", "validate", str(good), ok=False), "phases[0].dataset")
    assert json.loads(_cli(env, "competition", "list", "--json").stdout) == []  # nothing was registered


def test_verbs_refuse_what_does_not_fit(harness_env, tmp_path):
    env = harness_env
    bundle = _bundle(tmp_path, per_day=5, ranking="selected", extra="max_selected = 1")
    _user_error(_cli(env, "leaderboard", "-c", "digits-cup", ok=False), "no competition named `digits-cup`")
    _cli(env, "competition", "create", str(bundle))
    again = _cli(env, "competition", "create", str(bundle))
    assert "unchanged (same content)" in again.stdout
    _cli(env, "participants", "add", "dan", "--competition", "digits-cup", "--team", "blue")
    _user_error(_cli(env, "participants", "add", "dan", "-c", "digits-cup", ok=False), "already")
    _user_error(_cli(env, "participants", "add", "../x", "-c", "digits-cup", ok=False), "not a valid name")
    tiny = make_submission(tmp_path, "tiny_c")
    _user_error(_cli(env, "submit", str(tiny), "-c", "digits-cup", "--as", "erin", ok=False), "not a participant")
    _user_error(_cli(env, "submit", str(tiny), "-c", "digits-cup", ok=False), "--as")
    detector = make_submission(tmp_path, "tiny_det", track="small-object")
    _user_error(
        _cli(env, "submit", str(detector), "-c", "digits-cup", "--as", "dan", ok=False), "ranks `classification`"
    )
    _user_error(_cli(env, "evaluate", ok=False), "--track TRACK, or --competition")
    _user_error(_cli(env, "evaluate", "-t", "classification", "-c", "digits-cup", ok=False), "--competition")
    _user_error(_cli(env, "leaderboard", "-t", "classification", "--private", ok=False), "--competition")

    # Selections: up to the phase's limit, only the participant's own entries.
    first = json.loads(_cli(env, "submit", str(tiny), "-c", "digits-cup", "--as", "dan", "--json").stdout)[0]
    second = json.loads(
        _cli(
            env, "submit", str(make_submission(tmp_path, "tiny_d")), "-c", "digits-cup", "--as", "dan", "--json"
        ).stdout
    )[0]
    _cli(env, "participants", "select", str(first["entry_id"]), "-c", "digits-cup", "--as", "dan")
    _user_error(
        _cli(env, "participants", "select", str(second["entry_id"]), "-c", "digits-cup", "--as", "dan", ok=False),
        "its limit",
    )
    _cli(env, "participants", "add", "fay", "--competition", "digits-cup")
    _user_error(
        _cli(env, "participants", "select", str(first["entry_id"]), "-c", "digits-cup", "--as", "fay", ok=False),
        "not one of fay's",
    )
    # A removed participant submits no more and leaves the board; their rows stay.
    _cli(env, "participants", "remove", "dan", "--competition", "digits-cup")
    _user_error(_cli(env, "submit", str(tiny), "-c", "digits-cup", "--as", "dan", ok=False), "was removed")
    listed = json.loads(_cli(env, "participants", "list", "-c", "digits-cup", "--json").stdout)
    assert {(p["name"], p["removed"]) for p in listed} == {("dan", True), ("fay", False)}


def _admit_at_the_limit(db_url: str, phase_id: int, participant_id: int, submission_id: int, barrier) -> bool:
    from harness.store import open_store
    from harness.store.competitions import admit

    store = open_store(db_url)
    barrier.wait()
    return isinstance(admit(store, phase_id, participant_id, [("m", submission_id)], {"per_day": 3}), list)


def test_the_quota_holds_under_eight_concurrent_writers(harness_env, tmp_path):
    """Eight processes admit one entry each at once against a daily quota of 3: exactly three are admitted."""
    from harness.service.competitions import add_participant, create
    from harness.store import open_store
    from harness.store.competitions import competition, participant

    store = open_store()
    create(_bundle(tmp_path), store)
    add_participant(store, "digits-cup", "gus")
    row = competition(store, "digits-cup")
    person = participant(store, row.id, "gus")
    submission, _ = store.add_submission(
        name="m", track="classification", content_hash="0" * 64, project="p", entry_point="m:build", variants=["fp32"],
        source_path="-", stored_path="-", site_path="-",
    )  # fmt: skip
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(8)
    with context.Pool(8) as pool:
        args = [(harness_env["HARNESS_DB_URL"], row.phases[0].id, person.id, submission.id, barrier)] * 8
        admitted = pool.starmap(_admit_at_the_limit, args)
    assert sum(admitted) == 3


def test_the_server_warns_before_binding_beyond_loopback_without_tls(harness_env, tmp_path):
    """A store that cannot be opened stops `harness server` before it binds anything: the warning comes first
    (nothing here binds beyond loopback)."""
    noise = tmp_path / "noise.db"
    noise.write_bytes(b"\x01" * 4096)
    env = {**harness_env, "HARNESS_DB_URL": f"sqlite:///{noise}"}
    for extra, warned in (([], True), (["--behind-proxy"], False)):
        result = _cli(env, "server", "-c", "cup", "--host", "0.0.0.0", "--port", "1", *extra, ok=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert bool(warnings) == warned and (not warned or "no TLS" in warnings[0]), result.stderr
    half = _cli(env, "server", "-c", "cup", "--tls-cert", str(noise), ok=False)
    _user_error(half, "--tls-cert and --tls-key go together")
