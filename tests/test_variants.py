"""The variant machinery and the variants themselves, in process: registry and entry points, availability
reasons, onnxruntime on CPU, int8-cpu against float32 on a reference-like classifier, and the guard that
turns a recompilation during timing into an error. CUDA and TensorRT parts skip with their reason."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import HarnessError, SubmissionError
from harness.variants import (
    BUILTIN_TARGETS,
    Variant,
    VariantUnavailable,
    apply_variant,
    check_variant_names,
    get_variant,
    known_variants,
    variant_targets,
)
from tests.digits_classifier import classifier_split, load_predictor, reference_classifier

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_classifier(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def test_images(classifier_folder: Path) -> tuple[list[np.ndarray], np.ndarray]:
    return classifier_split(classifier_folder, "test")


def top1(predictor, images: list[np.ndarray], labels: np.ndarray) -> float:
    logits = np.concatenate(
        [np.stack([r.logits for r in predictor.predict(images[i : i + 64])]) for i in range(0, len(images), 64)]
    )
    return float((logits.argmax(1) == labels).mean())


# registry -------------------------------------------------------------------------------------------------


def test_builtin_variants_are_registered_and_resolve():
    assert set(BUILTIN_TARGETS) <= set(known_variants())
    for name in BUILTIN_TARGETS:
        variant = get_variant(name)
        assert isinstance(variant, Variant) and variant.name == name and variant.description


def test_unknown_variant_names_the_near_one():
    with pytest.raises(HarnessError) as info:
        get_variant("int8_cpu")
    assert "unknown variant `int8_cpu`" in str(info.value) and "int8-cpu" in info.value.hint
    with pytest.raises(HarnessError, match="unknown variant `fp8`"):
        check_variant_names(["fp32", "fp8"])


def _fake_installed_distribution(site: Path, dist: str, entry_points: dict[str, str], module_body: str) -> Path:
    """What `pip install --target` leaves: a package and a dist-info folder with entry_points.txt."""
    site.mkdir(parents=True, exist_ok=True)
    package = f"{dist}_variants"
    (site / f"{package}.py").write_text(textwrap.dedent(module_body))
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {package}:{attr}" for name, attr in entry_points.items())
    (info / "entry_points.txt").write_text(f"[harness.variants]\n{lines}\n")
    return site


PLUGIN_MODULE = """
    from harness.variants import Variant


    def halve(predictor, context):
        context["info"]["halved"] = True
        predictor.model.half_marker = True
        return predictor


    def never(device):
        return "this plugin needs a device that does not exist"


    HALVED = Variant("halved", "a submission's own variant", halve)
    NEVER = Variant("never", "never available", halve, never)
    MISNAMED = Variant("other-name", "named unlike its entry point", halve)
"""


def test_submission_variants_from_entry_points(tmp_path):
    site = _fake_installed_distribution(
        tmp_path / "site",
        "mysub",
        {"halved": "HALVED", "never": "NEVER", "plain": "halve", "misnamed": "MISNAMED"},
        PLUGIN_MODULE,
    )
    targets = variant_targets(site)
    assert targets["halved"].source == "mysub" and targets["fp32"].source == "harness"
    assert "halved" not in known_variants(), "a submission's variants are its own, not the environment's"

    predictor = load_predictor_stub()
    context: dict = {"info": {}}
    apply_variant("halved", predictor, "cpu", context, site_dir=site)
    assert context["info"] == {"halved": True} and predictor.model.half_marker is True
    plain = get_variant("plain", site)
    assert plain.name == "plain" and plain.reduced_precision, "unknown precision: the loose cross-check"
    with pytest.raises(VariantUnavailable, match="needs a device that does not exist"):
        apply_variant("never", predictor, "cpu", {}, site_dir=site)
    with pytest.raises(SubmissionError, match="returns a Variant named `other-name`"):
        get_variant("misnamed", site)


def test_duplicate_variant_names_are_refused(tmp_path):
    site = _fake_installed_distribution(tmp_path / "site", "clash", {"int8-cpu": "HALVED"}, PLUGIN_MODULE)
    with pytest.raises(SubmissionError, match="`int8-cpu` is registered twice: by `harness` and by `clash`"):
        variant_targets(site)
    with pytest.raises(SubmissionError, match="registers variant `fp16`"):
        check_variant_names(["fp16"], declared={"fp16": "mine:fp16"})
    check_variant_names(["fp32", "mine"], declared={"mine": "mine_pkg:build"})


def load_predictor_stub():
    from harness.contract import wrap_classifier

    return wrap_classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10)))


@pytest.mark.parametrize(
    ("name", "device", "reason"),
    [
        ("fp16", "cpu", "float16 inference is a GPU deployment target"),
        ("int8-cpu", "cuda", "evaluate it with --device cpu"),
        ("tensorrt-fp16", "cpu", "TensorRT runs on NVIDIA GPUs"),
        ("tensorrt-int8", "cpu", "TensorRT runs on NVIDIA GPUs"),
    ],
)
def test_unavailable_variants_say_why(name, device, reason):
    variant = get_variant(name)
    assert reason in (variant.available(device) or "")
    with pytest.raises(VariantUnavailable, match=reason):
        apply_variant(name, load_predictor_stub(), device, {})


def test_tensorrt_without_tensorrt_says_so():
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; its absence cannot be tested")
    except ImportError:
        pass
    reason = get_variant("tensorrt-int8").available("cuda")
    assert reason is not None and "TensorRT is not installed here" in reason


@pytest.mark.skipif(not CUDA, reason="TensorRT variants need an NVIDIA GPU; none here")
def test_tensorrt_fp16_on_gpu(classifier_folder, test_images):
    variant = get_variant("tensorrt-fp16")
    reason = variant.available("cuda")
    if reason:
        pytest.skip(reason)
    images, labels = test_images
    predictor = load_predictor(classifier_folder).to("cuda")
    before = top1(predictor, images, labels)
    apply_variant("tensorrt-fp16", predictor, "cuda", {"sample_images": images[:4], "info": {}})
    assert abs(top1(predictor, images, labels) - before) <= 0.01


# onnxruntime ----------------------------------------------------------------------------------------------


def test_onnxruntime_on_cpu_matches_pytorch(classifier_folder, test_images):
    images, labels = test_images
    reference = load_predictor(classifier_folder)
    predictor = load_predictor(classifier_folder)
    context: dict = {"sample_images": images[:4], "threads": 1, "info": {}}
    apply_variant("onnxruntime", predictor, "cpu", context)
    info = context["info"]["onnxruntime"]
    assert info["providers"] == ["CPUExecutionProvider"] and info["max_error_vs_torch"] <= 1e-3
    assert type(predictor.forward).__name__ == "OrtForward"
    assert context["info"]["serialized_bytes"] == len(predictor.onnx_graph.model_bytes) > 0
    sample = images[:50]
    got = np.stack([r.logits for r in predictor.predict(sample)])
    want = np.stack([r.logits for r in reference.predict(sample)])
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    assert top1(predictor, images, labels) == pytest.approx(top1(reference, images, labels), abs=1 / len(labels))


def test_onnxruntime_falls_back_to_fixed_image_sizes():
    """Adaptive pooling to 4x4 only exports for a fixed input size; the batch stays dynamic."""
    from harness.contract import wrap_classifier

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(64, 10)
    )
    predictor = wrap_classifier(model.eval())
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
    context: dict = {"sample_images": images[:2], "threads": 1, "info": {}}
    apply_variant("onnxruntime", predictor, "cpu", context)
    assert context["info"]["onnxruntime"]["dynamic_image_size"] is False
    got = np.stack([r.logits for r in predictor.predict(images)])  # batch of 5: not the exported 2
    with torch.no_grad():
        want = model(wrap_classifier(model).preprocess(images)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_onnxruntime_unavailable_for_non_tensor_outputs():
    from harness.contract import ClassifierPredictor

    class ScalarForward(ClassifierPredictor):
        def forward(self, inputs):
            return {"mean": float(inputs.mean())}

    predictor = ScalarForward(torch.nn.Identity(), (0.5,) * 3, (0.5,) * 3)
    images = [np.zeros((8, 8, 3), dtype=np.uint8)] * 2
    with pytest.raises(VariantUnavailable, match="other than \\(nested\\) tensors"):
        apply_variant("onnxruntime", predictor, "cpu", {"sample_images": images, "info": {}})


@pytest.mark.skipif(not CUDA, reason="the CUDA execution provider needs an NVIDIA GPU; none here")
def test_onnxruntime_on_cuda_needs_the_cuda_provider():
    import onnxruntime as ort

    reason = get_variant("onnxruntime").available("cuda")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert reason is None
    else:
        assert "no CUDAExecutionProvider" in reason


# int8-cpu -------------------------------------------------------------------------------------------------


def test_int8_fx_flow_keeps_the_metric_and_shrinks_the_weights(classifier_folder, test_images):
    """The FX flow (the fallback, fast); the PT2E flow, whose Inductor lowering takes minutes on a busy CPU,
    runs through `harness evaluate` in test_variants_cli.py."""
    from harness.measure.complexity import serialized_bytes
    from harness.variants.int8 import quantize_predictor

    images, labels = test_images
    calibration, _ = classifier_split(classifier_folder, "train", limit=128)
    predictor = load_predictor(classifier_folder)
    fp32_top1 = top1(predictor, images, labels)
    fp32_bytes, _ = serialized_bytes(predictor.model)
    info = quantize_predictor(predictor, calibration[:128], flows=("fx",), classification=True)
    assert info["flow"] == "fx" and info["calibration_images"] == 128
    fidelity = info["fidelity"]["fx"]
    assert fidelity["sqnr_db"] >= 20 and fidelity["top1_agreement"] >= 0.99 and "below_fidelity_bar" not in info
    int8_bytes, dtypes = serialized_bytes(predictor.model)
    assert "qint8" in dtypes and int8_bytes < fp32_bytes / 2.5, (int8_bytes, fp32_bytes)
    int8_top1 = top1(predictor, images, labels)
    assert fp32_top1 > 0.9, "the reference classifier itself must be good for this test to mean anything"
    assert abs(int8_top1 - fp32_top1) <= 0.01, (fp32_top1, int8_top1)


def test_int8_fidelity_against_float32():
    from harness.variants.int8 import meets_bar, output_fidelity

    torch.manual_seed(0)
    reference = [torch.randn(8, 10), torch.randn(8, 10)]
    close = [r + 0.01 * torch.randn_like(r) for r in reference]  # noise 1% of the signal: ~40 dB
    fidelity = output_fidelity(reference, close, classification=True)
    assert 35 < fidelity["sqnr_db"] < 45 and fidelity["top1_agreement"] >= 0.99 and meets_bar(fidelity)

    swapped = [r.flip(1) for r in reference]  # same values, other classes: SQNR far below 0 dB
    bad = output_fidelity(reference, swapped, classification=True)
    assert bad["sqnr_db"] < 0 and bad["top1_agreement"] < 0.5 and not meets_bar(bad)

    # One class flipped in 16 images: 93.75% agreement fails the 99% bar even at a high SQNR.
    flipped = [r.clone() for r in reference]
    flipped[0][0] = reference[0][0].flip(0) * 1e-3 + reference[0][0]
    flipped[0][0, reference[0][0].argmin()] += 10.0
    one_off = output_fidelity(reference, flipped, classification=True)
    assert one_off["top1_agreement"] == 0.9375 and not meets_bar(one_off)

    detections = [[{"boxes": torch.zeros(3, 4)}], [{"boxes": torch.zeros(2, 4)}]]
    fewer = [[{"boxes": torch.zeros(2, 4)}], [{"boxes": torch.zeros(2, 4)}]]
    assert output_fidelity(detections, fewer, classification=False) == {"comparable": False}
    assert meets_bar({"comparable": False}), "outputs of data-dependent shape cannot be judged this way"


def test_int8_needs_calibration_images():
    with pytest.raises(VariantUnavailable, match="no calibration images"):
        apply_variant("int8-cpu", load_predictor_stub(), "cpu", {"calibration": []})


def test_int8_unquantizable_model_is_unavailable_with_both_reasons():
    from harness.contract import ClassifierPredictor
    from harness.variants.int8 import quantize_predictor

    class DataDependent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 10, 3)

        def forward(self, x):
            y = self.conv(x).mean((2, 3))
            if y.sum() > 0:  # data-dependent control flow: neither torch.export nor FX can trace it
                return y
            return -y

    predictor = ClassifierPredictor(DataDependent().eval(), (0.5,) * 3, (0.5,) * 3)
    images = [np.full((8, 8, 3), 100, dtype=np.uint8)] * 4
    with pytest.raises(VariantUnavailable) as info:
        quantize_predictor(predictor, images)
    assert "cannot be quantized to int8" in str(info.value) and "fx:" in str(info.value)
    assert isinstance(predictor.model, DataDependent), "a failed flow leaves the float model in place"


def test_drop_unused_tensors_removes_only_what_the_graph_does_not_read():
    from harness.variants.int8 import drop_unused_tensors

    graph_module = torch.fx.symbolic_trace(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    graph_module.register_buffer("stale", torch.zeros(1000))
    assert drop_unused_tensors(graph_module) == ["stale"]
    assert set(graph_module.state_dict()) == {"0.weight", "0.bias"}


# compile --------------------------------------------------------------------------------------------------


def test_recompilation_during_timing_fails():
    """The guard the `compile` variant enters around the timed repeats turns a recompilation into an error;
    shapes seen during warm-up compile freely."""
    from harness.measure.latency import Profile, time_callable
    from harness.variants.compile import no_recompilation

    compiled = torch.compile(lambda x: (x * 2).sum(), backend="eager")
    shapes = iter([(3,), (3,)] + [(3,)] * 2 + [(4, 4)] * 1000)  # warm-up 3 calls, then a new rank mid-timing

    def step():
        compiled(torch.ones(next(shapes)))

    # Warm-up by count alone (quick's 0.1 s minimum would, on a fast machine, reach the new rank while warming
    # up, where recompiling is allowed): the new rank arrives in the second timed call, whatever the machine.
    profile = Profile("guard", warmup_iters=3, warmup_s=0.0, repeats=3, min_iters=10, min_repeat_s=0.0, settle=False)
    with pytest.raises(torch._dynamo.exc.RecompileError):
        time_callable(step, profile, guard=no_recompilation)
    torch._dynamo.reset()


def test_compile_variant_is_guarded():
    variant = get_variant("compile")
    assert variant.timing_guard is not None
    if variant.available("cpu") is None:
        assert shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    else:
        assert "C++ compiler" in variant.available("cpu")


@pytest.mark.slow
def test_compile_variant_on_cpu(classifier_folder, test_images):
    reason = get_variant("compile").available("cpu")
    if reason:
        pytest.skip(reason)
    images, labels = test_images
    reference = load_predictor(classifier_folder)
    predictor = apply_variant("compile", load_predictor(classifier_folder), "cpu", {"info": {}})
    got = np.stack([r.logits for r in predictor.predict(images[:16])])
    want = np.stack([r.logits for r in reference.predict(images[:16])])
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())
    torch._dynamo.reset()
