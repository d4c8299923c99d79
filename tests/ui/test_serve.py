"""`harness serve`: the warm-up it does before the server answers, and its errors for a store it cannot open."""

from __future__ import annotations

import json

from harness.leaderboard_app.server import warm_up
from tests.conftest import run_cli
from tests.ui.test_browser import free_port


def test_warm_up_reads_the_busiest_tracks_standings(leaderboard_env):
    standings = json.loads(run_cli("leaderboard", "--track", "classification", "--json").stdout)
    warmed = warm_up(leaderboard_env.url)
    # Every ranked entry of the seeded track, over all hardware classes (the page then picks one class).
    assert warmed.entries == len(standings) > 0
    assert "classification@v" in warmed.note and warmed.seconds > 0


def test_warm_up_without_a_store_leaves_the_message_to_the_page(tmp_path):
    missing = tmp_path / "nothing-here.db"
    warmed = warm_up(f"sqlite:///{missing}")
    assert warmed.entries is None and "no store yet" in warmed.note
    assert not missing.exists(), "the leaderboard must never create a store"


def test_serve_refuses_a_store_url_it_cannot_open(tmp_path):
    result = run_cli("serve", "--port", str(free_port()), "--db", "nosuchdialect://host/db", timeout=120)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "cannot open the store at nosuchdialect://host/db" in output
    assert "check --db" in output, "the error says what to fix"
    assert "Traceback" not in output


def test_serve_starts_without_a_store(tmp_path):
    """A store created after the server started is picked up; until then the page says what to run."""
    import urllib.request

    from tests.ui.test_browser import served

    missing = tmp_path / "created-later.db"
    with served(f"sqlite:///{missing}", {}) as base:
        assert urllib.request.urlopen(f"{base}/_stcore/health", timeout=10).read() == b"ok"
    assert not missing.exists()


def test_app_caches_are_left_alone_without_a_streamlit_runtime(leaderboard_env):
    """The cache fill waits for the server's runtime; in a process without one it gives up, having touched
    nothing (no Streamlit cache is created outside a runtime)."""
    import time

    from harness.leaderboard_app.server import fill_app_caches

    start = time.monotonic()
    assert fill_app_caches(leaderboard_env.url, wait_s=0.2) is False
    assert time.monotonic() - start < 5
