"""`harness server` (the organiser's submission server) and `harness status --server` (the participant's view)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.render import JsonOpt, app, emit_json
from harness.errors import HarnessError

TokenFileOpt = Annotated[
    Path | None,
    typer.Option("--token-file", help="A file (mode 0600) holding your token (default: HARNESS_TOKEN)."),
]


@app.command()
def server(
    competition: Annotated[str, typer.Option("--competition", "-c", help="The competition it takes submissions for.")],
    host: Annotated[str, typer.Option(help="Address to bind; beyond loopback needs TLS or a proxy.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    behind_proxy: Annotated[
        bool, typer.Option("--behind-proxy", help="A TLS-terminating proxy is in front (trust X-Forwarded-For).")
    ] = False,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="TLS private key (PEM).")] = None,
    check_runner: Annotated[
        str, typer.Option("--check-runner", help="Where uploads are checked: docker (strangers' code) or local.")
    ] = "docker",
    check_workers: Annotated[int, typer.Option("--check-workers", help="Checks run at once.")] = 1,
    rate_limit: Annotated[float, typer.Option("--rate-limit", help="Requests per minute per token.")] = 60.0,
    access_log: Annotated[
        Path | None, typer.Option("--access-log", help="Append the JSON access log here (default: stderr).")
    ] = None,
) -> None:
    """The submission server of a competition: an HTTP API (OpenAPI docs at /docs) that takes participants'
    uploads, checks them in the sandbox, queues them, and reports each participant's own submissions and runs."""
    import importlib.util

    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise HarnessError("the submission server needs fastapi and uvicorn", "pip install 'vision-harness[server]'")
    from harness.cli.board import is_loopback
    from harness.server.run import serve

    if (tls_cert is None) != (tls_key is None):
        raise HarnessError("--tls-cert and --tls-key go together", "pass both, or neither")
    if check_runner not in ("docker", "local"):
        raise HarnessError(f"--check-runner {check_runner!r}: use docker or local")
    if not is_loopback(host) and tls_cert is None and not behind_proxy:
        typer.echo(
            f"warning: --host {host} is not a loopback address and the server has no TLS: tokens and uploads cross "
            "the network in clear (pass --tls-cert/--tls-key, or --behind-proxy behind a TLS-terminating proxy)",
            err=True,
        )
    if check_runner == "local":
        typer.echo("warning: --check-runner local runs uploaded code unsandboxed: only for code you trust", err=True)
    serve(
        competition,
        host,
        port,
        behind_proxy=behind_proxy,
        tls=(tls_cert, tls_key) if tls_cert and tls_key else None,
        check_runner=check_runner,
        check_workers=check_workers,
        rate_limit=rate_limit,
        access_log=access_log,
    )


@app.command()
def status(
    server_url: Annotated[str, typer.Option("--server", help="The competition's submission server URL.")],
    token_file: TokenFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Your submissions on a competition's server: uploads and their checks, entries, runs, public scores, errors
    (with the sandbox's log tail of your failed runs)."""
    from harness.service.remote import status_remote

    info = status_remote(server_url, token_file)
    if as_json:
        emit_json(info)
        return
    _print_status(info)


def _print_status(info: dict[str, Any]) -> None:
    team = f" (team {info['team']})" if info.get("team") else ""
    typer.echo(f"{info['participant']}{team} in {info['competition']}, phase {info['phase']}")
    for upload in info["uploads"]:
        names = ", ".join(e["entry"] for e in upload["entries"]) or "-"
        typer.echo(f"  upload {upload['upload_id']} ({upload['created_at']}): {upload['state']} [{names}]")
        if upload.get("error"):
            typer.echo("    " + upload["error"].replace("\n", "\n    "))
    for entry in info["entries"]:
        typer.echo(f"  entry {entry['entry_id']} {entry['entry']}{' (selected)' if entry['selected'] else ''}")
        for run in entry["runs"] or [{"status": "queued"}]:
            line = f"    run {run.get('run_id', '-')} [{run.get('variant', '-')}]: {run['status']}"
            if run.get("public_value") is not None:
                line += f"  {run['primary_metric']} (public) {run['public_value']:.4f}"
            if run.get("error"):
                line += f"  {run['error']}"
            typer.echo(line)
            if run.get("log_tail"):
                typer.echo("      " + run["log_tail"].strip().replace("\n", "\n      "))
