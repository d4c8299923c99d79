"""Variants end to end, as a user runs them: submissions with built-in and their own variants, runs that are
unavailable with a reason, the cross-check failing a predictor that cheats at batch size 1, `harness compare`
(with `--layers`), and int8-cpu against float32 on a reference classifier through `harness evaluate`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY_CNN, make_submission, run_cli
from tests.digits_classifier import ROOT

OWN_VARIANT = (
    TINY_CNN
    + """

    def mark(predictor, context):
        context["info"]["mine"] = "applied"
        return predictor
"""
)

OWN_VARIANT_TOML = """
[project.entry-points."harness.variants"]
mine = "own_pkg:mark"
"""


@pytest.mark.slow
def test_variants_end_to_end(harness_env, tmp_path):
    sub = make_submission(tmp_path, "own", module_body=OWN_VARIANT, variants=["fp32", "fp16", "mine"])
    toml = sub / "pyproject.toml"
    text = toml.read_text()
    toml.write_text(text.replace("[tool.setuptools]", OWN_VARIANT_TOML.strip() + "\n\n[tool.setuptools]"))
    assert run_cli("submit", str(sub), env=harness_env).returncode == 0

    unknown = run_cli("evaluate", "--track", "classification", "--variant", "fp8", env=harness_env)
    assert unknown.returncode == 2 and "unknown variant `fp8`" in unknown.stderr

    evaluated = run_cli("evaluate", "--track", "classification", "--json", env=harness_env)
    assert evaluated.returncode == 0, evaluated.stderr
    runs = {r["variant"]: r for r in json.loads(evaluated.stdout)}
    assert set(runs) == {"fp32", "fp16", "mine"}

    fp16 = runs["fp16"]
    assert fp16["status"] == "unavailable" and "float16 inference is a GPU deployment target" in fp16["error"]
    assert fp16["metrics"] == {} and fp16["latency"] is None

    fp32, mine = runs["fp32"], runs["mine"]
    for run in (fp32, mine):
        assert run["status"] == "ok", run["error"]
        details = run["details"]
        checks = details["crosscheck"]["checks"]
        assert details["crosscheck"]["consistent"] is True and checks["sample"]["consistent"] and checks["timed"]
        assert details["crosscheck"]["images"] >= 32  # the sample, and the timed calls kept
        sweep = details["throughput"]
        assert sweep["points"][0]["batch_size"] == 1 and sweep["best_samples_per_s"] > 0
        timings = details["timings"]
        assert timings["accuracy_forward_s"] <= timings["accuracy_predict_s"] <= timings["accuracy_s"]
        assert timings["scoring_s"] > 0
        assert details["numerics"] == {"cudnn_allow_tf32": False, "matmul_allow_tf32": False}
        assert "device_timing" not in details  # CUDA only: how the device latency was timed
    assert mine["details"]["variant_info"] == {"mine": "applied"}
    assert mine["metrics"] == fp32["metrics"], "the submission's own variant changed nothing but was re-measured"

    compared = run_cli("compare", str(fp32["run_id"]), str(mine["run_id"]), "--layers", "--json", env=harness_env)
    assert compared.returncode == 0, compared.stderr
    data = json.loads(compared.stdout)
    rows = data["runs"]
    assert [r["variant"] for r in rows] == ["fp32", "mine"]
    assert rows[1]["change_pct"]["bytes"] == 0.0 and rows[1]["metric_delta"] == 0.0
    assert rows[0]["throughput_per_s"] == fp32["details"]["throughput"]["best_samples_per_s"]
    layers = data["layers"]
    assert set(layers) == {str(fp32["run_id"]), str(mine["run_id"])}
    for breakdown in layers.values():
        assert breakdown["convolution"] > 0 and breakdown["pooling"] > 0 and breakdown["activation"] > 0

    table = run_cli("compare", str(fp32["run_id"]), str(mine["run_id"]), "--layers", env=harness_env)
    assert table.returncode == 0 and "time per layer type" in table.stdout and "convolution" in table.stdout


CHEAT_AT_BATCH_ONE = """
    import torch
    from torch import nn

    from harness.contract import ClassifierPredictor


    class Cheat(ClassifierPredictor):
        calls = 0

        def forward(self, inputs):
            Cheat.calls += 1
            if inputs.shape[0] == 1 and Cheat.calls > 20:  # "fast path" once timed at batch size 1: no model
                return torch.zeros(1, self.model[-1].out_features)
            return self.model(inputs)


    def build(ctx):
        torch.manual_seed(0)
        head = nn.Linear(8, ctx.num_classes or 10)
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
        return Cheat(model, (0.5,) * 3, (0.5,) * 3)
"""


def test_crosscheck_fails_a_predictor_that_cheats_when_timed(harness_env, tmp_path):
    sub = make_submission(tmp_path, "cheat", module_body=CHEAT_AT_BATCH_ONE)
    assert run_cli("submit", str(sub), env=harness_env).returncode == 0
    evaluated = run_cli("evaluate", "--track", "classification", "--json", env=harness_env)
    assert evaluated.returncode == 0, evaluated.stderr
    (run,) = json.loads(evaluated.stdout)
    assert run["status"] == "failed" and run["error"].startswith("[crosscheck]")
    # Zeros instead of logits: the timed outputs differ from the same inputs predicted again (in one batch), and
    # the sample predicted at batch size 1 from the accuracy pass's.
    assert "timed: top-1 class differs on" in run["error"]
    assert "sample: top-1 class differs on" in run["error"]


@pytest.mark.slow
def test_int8_cpu_keeps_the_metric_of_a_reference_classifier(harness_env, tmp_path_factory):
    """int8-cpu through `harness evaluate` (PT2E with Inductor lowering where torchao is installed, FX
    otherwise): top-1 within 1 point of float32, smaller weights, the flow recorded; onnxruntime alongside."""
    folder = ROOT / "submissions" / "gtsnet"  # the track's default data is shapetex, which gtsnet is trained for
    assert run_cli("submit", str(folder), env=harness_env).returncode == 0
    evaluated = run_cli(
        "evaluate",
        "--track",
        "classification",
        "-v",
        "fp32",
        "-v",
        "int8-cpu",
        "-v",
        "onnxruntime",
        "--json",
        env=harness_env,
        timeout=1800,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    runs = {r["variant"]: r for r in json.loads(evaluated.stdout)}
    fp32, int8, ort = runs["fp32"], runs["int8-cpu"], runs["onnxruntime"]
    for run in runs.values():
        assert run["status"] == "ok", run["error"]
    assert fp32["metrics"]["top1"] > 0.6  # gtsnet on shapetex (50 classes)
    assert abs(int8["metrics"]["top1"] - fp32["metrics"]["top1"]) <= 0.01, (fp32["metrics"], int8["metrics"])
    assert int8["bytes"] < fp32["bytes"] / 2.5 and int8["params"] == fp32["params"]
    assert int8["details"]["variant_info"]["int8"]["flow"] in ("pt2e", "fx")
    assert int8["details"]["crosscheck"]["consistent"] and int8["details"]["crosscheck"]["reduced_precision"]
    assert abs(ort["metrics"]["top1"] - fp32["metrics"]["top1"]) <= 3 / 10_000
    assert ort["details"]["variant_info"]["onnxruntime"]["providers"] == ["CPUExecutionProvider"]

    compared = run_cli("compare", str(fp32["run_id"]), str(int8["run_id"]), str(ort["run_id"]), env=harness_env)
    assert compared.returncode == 0 and "int8-cpu" in compared.stdout and "onnxruntime" in compared.stdout
