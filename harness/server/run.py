"""Start the submission server under uvicorn: the store, the background checker (resuming checks a stopped
server left), the app, and a clean stop on SIGTERM or Ctrl-C (uvicorn's), after which the checker finishes
the check it is running."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def serve(
    competition: str,
    host: str,
    port: int,
    behind_proxy: bool = False,
    tls: tuple[Path, Path] | None = None,
    check_runner: str = "docker",
    check_workers: int = 1,
    rate_limit: float = 60.0,
    access_log: Path | None = None,
) -> None:
    import sys

    import uvicorn

    from harness.server.app import ServerConfig, create_app
    from harness.service.intake import Checker
    from harness.store import open_store

    store = open_store()
    checker = Checker(store, competition, check_runner, check_workers)
    log: Any = access_log.open("a", buffering=1) if access_log else sys.stderr
    config = ServerConfig(
        competition=competition,
        store=store,
        checker=checker,
        behind_proxy=behind_proxy,
        per_token_per_minute=rate_limit,
        per_address_per_minute=2 * rate_limit,
        access_log=log,
    )
    app = create_app(config)
    resumed = checker.resume()
    scheme = "https" if tls else "http"
    print(
        f"harness server: competition {competition} on {scheme}://{host}:{port} (API docs at /docs); "
        f"checks by the {check_runner} runner" + (f"; {resumed} unfinished check(s) resumed" if resumed else ""),
        file=sys.stderr,
        flush=True,
    )
    # The client address is the app's to decide (harness.server.app.client_address): uvicorn rewrites nothing.
    options: dict[str, Any] = {"log_level": "warning", "access_log": False, "server_header": False}
    options["proxy_headers"] = False
    if tls:
        options.update(ssl_certfile=str(tls[0]), ssl_keyfile=str(tls[1]))
    try:
        uvicorn.run(app, host=host, port=port, **options)
    finally:
        checker.shutdown()
        if access_log:
            log.close()
