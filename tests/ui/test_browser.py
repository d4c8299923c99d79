"""The leaderboard in a real browser: `harness serve` on loopback, every page opened in headless Chromium
(Debian's `chromium`, driven by Playwright), its table rows and charts checked, screenshots saved to
`test-artifacts/leaderboard/`. Also the page timings on the large synthetic store (1,000 submissions x 3
variants) that docs/BENCHMARKS.md (leaderboard section) reports.

Skipped, with the reason, where Chromium or Playwright is absent (`scripts/install_chromium.sh` installs it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.leaderboard_app.ranking import pareto_mask
from harness.tracks import get_card
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("HARNESS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "leaderboard"
START_TIMEOUT_S = 180
RENDER_TIMEOUT_MS = 120_000
# Vega renders each chart layer as an SVG group classed `<layer name>_marks`, one element per point or bar.
CHART = '[data-testid="stVegaLiteChart"] svg'
CHART_MARKS = f"{CHART} g.role-mark > *"
# (url path, title shown, has a chart)
PAGES = [
    ("", "Lightweight image classification", False),
    ("pareto", "Accuracy / cost trade-off", True),
    ("submission", None, True),
    ("compare", "Compare two runs", True),
    ("history", "Best score over time", True),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, what: str, log: Path | None = None) -> None:
    """Until the Streamlit server at `base` answers its health check; fails when `proc` exits (with its `log`)
    or after START_TIMEOUT_S."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        assert proc.poll() is None, f"{what} exited: {log.read_text() if log else ''}"
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                return
        assert time.monotonic() < deadline, f"{what} did not answer in {START_TIMEOUT_S} s"
        time.sleep(0.5)


def streamlit_flags() -> list[str]:
    """`harness serve`'s Streamlit options as `streamlit run` flags, for pages served without the app."""
    from harness.leaderboard_app.server import SERVER_OPTIONS

    return [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SERVER_OPTIONS.items()]


@contextlib.contextmanager
def served(db_url: str, env: dict[str, str]) -> Iterator[str]:
    """`harness serve` on a free loopback port, stopped (its whole process group) afterwards."""
    port = free_port()
    exe = Path(sys.executable).parent / "harness"
    log = ARTIFACTS / f"serve-{port}.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            [str(exe), "serve", "--port", str(port), "--db", db_url, "--host", "127.0.0.1"],
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, "harness serve", log)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install_chromium.sh (or set HARNESS_CHROMIUM)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def _wait_idle(page) -> None:
    """Until the script run has finished (Streamlit shows its status widget while a run is in progress)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=RENDER_TIMEOUT_MS
    )


# The standings page's table (harness/leaderboard_app/table.js, inside the component's open shadow root, which
# Playwright's CSS selectors pierce).
STANDINGS = ".standings"
STANDINGS_DRAWN = f"{STANDINGS} tbody td"


def _standings_rows(page) -> int:
    return page.locator(f"{STANDINGS} tbody tr").count()


def _standings_column(page, column: int) -> list[str]:
    return [text.strip() for text in page.locator(f"{STANDINGS} tbody tr td:nth-child({column + 1})").all_inner_texts()]


def _cell(page, column: int, row: int, table: int = 0) -> str:
    grid = page.locator('[data-testid="stDataFrame"]').nth(table)
    return grid.locator(f'[data-testid="glide-cell-{column}-{row}"]').inner_text().strip()


def _rows(page, table: int = 0) -> int:
    grid = page.locator('[data-testid="stDataFrame"]').nth(table)
    return grid.locator('[data-testid^="glide-cell-0-"]').count()


def _ranked(seeded_store, track: str) -> list[dict]:
    """The CLI's standings of `track` on the hardware class with the most entries (the one the page shows)."""
    standings = json.loads(run_cli("leaderboard", "--track", track, "--json", env=seeded_store.env).stdout)
    hardware = max(
        {r["hardware_class"] for r in standings}, key=lambda h: sum(r["hardware_class"] == h for r in standings)
    )
    return [r for r in standings if r["hardware_class"] == hardware]


def test_every_page_renders_in_chromium(seeded_store, browser):
    from playwright.sync_api import expect

    ranked = _ranked(seeded_store, "classification")
    # Tall: Streamlit scrolls inside its main block, so a full-page screenshot holds one viewport only.
    page = browser.new_page(viewport={"width": 1500, "height": 2400})
    with served(seeded_store.url, seeded_store.env) as base:
        for path, title, has_chart in PAGES:
            page.goto(f"{base}/{path}")
            drawn = STANDINGS_DRAWN if path == "" else '[data-testid="stDataFrame"]'
            page.wait_for_selector(drawn, state="attached", timeout=RENDER_TIMEOUT_MS)
            if has_chart:
                page.wait_for_selector(CHART_MARKS, state="attached", timeout=RENDER_TIMEOUT_MS)
            _wait_idle(page)
            page.wait_for_timeout(500)  # let the grid and the charts finish painting before the screenshot
            page.screenshot(path=str(ARTIFACTS / f"{path or 'standings'}.png"), full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0, f"/{path} raised"
            assert "Page not found" not in page.content()
            heading = page.locator("h1").first.inner_text()
            assert heading == (title or ranked[0]["submission"]), heading
            if has_chart:
                assert page.locator(CHART_MARKS).count() > 0
            if path == "pareto":
                # The latency chart draws every entry of the class once: the front in red, the rest faded.
                mask = pareto_mask(
                    np.array([r["metrics"]["top1"] for r in ranked]),
                    np.array([r["latency"]["ranked_ms"] for r in ranked]),
                    True,
                )
                assert page.locator(f"{CHART} g.latency_ms_front_marks > path").count() == int(mask.sum())
                assert page.locator(f"{CHART} g.latency_ms_dominated_marks > path").count() == int((~mask).sum())
            if path == "":
                assert _standings_rows(page) == len(ranked)
                assert _standings_column(page, 0) == [str(r["rank"]) for r in ranked]
                assert _standings_column(page, 1) == [r["submission"] for r in ranked]
                assert _standings_column(page, 2) == [r["variant"] for r in ranked]
                # A click on a header sorts all rows by that column's values, a second click the other way.
                header = page.locator(f"{STANDINGS} th", has_text="latency ms")
                header.click()
                by_latency = sorted(ranked, key=lambda r: (r["latency"]["ranked_ms"], r["rank"]))
                assert _standings_column(page, 0) == [str(r["rank"]) for r in by_latency]
                assert header.get_attribute("aria-sort") == "ascending"
                header.click()
                assert header.get_attribute("aria-sort") == "descending"
                slowest = max(r["latency"]["ranked_ms"] for r in ranked)
                slowest_ranks = {str(r["rank"]) for r in ranked if r["latency"]["ranked_ms"] == slowest}
                assert _standings_column(page, 0)[0] in slowest_ranks
                # The filters open on demand, as Streamlit widgets.
                page.get_by_role("button", name="Filters and budgets").click()
                page.get_by_label("Max latency (ms)").wait_for(timeout=RENDER_TIMEOUT_MS)
                page.screenshot(path=str(ARTIFACTS / "standings-filters.png"), full_page=True)
            if path == "submission":
                variants = {_cell(page, 0, i) for i in range(_rows(page))}
                assert variants == {r["variant"] for r in ranked if r["submission"] == ranked[0]["submission"]}
            if path == "compare":
                assert _cell(page, 0, 0) == "submission" and _cell(page, 1, 0) == ranked[0]["submission"]
        # A failed submission's page, opened by its link: the reason and the log tail are on it.
        page.goto(f"{base}/submission?submission={seeded_store.failing}")
        page.wait_for_selector('[data-testid="stExpander"]', timeout=RENDER_TIMEOUT_MS)
        _wait_idle(page)
        expander = page.locator('[data-testid="stExpander"]').first
        assert "failed" in expander.inner_text() and "cannot handle batches larger than 2" in expander.inner_text()
        expander.locator("summary").click()
        page.wait_for_selector('[data-testid="stExpander"] [data-testid="stCode"]', timeout=RENDER_TIMEOUT_MS)
        page.screenshot(path=str(ARTIFACTS / "submission-failed.png"), full_page=True)
        if seeded_store.references:  # else the seed evaluated the classification track only
            # The sidebar's track picker (a native select): another track's standings, ranked as the CLI ranks them,
            # and the choice kept on the next page.
            detection = _ranked(seeded_store, "small-object")
            page.goto(base)
            page.wait_for_selector(STANDINGS_DRAWN, state="attached", timeout=RENDER_TIMEOUT_MS)
            track = page.get_by_label("Track")
            assert track.input_value() == "classification"
            track.select_option("small-object")
            page.wait_for_selector("h1:has-text('Small-object detection')", timeout=RENDER_TIMEOUT_MS)
            # The heading changes first; the previous table stays until the run's own table replaces it.
            rows = page.locator(f"{STANDINGS} tbody tr")
            expect(rows).to_have_count(len(detection), timeout=RENDER_TIMEOUT_MS)
            expect(rows.first.locator("td").nth(1)).to_have_text(detection[0]["submission"], timeout=RENDER_TIMEOUT_MS)
            _wait_idle(page)
            assert _standings_column(page, 1) == [r["submission"] for r in detection]
            assert _standings_column(page, 0) == [str(r["rank"]) for r in detection]
            assert track.input_value() == "small-object"
            page.screenshot(path=str(ARTIFACTS / "standings-small-object.png"), full_page=True)
            page.locator('[data-testid="stSidebarNav"] a', has_text="Pareto fronts").click()
            page.wait_for_selector(f"text=Track {get_card('small-object').key}", timeout=RENDER_TIMEOUT_MS)
            page.wait_for_selector(CHART_MARKS, state="attached", timeout=RENDER_TIMEOUT_MS)
            assert page.get_by_label("Track").input_value() == "small-object"
    page.close()


class ScriptRuns:
    """Watches the app's websocket for Streamlit's `script_finished` messages, so a timing stops when the
    server has finished the run the reader caused, not at a guessed moment."""

    def __init__(self, page) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._message = ForwardMsg
        self.finished_at: list[float] = []
        page.on("websocket", self._watch)
        self.page = page

    def _watch(self, websocket) -> None:
        websocket.on("framereceived", self._frame)

    def _frame(self, payload) -> None:
        if isinstance(payload, bytes | bytearray):
            with contextlib.suppress(Exception):
                if self._message.FromString(bytes(payload)).WhichOneof("type") == "script_finished":
                    self.finished_at.append(time.perf_counter())

    def wait_finished_after(self, start: float) -> float:
        """When the first run finished after `start` (perf_counter seconds)."""
        deadline = time.monotonic() + RENDER_TIMEOUT_MS / 1000
        while not any(t > start for t in self.finished_at):
            assert time.monotonic() < deadline, "the app never finished its run"
            self.page.wait_for_timeout(10)
        return min(t for t in self.finished_at if t > start)


def _timed(page, runs: ScriptRuns, action, rendered: str, timings: dict[str, float], name: str) -> None:
    """Seconds from an action until the script run it caused has finished (`<name>_server_s`: the app's
    part) and until `rendered` is in the page with the table's grid drawn (`<name>_s`: what the reader waits,
    browser work included)."""
    start = time.perf_counter()
    action()
    finished = runs.wait_finished_after(start)
    page.wait_for_selector(rendered, state="attached", timeout=RENDER_TIMEOUT_MS)
    timings[f"{name}_s"] = time.perf_counter() - start
    timings[f"{name}_server_s"] = finished - start


def _new_tab_view(context, base: str, table: str, timings: dict[str, float], name: str) -> None:
    """A reader opening the leaderboard in a new tab of a browser that has shown it before."""
    tab = context.new_page()
    _timed(tab, ScriptRuns(tab), lambda: tab.goto(base), table, timings, name)
    assert _standings_rows(tab) == 100 and _standings_column(tab, 0)[0] == "1"
    tab.close()


@pytest.mark.slow
@pytest.mark.heavy_benchmark  # builds the 1,000 x 3 store; a benchmark run on demand, figures in BENCHMARKS.md
def test_page_interactive_on_a_large_store(synthetic_store, browser, session_home, tmp_path):
    """SYNTHETIC store of 1,000 submissions x 3 variants: seconds from a reader's action until the script run it
    caused is over and its table or chart is drawn: (a) first view after `harness serve` started (its warm-up
    done; the browser's cache empty), (b) a new session in a new tab of that browser (a private window: HTTP
    cache warm, no compiled-code cache), (c) Refresh (cache cleared, the standings query runs again), (c2) the
    filters opened (Streamlit loads the widgets' code then), (d) a budget typed in (re-rank of 1,500 entries),
    (e) the Pareto page from the sidebar (the tab's first chart), and (f) as (b) in a browser profile kept on
    disk, as a returning reader's browser keeps it (HTTP cache and V8's compiled-code cache, filled by a visit in
    an earlier run of that browser)."""
    table = STANDINGS_DRAWN
    timings: dict[str, float] = {"load_average_before": os.getloadavg()[0]}
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    runs = ScriptRuns(page)
    with served(synthetic_store.url, {"HARNESS_HOME": str(session_home)}) as base:
        _timed(page, runs, lambda: page.goto(base), table, timings, "first_view")
        assert _standings_rows(page) == 100 and _standings_column(page, 0)[0] == "1"
        assert page.get_by_text("entries on").first.inner_text().startswith("1500 of 1500 entries")
        more = page.locator(f"{STANDINGS} .footer button")
        more.click()
        assert _standings_rows(page) == 200
        _new_tab_view(context, base, table, timings, "new_session_view")
        refresh = page.get_by_role("button", name="Refresh")
        _timed(page, runs, refresh.click, table, timings, "refresh_uncached")
        open_filters = page.get_by_role("button", name="Filters and budgets").click
        latency_box = page.get_by_label("Max latency (ms)")
        _timed(page, runs, open_filters, 'input[aria-label="Max latency (ms)"]', timings, "filters_opened")

        def set_budget() -> None:
            latency_box.fill("1")
            latency_box.press("Enter")

        _timed(page, runs, set_budget, "text=within the budget", timings, "budget_rerank")
        within = page.get_by_text("entries on").first.inner_text()
        page.screenshot(path=str(ARTIFACTS / "standings-synthetic-budget.png"), full_page=True)
        pareto_link = page.locator('[data-testid="stSidebarNav"] a', has_text="Pareto fronts")
        front_points = f"{CHART} g.latency_ms_front_marks > path"
        _timed(page, runs, pareto_link.click, front_points, timings, "pareto_from_sidebar")
        drawn = [page.locator(f"{CHART} g.latency_ms_{layer}_marks > path").count() for layer in ("front", "dominated")]
        page.screenshot(path=str(ARTIFACTS / "pareto-synthetic.png"), full_page=True)
        context.close()

        profile = tmp_path / "browser-profile"
        launch = {"executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS, "headless": True}
        earlier = browser.browser_type.launch_persistent_context(str(profile), **launch)
        visit = earlier.new_page()
        visit.goto(base)
        visit.wait_for_selector(table, state="attached", timeout=RENDER_TIMEOUT_MS)
        earlier.close()
        returning = browser.browser_type.launch_persistent_context(
            str(profile), viewport={"width": 1500, "height": 1100}, **launch
        )
        first_tab = returning.new_page()
        first_tab.goto(base)
        first_tab.wait_for_selector(table, state="attached", timeout=RENDER_TIMEOUT_MS)
        _new_tab_view(returning, base, table, timings, "new_session_kept_profile_view")
        returning.close()
    timings["load_average_after"] = os.getloadavg()[0]
    (ARTIFACTS / "page-timings.json").write_text(json.dumps(timings, indent=2))
    print("\n" + json.dumps(timings, indent=2) + f"\n{within}")
    assert 0 < int(within.split(" ")[0]) < 1500
    # Every entry of the hardware class is one point of the latency chart: some on the front, the rest faded.
    assert drawn[0] >= 1 and sum(drawn) == 1500, drawn
    # Page times are figures for docs/BENCHMARKS.md (target: interactive in < 2 s), not assertions: they
    # depend on the machine and its load.
    slow = [
        name.removesuffix("_s")
        for name, value in timings.items()
        if name.endswith("view_s")
        or name in ("refresh_uncached_s", "filters_opened_s", "budget_rerank_s", "pareto_from_sidebar_s")
        if value >= 2.0
    ]
    if slow:
        warnings.warn(f"over the 2 s target: {slow} (load {timings['load_average_after']:.1f})", stacklevel=1)


@pytest.mark.slow
@pytest.mark.heavy_benchmark
def test_blank_streamlit_page_interactive_floor(browser, tmp_path):
    """The floor under the leaderboard's figures: a Streamlit page that shows one heading, served by the same
    Streamlit with the same options, timed like the leaderboard's first view and new-tab session."""

    script = tmp_path / "blank.py"
    script.write_text('import streamlit as st\n\nst.title("blank")\n')
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script),
            f"--server.port={port}",
            "--server.address=127.0.0.1",
            *streamlit_flags(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    timings: dict[str, float] = {"load_average_before": os.getloadavg()[0]}
    try:
        wait_healthy(base, proc, "streamlit run")
        context = browser.new_context(viewport={"width": 1500, "height": 1100})
        for name in ("first_view", "new_session_view"):
            tab = context.new_page()
            start = time.perf_counter()
            tab.goto(base)
            tab.wait_for_selector("h1:has-text('blank')", timeout=RENDER_TIMEOUT_MS)
            timings[f"{name}_s"] = time.perf_counter() - start
        context.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    timings["load_average_after"] = os.getloadavg()[0]
    (ARTIFACTS / "blank-page-timings.json").write_text(json.dumps(timings, indent=2))
    print("\n" + json.dumps(timings, indent=2))
    assert timings["first_view_s"] > 0 and timings["new_session_view_s"] > 0
