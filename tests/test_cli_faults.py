"""Faults a user can cause, through the real CLI: each ends as one `error:` line (and its `fix:` line) on stderr,
exit 2, no traceback, and leaves a good store as it was. A store that cannot be opened (not SQLite, not a URL, an
unknown dialect, a table missing, harness tables without a migration record, locked past the busy timeout) on
every verb that opens it; report files that cannot be written; `check` and `submit` agreeing; Ctrl-C; `--version`;
`serve`'s warning for a non-loopback address and the Streamlit options it starts with."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TINY_CNN, make_submission, run_cli

TIMEOUT_S = 120  # a verb that missed the fault and went on (serve would serve) fails instead of hanging


@dataclass(frozen=True)
class GoodStore:
    db: Path
    env: dict[str, str]
    submission: Path


def dump(db: Path) -> list[str]:
    """The store's content, schema included, as SQL: what must not change (the file's bytes may, when SQLite
    folds its write-ahead log back in)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:  # closed: an open connection would hold a WAL lock
        return list(conn.iterdump())


@pytest.fixture(scope="module")
def good_store(session_home: Path, tmp_path_factory: pytest.TempPathFactory) -> GoodStore:
    """A store holding one real submission, stored by `harness submit`."""
    root = tmp_path_factory.mktemp("faults")
    db = root / "harness.db"
    env = {"HARNESS_HOME": str(session_home), "HARNESS_DB_URL": f"sqlite:///{db}"}
    submission = make_submission(root, "tiny", module_body=TINY_CNN)
    stored = run_cli("submit", str(submission), env=env)
    assert stored.returncode == 0, stored.stderr
    return GoodStore(db, env, submission)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2, no traceback, and stderr is exactly one `error:` line naming the problem (with `words`), plus at
    most its `fix:` line. Returns the error line."""
    where = f"{result.args[1:]}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-3000:]}"
    assert result.returncode == 2, where
    assert "Traceback" not in result.stderr, where
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.stderr.startswith("error: "), where  # no blank line or banner before it
    assert len(lines) in (1, 2), where
    assert len(lines) == 1 or lines[1].startswith("  fix: "), where
    for word in words:
        assert word in lines[0], where
    return lines[0]


# ------------------------------------------------------------------------------------------------------------
# a store that cannot be opened, on every verb that opens one


def store_verbs(good: GoodStore, out: Path) -> dict[str, list[str]]:
    return {
        "leaderboard": ["leaderboard", "--track", "classification"],
        "submit": ["submit", str(good.submission)],
        "show": ["show", "1"],
        "runs": ["runs", "stuck"],
        "compare": ["compare", "1"],
        "export": ["export", "1", "-o", str(out / "exported.json")],
        "gate": ["gate", "--baseline", "1", "--candidate", "1"],
        "evaluate": ["evaluate", "--track", "classification"],
        "serve": ["serve", "--port", str(free_port())],
    }


def copy_store(good: GoodStore, target: Path, *sql: str) -> Path:
    with contextlib.closing(sqlite3.connect(good.db)) as source, contextlib.closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
        for statement in sql:
            copy.execute(statement)
        copy.commit()
    return target


# fault -> (how the store is made, words its error line holds on every verb)
FAULTS = {
    "not_sqlite": ("random bytes", ["not a SQLite database"]),
    "not_a_url": ("notaurl", ["not a database URL"]),
    "unknown_dialect": ("foo://x", ["foo", "not a known kind of database"]),
    "missing_table": ("metrics dropped", ["metrics", "damaged"]),
    "unmigrated": ("alembic_version dropped", ["no migration record"]),
    "locked": ("an exclusive lock held", ["locked"]),
}


def make_fault(fault: str, good: GoodStore, folder: Path) -> tuple[str, Path | None]:
    """The store URL of a fault, and the file it points at (to check it is left as it was)."""
    if fault == "not_sqlite":
        path = folder / "random.db"
        path.write_bytes(bytes(range(256)) * 16)
        return f"sqlite:///{path}", path
    if fault in ("not_a_url", "unknown_dialect"):
        return FAULTS[fault][0], None
    if fault == "missing_table":
        path = copy_store(good, folder / "damaged.db", "DROP TABLE metrics")
        return f"sqlite:///{path}", path
    if fault == "unmigrated":
        path = copy_store(good, folder / "unmigrated.db", "DROP TABLE alembic_version")
        return f"sqlite:///{path}", path
    return f"sqlite:///{good.db}", good.db  # locked: the good store itself


def snapshot(path: Path | None) -> object:
    if path is None:
        return None
    try:
        return dump(path)
    except sqlite3.DatabaseError:
        return path.read_bytes()


# Every verb meets one fault; every fault meets a reader, a writer and the board (the mechanism is shared).
ON_EVERY_VERB = "not_sqlite"
SOME_VERBS = ("leaderboard", "evaluate", "serve")


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_store_that_cannot_be_opened_is_one_clear_error(good_store, tmp_path, fault):
    url, path = make_fault(fault, good_store, tmp_path)
    before, good_before = snapshot(path), dump(good_store.db)
    env = {**good_store.env, "HARNESS_DB_URL": url, "HARNESS_DB_BUSY_TIMEOUT_MS": "300"}
    verbs = store_verbs(good_store, tmp_path)
    if fault != ON_EVERY_VERB:
        verbs = {verb: verbs[verb] for verb in SOME_VERBS}
    lock = None
    if fault == "locked":  # another writer holding the file exclusively, past the busy timeout
        lock = sqlite3.connect(good_store.db, isolation_level=None)
        lock.execute("PRAGMA locking_mode=EXCLUSIVE")
        lock.execute("BEGIN EXCLUSIVE")
        lock.execute("UPDATE submissions SET name = name")
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:  # the verbs' start-up is most of the time
            results = dict(
                zip(
                    verbs,
                    pool.map(lambda args: run_cli(*args, env=env, timeout=TIMEOUT_S), verbs.values()),
                    strict=True,
                )
            )
    finally:
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
    for result in results.values():
        assert_one_error(result, *FAULTS[fault][1])
    assert set(results) == set(verbs)
    assert snapshot(path) == before, "a refused store must be left as it was"
    assert dump(good_store.db) == good_before
    assert not (tmp_path / "exported.json").exists()


def test_a_foreign_sqlite_file_is_not_turned_into_a_store(good_store, tmp_path):
    path = tmp_path / "other-app.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()
    before = dump(path)
    env = {**good_store.env, "HARNESS_DB_URL": f"sqlite:///{path}"}
    assert_one_error(run_cli("leaderboard", "--track", "classification", env=env), "another program's database")
    assert_one_error(run_cli("serve", "--port", str(free_port()), env=env), "another program's database")
    assert dump(path) == before


# ------------------------------------------------------------------------------------------------------------
# report files that cannot be written


def results_file(path: Path, run_id: int) -> Path:
    """A results file of one run, as `harness export` writes it (made up: the gate needs no store)."""
    samples = [4.0, 4.01, 3.99] * 3
    run = {
        "run_id": run_id,
        "submission": "tiny",
        "variant": "fp32",
        "track": "classification",
        "track_version": "1",
        "hardware_class": "cpu-test",
        "status": "ok",
        "metrics": {"top1": 0.8},
        "primary_metric": "top1",
        "higher_is_better": True,
        "latency": {"p50_ms": 4.0, "repeats": 3, "noisy": False, "noise_reasons": [], "samples_ms": samples},
    }
    path.write_text(json.dumps({"harness_version": "0.1.0", "runs": [run]}))
    return path


@pytest.mark.parametrize(
    ("option", "target", "words"),
    [
        ("-o", "missing_dir/x.xml", ["--output", "does not exist"]),
        ("--junit", "baseline.json/x.xml", ["--junit", "is a file, not a folder"]),
        ("--markdown", ".", ["--markdown", "is a folder"]),
        ("--markdown", "/proc/harness-gate.md", ["/proc/harness-gate.md"]),  # refused by the kernel, even to root
    ],
)
def test_gate_report_that_cannot_be_written_is_a_user_error_not_a_regression(
    good_store, tmp_path, option, target, words
):
    baseline, candidate = results_file(tmp_path / "baseline.json", 1), results_file(tmp_path / "candidate.json", 2)
    good_before = dump(good_store.db)
    path = target if target.startswith("/") else str(tmp_path / target)
    args = ["gate", "--baseline", str(baseline), "--candidate", str(candidate), option, path]
    assert_one_error(run_cli(*args, env=good_store.env, timeout=TIMEOUT_S), *words)
    assert not (tmp_path / "missing_dir").exists()
    assert dump(good_store.db) == good_before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_gate_report_into_a_read_only_folder(good_store, tmp_path):
    baseline, candidate = results_file(tmp_path / "baseline.json", 1), results_file(tmp_path / "candidate.json", 2)
    locked = tmp_path / "read-only"
    locked.mkdir(mode=0o500)
    args = ["gate", "--baseline", str(baseline), "--candidate", str(candidate), "--junit", str(locked / "g.xml")]
    assert_one_error(run_cli(*args, env=good_store.env), "not writable")


def test_gate_and_export_take_json(good_store, tmp_path):
    baseline, candidate = results_file(tmp_path / "baseline.json", 1), results_file(tmp_path / "candidate.json", 2)
    report = tmp_path / "gate.md"
    args = ["gate", "--baseline", str(baseline), "--candidate", str(candidate), "--markdown", str(report), "--json"]
    gated = run_cli(*args, env=good_store.env)
    assert gated.returncode == 0, gated.stderr
    assert json.loads(gated.stdout)["exit_code"] == 0 and report.read_text().startswith("###")
    refused = run_cli("export", "1", "-o", str(baseline / "x.json"), "--json", env=good_store.env)
    assert_one_error(refused, "--output", "is a file, not a folder")


# ------------------------------------------------------------------------------------------------------------
# submissions, interrupts, the version


def test_check_and_submit_refuse_the_same_fault_alike(good_store, tmp_path):
    sub = make_submission(tmp_path, "broken", module_body="import a_module_that_does_not_exist\n")
    good_before = dump(good_store.db)
    checked = run_cli("check", str(sub), env=good_store.env)
    submitted = run_cli("submit", str(sub), env=good_store.env)
    assert checked.returncode == submitted.returncode == 2, checked.stdout + submitted.stderr
    assert "fails to import" in checked.stdout
    assert "Traceback" not in checked.stderr + submitted.stderr
    assert submitted.stderr.startswith("error: submission refused")
    assert submitted.stderr.count("fix:") == 1, submitted.stderr
    assert dump(good_store.db) == good_before


def test_evaluate_error_starts_with_the_error(good_store):
    assert_one_error(run_cli("evaluate", "--track", "no-such-track", env=good_store.env), "no-such-track")


SLEEPY = """
    import os
    import time
    from pathlib import Path


    def build(ctx):
        Path(os.environ["SLEEPY_MARKER"]).touch()
        time.sleep(120)
"""


def test_ctrl_c_prints_interrupted_and_exits_130(good_store, tmp_path):
    sub = make_submission(tmp_path, "sleepy", module_body=SLEEPY)
    marker = tmp_path / "building"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "harness"), "check", str(sub)],
        env={**os.environ, **good_store.env, "SLEEPY_MARKER": str(marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's Ctrl-C finds it
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "interrupted"


def test_version_is_the_distributions():
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"vision-harness {version('vision-harness')}"


# ------------------------------------------------------------------------------------------------------------
# serve: the network


def test_loopback_addresses():
    from harness.cli.board import is_loopback

    assert all(map(is_loopback, ("127.0.0.1", "::1", "[::1]", "localhost", "LOCALHOST", "127.0.1.1")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.168.1.5", "example.org", "")))


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("::1", False)])
def test_serve_warns_when_the_board_is_reachable_from_the_network(good_store, tmp_path, host, warned):
    """A store that cannot be opened stops `serve` before it binds anything: the warning comes first."""
    noise = tmp_path / "noise.db"
    noise.write_bytes(b"\x01" * 4096)
    env = {**good_store.env, "HARNESS_DB_URL": f"sqlite:///{noise}"}
    result = run_cli("serve", "--host", host, "--port", str(free_port()), env=env, timeout=TIMEOUT_S)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    if warned:
        assert len(warnings) == 1 and host in warnings[0] and "no login" in warnings[0], result.stderr
    else:
        assert not warnings, result.stderr


def test_serve_starts_streamlit_without_usage_statistics_or_external_address_lookups():
    from streamlit import net_util

    from harness.leaderboard_app import server

    for host in ("127.0.0.1", "0.0.0.0"):
        options = server.server_options(8501, host)
        assert options["browser.gatherUsageStats"] is False
        assert options["server.headless"] is True  # no browser opened
        # The welcome banner is what looks up the public address on a wildcard host.
        assert options["logger.hideWelcomeMessage"] is True
        assert options["server.address"] == host and options["server.port"] == 8501
    # The cross-origin check's lookup: answered from the filled cache, without asking a web service.
    server._never_look_up_external_ip()
    assert net_util.get_external_ip() == server.NO_EXTERNAL_IP
