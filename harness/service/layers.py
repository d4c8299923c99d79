"""Per-layer-type time breakdown of stored runs (`harness compare --layers`): each run's submission is run
again, with the run's variant and device, through the run's runner in the ingestion driver's `profile` mode,
so submission code runs in the sandbox, never in the CLI's process (harness.sandbox.profile says how)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def _split_inputs(run: Any, split: str) -> Path:
    """The inputs folder of the materialised split a run was measured on (or its sibling split)."""
    from harness.config import datasets_dir
    from harness.datasets import get_spec, materialize

    name, _, measured_split = run.dataset.partition("/")
    spec = get_spec(name)
    if not spec.needs_source:
        return materialize(name, split).inputs_dir
    for card in sorted((datasets_dir() / name).glob(f"v{spec.version}-*/{measured_split}/dataset.json")):
        if json.loads(card.read_text()).get("digest") == run.dataset_hash:
            folder = card.parent.parent / split / "inputs"
            if folder.is_dir():
                return folder
    raise HarnessError(
        f"the inputs of run {run.id}'s dataset `{run.dataset}` (split `{split}`) are not prepared here",
        f"run `harness datasets prepare {name} --split {split} --data-dir SOURCE` with the run's source",
    )


def _profile_job(run: Any, out_dir: str, iterations: int) -> Any:
    from harness.measure.environment import default_threads
    from harness.sandbox.job import IngestJob
    from harness.service.jobs import needs_calibration, track_fields
    from harness.tracks import get_card

    card = get_card(run.track)
    inputs_dir = _split_inputs(run, run.dataset.partition("/")[2])
    env = run.environment.data if run.environment else {}
    calibration = needs_calibration(run.variant)
    return IngestJob(
        mode="profile",
        site_dir=run.submission.site_path,
        entry_name=run.submission.name,
        build_options=dict(run.submission.build_options or {}),
        variant=run.variant,
        device=run.device,
        out_dir=out_dir,
        inputs_dir=str(inputs_dir),
        threads=int(env.get("threads") or default_threads()),
        calibration_dir=str(_split_inputs(run, card.calibration_split)) if calibration else None,
        profile_iterations=iterations,
        **track_fields(card, inputs_dir.parent / "hidden"),
    )


def layer_breakdown_for_runs(
    run_ids: Sequence[int], store: Any = None, iterations: int = 20
) -> dict[int, dict[str, float]]:
    """{run_id: {layer type: ms per inference}} for stored runs, profiled through each run's runner."""
    from harness.runners import get_runner
    from harness.sandbox.measurements import Rejected
    from harness.store import open_store
    from harness.tracks import get_card
    from harness.verify import verify_output

    store = store or open_store()
    breakdown: dict[int, dict[str, float]] = {}
    for run_id in run_ids:
        run = store.get_run(int(run_id))
        if run is None:
            raise HarnessError(
                f"run {run_id} is not in this store, so its model cannot be profiled",
                "profile runs of the local store (results files carry no model)",
            )
        if run.status != "ok":
            breakdown[run.id] = {}
            continue
        if run.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise HarnessError(
                    f"run {run.id} was measured on {run.device}; this machine has no CUDA device",
                    "profile it on the machine that measured it",
                )
        with tempfile.TemporaryDirectory(prefix="harness-profile-") as tmp:
            job = _profile_job(run, tmp, iterations)
            result = get_runner(run.runner).run(job, get_card(run.track).time_limit_s)
            try:
                profiled = verify_output(job, Path(tmp)) if result.ok else None
            except Rejected as exc:
                result.ok, result.error = False, str(exc)
            if not result.ok:
                raise HarnessError(
                    f"profiling run {run.id} ({run.submission.name}@{run.variant}) failed: {result.error}"
                )
            breakdown[run.id] = profiled["layers"]
    return breakdown
