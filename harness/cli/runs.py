"""`harness show`, `harness compare` and `harness export`: stored runs, side by side, to files; `harness runs stuck`
and `harness runs release`: running runs, their leases, and giving up one whose evaluator is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.render import JsonOpt, app, emit_json, fmt_bytes, make_console, writable_file
from harness.errors import HarnessError

runs_app = typer.Typer(help="Running runs and their leases: list the stuck ones, release one.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@app.command()
def show(run_id: Annotated[int, typer.Argument(help="Run id.")], as_json: JsonOpt = False) -> None:
    """Everything stored about one run."""
    from harness.service.evaluate import run_record
    from harness.store import open_store

    run = open_store().get_run(run_id)
    if run is None:
        raise HarnessError(f"no run with id {run_id}", "see `harness leaderboard --track T` for run ids")
    data = run_record(run)
    if as_json:
        emit_json(data)
        return
    console = make_console()
    for key, value in data.items():
        if key in ("environment", "details", "latency", "latency_e2e", "metrics") and value:
            console.print(f"{key}:", markup=False)
            for k, v in value.items():
                if k not in ("repeat_medians_ms", "sandbox_environment"):
                    console.print(f"  {k}: {v}", markup=False)
        elif key == "log_tail" and value:
            console.print("log tail:\n" + value, markup=False)
        else:
            console.print(f"{key}: {value}", markup=False)


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Runs: ids, submission@variant, or results files.")],
    layers: Annotated[bool, typer.Option("--layers", help="Add a per-layer-type time breakdown (profiler).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Variants of a model side by side: latency, throughput, bytes, metric, and the change in % vs the first."""
    from rich.table import Table

    from harness.service.results import compare_rows

    rows = compare_rows(runs)
    breakdown = None
    if layers:
        from harness.service.layers import layer_breakdown_for_runs

        breakdown = layer_breakdown_for_runs([r["run_id"] for r in rows])
    if as_json:
        emit_json({"runs": rows, "layers": breakdown} if layers else rows)
        return

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1f}%"

    table = Table(title="compare")
    for column in (
        "run",
        "submission",
        "variant",
        "p50 ms",
        "p90 ms",
        "/s",
        "bytes",
        "metric",
        "Δ p50",
        "Δ bytes",
        "Δ metric",
    ):
        table.add_column(column, justify="right" if column not in ("submission", "variant") else "left")
    for r in rows:
        table.add_row(
            str(r["run_id"]),
            r["submission"],
            r["variant"],
            f"{r['p50_ms']:.3f}{'*' if r['noisy'] else ''}" if r["p50_ms"] else "-",
            f"{r['p90_ms']:.3f}" if r["p90_ms"] else "-",
            f"{r['throughput_per_s']:.1f}" if r["throughput_per_s"] else "-",
            fmt_bytes(r["bytes"]),
            f"{r['primary_metric']} {r['metric']:.4f}" if r["metric"] is not None else r["status"],
            pct(r["change_pct"]["p50_ms"]),
            pct(r["change_pct"]["bytes"]),
            f"{r['metric_delta']:+.4f}" if r["metric_delta"] is not None else "-",
        )
    console = make_console()
    console.print(table)
    if breakdown:
        layer_table = Table(title="time per layer type (ms per inference, profiler)")
        kinds = sorted({k for b in breakdown.values() for k in b})
        layer_table.add_column("run")
        for kind in kinds:
            layer_table.add_column(kind, justify="right")
        for run_id, per_kind in breakdown.items():
            layer_table.add_row(str(run_id), *[f"{per_kind.get(k, 0.0):.3f}" for k in kinds])
        console.print(layer_table)


@app.command()
def export(
    runs: Annotated[list[str] | None, typer.Argument(help="Runs: ids or submission@variant.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Results file to write.")] = Path("results.json"),
    track: Annotated[str | None, typer.Option("--track", "-t", help="Export a track's current standings.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write runs, with their latency samples, to a results file that `harness gate` reads anywhere."""
    from harness.service.results import export_runs

    writable_file(output, "--output", make_folders=True)  # before the work
    try:
        count = export_runs(runs or [], track, output)
    except OSError as exc:  # what the check cannot foresee: a read-only mount, a full disk
        raise HarnessError(f"cannot write {output}: {exc.strerror or exc}", "write it somewhere else") from exc
    if as_json:
        emit_json({"output": str(output), "runs": count})
        return
    typer.echo(f"wrote {count} run(s) to {output}")


@runs_app.command("stuck")
def runs_stuck(as_json: JsonOpt = False) -> None:
    """Running runs with their leases: the evaluator holding each (host, pid), its last heartbeat, the expiry."""
    from rich.table import Table

    from harness.service.leases import stuck_runs
    from harness.store import open_store

    rows = stuck_runs(open_store())
    if as_json:
        emit_json(rows)
        return
    console = make_console()
    if not rows:
        console.print("no running runs", markup=False)
        return
    table = Table(title="running runs")
    for column in ("run", "submission", "variant", "track", "attempt", "held by", "heartbeat", "lease"):
        table.add_column(column)
    for r in rows:
        left = r["expires_in_s"]
        lease = "expired" if r["lease"] == "expired" else f"live, {left:.0f} s left"
        heartbeat = (r["heartbeat_at"] or "never")[:19].replace("T", " ")
        holder = f"{r['host']} pid {r['pid']} ({(r['owner'] or '?')[:8]})"
        table.add_row(
            str(r["run_id"]), r["submission"], r["variant"], r["track"], str(r["attempt"]), holder, heartbeat, lease
        )
    console.print(table)


@runs_app.command("release")
def runs_release(
    run_id: Annotated[int, typer.Argument(help="Run id (see `harness runs stuck`).")],
    reason: Annotated[str, typer.Option(help="Why it is released (stored with the run).")] = "released by an operator",
    force: Annotated[
        bool, typer.Option("--force", help="Release it even though its lease is live (its evaluator's result is lost).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Give up a running run: it is marked released with the reason, and the next `evaluate` runs it again."""
    from harness.service.leases import release
    from harness.store import open_store

    released = release(open_store(), run_id, reason, force=force)
    if as_json:
        emit_json(released)
        return
    typer.echo(f"run {run_id} released ({reason}); the next `harness evaluate` of its track runs it again")
