"""`harness serve`: the Streamlit server run in this process, after paying what the first reader's page
view would otherwise pay (the pages' imports, the database driver, pandas' and pyarrow's lazy modules, one
standings query and its Arrow serialisation), and with the app's own engine and first queries in its caches
as soon as the server is up, so the first view after a start is as quick as any other."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass

from harness.errors import StoreError
from harness.store.faults import store_error

# Streamlit's options for the leaderboard, as `streamlit run` flags would set them, whatever the address: no
# usage statistics, no browser opened, no welcome banner (on a wildcard address its "External URL" asks a web
# service for this machine's public address; `serve` prints the board's address itself).
SERVER_OPTIONS = {
    "server.headless": True,
    "browser.gatherUsageStats": False,
    "logger.hideWelcomeMessage": True,
    "server.fileWatcherType": "none",
    "client.toolbarMode": "viewer",
    "theme.base": "light",
}
# What Streamlit's cross-origin check compares an unknown origin with after the machine's own addresses, in place
# of the public address it would otherwise fetch from a web service: loopback, which the check allows anyway.
NO_EXTERNAL_IP = "127.0.0.1"


@dataclass(frozen=True)
class WarmUp:
    """What the warm-up did, for the server's log."""

    seconds: float
    entries: int | None  # standings entries read; None when there is no store yet
    note: str


def warm_up(url: str) -> WarmUp:
    """Import everything the pages use and read the busiest track's standings once, through a throwaway
    engine (the app opens its own, cached for the process). A store that does not exist yet is fine: the
    page tells the reader what to run. A URL that cannot be opened is the caller's error."""
    start = time.perf_counter()
    import pandas  # noqa: F401  (imported here so the first reader does not pay it)
    import pyarrow  # noqa: F401
    import sqlalchemy.exc
    import streamlit  # noqa: F401
    from streamlit import dataframe_util

    from harness.leaderboard_app import charts, picker, ranking, table  # noqa: F401
    from harness.store import queries
    from harness.store.repo import BoardKey
    from harness.tracks import all_cards

    try:
        engine = queries.read_only_engine(url)
    except queries.StoreRefused as exc:
        raise StoreError(
            f"cannot serve the store at {queries.store_label(url)}: {exc}",
            "run `harness leaderboard --track TRACK` on it once (it names the fault, or upgrades an older store), "
            "or give --db another store",
        ) from exc
    except queries.StoreMissing as exc:
        return WarmUp(time.perf_counter() - start, None, f"no store yet ({exc}); the page says what to run")
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        raise store_error(url, exc, setting="--db (or HARNESS_DB_URL)") from exc
    try:
        cards = all_cards()
        card = cards[ranking.busiest_track(queries.track_versions(engine), cards)]
        entries = queries.standings(engine, BoardKey.for_card(card), ranking.macs_key(card), card.metrics)
        dataframe_util.convert_anything_to_arrow_bytes(ranking.rank(entries, card.higher_is_better))
    finally:
        engine.dispose()
    return WarmUp(time.perf_counter() - start, len(entries), f"{len(entries)} standings entries of {card.key}")


def fill_app_caches(url: str, wait_s: float = 60.0) -> bool:
    """Once Streamlit's runtime exists, open the app's engine and read the busiest track's standings through
    the app's own caches (`common.engine`, `common.track_versions`, `common.standings`, and the standings
    page's default view, `common.standings_view`), as the first page view would. False when the runtime did not
    start within `wait_s` or there is no store yet."""
    from streamlit import runtime

    deadline = time.monotonic() + wait_s
    while not runtime.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    # Imported only now: the cached functions of `common` want the runtime's cache storage.
    from harness.leaderboard_app import common, ranking
    from harness.store import queries
    from harness.store.repo import BoardKey
    from harness.tracks import all_cards

    cards = all_cards()
    try:
        card = cards[ranking.busiest_track(common.track_versions(url), cards)]
    except queries.StoreMissing:
        return False
    entries = common.standings(url, BoardKey.for_card(card), ranking.macs_key(card), card.metrics)
    common.standings_view(url, card, card.key, *common.standings_defaults(entries))  # the page's default view
    return True


def serve(url: str, port: int, host: str) -> None:
    """Warm up, then run the leaderboard's Streamlit server in this process until it is stopped."""
    from streamlit.web import bootstrap

    from harness.leaderboard_app import APP_SCRIPT

    os.environ["HARNESS_DB_URL"] = url  # the pages read the store URL from the environment (harness.config)
    warmed = warm_up(url)
    print(f"warmed up in {warmed.seconds:.1f} s: {warmed.note}", flush=True)
    web_host = f"[{host}]" if ":" in host else host
    print(f"leaderboard of {url.split('@')[-1]} on http://{web_host}:{port}", file=sys.stderr, flush=True)
    if warmed.entries is not None:
        threading.Thread(target=fill_app_caches, args=(url,), name="leaderboard-caches", daemon=True).start()
    options = server_options(port, host)
    bootstrap.load_config_options(options)
    _never_look_up_external_ip()
    bootstrap.run(str(APP_SCRIPT), False, [], options)


def server_options(port: int, host: str) -> dict[str, object]:
    """Every Streamlit option `serve` starts the server with."""
    return {**SERVER_OPTIONS, "server.port": port, "server.address": host}


def _never_look_up_external_ip() -> None:
    """Streamlit asks a web service (checkip.amazonaws.com) for this machine's public address when a page is
    opened from an origin it does not know; no option turns that off short of disabling its CORS check, so its
    cached answer is filled beforehand (its attribute is checked, so a Streamlit that renames it fails loudly)."""
    from streamlit import net_util

    if not hasattr(net_util, "_external_ip"):
        raise RuntimeError("streamlit.net_util._external_ip is gone: the external-IP lookup can no longer be skipped")
    net_util._external_ip = NO_EXTERNAL_IP
