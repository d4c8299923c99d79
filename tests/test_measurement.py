"""The measurement protocol on CPU: latency timing, noise flags, the throughput sweep, SM-clock noise reasons,
the cross-check tolerances, quantized model bytes, and the per-layer-type profile. CUDA parts skip."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from harness.contract import ClassScores, Detections, TextPolygons, wrap_classifier
from harness.kinds import compare_outputs
from harness.measure.crosscheck import box_iou
from harness.measure.environment import clock_noise_reasons
from harness.measure.latency import PROFILES, Profile, summarize, throughput_sweep, time_callable
from tests.conftest import ROOT

CUDA = torch.cuda.is_available()


def spin(ms: float) -> None:
    """Busy-wait: takes at least `ms` of wall time whatever the scheduler does."""
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        pass


# latency ---------------------------------------------------------------------------------------------------


def test_cpu_latency_protocol_times_what_it_is_given():
    profile = Profile("test", warmup_iters=2, warmup_s=0.0, repeats=3, min_iters=12, min_repeat_s=0.0)
    calls = []
    summary = time_callable(lambda: (calls.append(1), spin(2.0)), profile, "device", 1, "cpu")
    assert len(calls) == 2 + 3 * 12, "warm-up iterations are run and not recorded"
    assert summary.timer == "perf_counter_ns" and summary.repeats == 3 and summary.iterations == 36
    assert summary.repeat_sizes == [12, 12, 12] and len(summary.samples_ms) == 36
    # Never shorter than the work; the shortest is the work itself (preemption on a busy machine only adds).
    assert 2.0 <= min(summary.samples_ms) <= 2.5
    assert summary.p50_ms >= 2.0 and summary.ranked_ms == pytest.approx(np.median(summary.repeat_medians_ms))
    assert summary.p50_ms <= summary.p90_ms <= summary.p95_ms <= summary.p99_ms


def test_warm_up_waits_until_the_time_per_iteration_settles():
    """4 ms per call falling to 1 ms over the first 300 calls (a clock ramping up), then flat. The warm-up
    is driven with a timer that returns these durations, so the test does not depend on the machine's load."""
    from harness.measure.latency import _warm_up

    calls = []

    def ramp_timer(fn):
        calls.append(1)
        return max(1.0, 4.0 - 3.0 * len(calls) / 300)

    profile = Profile("test", warmup_iters=5, warmup_s=0.0, repeats=1, min_iters=1, min_repeat_s=0.0, settle_s=30.0)
    done, settled = _warm_up(ramp_timer, lambda: None, profile)
    # Blocks of 10: the slope is 1% a block at its gentlest, so three blocks within 2% of the last one
    # only happen on the plateau: calls 300-330 at the earliest.
    assert settled and 300 <= done <= 340 and done == len(calls)

    never = Profile("test", warmup_iters=5, warmup_s=0.0, repeats=1, min_iters=1, min_repeat_s=0.0, settle_s=0.0)
    assert _warm_up(ramp_timer, lambda: None, never) == (5, False), "no settling time: not settled"
    quick = time_callable(lambda: spin(1.0), PROFILES["quick"])  # max(3 calls, 0.1 s), no settling phase
    assert quick.warmup_settled is True and 3 <= quick.warmup_iterations <= 101


def test_garbage_collection_is_paused_while_timing():
    import gc

    enabled = []
    time_callable(lambda: enabled.append(gc.isenabled()), PROFILES["quick"])
    assert enabled and not any(enabled) and gc.isenabled()


def test_guard_is_entered_after_the_warm_up():
    events = []

    class Guard:
        def __enter__(self):
            events.append("enter")

        def __exit__(self, *exc):
            events.append("exit")

    profile = Profile("test", warmup_iters=3, warmup_s=0.0, repeats=2, min_iters=2, min_repeat_s=0.0)
    time_callable(lambda: events.append("call"), profile, guard=Guard)
    assert events == ["call"] * 3 + ["enter"] + ["call"] * 4 + ["exit"]


def test_noise_flags_from_the_samples():
    steady = [np.full(50, 1.0) + np.linspace(0, 0.01, 50) for _ in range(3)]
    quiet = summarize("device", 1, steady, "perf_counter_ns")
    assert not quiet.noisy and quiet.noise_reasons == []

    rng = np.random.default_rng(0)
    jittery = [1.0 + rng.exponential(0.3, 200) for _ in range(3)]
    noisy = summarize("device", 1, jittery, "perf_counter_ns")
    assert noisy.noisy and noisy.cv > 0.02
    assert any(r.startswith("coefficient of variation") and r.endswith("> 2%") for r in noisy.noise_reasons)

    drifting = [np.full(50, 1.0), np.full(50, 1.05), np.full(50, 1.1)]
    spread = summarize("device", 1, drifting, "perf_counter_ns")
    # Medians 1.0, 1.05, 1.1: spread (1.1 - 1.0) / 1.05 = 9.5% > 3%.
    assert "repeat medians spread 9.5% > 3%" in spread.noise_reasons


def test_sm_clock_under_its_maximum_is_a_noise_reason():
    at_max = {"sm_clock_mhz": 1980.0, "sm_clock_max_mhz": 1980.0}
    near_max = {"sm_clock_mhz": 1965.0, "sm_clock_max_mhz": 1980.0}  # one boost step below: within 3%
    throttled = {"sm_clock_mhz": 1410.0, "sm_clock_max_mhz": 1980.0}
    assert clock_noise_reasons(at_max, near_max) == []
    assert clock_noise_reasons(None, None) == []
    assert clock_noise_reasons(at_max, throttled) == ["SM clock 1410 MHz under its maximum 1980 MHz (after timing)"]


@pytest.mark.skipif(not CUDA, reason="CUDA-event timing and SM clocks need an NVIDIA GPU; none here")
def test_cuda_latency_protocol_and_clocks():
    from harness.measure.environment import read_sm_clock

    x = torch.randn(1024, 1024, device="cuda")
    summary = time_callable(lambda: x @ x, PROFILES["quick"], "device", 1, "cuda")
    assert summary.timer == "cuda-events" and summary.p50_ms > 0
    clocks = read_sm_clock(torch.cuda.current_device(), lambda: x @ x)
    if clocks is not None:
        assert clocks["sm_clock_max_mhz"] >= clocks["sm_clock_mhz"] > 0


# throughput sweep ------------------------------------------------------------------------------------------


def test_sweep_goes_on_while_throughput_rises():
    """A fixed 1 ms per call whatever the batch: samples/s doubles with every batch size."""
    sweep = throughput_sweep(lambda b: b, lambda b: spin(1.0), "cpu", "quick", max_batch=8, budget_s=60)
    assert [p.batch_size for p in sweep.points] == [1, 2, 4, 8]
    assert sweep.stopped == "reached the largest batch size tried (8)" and sweep.best_batch_size == 8
    assert sweep.points[-1].samples_per_s > 6 * sweep.points[0].samples_per_s


def test_sweep_stops_when_throughput_stops_rising():
    """1 ms per sample: samples/s is flat, so batch 2 does not beat batch 1 by 2%."""
    sweep = throughput_sweep(lambda b: b, lambda b: spin(1.0 * b), "cpu", "quick", max_batch=64, budget_s=60)
    assert [p.batch_size for p in sweep.points] == [1, 2]
    assert sweep.stopped == "throughput stopped rising at batch size 2"


def test_sweep_stops_at_out_of_memory():
    def run(batch):
        if batch >= 8:
            raise MemoryError("cannot allocate")
        spin(0.5)

    sweep = throughput_sweep(lambda b: b, run, "cpu", "quick", max_batch=1024, budget_s=60)
    assert [p.batch_size for p in sweep.points] == [1, 2, 4]
    assert sweep.stopped == "out of memory at batch size 8" and sweep.best_batch_size == 4


def test_sweep_reports_a_failing_batch_size():
    def run(batch):
        if batch == 4:
            raise RuntimeError("engine built for batch sizes up to 2\nmore text")
        spin(0.5)

    sweep = throughput_sweep(lambda b: b, run, "cpu", "quick", max_batch=1024, budget_s=60)
    assert sweep.stopped == "batch size 4 failed: RuntimeError: engine built for batch sizes up to 2"


# cross-check -----------------------------------------------------------------------------------------------


def _logits(values):
    return [ClassScores(logits=np.asarray(v, dtype=np.float32)) for v in values]


def test_crosscheck_classification_tolerances():
    base = _logits([[5.0, 1.0, 0.0], [0.0, 2.0, 9.0]])
    same = compare_outputs("classification", base, _logits([[5.0, 1.0, 0.0], [0.0, 2.0, 9.0]]))
    assert same.consistent and same.detail["max_logit_error"] == 0.0

    rounding = _logits([[5.001, 1.0, 0.0], [0.0, 2.0, 9.0]])  # 0.001 / 5 = 2e-4 of the range: rounding
    assert compare_outputs("classification", base, rounding).consistent

    drift = _logits([[5.2, 1.0, 0.0], [0.0, 2.0, 9.0]])  # 0.2 / 5 (that image's largest logit) = 4%
    strict = compare_outputs("classification", base, drift)
    assert not strict.consistent and "logits differ by 4.00e-02" in strict.reason
    assert compare_outputs("classification", base, drift, reduced_precision=True).consistent

    flipped = _logits([[0.0, 1.0, 5.0], [0.0, 2.0, 9.0]])
    check = compare_outputs("classification", base, flipped, reduced_precision=True)
    assert not check.consistent and check.reason == "top-1 class differs on 1 of 2 images"

    assert not compare_outputs("classification", base, base[:1]).consistent


def _detections(boxes, scores, labels):
    return Detections(
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.asarray(scores, dtype=np.float32),
        labels=np.asarray(labels, dtype=np.int64),
    )


def test_crosscheck_detection_matches_confident_boxes():
    base = [_detections([[10, 10, 20, 20], [30, 30, 40, 44], [0, 0, 5, 5]], [0.9, 0.6, 0.1], [1, 2, 1])]
    # Same confident boxes; the low-score box is gone (it crossed a threshold): still consistent.
    jitter = [_detections([[10, 10, 20, 20.05], [30, 30, 40, 44]], [0.905, 0.6], [1, 2])]
    assert compare_outputs("detection", base, jitter).consistent

    moved = [_detections([[12, 12, 22, 22], [30, 30, 40, 44]], [0.9, 0.6], [1, 2])]
    check = compare_outputs("detection", base, moved)
    # Confident outputs: 2 on each side; the moved box (IoU 64/136 = 0.47) matches on neither side.
    assert not check.consistent and check.detail["matched_fraction"] == pytest.approx(0.5)

    relabelled = [_detections([[10, 10, 20, 20], [30, 30, 40, 44]], [0.9, 0.6], [1, 3])]
    assert not compare_outputs("detection", base, relabelled, reduced_precision=True).consistent


def test_crosscheck_text_polygons():
    square = np.array([[[10, 10], [30, 10], [30, 20], [10, 20]]], dtype=np.float32)
    base = [TextPolygons(polygons=square, scores=np.array([0.8], dtype=np.float32))]
    assert compare_outputs("text", base, [TextPolygons(polygons=square + 0.01, scores=np.array([0.8]))]).consistent
    empty = [TextPolygons(polygons=np.zeros((0, 4, 2)), scores=np.zeros(0))]
    check = compare_outputs("text", base, empty)
    assert not check.consistent and "0.0% of 1 confident outputs" in check.reason


def test_box_iou_values():
    a = np.array([[0, 0, 10, 10]], dtype=float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


# bytes of quantized models ----------------------------------------------------------------------------------


def test_bytes_of_a_quantized_model_count_int8_weights():
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from harness.measure.complexity import serialized_bytes

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)).eval()
    float_bytes, float_dtypes = serialized_bytes(model)
    assert float_dtypes == {"float32": 256 * 512 + 512 + 512 * 10 + 10}
    assert float_bytes > 4 * float_dtypes["float32"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (torch.randn(2, 256),))
        prepared(torch.randn(16, 256))
        quantized = convert_fx(prepared)
    int8_bytes, dtypes = serialized_bytes(quantized)
    assert dtypes["qint8"] == 256 * 512 + 512 * 10, "the packed weights are found and counted"
    # int8 weights are a quarter of the float32 ones; scales, biases and the container add a little.
    assert dtypes["qint8"] < int8_bytes < 0.3 * float_bytes


# per-layer-type profile -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "category"),
    [
        ("aten::mkldnn_convolution", "convolution"),
        ("aten::cudnn_convolution", "convolution"),
        ("quantized::conv2d_relu", "convolution"),
        ("triton_poi_fused_convolution_relu_0", "convolution"),
        ("Conv", "convolution"),
        ("aten::_convert_indices_from_coo_to_csr", "other"),
        ("aten::addmm", "linear/matmul"),
        ("aten::mm", "linear/matmul"),
        ("Gemm", "linear/matmul"),
        ("aten::relu_", "activation"),
        ("aten::hardtanh_", "activation"),
        ("aten::native_batch_norm", "normalization"),
        ("aten::max_pool2d_with_indices", "pooling"),
        ("GlobalAveragePool", "pooling"),
        ("aten::upsample_bilinear2d", "upsampling"),
        ("Resize", "upsampling"),
        ("aten::add", "elementwise"),
        ("aten::mul_", "elementwise"),
        ("aten::copy_", "elementwise"),
        ("aten::view", "other"),
        ("aten::conv2d > aten::_slow_conv2d_forward > aten::copy_", "convolution"),
        ("aten::add > aten::copy_", "elementwise"),
        ("aten::cat", "other"),
    ],
)
def test_operator_categories(op, category):
    from harness.sandbox.profile import categorize

    # "A > B": B runs inside A; its time counts for the outermost operator that says what the layer is.
    assert categorize(*op.split(" > ")) == category


def test_profile_forward_on_cpu():
    from harness.sandbox.profile import CATEGORIES, profile_forward

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.BatchNorm2d(32),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Upsample(scale_factor=2.0, mode="bilinear"),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()
    predictor = wrap_classifier(model)
    inputs = predictor.preprocess([np.zeros((64, 64, 3), dtype=np.uint8)])
    result = profile_forward(predictor, inputs, "cpu", iterations=5, warmup=1)
    layers = result["layers"]
    assert set(layers) == set(CATEGORIES) and result["iterations"] == 5
    for category in ("convolution", "linear/matmul", "activation", "normalization", "pooling", "upsampling"):
        assert layers[category] > 0, category
    # Which category is largest is a timing fact of the machine (and its load), not something to assert.
    assert all(op["ms"] >= 0 for op in result["top_ops"])


# accuracy-pass input pipeline --------------------------------------------------------------------------------


def test_images_are_decoded_in_parallel_and_in_order(tmp_path):
    from PIL import Image

    from harness.sandbox.images import iter_batches

    files = []
    for i in range(10):
        Image.fromarray(np.full((4 + i, 5, 3), i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
        files.append(f"{i}.png")
    ids = [f"id{i}" for i in range(10)]
    batches = list(iter_batches(tmp_path, ids, files, batch=3, workers=4))
    assert [b[0] for b in batches] == [ids[0:3], ids[3:6], ids[6:9], ids[9:10]]
    images = [img for _, chunk in batches for img in chunk]
    assert [int(img[0, 0, 0]) for img in images] == list(range(10))
    assert [img.shape for img in images] == [(4 + i, 5, 3) for i in range(10)]

    files[7] = "missing.png"
    seen = []
    with pytest.raises(FileNotFoundError):
        for batch_ids, _ in iter_batches(tmp_path, ids, files, batch=3, workers=4):
            seen.append(batch_ids)
    assert seen == [ids[0:3], ids[3:6]], "batches before the broken one arrive; the error surfaces in order"


def test_fingerprint_without_importing_torch_matches_the_imported_versions():
    """The harness process fingerprints the machine before every evaluate without importing torch (seconds of
    start-up); the versions it reads must be those the child, which imports torch, reports."""
    code = (
        "import json, sys\n"
        "from harness.measure.environment import fingerprint\n"
        "cold = fingerprint('cpu', 1)\n"
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, 'fingerprint imported torch'\n"
        "import numpy, torch, torchvision\n"
        "print(json.dumps([cold, fingerprint('cpu', 1), [torch.__version__, torchvision.__version__,"
        " numpy.__version__]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    cold, warm, imported = json.loads(out.stdout)
    assert cold == warm
    assert [cold["torch"], cold["torchvision"], cold["numpy"]] == imported
    assert cold["threads"] == 1 and cold["device"] == "cpu" and "tensorrt" in cold


def test_a_predictor_failing_in_the_crosscheck_sample_fails_that_stage_by_name(tmp_path):
    """The cross-check predicts a sample of the split again after timing (a compiled forward can recompile
    there); an exception is the `crosscheck` stage's failure with the cause, not a crash without a result."""
    from types import SimpleNamespace

    from PIL import Image

    from harness.sandbox.passes import StageError
    from harness.sandbox.passes import crosscheck as _crosscheck

    rng = np.random.default_rng(0)
    files = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        files.append(f"{i}.png")
    predictor = wrap_classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3)))
    images = [np.asarray(Image.open(tmp_path / f).convert("RGB")) for f in files]
    records = predictor.predict(images)
    kept = [(images[:1], records[:1]), (images[1:3], records[1:3])]
    job = SimpleNamespace(
        kind="classification", check_sample=4, batch_size=2, accuracy_batch_size=2, inputs_dir=str(tmp_path)
    )
    variant = SimpleNamespace(reduced_precision=False)

    checked = _crosscheck(job, predictor, variant, files, records, kept)
    assert checked["consistent"] and checked["images"] == 4 + 3

    def broken(batch):
        raise RuntimeError("FailOnRecompileLimitHit: Hard failure due to fail_on_recompile_limit_hit")

    predictor.predict = broken
    with pytest.raises(StageError) as failed:
        _crosscheck(job, predictor, variant, files, records, kept)
    assert failed.value.stage == "crosscheck"
    assert failed.value.message.startswith("predicting the timed inputs again failed: RuntimeError")
    assert "fail_on_recompile_limit_hit" in failed.value.message
