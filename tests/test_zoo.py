"""The model zoo: building blocks' shapes and arithmetic, GTSNet's exact structure and size, GhostNet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.zoo.blocks import (
    ConvBNAct,
    GhostBottleneck,
    GhostModule,
    InvertedResidualV2,
    InvertedResidualV3,
    MBConv,
    SqueezeExcite,
    make_divisible,
)
from harness.zoo.ghostnet import GhostNet
from harness.zoo.gtsnet import GTSNet

torch.set_num_threads(1)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_bn(cin: int, cout: int, k: int = 1, groups: int = 1) -> int:
    """Parameters of a bias-free k×k convolution and its batch norm (weight + bias)."""
    return cin // groups * cout * k * k + 2 * cout


@pytest.mark.parametrize(
    ("value", "divisor", "expected"),
    [
        (94.4, 8, 96),
        (134.4, 8, 136),
        (34, 8, 32),
        (10, 8, 16),
        (3, 8, 8),
        (16 * 0.5, 4, 8),
        (72 * 0.5, 4, 36),
    ],
)
def test_make_divisible(value, divisor, expected):
    # 10 → 8 would lose more than 10 %, so it goes up to 16; 3 is lifted to the minimum, 8.
    assert make_divisible(value, divisor) == expected


def test_squeeze_excite_gates_channels():
    se = SqueezeExcite(16, squeeze_channels=4)
    assert se.reduce.out_channels == 4 and se.expand.out_channels == 16
    nn.init.zeros_(se.expand.weight)
    nn.init.zeros_(se.expand.bias)
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(se(x), x * 0.5)  # hard-sigmoid(0) = 0.5
    assert SqueezeExcite(136).reduce.out_channels == 32  # make_divisible(136 × 0.25 = 34, 8)


def test_ghost_module_concatenates_intrinsic_and_cheap_maps():
    module = GhostModule(8, 15, ratio=2)
    assert module.primary[0].out_channels == 8  # ceil(15 / 2)
    assert module.cheap[0].groups == 8 and module.cheap[0].out_channels == 8
    out = module.eval()(torch.randn(2, 8, 6, 6))
    assert out.shape == (2, 15, 6, 6)
    intrinsic = module.primary(torch.randn(1, 8, 6, 6))
    assert intrinsic.shape == (1, 8, 6, 6)


def test_ghost_bottleneck_shapes_and_shortcut():
    same = GhostBottleneck(16, 48, 16, stride=1).eval()
    assert isinstance(same.shortcut, nn.Identity) and isinstance(same.depthwise, nn.Identity)
    x = torch.randn(2, 16, 8, 8)
    assert same(x).shape == (2, 16, 8, 8)
    down = GhostBottleneck(16, 48, 24, dw_kernel=5, stride=2, se_ratio=0.25).eval()
    assert down(x).shape == (2, 24, 4, 4)
    assert isinstance(down.se, SqueezeExcite) and down.se.reduce.out_channels == 12  # 48 × 0.25
    assert down.depthwise[0].kernel_size == (5, 5) and down.shortcut[0][0].stride == (2, 2)


def test_inverted_residual_v2():
    block = InvertedResidualV2(16, 16, stride=1, expand_ratio=6).eval()
    assert block.use_residual and block.block[0][0].out_channels == 96
    assert block(torch.randn(1, 16, 8, 8)).shape == (1, 16, 8, 8)
    no_expand = InvertedResidualV2(80, 64, stride=1, expand_ratio=1)
    assert not no_expand.use_residual and len(no_expand.block) == 2  # depthwise + projection only
    assert n_params(no_expand) == conv_bn(80, 80, 3, 80) + conv_bn(80, 64)
    assert InvertedResidualV2(16, 24, stride=2).eval()(torch.randn(1, 16, 8, 8)).shape == (1, 24, 4, 4)


def test_inverted_residual_v3_activation_and_se():
    block = InvertedResidualV3(24, 72, 40, kernel=5, stride=2, use_se=True, act="hardswish").eval()
    assert block(torch.randn(1, 24, 16, 16)).shape == (1, 40, 8, 8)
    assert isinstance(block.block[0][2], nn.Hardswish)
    assert any(isinstance(m, SqueezeExcite) for m in block.block)
    relu = InvertedResidualV3(16, 16, 16, act="relu")
    assert relu.use_residual and len(relu.block) == 2  # no expansion when expanded == input
    with pytest.raises(ValueError, match="unknown activation"):
        InvertedResidualV3(16, 32, 16, act="gelu6")


def test_mbconv():
    block = MBConv(16, 24, kernel=5, stride=2, expand_ratio=6).eval()
    assert block(torch.randn(1, 16, 16, 16)).shape == (1, 24, 8, 8)
    se = next(m for m in block.modules() if isinstance(m, SqueezeExcite))
    assert se.reduce.in_channels == 96 and se.reduce.out_channels == 4  # input 16 × 0.25
    assert isinstance(se.gate, nn.Sigmoid) and isinstance(se.act, nn.SiLU)
    assert MBConv(32, 32, expand_ratio=1).use_residual


def test_gtsnet_structure():
    net = GTSNet(num_classes=10).eval()
    kinds = [type(m) for m in net.features]
    assert kinds == [
        ConvBNAct,
        nn.MaxPool2d,
        GhostBottleneck,
        InvertedResidualV3,
        InvertedResidualV2,
        InvertedResidualV2,
        InvertedResidualV2,
        MBConv,
        nn.MaxPool2d,
        ConvBNAct,
    ]
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:]))) for m in net.features]
    logits = net(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert logits.shape == (2, 10)
    assert shapes == [
        (16, 16, 16),  # conv s2
        (16, 8, 8),  # max pool s2
        (64, 4, 4),  # Ghost bottleneck s2
        (80, 2, 2),  # inverted residual v3 s2
        (64, 2, 2),
        (64, 2, 2),
        (64, 2, 2),
        (96, 2, 2),  # MBConv
        (96, 1, 1),  # max pool s2
        (1024, 1, 1),
    ]
    ghost, ir3 = net.features[2], net.features[3]
    assert ghost.ghost1.out_channels == 96  # make_divisible(16 × 5.9 = 94.4)
    assert ir3.block[0][0].out_channels == 136  # make_divisible(64 × 2.1 = 134.4)
    assert isinstance(ir3.block[0][2], nn.ReLU) and isinstance(ir3.block[2], SqueezeExcite)
    assert [b.use_residual for b in net.features[4:7]] == [False, True, True]
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_gtsnet_parameter_count():
    stem = conv_bn(3, 16, 3)
    ghost = (
        conv_bn(16, 48) + conv_bn(48, 48, 3, 48)  # Ghost module 16 → 96: 48 intrinsic + 48 cheap maps
        + conv_bn(96, 96, 3, 96)  # the stride-2 depthwise
        + conv_bn(96, 32) + conv_bn(32, 32, 3, 32)  # Ghost module 96 → 64
        + conv_bn(16, 16, 3, 16) + conv_bn(16, 64)  # shortcut
    )  # fmt: skip
    se_136 = 136 * 32 + 32 + 32 * 136 + 136
    ir3 = conv_bn(64, 136) + conv_bn(136, 136, 3, 136) + se_136 + conv_bn(136, 80)
    ir2 = conv_bn(80, 80, 3, 80) + conv_bn(80, 64) + 2 * (conv_bn(64, 64, 3, 64) + conv_bn(64, 64))
    se_mb = 64 * 16 + 16 + 16 * 64 + 64
    mbconv = conv_bn(64, 64, 3, 64) + se_mb + conv_bn(64, 96)
    head = conv_bn(96, 1024)
    body = stem + ghost + ir3 + ir2 + mbconv + head
    assert body == 163_616
    assert n_params(GTSNet(num_classes=10)) == body + 1024 * 10 + 10 == 173_866  # ≈ 0.17 M
    assert n_params(GTSNet(num_classes=1000)) == body + 1024 * 1000 + 1000 == 1_188_616


def test_ghostnet_matches_the_paper_and_runs_at_32px():
    # Table 7 of the paper: 5.2 M parameters at width 1.0 and 2.6 M at 0.5 (1,000 classes).
    assert round(n_params(GhostNet(num_classes=1000, width=1.0)) / 1e6, 1) == 5.2
    assert round(n_params(GhostNet(num_classes=1000, width=0.5)) / 1e6, 1) == 2.6
    net = GhostNet(num_classes=10, width=0.5).eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert net.features[0][0].out_channels == 8  # make_divisible(16 × 0.5, 4)
    assert net.features[-1][0].out_channels == 480  # make_divisible(960 × 0.5, 4)


@pytest.mark.parametrize("make", [lambda: GTSNet(10), lambda: GhostNet(10, width=0.5)])
def test_nets_trace_with_fx(make):
    # The harness traces models to count MACs and to quantize them (int8-cpu variant).
    net = make().eval()
    traced = torch.fx.symbolic_trace(net)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(traced(x), net(x))
