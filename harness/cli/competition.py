"""`harness competition ...` (the organiser's bundle and phases) and `harness participants ...` (who may submit)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.render import JsonOpt, app, emit_json, make_console

competition_app = typer.Typer(help="Organiser-defined competitions: bundles, phases, boards.", no_args_is_help=True)
participants_app = typer.Typer(help="The participants of a competition (and their teams).", no_args_is_help=True)
app.add_typer(competition_app, name="competition")
app.add_typer(participants_app, name="participants")

CompetitionOpt = Annotated[str, typer.Option("--competition", "-c", help="The competition's name.")]


@competition_app.command("init")
def init(
    folder: Annotated[Path, typer.Argument(help="The bundle folder to create (or an empty one).")],
    name: Annotated[str | None, typer.Option(help="The competition's name (default: the folder's).")] = None,
) -> None:
    """Write a commented competition.toml to start a bundle from."""
    from harness.competitions.bundle import init_bundle

    path = init_bundle(folder, name)
    typer.echo(f"wrote {path}; edit it, then `harness competition validate {folder}`")


@competition_app.command("validate")
def validate(folder: Annotated[Path, typer.Argument(help="The bundle folder (holds competition.toml).")]) -> None:
    """Check a bundle: every field, its tracks, datasets and dates; exit 2 naming the first fault."""
    from harness.competitions.bundle import load_bundle

    bundle = load_bundle(folder)
    phases = ", ".join(f"{p.name} ({p.track} on {p.dataset})" for p in bundle.phases)
    typer.echo(f"ok: competition {bundle.name} [{bundle.digest[:12]}], phases: {phases}")


@competition_app.command("create")
def create(
    folder: Annotated[Path, typer.Argument(help="The bundle folder (holds competition.toml).")],
    as_json: JsonOpt = False,
) -> None:
    """Register a bundle in the store (an edited bundle becomes a new version) and make its secret split key."""
    from harness.service.competitions import create as run_create

    result = run_create(folder)
    if as_json:
        emit_json(result)
        return
    state = f"registered as version {result['version']}" if result["created"] else "unchanged (same content)"
    typer.echo(f"competition {result['name']}: {state} [{result['digest'][:12]}], phases {', '.join(result['phases'])}")


@competition_app.command("show")
def show(name: Annotated[str, typer.Argument(help="The competition.")], as_json: JsonOpt = False) -> None:
    """A competition's phases (dates, state, quotas, ranking), participants and entry counts."""
    from harness.service.competitions import describe
    from harness.store import open_store

    info = describe(open_store(), name)
    if as_json:
        emit_json(info)
        return
    typer.echo(f"{info['name']} — {info['title']} (version {info['version']}, [{info['digest'][:12]}])")
    if info["description"]:
        typer.echo(info["description"])
    for phase in info["phases"]:
        quota = phase["quota"]
        typer.echo(
            f"  phase {phase['name']}: {phase['state']}; {phase['opens']} → {phase['closes']}; track {phase['track']} "
            f"on {phase['dataset']}; public {phase['public_fraction']:.0%}; ranking {phase['ranking']}; quota "
            f"{_limit(quota.get('per_day'))}/day, {_limit(quota.get('per_phase'))}/phase; {phase['entries']} entries"
        )
    people = ", ".join(p["name"] + (f" ({p['team']})" if p["team"] else "") for p in info["participants"])
    typer.echo(f"  participants: {people or 'none'}")


def _limit(value: int | None) -> str:
    return "no limit" if value is None else str(value)


@competition_app.command("list")
def list_competitions(as_json: JsonOpt = False) -> None:
    """The registered competitions."""
    from harness.service.competitions import listing
    from harness.store import open_store

    rows = listing(open_store())
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['name']} v{row['version']}: {row['title']} (phases {', '.join(row['phases'])})")
    if not rows:
        typer.echo("No competitions yet: `harness competition create DIR` registers one.")


@competition_app.command("close-phase")
def close_phase(
    name: Annotated[str, typer.Argument(help="The competition.")],
    phase: Annotated[str, typer.Argument(help="The phase to close.")],
    force: Annotated[bool, typer.Option(help="Close it before its close time.")] = False,
) -> None:
    """End a phase: no more submissions, and its private board becomes the final standing."""
    from harness.service.competitions import close_phase as run_close
    from harness.store import open_store

    run_close(open_store(), name, phase, force)
    typer.echo(f"closed phase {phase} of {name}: `harness leaderboard --competition {name} --private` ranks it")


@participants_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The participant's name (unique in the competition).")],
    competition: CompetitionOpt,
    team: Annotated[str | None, typer.Option(help="Their team.")] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="No error when they are a participant already (same team).")
    ] = False,
) -> None:
    """Add a participant."""
    from harness.service.competitions import add_participant
    from harness.store import open_store

    added = add_participant(open_store(), competition, name, team, exist_ok)
    state = "added" if added["created"] else "already a participant:"
    typer.echo(f"{state} {name}" + (f" (team {team})" if team else "") + f" in {competition}")
    if added.get("token"):
        _print_token(name, added["token"])


def _print_token(name: str, token: str) -> None:
    typer.echo(f"submission-server token of {name} (shown once; the store keeps only its hash): {token}")
    typer.echo("  give it to them privately; they set HARNESS_TOKEN or keep it in a 0600 token file")


@participants_app.command("token")
def token(
    name: Annotated[str, typer.Argument(help="The participant.")],
    competition: CompetitionOpt,
    revoke: Annotated[bool, typer.Option("--revoke", help="Revoke their token and issue none.")] = False,
) -> None:
    """Issue a participant a new submission-server token (the old one stops working), or revoke it."""
    from harness.service.competitions import rotate_token
    from harness.store import open_store

    new = rotate_token(open_store(), competition, name, revoke)
    if new is None:
        typer.echo(f"revoked the token of {name} in {competition}")
    else:
        _print_token(name, new)


@participants_app.command("list")
def list_participants(competition: CompetitionOpt, as_json: JsonOpt = False) -> None:
    """The participants of a competition (removed ones marked)."""
    from harness.service.competitions import participant_rows
    from harness.store import open_store

    rows = participant_rows(open_store(), competition)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        team = f" (team {row['team']})" if row["team"] else ""
        typer.echo(f"{row['name']}{team}{' [removed]' if row['removed'] else ''}")


@participants_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The participant.")], competition: CompetitionOpt) -> None:
    """Remove a participant: no more submissions, off the boards; their entries and runs stay in the store."""
    from harness.service.competitions import remove_participant
    from harness.store import open_store

    remove_participant(open_store(), competition, name)
    typer.echo(f"removed {name} from {competition}")


@participants_app.command("select")
def select(
    entry: Annotated[int, typer.Argument(help="The entry id (`harness submit --competition` prints it).")],
    competition: CompetitionOpt,
    as_name: Annotated[str, typer.Option("--as", help="The participant whose entry it is.")],
    unselect: Annotated[bool, typer.Option("--unselect", help="Withdraw the selection.")] = False,
) -> None:
    """Select an entry for the final board of a phase ranked by `selected` (up to its limit)."""
    from harness.service.competitions import select_entry
    from harness.store import open_store

    result = select_entry(open_store(), competition, as_name, entry, not unselect)
    typer.echo(f"entry {entry} {'selected' if result['selected'] else 'unselected'} in phase {result['phase']}")


def print_board(board: dict[str, Any]) -> None:
    """A competition phase's board as a table (the public one, or the private one with both scores)."""
    from rich.table import Table

    from harness.cli.render import fmt_count

    private = board["board"] == "private"
    metric = board["primary_metric"]
    title = f"{board['title']} — phase {board['phase']} ({board['state']}) — {board['board']} board"
    table = Table(title=title)
    for column in ("#", "participant", "team", "entry", "variant"):
        table.add_column(column)
    table.add_column(f"{metric} ({'private' if private else 'public'})", justify="right")
    table.add_column("95% CI", justify="right")
    if private:
        table.add_column(f"{metric} (public)", justify="right")
    latency_kinds = {row["latency"] for row in board["rows"]} or {"device"}
    for column in ("params", "MACs", f"latency ms ({'/'.join(sorted(latency_kinds))})", "run"):
        table.add_column(column, justify="right")
    part = "private" if private else "public"
    for row in board["rows"]:
        score = row[part]
        interval = score["interval"]
        cells = [
            "baseline" if row["baseline"] else f"{row['rank']}{'≈' if row['tied_with_leader'] else ''}",
            row["participant"],
            row["team"] or "",
            row["entry"],
            row["variant"],
            f"{score['value']:.4f}" if score["value"] is not None else "-",
            f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "-",
        ]
        if private:
            cells.append(f"{row['public']['value']:.4f}" if row["public"]["value"] is not None else "-")
        macs = next(iter((row["macs"] or {}).values()), None)
        latency = f"{row['latency_ms']:.3f}" if row["latency_ms"] is not None else "-"
        cells += [fmt_count(row["params"]), fmt_count(macs), latency, str(row["run_id"])]
        table.add_row(*cells)
    console = make_console()
    console.print(table)
    notes = [
        f"ranking: {board['ranking']} entry of each participant by public score; {board['public_fraction']:.0%}"
        " of the test images are public"
    ]
    if any(row["tied_with_leader"] for row in board["rows"]):
        notes.append("≈ statistically tied with the leader (their 95% intervals overlap)")
    if not private:
        notes.append("private scores are shown once the organiser closes the phase")
    console.print("\n".join(notes), markup=False)
