"""Regression gates: decide whether a candidate run is worse than a baseline run beyond measurement noise.

A pure library (no database): it takes two runs as plain dicts, in the shape `harness evaluate --json` emits
and `harness export` writes, and returns a `GateResult` that `render` turns into text, Markdown, JUnit XML or
JSON. The CLI verbs `harness gate` and `harness export` are thin layers over it.

Two checks are made:

- the primary metric, judged exactly: the metric of a fixed model on a fixed split is deterministic, so a
  drop larger than `max_metric_drop` fails with no statistics involved;
- latency, judged on a confidence interval of the ratio candidate / baseline of the ranked latency figure
  (the median of the repeat medians). The check fails only when the whole interval lies above
  `1 + max_latency_increase`, passes when the whole interval lies at or below it, and is inconclusive
  ("too noisy") when the interval straddles it.

Overall status and exit codes: `pass` -> 0, `fail` -> 1, `inconclusive` -> 3 (2 is the CLI's code for a
user error such as a malformed file, see `harness.errors.HarnessError.exit_code`).

Why the latency interval is built the way it is (docs/GATE.md says more): per-iteration samples inside one
repeat are autocorrelated (clock and thermal drift, cache and allocator state), so treating the few thousand
samples of a run as independent makes intervals far too narrow. When a run's samples can be split into its
repeats, the repeats are the independent units: the bootstrap resamples repeats, then samples within each
resampled repeat (a two-stage, "hierarchical" bootstrap), and the rank method compares repeat medians.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import HarnessError, PredictionError
from harness.gate.stats import EPS, METHODS, latency_blocks, latency_verdict, ratio_interval
from harness.records import finite_or_none, ranked_summary, validate_record

EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 3}

# Run statuses that mean "evaluated to the end"; anything else is a failed run.
SUCCESS_STATUSES = frozenset({"ok", "success", "succeeded", "done", "completed", "finished"})


@dataclass
class Check:
    """One judged comparison. `values` holds the figures behind the verdict (for reports and JSON)."""

    name: str
    status: str  # "pass" | "fail" | "inconclusive"
    detail: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateResult:
    """The outcome of `gate`: the overall status, each check, and what was compared with which settings."""

    status: str
    checks: list[Check]
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return finite_or_none(data)


def gate(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    max_metric_drop: float = 0.005,
    max_latency_increase: float = 0.05,
    confidence: float = 0.99,
    allow_cross_hardware: bool = False,
    method: str = "bootstrap",
    n_boot: int = 2000,
    seed: int = 0,
) -> GateResult:
    """Judge `candidate` against `baseline` (run records as dicts); see the module docstring for the rules.

    Raises `HarnessError` for settings out of range, malformed runs, runs of different tracks, and runs of
    a different hardware class or track version unless `allow_cross_hardware` is set.
    """
    _check_settings(max_metric_drop, max_latency_increase, confidence, method, n_boot)
    validate_record(baseline, "baseline run")
    validate_record(candidate, "candidate run")
    notes = _comparability_notes(baseline, candidate, allow_cross_hardware)
    if baseline["status"].lower() not in SUCCESS_STATUSES:
        raise HarnessError(
            f"baseline run {baseline['run_id']} ended with status {baseline['status']!r}; "
            "a failed run cannot serve as a baseline",
            hint="gate against a baseline run that completed (status 'ok')",
        )
    settings = {
        "max_metric_drop": max_metric_drop,
        "max_latency_increase": max_latency_increase,
        "confidence": confidence,
        "method": method,
        "n_boot": n_boot,
        "seed": seed,
    }
    if candidate["status"].lower() not in SUCCESS_STATUSES:
        reason = candidate.get("error") or candidate.get("reason") or ""
        checks = [
            Check(
                "run status",
                "fail",
                f"candidate run {candidate['run_id']} ended with status {candidate['status']!r}"
                + (f": {reason}" if reason else ""),
                {"baseline": baseline["status"], "candidate": candidate["status"]},
            )
        ]
    else:
        checks = [
            _metric_check(baseline, candidate, max_metric_drop),
            _latency_check(baseline, candidate, max_latency_increase, confidence, method, n_boot, seed),
        ]
    statuses = {check.status for check in checks}
    status = "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"
    return GateResult(status, checks, _run_summary(baseline), _run_summary(candidate), settings, notes)


def _check_settings(
    max_metric_drop: float, max_latency_increase: float, confidence: float, method: str, n_boot: int
) -> None:
    if not (math.isfinite(max_metric_drop) and max_metric_drop >= 0):
        raise HarnessError(
            f"max metric drop must be a finite number >= 0, got {max_metric_drop}",
            hint="pass e.g. --max-metric-drop 0.005",
        )
    if not (math.isfinite(max_latency_increase) and max_latency_increase >= 0):
        raise HarnessError(
            f"max latency increase must be a finite fraction >= 0, got {max_latency_increase}",
            hint="pass e.g. --max-latency-increase 0.05 for 5 %",
        )
    if not 0.5 <= confidence < 1.0:
        raise HarnessError(f"confidence must lie in [0.5, 1), got {confidence}", hint="pass e.g. --confidence 0.99")
    if method not in METHODS:
        raise HarnessError(f"unknown interval method {method!r}", hint=f"choose one of {', '.join(METHODS)}")
    if n_boot < 100:
        raise HarnessError(f"n_boot must be at least 100, got {n_boot}", hint="the default is 2000")


def _comparability_notes(baseline: dict[str, Any], candidate: dict[str, Any], allow_cross_hardware: bool) -> list[str]:
    if baseline["track"] != candidate["track"]:
        # Not overridable: different tracks have different data and metrics, so no comparison means anything.
        raise HarnessError(
            f"baseline run {baseline['run_id']} is of track {baseline['track']!r} but candidate run "
            f"{candidate['run_id']} is of track {candidate['track']!r}",
            hint="gate a candidate against a baseline of the same track",
        )
    if baseline["primary_metric"] != candidate["primary_metric"] or bool(baseline["higher_is_better"]) != bool(
        candidate["higher_is_better"]
    ):
        raise HarnessError(
            f"baseline run {baseline['run_id']} ranks by {baseline['primary_metric']!r} but candidate run "
            f"{candidate['run_id']} by {candidate['primary_metric']!r} (or in the other direction)",
            hint="gate runs scored by the same track card",
        )
    notes = []
    for key, what in (("hardware_class", "hardware class"), ("track_version", "track version")):
        if str(baseline[key]) != str(candidate[key]):
            message = (
                f"{what} differs: baseline run {baseline['run_id']} has {baseline[key]!r}, "
                f"candidate run {candidate['run_id']} has {candidate[key]!r}"
            )
            if not allow_cross_hardware:
                raise HarnessError(
                    message,
                    hint="evaluate both on the same hardware class and track version, or pass "
                    "--allow-cross-hardware to compare anyway",
                )
            notes.append(f"{message}; compared anyway (--allow-cross-hardware)")
    for key, what in (("dataset", "dataset"), ("dataset_hash", "dataset digest"), ("profile", "latency profile")):
        if baseline.get(key) and candidate.get(key) and str(baseline[key]) != str(candidate[key]):
            raise HarnessError(
                f"{what} differs: baseline run {baseline['run_id']} has {baseline[key]!r}, "
                f"candidate run {candidate['run_id']} has {candidate[key]!r}: their numbers are not comparable",
                hint="evaluate both on the same dataset and with the same --profile",
            )
    if baseline.get("ranked_latency", "device") != candidate.get("ranked_latency", "device"):
        raise HarnessError(
            f"baseline run {baseline['run_id']} ranks its {baseline.get('ranked_latency', 'device')} latency, "
            f"candidate run {candidate['run_id']} its {candidate.get('ranked_latency', 'device')} latency",
            hint="gate runs scored by the same track card",
        )
    versions = baseline.get("harness_version"), candidate.get("harness_version")
    if all(versions) and versions[0] != versions[1]:
        notes.append(f"runs were made by different harness versions ({versions[0]} and {versions[1]})")
    return notes


def _run_summary(run: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "run_id", "submission", "variant", "track", "track_version", "dataset", "dataset_hash", "profile",
        "hardware_class", "device", "ranked_latency", "status",
    )  # fmt: skip
    return {key: run.get(key) for key in keys}


def _metric_check(baseline: dict[str, Any], candidate: dict[str, Any], max_drop: float) -> Check:
    name = baseline["primary_metric"]
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        if name not in run["metrics"]:
            raise PredictionError(
                f"{side} run {run['run_id']}: metrics has no {name!r} (its primary metric); "
                f"it has {sorted(run['metrics']) or 'none'}",
                hint="export the run again with `harness export`",
            )
    before, after = float(baseline["metrics"][name]), float(candidate["metrics"][name])
    higher_is_better = bool(baseline["higher_is_better"])
    drop = before - after if higher_is_better else after - before
    values = {
        "baseline": before,
        "candidate": after,
        "change": after - before,
        "change_pct": 100.0 * (after - before) / abs(before) if before != 0 else None,
        "drop": drop,
        "max_drop": max_drop,
        "higher_is_better": higher_is_better,
    }
    movement = f"{name} {before:.4f} -> {after:.4f}"
    if drop > max_drop + EPS:
        detail = f"{movement}: worse by {drop:.4f}, more than the allowed {max_drop:.4f}"
        return Check(f"primary metric {name}", "fail", detail, values)
    if drop > 0:
        detail = f"{movement}: worse by {drop:.4f}, within the allowed {max_drop:.4f}"
    else:
        detail = f"{movement}: not worse"
    return Check(f"primary metric {name}", "pass", detail, values)


def _latency_check(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    max_increase: float,
    confidence: float,
    method: str,
    n_boot: int,
    seed: int,
) -> Check:
    threshold = 1.0 + max_increase
    level = f"{100 * confidence:g} %"
    values: dict[str, Any] = {"unit": "ms", "threshold": threshold, "confidence": confidence}
    sides = []
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        blocks, how = latency_blocks(run)
        if blocks is None:
            p50s = [(ranked_summary(r) or {}).get("p50_ms") for r in (baseline, candidate)]
            if all(isinstance(p, int | float) and p > 0 for p in p50s):
                values.update(baseline=p50s[0], candidate=p50s[1], change_pct=100 * (p50s[1] / p50s[0] - 1))
            detail = (
                f"inconclusive: {side} run {run['run_id']} has no latency samples ({how}); without them "
                "the noise cannot be estimated, so p50 alone is not judged"
            )
            return Check("latency", "inconclusive", detail, values)
        sides.append((blocks, how))
    (base_blocks, base_how), (cand_blocks, cand_how) = sides
    interval = ratio_interval(base_blocks, cand_blocks, confidence, method, n_boot, seed)
    values.update(
        baseline=interval.baseline_ms,
        candidate=interval.candidate_ms,
        ratio=interval.point,
        change_pct=100 * (interval.point - 1),
        ci_low=interval.low,
        ci_high=interval.high,
        method=method,
        scheme=interval.scheme,
        baseline_samples=base_how,
        candidate_samples=cand_how,
    )
    verdict = latency_verdict(interval.low, interval.high, max_increase)
    ci = f"{level} CI of the ratio [{interval.low:.3f}, {interval.high:.3f}]"
    if verdict == "fail":
        detail = f"slower beyond noise: {ci} lies wholly above the allowed {threshold:.3f}"
    elif verdict == "pass":
        detail = f"{ci} lies at or below the allowed {threshold:.3f}"
    else:
        detail = (
            f"inconclusive: too noisy: {ci} straddles the allowed {threshold:.3f}; "
            "re-run with more repeats or on a quieter machine"
        )
    if interval.note:
        detail += f" ({interval.note})"
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        latency = ranked_summary(run) or {}
        if latency.get("noisy"):
            reasons = "; ".join(str(r) for r in latency.get("noise_reasons") or []) or "no reason given"
            detail += f"; {side} run marked noisy: {reasons}"
    return Check("latency", verdict, detail, values)
