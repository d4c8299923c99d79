"""Run references (`12`, `submission@variant`, `results.json[#RUN]`), variants side by side, and exports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def resolve_ref(ref: str, store: Any = None, with_samples: bool = True) -> dict[str, Any]:
    """A run record from a run id (`12`), `submission@variant` (its latest finished run), or an exported
    results file (`results.json`, or `results.json#RUN_ID` when the file holds several runs)."""
    from harness.gate.results import load_results_file, select_run
    from harness.service.evaluate import run_record
    from harness.store import open_store

    path_part, _, run_part = ref.partition("#")
    if Path(path_part).is_file():
        runs = load_results_file(path_part)
        return select_run(runs, path_part, run_id=run_part or None)
    store = store or open_store()
    if ref.isdigit():
        run = store.get_run(int(ref))
        if run is None:
            raise HarnessError(f"no run with id {ref}", "see `harness leaderboard --track T` for run ids")
        return run_record(run, with_samples)
    if "@" in ref:
        name, _, variant = ref.partition("@")
        unfinished = ("running", "released")  # a released run is given up and waits to be evaluated again
        runs = [r for r in store.runs(submission=name, variant=variant or "fp32") if r.status not in unfinished]
        if not runs:
            raise HarnessError(f"no finished run of `{name}` with variant `{variant or 'fp32'}`", "evaluate it first")
        return run_record(runs[-1], with_samples)
    raise HarnessError(
        f"`{ref}` is neither a run id, `submission@variant`, nor an existing results file",
        "e.g. 12, gtsnet@fp16, or results.json",
    )


def _change(value: float | None, reference: float | None) -> float | None:
    if value is None or reference in (None, 0):
        return None
    return 100.0 * (value - reference) / reference


def compare_rows(refs: Sequence[str], store: Any = None) -> list[dict[str, Any]]:
    """Variants side by side: latency, throughput, bytes, metric, and the change in % against the first."""
    runs = [resolve_ref(ref, store, with_samples=False) for ref in refs]
    base = runs[0]
    base_metric = base["metrics"].get(base["primary_metric"])
    rows = []
    for run in runs:
        lat = run.get("latency") or {}
        metric = run["metrics"].get(run["primary_metric"])
        p50 = lat.get("ranked_ms")
        throughput = 1000.0 * lat.get("batch_size", 1) / p50 if p50 else None
        sweep = (run.get("details") or {}).get("throughput") or {}
        if sweep.get("best_samples_per_s"):
            throughput = sweep["best_samples_per_s"]  # the best of the batch-size sweep
        rows.append(
            {
                "run_id": run["run_id"],
                "submission": run["submission"],
                "variant": run["variant"],
                "status": run["status"],
                "primary_metric": run["primary_metric"],
                "metric": metric,
                "p50_ms": p50,
                "p90_ms": lat.get("p90_ms"),
                "throughput_per_s": throughput,
                "throughput_batch_size": sweep.get("best_batch_size"),
                "bytes": run.get("bytes"),
                "noisy": lat.get("noisy"),
                "hardware_class": run.get("hardware_class"),
                "change_pct": {
                    "p50_ms": _change(p50, (base.get("latency") or {}).get("ranked_ms")),
                    "bytes": _change(run.get("bytes"), base.get("bytes")),
                    "metric": _change(metric, base_metric),
                },
                "metric_delta": None if metric is None or base_metric is None else metric - base_metric,
            }
        )
    return rows


def export_runs(refs: Sequence[str], track: str | None, output: Path, store: Any = None) -> int:
    """Write runs (by reference, or a track's current standings) to a results file for gates elsewhere."""
    from harness.gate.results import export_results

    runs = [resolve_ref(ref, store) for ref in refs]
    if track:
        from harness.service.standings import standings

        runs.extend(standings(track, store=store, with_samples=True))
    if not runs:
        raise HarnessError("nothing to export", "name runs (ids or submission@variant) or pass --track")
    export_results(runs, output)
    return len(runs)
