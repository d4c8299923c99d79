"""The `harness` command line: a thin Typer layer over `harness.api`. Heavy modules are imported lazily,
inside the commands, so that `harness --help` starts fast."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
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
datasets_app = typer.Typer(help="List, prepare and verify datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _console():
    from rich.console import Console

    # Tables are wide; when printing to a pipe or a file, do not squeeze them into 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=200)


def _fmt_count(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}{unit}"
    return f"{value:.0f} {unit}".strip()


def _fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 2**20:.2f} MiB" if value >= 2**20 else f"{value / 2**10:.1f} KiB"


def _parse_size(text: str) -> tuple[int, int]:
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text), int(text)
    except ValueError as exc:
        raise HarnessError(
            f"--input-size {text!r} is not a size", "use N (square) or HxW, e.g. 224 or 480x640"
        ) from exc


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
    from harness.api import check as run_check

    sizes = [_parse_size(s) for s in input_size] if input_size else None
    reports = run_check(path, sizes, runner=runner)
    if as_json:
        data = [r.to_dict() for r in reports]
        _emit_json(data[0] if len(data) == 1 else data)
    else:
        for r in reports:
            mark = "[green]ok[/]" if r.ok else "[red]FAILED[/]"
            _console().print(f"{mark} {r.name} (track {r.track})")
            if r.error:
                _console().print(f"  error: {r.error}", markup=False)
            if r.params is not None:
                macs = ", ".join(f"{k}: {_fmt_count(v)}" for k, v in r.macs.items())
                _console().print(f"  params {r.params:,}  MACs {macs}  bytes {_fmt_bytes(r.bytes)}", markup=False)
            for v in r.violations:
                _console().print(f"  rule violated: {v}", markup=False)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
def submit(
    path: Annotated[Path, typer.Argument(help="The submission folder.")],
    runner: Annotated[
        str, typer.Option(help="Run the check with: local, or docker for code you did not write.")
    ] = "local",
    as_json: JsonOpt = False,
) -> None:
    """Check a submission, then store a content-hashed immutable copy, queued for evaluation."""
    from harness.api import submit as run_submit

    results = run_submit(path, runner=runner)
    if as_json:
        _emit_json([r.to_dict() for r in results])
        return
    for r in results:
        state = "stored, queued" if r.created else "already stored (same content)"
        typer.echo(f"{r.name}: {state} as submission {r.id} [{r.content_hash[:12]}] for track {r.track}")


@app.command()
def evaluate(
    track: Annotated[str, typer.Option("--track", "-t", help="Track to evaluate.")],
    submission: Annotated[list[str] | None, typer.Option("--submission", "-s", help="Only these submissions.")] = None,
    variant: Annotated[list[str] | None, typer.Option("--variant", "-v", help="Only these variants.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    profile: Annotated[str, typer.Option(help="Latency profile: quick, standard or full.")] = "quick",
    runner: Annotated[str | None, typer.Option(help="local, docker or ray (default: the track card's).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name (default: the track's).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Source folder of a real dataset.")] = None,
    force: Annotated[bool, typer.Option(help="Evaluate again even if an identical run is stored.")] = False,
    threads: Annotated[int | None, typer.Option(help="CPU threads for the model (fixed during timing).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --runner ray).")] = None,
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", help="Wall-time limit of one run in seconds (default: the card's).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run queued (or named) submissions of a track: ingestion in a sandbox, scoring outside, one Run each."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.api import evaluate as run_evaluate

    console = _console() if not as_json else None
    err = __import__("rich.console", fromlist=["Console"]).Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task_id = None

    def progress(event: str, info: dict[str, Any]) -> None:
        nonlocal task_id
        if event == "start":
            err.print(
                f"evaluating {info['jobs']} job(s) of {info['track']} on {info['dataset']} [{info['hardware_class']}]",
                markup=False,
            )
            task_id = bar.add_task("evaluate", total=info["jobs"])
        elif event == "warning":
            err.print(f"[yellow]warning:[/] {info['message']}")
        elif event == "run":
            bar.update(task_id, description=f"{info['submission']} [{info['variant']}]")
        elif event in ("done", "skip"):
            bar.advance(task_id)
            if event == "done" and console is not None:
                line = f"{info['submission']} [{info['variant']}]: {info['status']}"
                if info["status"] == "ok":
                    line += f"  {info['primary_metric']}={info['metrics'].get(info['primary_metric']):.4f}"
                    if info["latency"]:
                        line += f"  p50={info['latency']['p50_ms']:.3f} ms"
                else:
                    line += f"  ({info['error']})"
                bar.console.print(line, markup=False)
            elif event == "skip":
                bar.console.print(f"{info['submission']} [{info['variant']}]: skipped ({info['reason']})", markup=False)

    options = {"address": address} if address else None
    with bar:
        results = run_evaluate(
            track,
            submissions=submission,
            variants=variant,
            device=device,
            profile=profile,
            runner=runner,
            dataset=dataset,
            data_dir=data_dir,
            force=force,
            threads=threads,
            progress=progress,
            runner_options=options,
            time_limit_s=time_limit,
        )
    if as_json:
        _emit_json(results)


@app.command()
def leaderboard(
    track: Annotated[str, typer.Option("--track", "-t", help="Track to show.")],
    hardware_class: Annotated[str | None, typer.Option("--hardware-class", help="Only this hardware class.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The standings of a track's current version, ranked within each hardware class."""
    from rich.table import Table

    from harness.api import standings
    from harness.tracks import get_card

    card = get_card(track)
    rows = standings(track, hardware_class)
    if as_json:
        _emit_json(rows)
        return
    console = _console()
    if not rows:
        console.print(
            f"No finished runs for {card.key} yet. Run `harness submit PATH` then `harness evaluate --track {track}`."
        )
        return
    for hw in dict.fromkeys(r["hardware_class"] for r in rows):
        table = Table(title=f"{card.title} — {card.key} — {hw}")
        table.add_column("#", justify="right")
        table.add_column("submission")
        table.add_column("variant")
        for metric in card.metrics:
            table.add_column(metric, justify="right")
        for column in ("params", "MACs", "bytes", "p50 ms", "p90 ms", "run"):
            table.add_column(column, justify="right")
        for r in (r for r in rows if r["hardware_class"] == hw):
            macs = next(iter(r["macs"].values()), None)
            lat = r["latency"] or {}
            noisy = "*" if lat.get("noisy") else ""
            table.add_row(
                str(r["rank"]),
                r["submission"],
                r["variant"],
                *[f"{r['metrics'][m]:.4f}" if m in r["metrics"] else "-" for m in card.metrics],
                _fmt_count(r["params"]),
                _fmt_count(macs),
                _fmt_bytes(r["bytes"]),
                f"{lat['ranked_ms']:.3f}{noisy}" if lat else "-",
                f"{lat['p90_ms']:.3f}" if lat else "-",
                str(r["run_id"]),
            )
        console.print(table)
    console.print("* noisy latency (see `harness show RUN`)")


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
    typer.echo(f"leaderboard of {url.split('@')[-1]} on http://{host}:{port}", err=True)
    # In this process, after a warm-up (imports, one standings query), so the first reader does not wait for it.
    serve_leaderboard(url, port, host)


@app.command()
def show(run_id: Annotated[int, typer.Argument(help="Run id.")], as_json: JsonOpt = False) -> None:
    """Everything stored about one run."""
    from harness.api import run_to_dict
    from harness.store import open_store

    run = open_store().get_run(run_id)
    if run is None:
        raise HarnessError(f"no run with id {run_id}", "see `harness leaderboard --track T` for run ids")
    data = run_to_dict(run)
    if as_json:
        _emit_json(data)
        return
    console = _console()
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

    from harness.api import compare_rows

    rows = compare_rows(runs)
    breakdown = None
    if layers:
        from harness.measure.profile import layer_breakdown_for_runs

        breakdown = layer_breakdown_for_runs([r["run_id"] for r in rows])
    if as_json:
        _emit_json({"runs": rows, "layers": breakdown} if layers else rows)
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
            _fmt_bytes(r["bytes"]),
            f"{r['primary_metric']} {r['metric']:.4f}" if r["metric"] is not None else r["status"],
            pct(r["change_pct"]["p50_ms"]),
            pct(r["change_pct"]["bytes"]),
            f"{r['metric_delta']:+.4f}" if r["metric_delta"] is not None else "-",
        )
    console = _console()
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
) -> None:
    """Write runs, with their latency samples, to a results file that `harness gate` reads anywhere."""
    from harness.api import export_runs

    count = export_runs(runs or [], track, output)
    typer.echo(f"wrote {count} run(s) to {output}")


@app.command()
def gate(
    baseline: Annotated[str, typer.Option(help="Run id, submission@variant, or results file.")],
    candidate: Annotated[str, typer.Option(help="Run id, submission@variant, or results file.")],
    max_metric_drop: Annotated[float, typer.Option(help="Largest allowed drop of the primary metric.")] = 0.005,
    max_latency_increase: Annotated[float, typer.Option(help="Largest allowed latency increase (0.05 = 5%).")] = 0.05,
    confidence: Annotated[float, typer.Option(help="Confidence of the latency-ratio interval.")] = 0.99,
    method: Annotated[str, typer.Option(help="bootstrap or rank.")] = "bootstrap",
    allow_cross_hardware: Annotated[
        bool, typer.Option("--allow-cross-hardware", help="Compare across hardware classes / track versions.")
    ] = False,
    output_format: Annotated[str, typer.Option("--format", help="text, markdown, junit or json.")] = "text",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report here.")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write the JUnit XML report here.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the Markdown report here.")] = None,
) -> None:
    """Fail (exit 1) when the candidate's metric drops or its latency grows beyond noise; 3 = inconclusive.
    One run can write several reports of the same verdict: `--junit gate.xml --markdown gate.md`."""
    from harness.api import resolve_ref
    from harness.gate import gate as run_gate
    from harness.gate import render

    result = run_gate(
        resolve_ref(baseline),
        resolve_ref(candidate),
        max_metric_drop=max_metric_drop,
        max_latency_increase=max_latency_increase,
        confidence=confidence,
        allow_cross_hardware=allow_cross_hardware,
        method=method,
    )
    report = render(result, output_format)
    for path, text in ((junit, render(result, "junit")), (markdown, render(result, "markdown")), (output, report)):
        if path is not None:
            path.write_text(text)
    if output:
        typer.echo(render(result, "text") if output_format != "text" else report)
    else:
        typer.echo(report)
    raise typer.Exit(result.exit_code)


@app.command()
def score(
    track: Annotated[str, typer.Option("--track", "-t", help="small-object or text-detection.")],
    ground_truth: Annotated[Path, typer.Option("--ground-truth", help="COCO json, or an RRC gt folder/zip.")],
    predictions: Annotated[
        Path, typer.Option("--predictions", help="COCO results json, or an RRC results folder/zip.")
    ],
    ranges: Annotated[str, typer.Option(help="COCO area ranges: coco, tiny or all.")] = "all",
    backend: Annotated[str, typer.Option(help="COCO backend: pycocotools or faster-coco-eval.")] = "pycocotools",
    as_json: JsonOpt = False,
) -> None:
    """Score a predictions file offline against ground truth (audits, and participants who submit files)."""
    from harness.tracks import get_card

    card = get_card(track)
    if card.kind == "detection":
        from harness.errors import PredictionError
        from harness.metrics.coco import load_json, score_coco

        metrics = score_coco(
            load_json(ground_truth),
            load_json(predictions, error=PredictionError),
            backend=backend,
            ranges=ranges,
            gt_source=str(ground_truth),
            results_source=str(predictions),
        )
    elif card.kind == "text":
        from harness.formats.rrc import score_text

        metrics = score_text(ground_truth, predictions)
    else:
        raise HarnessError(f"`harness score` scores files of detection tracks; `{track}` is a {card.kind} track")
    if as_json:
        _emit_json({"track": card.key, "metrics": metrics})
    else:
        for name, value in metrics.items():
            typer.echo(f"{name:16s} {value:.6f}")


@datasets_app.command("list")
def datasets_list(as_json: JsonOpt = False) -> None:
    """The datasets the harness knows, and which need a --data-dir."""
    from harness.datasets import all_specs

    specs = all_specs()
    if as_json:
        _emit_json(
            [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "splits": list(s.splits),
                    "version": s.version,
                    "needs_source": s.needs_source,
                    "description": s.description,
                }
                for s in specs.values()
            ]
        )
        return
    for s in specs.values():
        src = " (needs --data-dir)" if s.needs_source else ""
        typer.echo(f"{s.name:14s} {s.kind:15s} v{s.version}  {', '.join(s.splits)}{src}\n    {s.description}")


@datasets_app.command("prepare")
def datasets_prepare(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    split: Annotated[str, typer.Option(help="Split.")] = "test",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Source folder of a real dataset.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Materialise a split (inputs + hidden ground truth), print its content digest and check it against its pin.
    Exits 1 when the digest differs from the pin."""
    from harness.datasets import materialize, verify_split

    data = materialize(name, split, data_dir)
    result = verify_split(data, recompute=False)
    _report_verifications([result], as_json, extra={result.root: {"count": data.count}})
    if not result.ok:
        raise typer.Exit(1)


@datasets_app.command("verify")
def datasets_verify(
    name: Annotated[str | None, typer.Argument(help="Dataset name (default: every prepared dataset).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the content digest of every prepared split and check it against the track cards' pins (generated
    data) or the digest it was prepared with (converted data). Exits 1 when any split differs."""
    from harness.datasets import get_spec, prepared_splits, verify_split

    if name is not None:
        get_spec(name)  # an unknown name is an error, not an empty report
    splits, stale = prepared_splits(name)
    results = [verify_split(data) for data in splits]
    if not results and not as_json:
        what = f"`{name}`" if name else "any dataset"
        typer.echo(f"no prepared split of {what} (harness datasets prepare NAME --split SPLIT)")
    _report_verifications(results, as_json, stale=stale)
    bad = [r for r in results if not r.ok]
    if bad:
        if not as_json:
            for result in bad:
                print(f"error: {result.problem()}\n  fix: {result.hint()}", file=sys.stderr)
        raise typer.Exit(1)


def _report_verifications(
    results: list[Any], as_json: bool, stale: Sequence[Path] = (), extra: dict[Path, dict] | None = None
) -> None:
    rows = []
    for r in results:
        status = "mismatch" if not r.ok else "ok" if r.pin else "unpinned"
        rows.append(
            {
                "dataset": r.dataset,
                "split": r.split,
                "status": status,
                "digest": r.found,
                "expected": r.expected,
                "prepared_digest": r.prepared,
                "pinned_by": r.pinned_by,
                "renderers": r.renderers_now,
                "path": str(r.root),
                **(extra or {}).get(r.root, {}),
            }
        )
    if as_json:
        _emit_json({"splits": rows, "stale": [str(p) for p in stale]})
        return
    for row in rows:
        against = {
            "ok": f"matches the pin of track `{row['pinned_by']}`",
            "unpinned": "no pin; matches the digest it was prepared with",
            "mismatch": "DIFFERS (below)",
        }[row["status"]]
        count = f"{row['count']} samples, " if "count" in row else ""
        typer.echo(f"{row['dataset']}/{row['split']}: {count}content digest {row['digest']}, {against}; {row['path']}")
    for path in stale:
        typer.echo(f"stale (an older version of its generator; nothing reads it, delete it): {path}")


@app.command()
def tracks(as_json: JsonOpt = False) -> None:
    """The track cards: dataset, metric, rules, version."""
    from dataclasses import asdict

    from harness.tracks import all_cards

    cards = all_cards()
    if as_json:
        _emit_json({name: {**asdict(c), "card_hash": c.card_hash} for name, c in cards.items()})
        return
    for c in cards.values():
        typer.echo(f"{c.key}: {c.title}; dataset {c.dataset}/{c.split}; primary {c.primary_metric}; rules {c.rules}")


def main() -> None:
    try:
        app()
    except HarnessError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  fix: {exc.hint}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
