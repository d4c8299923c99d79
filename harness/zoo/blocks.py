"""Building blocks of lightweight classifiers: squeeze-excitation, Ghost modules and bottlenecks
(GhostNet, Han et al. 2020), inverted residuals of MobileNetV2 and MobileNetV3, EfficientNet's MBConv.

Every block is plain `nn.Module`s (activations as modules, residual sums as `+`), so that the harness can
trace it for MAC counting and for post-training int8 quantization.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "silu": nn.SiLU,
}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of `divisor`, never below 90 % of `value`
    (the rule of the MobileNet reference code)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def activation(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class ConvBNAct(nn.Sequential):
    """Convolution (no bias) → batch norm → activation (None for a linear projection)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
    ):
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                (kernel_size - 1) // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            activation(act),
        )
        self.out_channels = out_channels


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool → 1×1 reduce → activation → 1×1 expand → gate → rescale."""

    def __init__(
        self,
        channels: int,
        squeeze_channels: int | None = None,
        se_ratio: float = 0.25,
        divisor: int = 8,
        act: str = "relu",
        gate: str = "hardsigmoid",
    ):
        super().__init__()
        squeeze_channels = squeeze_channels or make_divisible(channels * se_ratio, divisor)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = activation(act)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = nn.Hardsigmoid() if gate == "hardsigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * scale


class GhostModule(nn.Module):
    """Ghost module: a 1×1 convolution makes `ceil(out/ratio)` intrinsic maps, a cheap depthwise
    convolution derives the remaining "ghost" maps from them; the two are concatenated."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        stride: int = 1,
        relu: bool = True,
    ):
        super().__init__()
        self.out_channels = out_channels
        init_channels = math.ceil(out_channels / ratio)
        act = "relu" if relu else None
        self.primary = ConvBNAct(in_channels, init_channels, kernel_size, stride, act=act)
        self.cheap = ConvBNAct(init_channels, init_channels * (ratio - 1), dw_size, 1, groups=init_channels, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        intrinsic = self.primary(x)
        out = torch.cat([intrinsic, self.cheap(intrinsic)], dim=1)
        return out[:, : self.out_channels]


class GhostBottleneck(nn.Module):
    """Ghost bottleneck: Ghost module (expand, ReLU) → depthwise k×k if strided → optional SE →
    Ghost module (project, linear), plus a shortcut (identity, or depthwise + 1×1 when the shape changes)."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        dw_kernel: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
    ):
        super().__init__()
        self.ghost1 = GhostModule(in_channels, mid_channels, relu=True)
        self.depthwise = (
            ConvBNAct(mid_channels, mid_channels, dw_kernel, stride, groups=mid_channels, act=None)
            if stride > 1
            else nn.Identity()
        )
        self.se = SqueezeExcite(mid_channels, se_ratio=se_ratio, divisor=4) if se_ratio > 0 else nn.Identity()
        self.ghost2 = GhostModule(mid_channels, out_channels, relu=False)
        if in_channels == out_channels and stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvBNAct(in_channels, in_channels, dw_kernel, stride, groups=in_channels, act=None),
                ConvBNAct(in_channels, out_channels, 1, act=None),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ghost2(self.se(self.depthwise(self.ghost1(x))))
        return out + self.shortcut(x)


class InvertedResidualV2(nn.Module):
    """MobileNetV2 block: 1×1 expand by t (skipped when t = 1) → depthwise 3×3 → 1×1 linear projection;
    ReLU6; identity residual when stride 1 and channels kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: float = 6.0):
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(ConvBNAct(in_channels, hidden, 1, act="relu6"))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
            ConvBNAct(hidden, out_channels, 1, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class InvertedResidualV3(nn.Module):
    """MobileNetV3 block: 1×1 expand to `expanded` channels (skipped when equal to the input) →
    depthwise k×k → optional SE (squeeze = expanded/4 rounded to 8, hard-sigmoid gate) → 1×1 linear
    projection; activation "relu" or "hardswish"; identity residual when stride 1 and channels kept."""

    def __init__(
        self,
        in_channels: int,
        expanded: int,
        out_channels: int,
        kernel: int = 3,
        stride: int = 1,
        use_se: bool = False,
        act: str = "relu",
    ):
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvBNAct(in_channels, expanded, 1, act=act))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if use_se:
            layers.append(SqueezeExcite(expanded, squeeze_channels=make_divisible(expanded // 4, 8)))
        layers.append(ConvBNAct(expanded, out_channels, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MBConv(nn.Module):
    """EfficientNet's mobile inverted bottleneck: 1×1 expand by t (skipped when t = 1) → depthwise k×k →
    SE (squeeze = input channels × se_ratio, SiLU, sigmoid gate) → 1×1 linear projection; SiLU; identity
    residual when stride 1 and channels kept (stochastic depth is left to training recipes)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 3,
        stride: int = 1,
        expand_ratio: float = 6.0,
        se_ratio: float = 0.25,
        act: str = "silu",
    ):
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(ConvBNAct(in_channels, hidden, 1, act=act))
        layers.append(ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if se_ratio > 0:
            squeeze = max(1, int(in_channels * se_ratio))
            layers.append(SqueezeExcite(hidden, squeeze_channels=squeeze, act=act, gate="sigmoid"))
        layers.append(ConvBNAct(hidden, out_channels, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out
