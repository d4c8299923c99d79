"""User-controlled text is shown literally on every page of the board: names, variants, errors, hardware
classes and a plugin track card made of Markdown links, bold text and HTML (tests/ui/hostile_store.py), served
by `harness serve` and read back from headless Chromium's DOM. Plus the Markdown escaping itself."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from harness.leaderboard_app.literal import WORD_JOINER, literal
from tests.ui import hostile_store as hostile
from tests.ui.test_browser import (  # noqa: F401  (`browser` is a fixture)
    ARTIFACTS,
    CHART,
    RENDER_TIMEOUT_MS,
    STANDINGS,
    _cell,
    _rows,
    _wait_idle,
    browser,
    served,
)

# Everything in the DOM, open shadow roots included (the standings table and the picker are components): links
# or sources pointing at the hostile URL, inline event handlers, and the elements the hostile HTML or Markdown
# would have made.
SCAN = """() => {
  const all = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      all.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  const show = (el) => el.outerHTML.slice(0, 200);
  return {
    links: all.filter((el) => ['href', 'src', 'xlink:href', 'action', 'formaction'].some(
      (a) => (el.getAttribute(a) || '').includes('example.invalid'))).map(show),
    handlers: all.filter((el) => [...el.attributes].some((a) => a.name.startsWith('on'))).map(show),
    injected: all.filter((el) =>
      (el.tagName === 'IMG' && el.getAttribute('src') === 'x')
      || (['B', 'U', 'I'].includes(el.tagName) && /^(h|u|i|0|1)$/.test(el.textContent.trim()))
      || (el.tagName === 'SCRIPT' && el.textContent.includes('alert'))
      || (['STRONG', 'EM'].includes(el.tagName) && /^(z|bold|title|boom|p)$/.test(el.textContent.trim()))
      || el.classList.contains('katex')).map(show),
  };
}"""


def test_literal_escapes_markdown_html_and_streamlit_syntax():
    text = "x [y](https://e.invalid) **z** <b>h</b> :material/home: :red[r] $x$ a@b.org www.c.org"
    escaped = literal(text)
    for raw in ("[y]", "**", "<b>", ":material/", ":red[", "$x$"):
        assert raw not in escaped, raw
    # Backslash escapes only (CommonMark drops them when rendering), plus invisible joiners against autolinks.
    assert escaped.replace("\\", "").replace(WORD_JOINER, "") == text
    assert "://" + WORD_JOINER in escaped.replace("\\", "") and "@" + WORD_JOINER in escaped.replace("\\", "")
    assert literal("a\n# heading\n- item\n    code") == "a \\# heading \\- item code", "one line, no blocks"
    assert literal(None) == "-" and literal(3) == "3"
    assert literal("gtsnet@fp32") == "gtsnet\\@fp32", "no joiner where no address could be linked"


def _shown(text: str) -> str:
    return text.replace(WORD_JOINER, "").strip()


@pytest.fixture(scope="module")
def hostile_board(tmp_path_factory: pytest.TempPathFactory, session_home: Path):
    store = hostile.build_hostile_store(tmp_path_factory.mktemp("hostile-store"))
    with served(store.url, {**store.env, "HARNESS_HOME": str(session_home)}) as base:
        yield base


def _open(page, url: str, drawn: str) -> None:
    page.goto(url)
    page.wait_for_selector(drawn, state="attached", timeout=RENDER_TIMEOUT_MS)
    _wait_idle(page)
    page.wait_for_timeout(500)  # the charts and grids finish painting


def _assert_inert(page, where: str, dialogs: list[str]) -> None:
    found = page.evaluate(SCAN)
    assert found == {"links": [], "handlers": [], "injected": []}, f"{where}: {found}"
    assert not dialogs, f"{where}: a script ran: {dialogs}"
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where} raised"


def _column(page, column: int, table: int = 0) -> list[str]:
    return [_cell(page, column, row, table) for row in range(_rows(page, table))]


def _check_standings(page) -> None:
    assert _shown(page.locator("h1").first.inner_text()) == hostile.TRACK_TITLE
    names = [text.strip() for text in page.locator(f"{STANDINGS} tbody td:nth-child(2)").all_inner_texts()]
    variants = {text.strip() for text in page.locator(f"{STANDINGS} tbody td:nth-child(3)").all_inner_texts()}
    assert sorted(set(names)) == sorted(hostile.SUBMISSIONS) and variants == set(hostile.VARIANTS)
    assert hostile.HARDWARE in _shown(page.get_by_text("entries on").first.inner_text())
    picked = page.get_by_label("Track").evaluate("select => select.selectedOptions[0].textContent")
    assert picked == f"{hostile.TRACK_TITLE} ({hostile.TRACK_NAME}@v1)"
    page.get_by_role("button", name="Filters and budgets").click()
    page.get_by_label("Max latency (ms)").wait_for(timeout=RENDER_TIMEOUT_MS)
    _wait_idle(page)
    chosen = page.locator('[data-testid="stMultiSelect"] [data-tag]').all_inner_texts()
    assert {_shown(text) for text in chosen} == set(hostile.VARIANTS)


def _check_pareto(page) -> None:
    labels = page.locator(f"{CHART} g[class*='_front_labels'] text").all_text_contents()
    for name in hostile.SUBMISSIONS:  # both are on the latency front; long labels end in an ellipsis
        assert any(f"{name}@fp32".startswith(label.rstrip("…")) and len(label) > 8 for label in labels), labels
    page.locator(f"{CHART} g.latency_ms_front_marks > path").first.hover()
    tooltip = page.locator("#vg-tooltip-element")
    tooltip.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    assert any(f"{name}@fp32" in tooltip.inner_text() for name in hostile.SUBMISSIONS)
    assert tooltip.locator("b, img, a, i, u").count() == 0
    assert set(_column(page, 1)) == set(hostile.SUBMISSIONS)


def _check_submission(page, name: str) -> None:
    assert _shown(page.locator("h1").first.inner_text()) == name
    caption = _shown(page.get_by_text("entry point").first.inner_text())
    assert "proj `code` **p** <b>" in caption and f"pkg:build` [e]({hostile.LINK})" in caption
    assert set(_column(page, 0)) == set(hostile.VARIANTS)
    expanders = [_shown(text) for text in page.locator('[data-testid="stExpander"] summary').all_inner_texts()]
    assert any(f"[{hostile.VARIANTS[1]}] failed: {hostile.ERROR}" in text for text in expanders), expanders
    page.locator('[data-testid="stExpander"] summary').first.click()
    code = page.locator('[data-testid="stExpander"] [data-testid="stCode"]').first
    code.wait_for(timeout=RENDER_TIMEOUT_MS)
    assert hostile.HTML_NAME in code.inner_text()
    page.locator('[data-testid="stSelectbox"]').first.click()
    options = page.get_by_role("option")
    options.first.wait_for(timeout=RENDER_TIMEOUT_MS)
    assert {_shown(text) for text in options.all_inner_texts()} == set(hostile.SUBMISSIONS)
    page.keyboard.press("Escape")


def _check_compare(page) -> None:
    fields = dict(zip(_column(page, 0), _column(page, 1), strict=True))
    assert fields["submission"] in hostile.SUBMISSIONS and fields["hardware class"] == hostile.HARDWARE
    assert fields["error"] == "-" and fields["dataset"] == f"{hostile.DATASET}/test"


def _check_history(page) -> None:
    assert set(_column(page, 1)) <= set(hostile.SUBMISSIONS) and _column(page, 1)


def test_every_page_shows_hostile_text_literally(hostile_board, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    track = "track=" + urllib.parse.quote(hostile.TRACK_NAME)
    grid = '[data-testid="stDataFrame"]'
    pages = [
        ("standings", f"?{track}", f"{STANDINGS} tbody td", _check_standings),
        ("pareto", f"pareto?{track}", f"{CHART} g.latency_ms_front_marks > path", _check_pareto),
        *[
            (f"submission-{i}", f"submission?{track}&submission={urllib.parse.quote(name)}", grid, None)
            for i, name in enumerate(hostile.SUBMISSIONS)
        ],
        ("compare", f"compare?{track}", grid, _check_compare),
        ("history", f"history?{track}", grid, _check_history),
    ]
    for where, path, drawn, check in pages:
        _open(page, f"{hostile_board}/{path}", drawn)
        _assert_inert(page, where, dialogs)
        if check is None:
            _check_submission(page, hostile.SUBMISSIONS[int(where.rsplit("-", 1)[1])])
        else:
            check(page)
        _assert_inert(page, f"{where} (after the checks' clicks)", dialogs)
        page.screenshot(path=str(ARTIFACTS / f"literal-{where}.png"), full_page=True)
    page.close()
