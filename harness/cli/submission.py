"""`harness check` and `harness submit`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.render import JsonOpt, app, emit_json, fmt_bytes, fmt_count, make_console, parse_size


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="The submission folder (holds pyproject.toml).")],
    input_size: Annotated[
        list[str] | None, typer.Option("--input-size", help="Input size(s) for MACs: N or HxW.")
    ] = None,
    runner: Annotated[str, typer.Option(help="Run the submission's code with: local or docker.")] = "local",
    as_json: JsonOpt = False,
) -> None:
    """Validate a submission: manifest, entry point, outputs, params/MACs/bytes and the track's rules."""
    from harness.service.check import check as run_check

    sizes = [parse_size(s) for s in input_size] if input_size else None
    reports = run_check(path, sizes, runner=runner)
    if as_json:
        data = [r.to_dict() for r in reports]
        emit_json(data[0] if len(data) == 1 else data)
    else:
        for r in reports:
            mark = "[green]ok[/]" if r.ok else "[red]FAILED[/]"
            make_console().print(f"{mark} {r.name} (track {r.track})")
            if r.error:
                make_console().print(f"  error: {r.error}", markup=False)
            if r.params is not None:
                macs = ", ".join(f"{k}: {fmt_count(v)}" for k, v in r.macs.items())
                make_console().print(f"  params {r.params:,}  MACs {macs}  bytes {fmt_bytes(r.bytes)}", markup=False)
            for v in r.violations:
                make_console().print(f"  rule violated: {v}", markup=False)
    if not all(r.ok for r in reports):
        raise typer.Exit(2)  # a faulty submission is a user error, as `submit` reports it


@app.command()
def submit(
    path: Annotated[Path, typer.Argument(help="The submission folder.")],
    runner: Annotated[
        str, typer.Option(help="Run the check with: local, or docker for code you did not write.")
    ] = "local",
    competition: Annotated[
        str | None, typer.Option("--competition", "-c", help="Submit to this competition's open phase.")
    ] = None,
    as_name: Annotated[
        str | None, typer.Option("--as", help="The participant submitting (with --competition).")
    ] = None,
    phase: Annotated[str | None, typer.Option(help="The phase (default: the open one).")] = None,
    server: Annotated[
        str | None, typer.Option("--server", help="Upload to a competition's submission server (URL) instead.")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="With --server: a 0600 file holding your token.")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="With --server: do not wait for the server's check.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a submission, then store a content-hashed immutable copy, queued for evaluation (or entered in a
    competition's phase, as a participant, within its quota)."""
    from harness.service.submit import submit as run_submit

    if server is not None:
        _submit_to_server(path, server, token_file, not no_wait, as_json)
        return
    if competition is not None or as_name is not None or phase is not None:
        _submit_to_competition(path, runner, competition, as_name, phase, as_json)
        return
    results = run_submit(path, runner=runner)
    if as_json:
        emit_json([r.to_dict() for r in results])
        return
    for r in results:
        state = "stored, queued" if r.created else "already stored (same content)"
        typer.echo(f"{r.name}: {state} as submission {r.id} [{r.content_hash[:12]}] for track {r.track}")


def _submit_to_server(path: Path, server: str, token_file: Path | None, wait: bool, as_json: bool) -> None:
    from harness.errors import HarnessError
    from harness.service.remote import submit_remote

    status = submit_remote(path, server, token_file, wait=wait)
    if as_json:
        emit_json(status)
    else:
        names = ", ".join(e["entry"] for e in status["entries"]) or "-"
        typer.echo(
            f"upload {status['upload_id']} ({status['archive_bytes']:,} bytes): {status['state']} [{names}]"
            + ("" if status["state"] != "checking" else "; `harness status --server URL` follows it")
        )
    if status["state"] in ("rejected", "failed"):
        raise HarnessError(f"the server's check refused the upload: {status.get('error')}", "fix it and submit again")


def _submit_to_competition(
    path: Path, runner: str, competition: str | None, as_name: str | None, phase: str | None, as_json: bool
) -> None:
    from harness.errors import HarnessError
    from harness.service.competitions import submit as enter

    if competition is None or as_name is None:
        raise HarnessError(
            "a competition submission needs both --competition and --as", "pass --competition NAME --as PARTICIPANT"
        )
    entries = enter(path, competition, as_name, phase=phase, runner=runner)
    if as_json:
        emit_json(entries)
        return
    for e in entries:
        state = "queued for evaluation" if e["created"] else "entered before (same content, not counted again)"
        typer.echo(
            f"{e['entry']}: entry {e['entry_id']} of {e['participant']} in phase {e['phase']} of {e['competition']} "
            f"[{e['content_hash'][:12]}], {state}"
        )
