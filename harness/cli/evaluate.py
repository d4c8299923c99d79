"""`harness evaluate`, with a progress bar on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.render import JsonOpt, app, emit_json, make_console
from harness.records import ranked_summary


@app.command()
def evaluate(
    track: Annotated[str | None, typer.Option("--track", "-t", help="Track to evaluate.")] = None,
    submission: Annotated[list[str] | None, typer.Option("--submission", "-s", help="Only these submissions.")] = None,
    variant: Annotated[list[str] | None, typer.Option("--variant", "-v", help="Only these variants.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    profile: Annotated[
        str | None,
        typer.Option(help="Latency profile: quick, standard or full (default: the track card's, which it ranks)."),
    ] = None,
    runner: Annotated[str | None, typer.Option(help="local, docker or ray (default: the track card's).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name (default: the track's).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Source folder of a real dataset.")] = None,
    force: Annotated[bool, typer.Option(help="Evaluate again even if an identical run is stored.")] = False,
    threads: Annotated[int | None, typer.Option(help="CPU threads for the model (fixed during timing).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --runner ray).")] = None,
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", help="Wall-time limit of one run in seconds (default: the card's).")
    ] = None,
    coco_backend: Annotated[
        str | None,
        typer.Option(
            "--coco-backend", help="COCO scorer of detection tracks: faster-coco-eval (default) or pycocotools."
        ),
    ] = None,
    competition: Annotated[
        str | None, typer.Option("--competition", "-c", help="Evaluate a competition phase's entries instead.")
    ] = None,
    phase: Annotated[str | None, typer.Option(help="The competition's phase (default: the open one).")] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="With --competition: evaluate entries as they arrive (until SIGTERM).")
    ] = False,
    poll: Annotated[float, typer.Option("--poll", help="With --watch: seconds between looks for new entries.")] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Run queued (or named) submissions of a track: ingestion in a sandbox, scoring outside, one Run each. With
    --competition: a phase's entries and baselines, each scored on the public and the private part."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.errors import HarnessError
    from harness.service.evaluate import evaluate as run_evaluate

    _check_target(track, competition, dataset, data_dir)
    if watch and competition is None:
        raise HarnessError("--watch evaluates a competition's entries as they arrive", "add --competition NAME")

    console = make_console() if not as_json else None
    err = __import__("rich.console", fromlist=["Console"]).Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # off a terminal it has nothing to redraw, and would leave a blank line
    )
    progress = _progress(bar, err, console)

    options = {"address": address} if address else None
    if competition is not None:
        run_evaluate = _phase_evaluation(competition, phase, watch, poll)
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
            coco_backend=coco_backend,
        )
    if as_json:
        emit_json(results)


def _check_target(track: str | None, competition: str | None, dataset: str | None, data_dir: Path | None) -> None:
    from harness.errors import HarnessError

    if (track is None) == (competition is None):
        raise HarnessError("name what to evaluate: --track TRACK, or --competition NAME [--phase PHASE]")
    if competition is not None and (dataset or data_dir):
        raise HarnessError("--dataset and --data-dir do not apply to a competition: its phase names its data")


def _phase_evaluation(competition: str, phase: str | None, watch: bool, poll: float) -> Any:
    """`evaluate` of a competition's phase (once, or `watch`ing for entries), called as the track's evaluate is."""
    from harness.service.competitions import evaluate as evaluate_phase
    from harness.service.competitions import watch as watch_phase

    def run(_track: Any, **options: Any) -> Any:
        del options["dataset"], options["data_dir"]
        if watch:
            return watch_phase(competition, phase, poll_s=poll, **options)
        return evaluate_phase(competition, phase, **options)

    return run


def _progress(bar: Any, err: Any, console: Any) -> Any:
    """The callback that shows an evaluation's events: a line per event on stderr, the bar, a line per run."""
    task_id = None

    def progress(event: str, info: dict[str, Any]) -> None:
        nonlocal task_id
        if event == "start":
            err.print(
                f"evaluating {info['jobs']} job(s) of {info['track']} on {info['dataset']}, "
                f"{info.get('profile', '?')} profile [{info['hardware_class']}]",
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
                    if info.get("primary_interval"):
                        line += " [{:.4f}, {:.4f}]".format(*info["primary_interval"])
                    latency = ranked_summary(info)
                    if latency:
                        line += f"  p50={latency['p50_ms']:.3f} ms ({info.get('ranked_latency', 'device')})"
                else:
                    line += f"  ({info['error']})"
                bar.console.print(line, markup=False)
            elif event == "skip":
                bar.console.print(f"{info['submission']} [{info['variant']}]: skipped ({info['reason']})", markup=False)

    return progress
