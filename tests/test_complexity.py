"""MACs, params and bytes as the harness measures them, against the published figures of torchvision models."""

from __future__ import annotations

import json

import pytest

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
    import torch
    from torch import nn

    from harness.contract import wrap_classifier
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
    import numpy as np

    (macs,) = count_macs(predictor, [np.zeros((32, 32, 3), np.uint8)])
    assert macs == 110_592 + 36_864 + 32_768 + 20 + 200
    expected_params = sum(p.numel() for p in model.parameters())  # torch deduplicates shared parameters
    assert count_params(model) == expected_params == (3 * 4 * 9 + 4) + (4 * 9 + 4) + (4 * 2 * 4 + 2) + 30 + 110
    assert torch.is_grad_enabled()
