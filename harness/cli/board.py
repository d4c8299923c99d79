"""`harness leaderboard` (the standings in the terminal) and `harness serve` (the Streamlit board)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.render import JsonOpt, app, emit_json, fmt_bytes, fmt_count, make_console
from harness.errors import HarnessError


@app.command()
def leaderboard(
    track: Annotated[str | None, typer.Option("--track", "-t", help="Track to show.")] = None,
    hardware_class: Annotated[str | None, typer.Option("--hardware-class", help="Only this hardware class.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="The board of runs on this dataset (default: the track card's).")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="The board of runs timed under this profile (default: the track card's).")
    ] = None,
    competition: Annotated[
        str | None, typer.Option("--competition", "-c", help="A competition phase's board instead of a track's.")
    ] = None,
    phase: Annotated[str | None, typer.Option(help="The competition's phase (default: the open one).")] = None,
    private: Annotated[
        bool, typer.Option("--private", help="The final board on the private part (once the phase is closed).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The standings of one board of a track's current version (its dataset, data digest and latency profile),
    ranked within each hardware class and device. Entries whose primary-metric interval overlaps the leader's
    are marked as statistically tied."""
    from harness.service.standings import board_key, standings
    from harness.tracks import get_card

    if (track is None) == (competition is None):
        raise HarnessError("name the board: --track TRACK, or --competition NAME [--phase PHASE] [--private]")
    if competition is not None:
        _competition_board(competition, phase, private, as_json)
        return
    if private or phase:
        raise HarnessError("--phase and --private belong to competition boards", "add --competition NAME")
    card = get_card(track)
    key = board_key(track, dataset, profile)
    rows = standings(track, hardware_class, dataset=dataset, profile=profile)
    if as_json:
        emit_json(rows)
        return
    console = make_console()
    if not rows:
        console.print(
            f"No finished runs on the board {key.describe()} yet. "
            f"Run `harness submit PATH` then `harness evaluate --track {track}`.",
            markup=False,
        )
        return
    console.print(f"board: {key.describe()}", markup=False)
    _print_track_board(console, card, key, rows)


def _print_track_board(console: Any, card: Any, key: Any, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    primary = card.primary_metric
    latency_label = "e2e" if key.latency_kind == "e2e" else "device"
    for group in dict.fromkeys((r["hardware_class"], r["device"]) for r in rows):
        table = Table(title=f"{card.title} — {card.key} — {group[0]} ({group[1]})")
        table.add_column("#", justify="right")
        table.add_column("submission")
        table.add_column("variant")
        for metric in card.metrics:
            table.add_column(metric, justify="right")
        table.add_column(f"{primary} 95% CI", justify="right")
        for column in ("params", "MACs", "bytes", f"p50 ms ({latency_label})", "p90 ms", "run"):
            table.add_column(column, justify="right")
        for r in (r for r in rows if (r["hardware_class"], r["device"]) == group):
            macs = next(iter(r["macs"].values()), None)
            lat = (r["latency_e2e"] if key.latency_kind == "e2e" else r["latency"]) or {}
            noisy = "*" if lat.get("noisy") else ""
            interval = r.get("primary_interval")
            table.add_row(
                f"{r['rank']}{'≈' if r['tied_with_leader'] else ''}",
                r["submission"],
                r["variant"],
                *[f"{r['metrics'][m]:.4f}" if m in r["metrics"] else "-" for m in card.metrics],
                f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "-",
                fmt_count(r["params"]),
                fmt_count(macs),
                fmt_bytes(r["bytes"]),
                f"{lat['ranked_ms']:.3f}{noisy}" if lat else "-",
                f"{lat['p90_ms']:.3f}" if lat else "-",
                str(r["run_id"]),
            )
        console.print(table)
    legend = []
    if any(r["tied_with_leader"] for r in rows):
        legend.append("≈ statistically tied with the leader (their 95% intervals overlap: the gap may be chance)")
    if any(((r["latency_e2e"] if key.latency_kind == "e2e" else r["latency"]) or {}).get("noisy") for r in rows):
        legend.append("* noisy latency (see `harness show RUN`)")
    if legend:
        console.print("\n".join(legend), markup=False)


def _competition_board(competition: str, phase: str | None, private: bool, as_json: bool) -> None:
    from harness.cli.competition import print_board
    from harness.service.competitions import board
    from harness.store import open_store

    result = board(open_store(), competition, phase, private)
    if as_json:
        emit_json(result)
    elif not result["rows"]:
        make_console().print(
            f"No evaluated entries in phase {result['phase']} of {competition} yet. "
            f"Run `harness evaluate --competition {competition}`.",
            markup=False,
        )
    else:
        print_board(result)


@app.command()
def serve(
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8501,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Store URL (or a SQLite file path); default HARNESS_DB_URL or ./harness.db."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
) -> None:
    """The Streamlit leaderboard in the browser (read-only): standings, Pareto fronts, variants, history."""
    import importlib.util

    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("pandas") is None:
        raise HarnessError("the leaderboard needs streamlit and pandas", "pip install 'harness[leaderboard]'")
    from harness.config import db_url
    from harness.leaderboard_app.server import serve as serve_leaderboard

    url = db_url() if db is None else db if "://" in db else f"sqlite:///{Path(db).resolve()}"
    if not is_loopback(host):
        typer.echo(
            f"warning: --host {host} is not a loopback address: the board has no login, and anyone who can reach "
            f"this machine on port {port} can read every stored run (use --host 127.0.0.1 to keep it local)",
            err=True,
        )
    # In this process, after a warm-up (imports, one standings query), so the first reader does not wait for it.
    serve_leaderboard(url, port, host)


def is_loopback(host: str) -> bool:
    """Whether an address to bind reaches this machine only: localhost, 127.0.0.0/8, ::1."""
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface
