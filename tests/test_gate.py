"""Tests of the regression gate: latency interval statistics, verdicts, reports and results files."""

from __future__ import annotations

import itertools
import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from harness.errors import HarnessError, PredictionError
from harness.gate import (
    EXIT_CODES,
    GateResult,
    export_results,
    gate,
    latency_blocks,
    latency_ratio_interval,
    latency_verdict,
    load_results_file,
    render,
    select_run,
)
from harness.gate.stats import bootstrap_figures as _bootstrap_figures
from harness.gate.stats import kth_difference as _kth_difference
from harness.gate.stats import mann_whitney_counts as _mann_whitney_counts

TRIALS = 200


def simulate_latency(
    rng: np.random.Generator,
    trials: int,
    median_ms: float,
    repeats: int = 5,
    per_repeat: int = 60,
    cv: float = 0.012,
    repeat_sd: float = 0.003,
    phi: float = 0.5,
    spike_rate: float = 0.02,
) -> np.ndarray:
    """Latency samples shaped (trials, repeats, per_repeat) like a GPU benchmark's.

    Log-normal around `median_ms` with a within-repeat CV of `cv`, AR(1) autocorrelation `phi` between
    consecutive iterations, a per-repeat offset (clock/thermal state) of `repeat_sd`, and rare slow
    iterations (`spike_rate`, +15 % on average) as from interrupts or allocator stalls.
    """
    innovations = rng.normal(size=(trials, repeats, per_repeat))
    drift = np.empty_like(innovations)
    drift[..., 0] = innovations[..., 0]
    for t in range(1, per_repeat):
        drift[..., t] = phi * drift[..., t - 1] + math.sqrt(1 - phi**2) * innovations[..., t]
    log_ms = np.log(median_ms) + cv * drift + repeat_sd * rng.normal(size=(trials, repeats, 1))
    spikes = rng.random(size=log_ms.shape) < spike_rate
    log_ms += spikes * np.log1p(rng.exponential(0.15, size=log_ms.shape))
    return np.exp(log_ms)


def make_run(run_id, samples: np.ndarray | None = None, **overrides) -> dict:
    """A run record as `harness evaluate --json` emits it; `samples` shaped (repeats, per_repeat)."""
    run = {
        "run_id": run_id,
        "submission": "tinynet",
        "variant": "fp32",
        "track": "classification",
        "track_version": "1",
        "hardware_class": "nvidia-h200",
        "status": "ok",
        "metrics": {"top1": 0.8, "top5": 0.95},
        "primary_metric": "top1",
        "higher_is_better": True,
        "latency": None,
    }
    if samples is not None:
        run["latency"] = {
            "p50_ms": float(np.median(samples)),
            "repeats": samples.shape[0],
            "noisy": False,
            "noise_reasons": [],
            "samples_ms": samples.reshape(-1).tolist(),
            "repeat_medians_ms": np.median(samples, axis=1).tolist(),
        }
    run.update(overrides)
    return run


@pytest.fixture(scope="module")
def quiet_samples() -> np.ndarray:
    return simulate_latency(np.random.default_rng(7), 2, 4.0)


# --------------------------------------------------------------------------------------------------------
# statistics


def test_mann_whitney_counts_match_enumeration():
    # Every way of placing 3 x's among 7 positions, counting the (x, y) pairs with y before x.
    m, n = 3, 4
    enumerated = [0] * (m * n + 1)
    for x_positions in itertools.combinations(range(m + n), m):
        u = sum(p - i for i, p in enumerate(x_positions))  # y's before each x
        enumerated[u] += 1
    assert _mann_whitney_counts(m, n) == enumerated
    # m = n = 5: the textbook table, summing to C(10, 5) = 252.
    five = _mann_whitney_counts(5, 5)
    assert five[:8] == [1, 1, 2, 3, 5, 7, 9, 11] and five == five[::-1] and sum(five) == 252


def test_rank_interval_small_samples_worked_by_hand():
    baseline, candidate = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    # The 25 ratios c/b; Hodges-Lehmann is their median, 2. At 99 %, P(U = 0) = 1/252 <= 0.005 < 2/252,
    # so k = 1: the interval is [smallest, largest] ratio = [2/5, 10/1].
    low, point, high = latency_ratio_interval(baseline, candidate, method="rank")
    assert (low, point, high) == pytest.approx((0.4, 2.0, 10.0))
    # At 95 %, P(U <= 2) = 4/252 <= 0.025 < 7/252, so k = 3: the third smallest ratio (2/5, 2/4, 2/3)
    # and the third largest (10, 8, 6).
    low, point, high = latency_ratio_interval(baseline, candidate, confidence=0.95, method="rank")
    assert (low, point, high) == pytest.approx((2 / 3, 2.0, 6.0))


def test_rank_interval_with_too_few_repeats_is_unbounded():
    # 3 against 3 repeats: the most extreme ranking has probability 1/20 > 0.005, so no 99 % interval.
    blocks = [[1.0, 1.1], [1.2, 1.0], [1.05, 1.1]]
    low, _, high = latency_ratio_interval(blocks, blocks, method="rank")
    assert low == 0.0 and high == math.inf


def test_kth_difference_matches_brute_force():
    rng = np.random.default_rng(3)
    x, y = np.sort(rng.normal(size=37)), np.sort(rng.normal(size=23))
    differences = np.sort((y[None, :] - x[:, None]).ravel())
    ranks = [*range(1, differences.size + 1, 7), differences.size]
    assert [_kth_difference(x, y, k) for k in ranks] == [differences[k - 1] for k in ranks]


@pytest.mark.parametrize("n", [101, 100])
def test_bootstrap_median_draws_match_plain_resampling(n):
    rng = np.random.default_rng(11)
    data = rng.lognormal(0.0, 0.3, size=n)
    resampled = np.median(data[rng.integers(n, size=(20000, n))], axis=1)
    drawn = _bootstrap_figures([data], 20000, rng)
    levels = [0.01, 0.1, 0.5, 0.9, 0.99]
    # Both are draws of the same distribution; 20,000 draws pin its quantiles to well under 1 %.
    assert np.quantile(drawn, levels) == pytest.approx(np.quantile(resampled, levels), rel=0.01)


def test_bootstrap_interval_is_reproducible_and_centred(quiet_samples):
    baseline, candidate = quiet_samples[0], quiet_samples[1] * 1.2
    first = latency_ratio_interval(baseline, candidate, seed=5)
    assert latency_ratio_interval(baseline, candidate, seed=5) == first
    low, point, high = first
    expected_point = np.median(np.median(candidate, axis=1)) / np.median(np.median(baseline, axis=1))
    assert point == pytest.approx(expected_point) and low < point < high
    assert low > 1.15 and high < 1.25


def test_latency_verdict_examples():
    assert latency_verdict(0.98, 1.02) == "pass"
    assert latency_verdict(1.03, 1.08) == "inconclusive"
    assert latency_verdict(1.06, 1.12) == "fail"
    assert latency_verdict(0.99, 1.05) == "pass"  # at the threshold counts as within


def _rates(statuses: list[str]) -> dict[str, float]:
    return {status: statuses.count(status) / len(statuses) for status in EXIT_CODES}


@pytest.mark.parametrize("method", ["bootstrap", "rank"])
def test_true_ten_percent_slowdown_is_caught(method):
    rng = np.random.default_rng(2024)
    baseline, candidate = simulate_latency(rng, TRIALS, 4.0), simulate_latency(rng, TRIALS, 4.4)
    results = [gate(make_run(1, baseline[i]), make_run(2, candidate[i]), method=method) for i in range(TRIALS)]
    rates = _rates([result.status for result in results])
    # The simulated median of repeat medians is exactly 10 % slower, so a 99 % interval should hold 1.10.
    latency = [result.checks[1].values for result in results]
    coverage = np.mean([v["ci_low"] <= 1.10 <= v["ci_high"] for v in latency])
    print(f"10 % slowdown, {method}: {rates}, coverage of the true ratio {coverage:.3f}")
    assert rates["fail"] >= 0.95, f"10 % slowdown caught in only {rates} of {TRIALS} trials ({method})"
    assert coverage >= 0.95, f"99 % intervals held the true ratio in {coverage:.3f} of {TRIALS} trials"


@pytest.mark.parametrize("method", ["bootstrap", "rank"])
def test_same_distribution_is_rarely_flagged(method):
    rng = np.random.default_rng(99)
    baseline, candidate = simulate_latency(rng, TRIALS, 4.0), simulate_latency(rng, TRIALS, 4.0)
    statuses = [gate(make_run(1, baseline[i]), make_run(2, candidate[i]), method=method).status for i in range(TRIALS)]
    rates = _rates(statuses)
    print(f"same distribution, {method}: {rates}")
    assert rates["fail"] <= 0.01, f"no change flagged as a regression: {rates} of {TRIALS} trials ({method})"
    # A gate that calls everything inconclusive would also pass the line above; it should mostly pass.
    assert rates["pass"] >= 0.95, f"no change not passed: {rates} of {TRIALS} trials ({method})"


# --------------------------------------------------------------------------------------------------------
# the gate's checks


@pytest.mark.parametrize(
    ("baseline_top1", "candidate_top1", "expected"),
    [(0.800, 0.794, "fail"), (0.800, 0.796, "pass"), (0.800, 0.795, "pass"), (0.800, 0.812, "pass")],
)
def test_metric_drop_against_threshold(quiet_samples, baseline_top1, candidate_top1, expected):
    # 0.800 - 0.795 is 0.0050000000000000044 in float64: exactly the allowed drop, so it passes.
    baseline = make_run(1, quiet_samples[0], metrics={"top1": baseline_top1})
    candidate = make_run(2, quiet_samples[1], metrics={"top1": candidate_top1})
    check = gate(baseline, candidate).checks[0]
    assert check.name == "primary metric top1" and check.status == expected
    assert check.values["drop"] == pytest.approx(baseline_top1 - candidate_top1)


def test_metric_lower_is_better(quiet_samples):
    common = {"primary_metric": "error", "higher_is_better": False}
    baseline = make_run(1, quiet_samples[0], metrics={"error": 0.200}, **common)
    worse = make_run(2, quiet_samples[1], metrics={"error": 0.206}, **common)
    better = make_run(3, quiet_samples[1], metrics={"error": 0.150}, **common)
    assert gate(baseline, worse).checks[0].status == "fail"
    assert gate(baseline, better).checks[0].status == "pass"


def test_overall_status_and_exit_codes(quiet_samples):
    baseline = make_run(1, quiet_samples[0])
    passed = gate(baseline, make_run(2, quiet_samples[1]))
    assert (passed.status, passed.exit_code) == ("pass", 0)
    slower = gate(baseline, make_run(2, quiet_samples[1] * 1.10))
    assert (slower.status, slower.exit_code) == ("fail", 1)
    assert [c.status for c in slower.checks] == ["pass", "fail"]
    borderline = gate(baseline, make_run(2, quiet_samples[1] * 1.05))
    assert (borderline.status, borderline.exit_code) == ("inconclusive", 3)
    assert "too noisy" in borderline.checks[1].detail


def test_missing_samples_are_inconclusive(quiet_samples):
    candidate = make_run(2, quiet_samples[1])
    candidate["latency"] = {"p50_ms": 4.1, "samples_ms": [], "repeat_medians_ms": []}
    result = gate(make_run(1, quiet_samples[0]), candidate)
    latency = result.checks[1]
    assert latency.status == "inconclusive" and result.exit_code == 3
    assert "candidate run 2 has no latency samples" in latency.detail
    assert latency.values["candidate"] == 4.1  # p50 shown for information, not judged


def test_repeat_medians_alone_are_judged(quiet_samples):
    baseline, candidate = make_run(1, quiet_samples[0]), make_run(2, quiet_samples[1] * 1.10)
    for run in (baseline, candidate):
        del run["latency"]["samples_ms"]
    latency = gate(baseline, candidate).checks[1]
    assert latency.status == "fail" and latency.values["baseline_samples"] == "5 repeat medians only"


def test_latency_blocks_split_by_repeats_and_checked(quiet_samples):
    run = make_run(1, quiet_samples[0])
    blocks, how = latency_blocks(run)
    assert len(blocks) == 5 and all(b.size == 60 for b in blocks) and how == "300 samples in 5 repeats"
    # Sorted samples no longer reproduce the repeat medians when split, so they count as independent.
    run["latency"]["samples_ms"] = sorted(run["latency"]["samples_ms"])
    blocks, how = latency_blocks(run)
    assert len(blocks) == 1 and "does not reproduce" in how
    # Unequal repeats are split by repeat_sizes.
    run["latency"] = {"samples_ms": [1.0, 1.1, 1.2, 2.0, 2.1], "repeat_sizes": [3, 2]}
    blocks, _ = latency_blocks(run)
    assert [b.tolist() for b in blocks] == [[1.0, 1.1, 1.2], [2.0, 2.1]]


def test_noise_flags_are_reported(quiet_samples):
    candidate = make_run(2, quiet_samples[1])
    candidate["latency"].update(noisy=True, noise_reasons=["SM clock 1410 MHz below max 1980 MHz"])
    latency = gate(make_run(1, quiet_samples[0]), candidate).checks[1]
    assert "candidate run marked noisy: SM clock 1410 MHz below max 1980 MHz" in latency.detail


@pytest.mark.parametrize(("field", "other"), [("hardware_class", "nvidia-a100"), ("track_version", "2")])
def test_cross_hardware_refused_unless_allowed(quiet_samples, field, other):
    baseline = make_run(1, quiet_samples[0])
    candidate = make_run(2, quiet_samples[1], **{field: other})
    with pytest.raises(HarnessError) as error:
        gate(baseline, candidate)
    assert "--allow-cross-hardware" in error.value.hint and other in error.value.message
    result = gate(baseline, candidate, allow_cross_hardware=True)
    assert result.status == "pass" and "--allow-cross-hardware" in result.notes[0]


def test_different_tracks_always_refused(quiet_samples):
    candidate = make_run(2, quiet_samples[1], track="small-object")
    with pytest.raises(HarnessError, match="of track 'small-object'"):
        gate(make_run(1, quiet_samples[0]), candidate, allow_cross_hardware=True)


def test_failed_runs(quiet_samples):
    baseline = make_run(1, quiet_samples[0])
    crashed = make_run(2, None, status="failed", metrics={}, error="CUDA out of memory")
    result = gate(baseline, crashed)
    assert result.exit_code == 1 and result.checks[0].name == "run status"
    assert "CUDA out of memory" in result.checks[0].detail
    with pytest.raises(HarnessError, match="cannot serve as a baseline"):
        gate(crashed, baseline)


def test_bad_settings_are_user_errors(quiet_samples):
    runs = make_run(1, quiet_samples[0]), make_run(2, quiet_samples[1])
    with pytest.raises(HarnessError, match="confidence"):
        gate(*runs, confidence=1.0)
    with pytest.raises(HarnessError, match="max latency increase"):
        gate(*runs, max_latency_increase=-0.1)


# --------------------------------------------------------------------------------------------------------
# reports


@pytest.fixture(scope="module")
def mixed_result(quiet_samples) -> GateResult:
    """A failing metric check and an inconclusive latency check."""
    baseline = make_run(1, quiet_samples[0])
    candidate = make_run(2, quiet_samples[1] * 1.05, metrics={"top1": 0.790}, variant="int8")
    return gate(baseline, candidate)


def test_mixed_result_is_what_the_report_tests_expect(mixed_result):
    assert [c.status for c in mixed_result.checks] == ["fail", "inconclusive"]
    assert mixed_result.status == "fail"


def test_text_report(mixed_result):
    text = render(mixed_result, "text")
    lines = text.splitlines()
    assert lines[0] == "harness gate: FAIL (exit 1)"
    assert "baseline run 1 (tinynet/fp32), candidate run 2 (tinynet/int8)" in lines[1]
    assert lines[2].startswith("[fail] primary metric top1: top1 0.8000 -> 0.7900: worse by 0.0100")
    assert lines[3].startswith("[inconclusive] latency: inconclusive: too noisy")


def test_markdown_report(mixed_result):
    markdown = render(mixed_result, "markdown")
    lines = markdown.splitlines()
    assert lines[0] == "### harness gate: ❌ fail (exit 1)"
    header = lines.index("| check | baseline | candidate | change | 99 % CI | verdict |")
    rows = lines[header + 2 : header + 4]
    assert rows[0].startswith("| primary metric top1 | 0.8000 | 0.7900 | -0.0100 (-1.25 %) | – | ❌ fail |")
    cells = [cell.strip() for cell in rows[1].strip("|").split("|")]
    assert cells[0] == "latency" and cells[1].endswith(" ms") and cells[5] == "⚠️ inconclusive"
    low, high = (float(part.replace("%", "")) for part in cells[4].split(" … "))
    assert low < 5.0 < high  # the CI in % straddles the allowed +5 %


def test_junit_report_parses_with_right_counts(mixed_result, quiet_samples):
    root = ET.fromstring(render(mixed_result, "junit"))
    suites = root.findall("testsuite")
    assert root.tag == "testsuites" and len(suites) == 1
    suite = suites[0]
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == (
        "2",
        "1",
        "1",
        "0",
    )
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["primary metric top1", "latency"]
    assert cases[0].find("failure") is not None and cases[0].find("skipped") is None
    assert "too noisy" in cases[1].find("skipped").get("message")
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["candidate.variant"] == "int8" and properties["setting.confidence"] == "0.99"

    passed = gate(make_run(1, quiet_samples[0]), make_run(2, quiet_samples[1]))
    suite = ET.fromstring(render(passed, "junit")).find("testsuite")
    assert (suite.get("failures"), suite.get("skipped")) == ("0", "0")
    assert all(case.find("failure") is None for case in suite.findall("testcase"))


def test_json_report_round_trips_and_has_no_infinities(quiet_samples):
    blocks = quiet_samples[:, :3]  # 3 repeats each: too few for a 99 % rank interval
    result = gate(make_run(1, blocks[0]), make_run(2, blocks[1]), method="rank")
    data = json.loads(render(result, "json"))
    assert data["status"] == "inconclusive" and data["exit_code"] == 3
    latency = data["checks"][1]["values"]
    assert latency["ci_low"] == 0.0 and latency["ci_high"] is None
    assert "cannot give a rank interval" in data["checks"][1]["detail"]


def test_unknown_format_is_a_user_error(mixed_result):
    with pytest.raises(HarnessError) as error:
        render(mixed_result, "html")
    assert "markdown" in error.value.hint


# --------------------------------------------------------------------------------------------------------
# results files


def test_results_file_round_trip(tmp_path, quiet_samples):
    runs = [make_run(1, quiet_samples[0]), make_run("b2", quiet_samples[1], variant="fp16")]
    path = tmp_path / "out" / "main.json"
    export_results(runs, path)
    document = json.loads(path.read_text())
    assert set(document) == {"harness_version", "exported_at", "runs"}
    loaded = load_results_file(path)
    assert loaded == runs
    assert select_run(loaded, "main.json", variant="fp16")["run_id"] == "b2"
    with pytest.raises(HarnessError, match="2 runs match"):
        select_run(loaded, "main.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON (line 1, column 2"),
        ("[]", "must be a JSON object"),
        ('{"harness_version": "0.1.0"}', "field 'runs' is missing"),
        ('{"runs": []}', "field 'harness_version'"),
        ('{"harness_version": "0.1.0", "runs": [{"run_id": 1}]}', "runs[0]: missing field 'track'"),
    ],
)
def test_malformed_results_file_names_path_and_field(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PredictionError) as error:
        load_results_file(path)
    assert str(path) in error.value.message and message in error.value.message


def test_malformed_run_fields_are_named(tmp_path, quiet_samples):
    good = make_run(1, quiet_samples[0])
    bad_metric = make_run(2, None, metrics={"top1": "high"})
    bad_sample = make_run(3, quiet_samples[1])
    bad_sample["latency"]["samples_ms"][7] = -1.0
    path = tmp_path / "runs.json"
    for index, bad, expected in ((1, bad_metric, "metrics.top1 is 'high'"), (1, bad_sample, "samples_ms[7]")):
        path.write_text(json.dumps({"harness_version": "0.1.0", "runs": [good, bad]}))
        with pytest.raises(PredictionError) as error:
            load_results_file(path)
        assert f"{path}: runs[{index}]" in error.value.message and expected in error.value.message


def test_missing_results_file(tmp_path):
    with pytest.raises(PredictionError) as error:
        load_results_file(tmp_path / "absent.json")
    assert "no such results file" in error.value.message and "harness export" in error.value.hint
