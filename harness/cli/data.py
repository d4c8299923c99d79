"""`harness datasets list|prepare|verify` and `harness tracks`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.render import JsonOpt, app, datasets_app, emit_json


@datasets_app.command("list")
def datasets_list(as_json: JsonOpt = False) -> None:
    """The datasets the harness knows, and which need a --data-dir."""
    from harness.datasets import all_specs

    specs = all_specs()
    if as_json:
        emit_json(
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
        emit_json({"splits": rows, "stale": [str(p) for p in stale]})
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
        emit_json({name: {**asdict(c), "card_hash": c.card_hash} for name, c in cards.items()})
        return
    for c in cards.values():
        typer.echo(f"{c.key}: {c.title}; dataset {c.dataset}/{c.split}; primary {c.primary_metric}; rules {c.rules}")
