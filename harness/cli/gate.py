"""`harness gate` (regression gates) and `harness score` (score a predictions file offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.render import JsonOpt, app, emit_json, writable_file, write_report
from harness.errors import HarnessError


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
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report (same as --format json).")] = False,
) -> None:
    """Fail (exit 1) when the candidate's metric drops or its latency grows beyond noise; 3 = inconclusive.
    One run can write several reports of the same verdict: `--junit gate.xml --markdown gate.md`."""
    from harness.gate import gate as run_gate
    from harness.gate import render
    from harness.service.results import resolve_ref

    if as_json and output_format not in ("text", "json"):
        raise HarnessError(f"--json and --format {output_format} ask for two reports on stdout", "give one of them")
    output_format = "json" if as_json else output_format
    # Before any work: exit 1 means a regression, so a report that cannot be written must not end as one.
    for option, path in (("--output", output), ("--junit", junit), ("--markdown", markdown)):
        writable_file(path, option)
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
            write_report(path, text)
    if output and not as_json:
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
    coco_backend: Annotated[
        str | None,
        typer.Option(
            "--coco-backend",
            help="COCO scorer: faster-coco-eval (the default) or pycocotools; both give the same numbers.",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[str | None, typer.Option("--backend", hidden=True, help="Old name of --coco-backend.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a predictions file offline against ground truth (audits, and participants who submit files)."""
    from harness.tracks import get_card

    if coco_backend is not None and backend is not None and coco_backend != backend:
        raise HarnessError(
            f"--coco-backend {coco_backend} and --backend {backend} disagree", "give --coco-backend only"
        )
    card = get_card(track)
    if card.kind == "detection":
        from harness.metrics.coco import DEFAULT_BACKEND, score_coco_files

        notes: list[str] = []
        metrics = score_coco_files(
            ground_truth, predictions, backend=coco_backend or backend or DEFAULT_BACKEND, ranges=ranges, notes=notes
        )
        for note in notes:
            typer.echo(note, err=True)
    elif card.kind == "text":
        from harness.formats.rrc import score_text

        metrics = score_text(ground_truth, predictions)
    else:
        raise HarnessError(f"`harness score` scores files of detection tracks; `{track}` is a {card.kind} track")
    if as_json:
        emit_json({"track": card.key, "metrics": metrics})
    else:
        for name, value in metrics.items():
            typer.echo(f"{name:16s} {value:.6f}")
