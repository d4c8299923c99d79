"""MACs, params and bytes as the harness measures them, against the published figures of torchvision models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.contract import wrap_classifier
from harness.measure.complexity import measure
from tests.conftest import make_submission, run_cli

TORCHVISION_BODY = """
    import torchvision
    from harness.contract import wrap_classifier

    def build(ctx):
        return wrap_classifier(torchvision.models.{arch}(weights=None), resize=None)
"""


@pytest.mark.parametrize(
    ("arch", "params", "macs"),
    [
        ("mobilenet_v2", 3_504_872, 300.8e6),
        ("resnet50", 25_557_032, 4.09e9),
        ("shufflenet_v2_x0_5", 1_366_792, 40.5e6),
    ],
)
def test_check_reports_published_complexity(harness_env, tmp_path, arch, params, macs):
    sub = make_submission(tmp_path, arch, module_body=TORCHVISION_BODY.replace("{arch}", arch))
    result = run_cli("check", str(sub), "--input-size", "224", "--json", env=harness_env)
    report = json.loads(result.stdout)
    assert report["params"] == params
    assert report["macs"]["224x224"] == pytest.approx(macs, rel=0.005)
    # float32 weights: at least 4 bytes per parameter (safetensors adds a small header).
    assert 4 * params <= report["bytes"] <= 4 * params * 1.01 + 200_000


def test_mac_counter_conventions():
    from harness.measure.complexity import count_macs, count_params

    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # 32*32*4 outputs x 3*9 = 110,592
        nn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise: 32*32*4 x 1*9 = 36,864
        nn.ConvTranspose2d(4, 2, 2, stride=2),  # per input element 2*4 = 8: 32*32*4*8 = 32,768
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2, 10),  # 20
    )
    shared = nn.Linear(10, 10)
    model.append(shared)
    model.append(shared)  # shared weights count once in params, twice in MACs: 2 x 100
    predictor = wrap_classifier(model)
    (macs,) = count_macs(predictor, [np.zeros((32, 32, 3), np.uint8)])
    assert macs == 110_592 + 36_864 + 32_768 + 20 + 200
    expected_params = sum(p.numel() for p in model.parameters())  # torch deduplicates shared parameters
    assert count_params(model) == expected_params == (3 * 4 * 9 + 4) + (4 * 9 + 4) + (4 * 2 * 4 + 2) + 30 + 110
    assert torch.is_grad_enabled()


# What the harness counts does not depend on how the model is written ---------------------------------------

IMAGE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


class Honest(nn.Module):
    """A small classifier written the usual way: modules and parameters."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        return self.head(x.mean((2, 3)))


def _weights(honest: Honest) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in honest.state_dict().items()}


class Functional(nn.Module):
    """The same computation as `Honest`, with F.conv2d, batch_norm and einsum on parameters."""

    def __init__(self, w: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.params = nn.ParameterDict(
            {k.replace(".", "_"): nn.Parameter(v) for k, v in w.items() if v.is_floating_point() and "running" not in k}
        )
        self.register_buffer("mean", w["bn.running_mean"])
        self.register_buffer("var", w["bn.running_var"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        x = F.conv2d(x, p["conv_weight"], p["conv_bias"], padding=1)
        x = F.relu(F.batch_norm(x, self.mean, self.var, p["bn_weight"], p["bn_bias"]))
        return torch.einsum("bc,kc->bk", x.mean((2, 3)), p["head_weight"]) + p["head_bias"]


class AsBuffers(nn.Module):
    """Every weight registered as a buffer: no parameters at all by registration."""

    def __init__(self, w: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for k, v in w.items():
            self.register_buffer(k.replace(".", "_"), v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.conv_weight, self.conv_bias, padding=1)
        x = F.batch_norm(x, self.bn_running_mean, self.bn_running_var, self.bn_weight, self.bn_bias)
        return F.linear(F.relu(x).mean((2, 3)), self.head_weight, self.head_bias)


class OutsideTheTree(nn.Module):
    """The real network kept out of the module tree (a plain attribute set around nn.Module), one dummy
    parameter registered."""

    def __init__(self, w: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        net = Honest()
        net.load_state_dict(w)
        object.__setattr__(self, "hidden", [net.eval()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden[0](x) + self.dummy * 0


class FlatAndWritten(nn.Module):
    """The weights (batch-norm statistics among them) in one flat numpy array, viewed into shape on every call;
    the linear layer written as an element-wise product and a sum; the convolution's weight made lazily, on the
    first call, from bytes kept outside any tensor."""

    def __init__(self, w: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.names = [k for k in w if "num_batches" not in k and k != "conv.weight"]
        self.shapes = [tuple(w[k].shape) for k in self.names]
        self.flat = np.concatenate([w[k].numpy().ravel() for k in self.names]).astype(np.float32)
        self.conv_bytes, self.conv_shape = w["conv.weight"].numpy().tobytes(), tuple(w["conv.weight"].shape)
        self.cached: dict[str, torch.Tensor] = {}

    def _weights(self) -> dict[str, torch.Tensor]:
        flat, out, start = torch.from_numpy(self.flat), {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = int(np.prod(shape))
            out[name] = flat[start : start + size].view(shape)
            start += size
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self._weights()
        if "conv" not in self.cached:
            array = np.frombuffer(self.conv_bytes, np.float32).reshape(self.conv_shape)
            self.cached["conv"] = torch.tensor(array)
        x = F.conv2d(x, self.cached["conv"], w["conv.bias"], padding=1)
        x = F.relu(F.batch_norm(x, w["bn.running_mean"], w["bn.running_var"], w["bn.weight"], w["bn.bias"]))
        pooled = x.mean((2, 3))
        return (pooled[:, None, :] * w["head.weight"][None]).sum(-1) + w["head.bias"]


def _measured(model: nn.Module):
    return measure(wrap_classifier(model.eval(), mean=(0.5,) * 3, std=(0.25,) * 3), [IMAGE])


def test_how_a_model_is_written_does_not_change_its_complexity():
    honest = Honest().eval()
    weights = _weights(honest)
    reference = _measured(honest)
    conv = 64 * 64 * 16 * 3 * 9
    assert reference.macs_per_image == [conv + 16 * 10]
    assert reference.params == sum(p.numel() for p in honest.parameters()) == 448 + 32 + 170
    logits = honest(torch.zeros(1, 3, 64, 64))
    for twin in (Functional(weights), AsBuffers(weights), OutsideTheTree(weights), FlatAndWritten(weights)):
        found = _measured(twin)
        name = type(twin).__name__
        assert torch.allclose(twin.eval()(torch.zeros(1, 3, 64, 64)), logits, atol=1e-5), name
        assert found.macs_per_image == reference.macs_per_image, name
        assert found.params == pytest.approx(reference.params, abs=1 + 0.005 * reference.params), name
        assert found.read_bytes == pytest.approx(reference.read_bytes, rel=0.005, abs=8), name


def test_a_network_run_outside_forward_is_counted():
    """A predictor whose forward returns its input and whose postprocess runs the network."""
    honest = Honest().eval()
    predictor = wrap_classifier(nn.Identity(), mean=(0.5,) * 3, std=(0.25,) * 3)
    postprocess = predictor.postprocess
    predictor.postprocess = lambda raw, images: postprocess(honest(raw), images)
    found = measure(predictor, [IMAGE])
    assert found.macs_per_image == _measured(honest).macs_per_image
    assert found.params >= 448 + 170  # the conv and linear weights, read by their operators outside forward


def test_attention_fast_paths_and_functional_attention_are_counted():
    mha = nn.MultiheadAttention(64, 4, batch_first=True).eval()
    x = torch.randn(2, 10, 64)

    class Wrapped(nn.Module):
        def __init__(self, fast: bool) -> None:
            super().__init__()
            self.mha, self.fast = mha, fast

        def forward(self, _: torch.Tensor) -> torch.Tensor:
            out, _ = self.mha(x, x, x, need_weights=not self.fast)
            return out.mean(1)

    expected = 2 * 10 * 64 * 64 * 4 + 2 * 10 * 10 * 64 * 2  # q, k, v, out projections; QK^T and AV
    for fast in (True, False):
        assert measure(wrap_classifier(Wrapped(fast)), [IMAGE]).macs_per_image == [expected]
    q = torch.randn(1, 4, 50, 16)

    class Sdpa(nn.Module):
        def forward(self, _: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, q, q).flatten(1)

    assert measure(wrap_classifier(Sdpa()), [IMAGE]).macs_per_image == [4 * 50 * 50 * 16 * 2]


PARAMETER_FREE = """
    import torch
    from torch import nn

    from harness.contract import wrap_classifier


    class NoWeights(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.num_classes = num_classes

        def forward(self, x):
            return x.mean((2, 3)).repeat(1, self.num_classes)[:, : self.num_classes]


    def build(ctx):
        return wrap_classifier(NoWeights(ctx.num_classes or 10))
"""


def test_a_parameter_free_model_is_refused(harness_env, tmp_path):
    sub = make_submission(tmp_path, "noweights", module_body=PARAMETER_FREE)
    result = run_cli("check", str(sub), "--json", env=harness_env)
    assert result.returncode == 2  # the same fault exits as `submit` does
    (report,) = [json.loads(result.stdout)]
    assert report["params"] == 0 and not report["ok"]
    assert any("below min_params 1" in v for v in report["violations"])
    refused = run_cli("submit", str(sub), env=harness_env)
    assert refused.returncode == 2 and "below min_params 1" in refused.stderr


MEMORISED = """
    import hashlib

    import torchvision
    from harness.contract import wrap_classifier
    from harness.sandbox.images import synthetic_image

    # The image MACs are counted on at 224x224 is public: answer it from a table made in advance.
    KNOWN = synthetic_image(224, 224)


    def key(image):
        return hashlib.sha256(image.tobytes()).hexdigest()


    def build(ctx):
        predictor = wrap_classifier(torchvision.models.mobilenet_v2(weights=None), resize=None)
        table = {key(KNOWN): predictor.predict([KNOWN])[0]}
        honest = predictor.predict

        def predict(images):
            if all(key(image) in table for image in images):
                return [table[key(image)] for image in images]
            return honest(images)

        predictor.predict = predict
        return predictor
"""


def test_a_model_that_answers_the_counted_image_from_memory_is_refused(harness_env, tmp_path):
    sub = make_submission(tmp_path, "memorised", module_body=MEMORISED)
    result = run_cli("check", str(sub), "--input-size", "224", env=harness_env)
    assert result.returncode != 0
    assert "[complexity]" in result.stdout + result.stderr
    assert "answers known inputs from memory" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
