"""The leaderboard's competition page as text, for tests that must show what a reader (or a script) could get from
it: `competition_page_text(db_url, competition, phase)` runs the page in Streamlit's AppTest on that store and
returns every element's text (titles, Markdown, captions, alerts, code, widget labels and options, the sidebar),
every cell of its tables, and the CSV its download button serves.

Used by tests/ui/test_competition_page.py and by end-to-end tests that check no private score of an unclosed
phase ever reaches the page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from google.protobuf import text_format
from streamlit.testing.v1 import AppTest

from harness.leaderboard_app import APP_SCRIPT

PAGE = "views/competition.py"
TIMEOUT_S = 60


# What the page's download buttons served, by media file id. AppTest gives each run a media store of its own and
# drops it when the run ends, so the payloads are recorded as they are stored (see `_recording`).
_MEDIA: dict[str, bytes] = {}


@contextmanager
def _store_url(db_url: str) -> Iterator[None]:
    before = os.environ.get("HARNESS_DB_URL")
    os.environ["HARNESS_DB_URL"] = db_url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HARNESS_DB_URL", None)
        else:
            os.environ["HARNESS_DB_URL"] = before


@contextmanager
def _recording() -> Iterator[None]:
    """Keep a copy of every file the app puts into Streamlit's in-memory media store (a download's data)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    original = MemoryMediaFileStorage.load_and_get_id

    def load_and_get_id(self: Any, path_or_data: Any, *args: Any, **kwargs: Any) -> str:
        file_id = original(self, path_or_data, *args, **kwargs)
        _MEDIA[file_id] = self.get_file(file_id).content
        return file_id

    with patch.object(MemoryMediaFileStorage, "load_and_get_id", load_and_get_id):
        yield


def run(at: AppTest, db_url: str) -> AppTest:
    """Run the app again (after a change of its state), on this store, recording its downloads."""
    with _store_url(db_url), _recording():
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_competition_page(db_url: str, competition: str | None = None, phase: str | None = None) -> AppTest:
    """The app on the competition page for this store, the competition and phase chosen by the page's link
    parameters (`?competition=...&phase=...`), as a reader's link would. Caches are cleared first: another
    test's store may have had the same URL."""
    import streamlit as st

    st.cache_data.clear()
    with _store_url(db_url), _recording():
        at = AppTest.from_file(str(APP_SCRIPT), default_timeout=TIMEOUT_S)
        if competition is not None:
            at.query_params["competition"] = competition
        if phase is not None:
            at.query_params["phase"] = phase
        at.run()
        at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _nodes(node: Any) -> Iterator[Any]:
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _nodes(child)


def download_payloads(at: AppTest) -> dict[str, bytes]:
    """What each download button of the page (as last run) serves, by the button's widget id."""
    payloads = {}
    for node in _nodes(at._tree):
        if getattr(node, "type", None) == "download_button":
            file_id = node.proto.url.rsplit("/", 1)[-1].split(".", 1)[0]
            payloads[node.proto.id] = _MEDIA[file_id]
    return payloads


def page_text(at: AppTest) -> str:
    """Every element's protobuf as text (its strings: bodies, labels, options, captions; not the Arrow bytes of
    its tables), every table's cells as CSV, and every download's payload."""
    parts = []
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        if getattr(node, "type", None) == "dataframe":
            parts.append(node.value.to_csv(index=False))
            parts.append(node.value.to_json(orient="records"))
            continue
        parts.append(text_format.MessageToString(proto, as_utf8=True))
    parts.extend(payload.decode() for payload in download_payloads(at).values())
    return "\n".join(parts)


def competition_page_text(db_url: str, competition: str, phase: str | None = None) -> str:
    """All the competition page shows of this competition's phase (by default the page's own choice: the open
    phase), including its table cells and the CSV it offers for download."""
    return page_text(open_competition_page(db_url, competition, phase))
