"""Results files: runs written by `harness export` (or `harness evaluate --json`) and read back by `harness gate`
anywhere; every run is checked against the run record's rules (`harness.records.validate_record`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import __version__
from harness.config import settings
from harness.errors import HarnessError, PredictionError
from harness.formats.limits import read_bounded
from harness.fs import write_atomic
from harness.records import brief, validate_record


def export_results(runs: list[dict[str, Any]], path: str | Path) -> None:
    """Write runs to a results file `{"harness_version", "exported_at", "runs"}` (atomically)."""
    path = Path(path)
    for index, run in enumerate(runs):
        validate_record(run, f"run {index} to export")
    document = {
        "harness_version": __version__,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": runs,
    }
    try:
        text = json.dumps(document, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PredictionError(f"runs to export cannot be written as JSON ({exc})") from exc
    write_atomic(path, text + "\n")  # a reader never sees half a file


def load_results_file(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a results file written by `export_results`; errors name the path and the field."""
    path = Path(path)
    if not path.exists():
        raise PredictionError(f"{path}: no such results file", hint="write one with `harness export ... -o FILE`")
    data = read_bounded(path, settings().max_json_bytes, "HARNESS_MAX_JSON_MB", PredictionError, "the results file")
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PredictionError(f"{path}: cannot read the results file ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise PredictionError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint="write results files with `harness export`",
        ) from exc
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; arrays nested thousands deep
        raise PredictionError(f"{path}: not a results file the harness reads ({brief(str(exc))})") from exc
    if not isinstance(document, dict):
        raise PredictionError(
            f"{path}: a results file must be a JSON object with 'harness_version' and 'runs', "
            f"got {type(document).__name__}"
        )
    if not isinstance(document.get("harness_version"), str):
        raise PredictionError(f"{path}: field 'harness_version' is missing or not a string")
    runs = document.get("runs")
    if not isinstance(runs, list):
        raise PredictionError(f"{path}: field 'runs' is missing or not a list")
    for index, run in enumerate(runs):
        validate_record(run, f"{path}: runs[{index}]")
    return runs


def select_run(
    runs: list[dict[str, Any]],
    source: str,
    run_id: str | int | None = None,
    submission: str | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    """The one run of `runs` matching the given filters; `source` (a file name) appears in errors."""
    matches = [
        run
        for run in runs
        if (run_id is None or str(run["run_id"]) == str(run_id))
        and (submission is None or run.get("submission") == submission)
        and (variant is None or run.get("variant") == variant)
    ]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(
        f"{brief(r['run_id'])} ({brief(r.get('submission'))}/{brief(r.get('variant'))})" for r in runs[:20]
    )
    if not matches:
        raise HarnessError(f"{source}: no run matches; it holds {listed or 'no runs'}", hint="pick a run by id")
    raise HarnessError(
        f"{source}: {len(matches)} runs match; it holds {listed}",
        hint="pick one run by id, submission or variant",
    )
