"""What the CLI's verbs share: the Typer apps, the `--json` option, and the formatting of figures."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.errors import HarnessError

app = typer.Typer(
    help="Benchmark harness and leaderboard for efficient vision models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"vision-harness {version('vision-harness')}")
    except PackageNotFoundError as exc:
        raise HarnessError("the distribution vision-harness is not installed", "install it: scripts/setup.sh") from exc
    raise typer.Exit()


@app.callback()
def _global_options(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the harness's version and exit."),
    ] = False,
) -> None:
    """Benchmark harness and leaderboard for efficient vision models."""


datasets_app = typer.Typer(help="List, prepare and verify datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def make_console():
    from rich.console import Console

    # Tables are wide; when printing to a pipe or a file, do not squeeze them into 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=260)


def fmt_count(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}{unit}"
    return f"{value:.0f} {unit}".strip()


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 2**20:.2f} MiB" if value >= 2**20 else f"{value / 2**10:.1f} KiB"


def parse_size(text: str) -> tuple[int, int]:
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text), int(text)
    except ValueError as exc:
        raise HarnessError(
            f"--input-size {text!r} is not a size", "use N (square) or HxW, e.g. 224 or 480x640"
        ) from exc


def writable_file(path: Path | None, option: str, make_folders: bool = False) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, a folder that does not exist
    (unless the command makes it: `make_folders`), or one this user may not write to."""
    if path is None:
        return
    folder = path.parent
    if make_folders:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if path.is_dir():
        raise HarnessError(f"{option} {path} is a folder", "give a file path")
    if folder.exists() and not folder.is_dir():
        raise HarnessError(f"{option} {path}: {folder} is a file, not a folder", "give a path inside a folder")
    if not folder.is_dir():
        raise HarnessError(
            f"{option} {path}: the folder {path.parent} does not exist", f"create it (mkdir -p {path.parent}) first"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise HarnessError(f"{option} {path} is not writable by this user", "write it somewhere else")


def write_report(path: Path, text: str) -> None:
    """Write an output file; what the checks above cannot foresee (a full disk, a read-only mount) is a user
    error naming the file."""
    try:
        path.write_text(text)
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc}", "write it somewhere else") from exc
