"""The Pareto page's charts fit their columns at common window widths, and the names on the front stay inside
the plot, clear of the axes' tick labels: measured from the bounding rectangles that headless Chromium reports
for the drawn SVG (the chart, every text in it, the axes' labels and grid), with screenshots saved to
`test-artifacts/leaderboard/`. Two stores: the hostile one (long names) and a small synthetic one (more points)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from harness.tracks import get_card
from tests.benchmarks.synthetic_store import build_synthetic_store
from tests.ui import hostile_store as hostile
from tests.ui.test_browser import (  # noqa: F401  (`browser` is a fixture)
    ARTIFACTS,
    CHART,
    RENDER_TIMEOUT_MS,
    _wait_idle,
    browser,
    served,
)

WIDTHS = (1280, 1400, 1920)
TOLERANCE_PX = 1.0  # sub-pixel rounding of text boxes

# Per chart: its column's box, the box of the SVG and everything drawn in it, the plot area (the grid), the
# axes' tick labels and titles, and the names on the front.
MEASURE = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].map((chart) => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const svg = chart.querySelector('svg');
  const drawn = [svg, ...svg.querySelectorAll('text, path, line, rect')].map(box)
    .filter((b) => b[2] > b[0] || b[3] > b[1]);
  const union = (boxes) => boxes.reduce((u, b) => [Math.min(u[0], b[0]), Math.min(u[1], b[1]),
                                                   Math.max(u[2], b[2]), Math.max(u[3], b[3])]);
  return {
    column: box(chart.closest('[data-testid="stColumn"]')),
    drawn: union(drawn),
    plot: union([...svg.querySelectorAll('g.role-axis-grid')].map(box)),
    axis_texts: [...svg.querySelectorAll('g.role-axis-label text, g.role-axis-title text')]
      .filter((t) => t.textContent).map(box),
    labels: [...svg.querySelectorAll("g[class*='_front_labels'] text")].filter((t) => t.textContent)
      .map((t) => ({text: t.textContent, box: box(t)})),
  };
})"""


def _inside(inner: list[float], outer: list[float]) -> bool:
    return (
        inner[0] >= outer[0] - TOLERANCE_PX
        and inner[1] >= outer[1] - TOLERANCE_PX
        and inner[2] <= outer[2] + TOLERANCE_PX
        and inner[3] <= outer[3] + TOLERANCE_PX
    )


def _overlap(a: list[float], b: list[float]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > TOLERANCE_PX and min(a[3], b[3]) - max(a[1], b[1]) > TOLERANCE_PX


@pytest.fixture(scope="module", params=["hostile", "synthetic"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, session_home: Path):
    """(name, store URL, environment, the page's query) of a store built in a temporary folder."""
    root = tmp_path_factory.mktemp(f"layout-{request.param}")
    if request.param == "hostile":
        built = hostile.build_hostile_store(root)
        query = "?track=" + urllib.parse.quote(hostile.TRACK_NAME)
        return request.param, built.url, {**built.env, "HARNESS_HOME": str(session_home)}, query
    url = f"sqlite:///{root / 'harness.db'}"
    build_synthetic_store(url, get_card("classification"), submissions=16, samples=30)
    return request.param, url, {"HARNESS_HOME": str(session_home)}, "?track=classification"


def test_pareto_charts_fit_their_columns(store, browser):  # noqa: F811
    name, url, env, query = store
    with served(url, env) as base:
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 1400})
            page.goto(f"{base}/pareto{query}")
            page.wait_for_selector(f"{CHART} g.macs_front_marks > path", state="attached", timeout=RENDER_TIMEOUT_MS)
            _wait_idle(page)
            page.wait_for_timeout(800)  # the charts take their columns' width after the first paint
            page.screenshot(path=str(ARTIFACTS / f"pareto-layout-{name}-{width}.png"), full_page=True)
            charts = page.evaluate(MEASURE)
            page.close()
            assert len(charts) == 2, f"{width} px: {len(charts)} charts"
            columns = [chart["column"] for chart in charts]
            assert columns[0][2] <= columns[1][0], f"{width} px: the panels are side by side"
            labelled = 0
            for index, chart in enumerate(charts):
                where = f"{name}, {width} px, chart {index}"
                assert _inside(chart["drawn"], chart["column"]), f"{where}: {chart['drawn']} outside {chart['column']}"
                # Sized to the column, not merely smaller: the drawing spans most of it.
                span = (chart["drawn"][2] - chart["drawn"][0]) / (chart["column"][2] - chart["column"][0])
                assert span > 0.9, f"{where}: the chart fills {span:.0%} of its column"
                assert chart["axis_texts"], f"{where}: no axis labels measured"
                for label in chart["labels"]:
                    assert _inside(label["box"], chart["plot"]), f"{where}: {label} outside the plot {chart['plot']}"
                    hits = [axis for axis in chart["axis_texts"] if _overlap(label["box"], axis)]
                    assert not hits, f"{where}: {label} overlaps the axis labels {hits}"
                labelled += len(chart["labels"])
            assert labelled >= 2, f"{name}, {width} px: too few front labels to measure ({labelled})"
