"""What the CLI's verbs share: the Typer apps, the `--json` option, and the formatting of figures."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from harness.errors import HarnessError

app = typer.Typer(
    help="Benchmark harness and leaderboard for efficient vision models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
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
