"""Interleaved A/B of what a reader's first view and new tab of the leaderboard cost, per kind of element.

One Streamlit server per variant, all up at once, on the large synthetic store (1,000 submissions x 3 variants,
built on first use: minutes). Per round and variant: a fresh headless-Chromium context, its first view (empty
browser cache), then a second tab (a new session); seconds from `goto` until the variant's table (or heading)
is attached. Variants are interleaved round by round, so the machine's load falls on all of them alike.

Variants (the standings page's shape: navigation of five pages, a sidebar with a track picker and Refresh, a
title, caption, filters button, entry count and the ranked 1,500 entries of one hardware class):
  blank                one heading, nothing else: Streamlit's own floor
  picker-selectbox     track picker as st.selectbox        picker-radio        as st.radio
  picker-segmented     as st.segmented_control             picker-none         no track picker
  picker-component     as harness's picker component (what the app uses)
  sidebar-after        picker-component with the sidebar drawn after the page
  grid                 picker-component with the table as st.dataframe instead of harness's table component
  app                  `harness serve` itself

Usage: .venv/bin/python scripts/bench_first_view.py [--rounds 6] [--variants picker-selectbox,picker-none,...]
Figures: docs/BENCHMARKS.md, "Leaderboard speed".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.benchmarks.synthetic_store import cached_synthetic_store  # noqa: E402
from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS, free_port, streamlit_flags, wait_healthy  # noqa: E402

# (sidebar, main, order) per variant, read by PAGE from the environment.
VARIANTS = {
    "blank": ("none", "blank", "before"),
    "picker-selectbox": ("selectbox", "component", "before"),
    "picker-radio": ("radio", "component", "before"),
    "picker-segmented": ("segmented", "component", "before"),
    "picker-none": ("none", "component", "before"),
    "picker-component": ("component", "component", "before"),
    "sidebar-after": ("component", "component", "after"),
    "grid": ("component", "dataframe", "before"),
}
READY = {"blank": "h1", "grid": '[data-testid="stDataFrame"] canvas', "default": ".standings td"}

PAGE = """
import os

import streamlit as st

from harness.leaderboard_app import common, ranking, table
from harness.leaderboard_app.picker import picker
from harness.store import queries
from harness.store.repo import BoardKey
from harness.tracks import get_card

SIDEBAR, MAIN, ORDER = os.environ["AB_SIDEBAR"], os.environ["AB_MAIN"], os.environ["AB_ORDER"]
TRACKS = {"classification": "Classification", "small-object": "Small-object detection", "text-detection": "Text"}


@st.cache_resource
def ranked():
    card = get_card("classification")
    engine = queries.read_only_engine(os.environ["HARNESS_DB_URL"])
    entries = queries.standings(engine, BoardKey.for_card(card), ranking.macs_key(card), card.metrics)
    frame = ranking.rank(entries, card.higher_is_better, hardware_class=ranking.hardware_classes(entries)[0])
    columns = common.run_columns(frame, card, ["rank", "submission", "variant"], ["finished_at", "run_id"])
    return card, frame[columns], table.table_data(frame, columns, common.macs_help(card))


def standings():
    card, frame, data = ranked()
    st.title(card.title)
    st.caption(f"Track {card.key} · ranked by {card.primary_metric}")
    st.button("Filters and budgets", icon=":material/tune:")
    st.markdown(f"**{len(frame)} of {len(frame)} entries**")
    if MAIN == "component":
        table.standings_table(data, key="standings_table")
    else:
        st.dataframe(frame, hide_index=True)


def other():
    st.title("other")


def sidebar():
    with st.sidebar:
        if SIDEBAR == "selectbox":
            st.selectbox("Track", list(TRACKS), format_func=TRACKS.get)
        elif SIDEBAR == "radio":
            st.radio("Track", list(TRACKS), format_func=TRACKS.get)
        elif SIDEBAR == "segmented":
            st.segmented_control("Track", list(TRACKS), format_func=TRACKS.get, default="classification")
        elif SIDEBAR == "component":
            picker("Track", TRACKS, "classification", key="track_picker")
        st.button("Refresh")


if MAIN == "blank":
    st.title("blank")
else:
    pages = [
        st.Page(standings, title="Standings", icon=":material/leaderboard:", default=True),
        *[st.Page(other, title=name, url_path=name) for name in ("pareto", "submission", "compare", "history")],
    ]
    navigation = st.navigation(pages)
    if ORDER == "before":
        sidebar()
    navigation.run()
    if ORDER == "after":
        sidebar()
"""


def _start(name: str, script: Path, db_url: str, logs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HARNESS_DB_URL": db_url, "PYTHONPATH": str(ROOT)}
    if name == "app":
        cmd = [str(Path(sys.executable).parent / "harness"), "serve", "--port", str(port), "--db", db_url]
        cmd += ["--host", "127.0.0.1"]
    else:
        env.update(zip(("AB_SIDEBAR", "AB_MAIN", "AB_ORDER"), VARIANTS[name], strict=True))
        cmd = [sys.executable, "-m", "streamlit", "run", str(script), f"--server.port={port}"]
        cmd += ["--server.address=127.0.0.1", *streamlit_flags()]
    with open(logs / f"{name}.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--variants", default="blank,picker-selectbox,picker-none,picker-component,grid,app")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS and n != "app"]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {[*VARIANTS, 'app']}")
    if not CHROMIUM.exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}: run scripts/install_chromium.sh (or set HARNESS_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    store = cached_synthetic_store(Path(tempfile.gettempdir()) / "harness-test-cache" / "leaderboard-synthetic")
    work = Path(tempfile.mkdtemp(prefix="bench-first-view-"))
    script = work / "page.py"
    script.write_text(PAGE)
    servers = {name: _start(name, script, store.url, work) for name in names}
    times: dict[str, dict[str, list[float]]] = {n: {"first_view": [], "new_tab": []} for n in names}
    try:
        for name, (proc, base) in servers.items():
            wait_healthy(base, proc, name, work / f"{name}.log")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            for name, (_, base) in servers.items():  # each server's first script run, outside the figures
                context = browser.new_context()
                context.new_page().goto(base)
                context.pages[0].wait_for_selector(READY.get(name, READY["default"]), state="attached")
                context.close()
            for _ in range(args.rounds):
                for name, (_, base) in servers.items():
                    time.sleep(1.0)
                    context = browser.new_context(viewport={"width": 1500, "height": 1100})
                    for kind in ("first_view", "new_tab"):
                        tab = context.new_page()
                        start = time.perf_counter()
                        tab.goto(base)
                        tab.wait_for_selector(READY.get(name, READY["default"]), state="attached", timeout=120_000)
                        times[name][kind].append(time.perf_counter() - start)
                    context.close()
            browser.close()
    finally:
        for proc, _ in servers.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    print(f"load average after: {os.getloadavg()[0]:.1f}; {args.rounds} rounds; medians in seconds")
    for name in names:
        first, tab = (statistics.median(times[name][k]) for k in ("first_view", "new_tab"))
        print(f"{name:18s} first view {first:.2f}   new tab {tab:.2f}")
    (work / "times.json").write_text(json.dumps(times, indent=2))
    print(f"all times: {work / 'times.json'}")


if __name__ == "__main__":
    main()
