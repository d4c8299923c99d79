"""`check`: validate a submission folder without storing anything."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SubmissionError
from harness.measure.environment import default_threads
from harness.sandbox.job import IngestJob
from harness.sandbox.measurements import Complexity, Rejected
from harness.service.jobs import mac_inputs, track_fields
from harness.submission import SUBMISSIONS, Installer, content_hash, install, read_manifest
from harness.tracks import TrackCard, get_card


@dataclass
class CheckReport:
    name: str
    track: str
    ok: bool
    params: int | None = None
    macs: dict[str, int] = field(default_factory=dict)
    macs_std: dict[str, float] = field(default_factory=dict)
    bytes: int | None = None
    violations: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rule_violations(card: TrackCard, complexity: Complexity, with_macs: bool = True) -> list[str]:
    rules = card.rules
    found = []
    if rules.min_params is not None and complexity.params < rules.min_params:
        found.append(
            f"params {complexity.params:,} below min_params {rules.min_params:,}: the harness saw the model compute "
            "with no weights of its own (it counts what the computation reads, however the model holds it)"
        )
    if rules.max_params is not None and complexity.params > rules.max_params:
        found.append(f"params {complexity.params:,} exceed max_params {rules.max_params:,}")
    if rules.max_bytes is not None and complexity.bytes > rules.max_bytes:
        found.append(f"bytes {complexity.bytes:,} exceed max_bytes {rules.max_bytes:,}")
    if with_macs and rules.max_macs is not None and complexity.macs:
        key, macs = next(iter(complexity.macs.items()))
        if macs > rules.max_macs:
            found.append(f"MACs {macs / 1e6:,.1f} M at {key} exceed max_macs {rules.max_macs / 1e6:,.1f} M")
    return found


def check(
    path: Path,
    input_sizes: Sequence[Sequence[int]] | None = None,
    time_limit_s: float = 600,
    runner: str | None = None,
) -> list[CheckReport]:
    """Validate a submission folder without storing anything: manifest, install, entry points, one batch
    through output validation, params/MACs/bytes, and the track's rules. One report per entry point.
    The submission's code runs through `runner` (default local: a participant checking their own code), and so
    does its build: with the docker runner, `pip install` of the project runs in the sandbox too."""
    from harness.datasets import materialize
    from harness.runners import get_runner

    manifest = read_manifest(path)
    card = get_card(manifest.track)
    runner_impl = get_runner(runner or "local")
    site = install(manifest.path, content_hash(manifest.path), installer=runner_installer(runner_impl, time_limit_s))
    found = SUBMISSIONS.entries(site)
    split = materialize(card.dataset, card.split) if card.mac_images and not input_sizes else None
    reports = []
    for name in manifest.entry_points:
        if name not in found:
            raise SubmissionError(
                f"{manifest.path}: entry point `{name}` did not install", "check the package name in pyproject.toml"
            )
        job_fields = {
            **track_fields(card, split.hidden_dir if split else None),
            "mac_inputs": mac_inputs(card, split.index() if split else None, input_sizes),
            "inputs_dir": str(split.inputs_dir) if split else None,
            "build_options": manifest.build_options.get(name, {}),
        }
        reports.append(_check_entry(card, name, site, job_fields, runner_impl, time_limit_s, bool(input_sizes)))
    return reports


def runner_installer(runner: Any, time_limit_s: float = 600) -> Installer | None:
    """How a submission checked through `runner` is built: in its sandbox when it offers an installer (the
    docker runner: building runs the project's code), else on this host (`harness.submission.host_installer`).
    `check` installs with it; the site it makes is content-addressed, so a later `install` of the same content
    (`store_submission`) finds it and builds nothing."""
    make = getattr(runner, "installer", None)
    return make(time_limit_s) if callable(make) else None


def _check_entry(
    card: TrackCard, name: str, site: Path, job_fields: dict[str, Any], runner: Any, time_limit_s: float, sized: bool
) -> CheckReport:
    from harness.verify import verify_output

    with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
        job = IngestJob(
            mode="check",
            site_dir=str(site),
            entry_name=name,
            variant="fp32",
            device="cpu",
            out_dir=tmp,
            threads=default_threads(),
            **job_fields,
        )
        result = runner.run(job, time_limit_s)
        if result.ok:
            try:
                measured = verify_output(job, Path(tmp), result.marks, result.host_timings)
            except Rejected as exc:
                result.ok, result.error = False, str(exc)
    if not result.ok:
        return CheckReport(name=name, track=card.name, ok=False, error=result.error)
    complexity = measured.complexity
    violations = rule_violations(card, complexity, with_macs=not sized)
    output_error = measured.output_error
    return CheckReport(
        name=name,
        track=card.name,
        ok=not violations and output_error is None,
        error=f"[outputs] {output_error}" if output_error else None,
        params=complexity.params,
        macs=complexity.macs,
        macs_std=complexity.macs_std,
        bytes=complexity.bytes,
        violations=violations,
    )
