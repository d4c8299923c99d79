"""CRAFT networks: the published VGG16-BN model and a compact variant with the same U-Net head shape.

Both map a normalised N×3×H×W batch (H, W multiples of 32) to N×2×(H/2)×(W/2) score maps: channel 0 is
the region (character) score, channel 1 the affinity (link between neighbouring characters) score.

`craft_vgg16_bn()` follows Baek et al., "Character Region Awareness for Text Detection" (CVPR 2019) and the
authors' released code: VGG16-BN up to conv5_2 (torchvision's layer indices), an fc6/fc7 block (3×3 max
pool with stride 1, a 3×3 convolution with dilation 6 to 1024 channels, a 1×1 convolution), four up-sampling
blocks (1×1 then 3×3 convolution, each with batch norm) with skip connections at strides 16, 8, 4 and 2, and a
five-layer classifier. Module names match the released checkpoint (`basenet.slice1`…, `upconv1`…,
`conv_cls`), so its state dict loads once the `module.` prefix is stripped. It has 20.77 M parameters.

`craft_compact()` keeps that head shape over a narrow VGG-like encoder whose first convolution has stride 2,
so no layer runs at full resolution; it has about 1.3 M parameters (about 5 MiB in fp32).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# torchvision's VGG16 configuration "D": channel counts, "M" = 2×2 max pool.
_VGG16_CFG: list[int | str] = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
]


def _vgg16_bn_features() -> nn.Sequential:
    """The layers of torchvision's `vgg16_bn().features`, with the same indices, built without torchvision."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [
                nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1),
                nn.BatchNorm2d(int(v)),
                nn.ReLU(inplace=True),
            ]
            in_ch = int(v)
    return nn.Sequential(*layers)


class VGG16BNBase(nn.Module):
    """The published backbone: returns (fc7, relu5_3, relu4_3, relu3_2, relu2_2) as in the released code.

    The names are the released ones; the features are taken before the ReLU that opens the next slice,
    i.e. at conv5_2, conv4_2, conv3_2 and conv2_2 after their batch norms.
    """

    def __init__(self) -> None:
        super().__init__()
        features = _vgg16_bn_features()
        bounds = [(0, 12), (12, 19), (19, 29), (29, 39)]  # up to conv2_2, conv3_2, conv4_2, conv5_2 (+BN)
        for n, (a, b) in enumerate(bounds, start=1):
            slice_ = nn.Sequential()
            for i in range(a, b):
                slice_.add_module(str(i), features[i])
            setattr(self, f"slice{n}", slice_)
        self.slice5 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),
            nn.Conv2d(1024, 1024, kernel_size=1),
        )
        self.out_channels = (1024, 512, 512, 256, 128)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s2 = self.slice1(x)
        s4 = self.slice2(s2)
        s8 = self.slice3(s4)
        s16 = self.slice4(s8)
        fc = self.slice5(s16)
        return fc, s16, s8, s4, s2


def _conv_bn(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class CompactBase(nn.Module):
    """A narrow VGG-like encoder with the published backbone's outputs: features at strides 2, 4, 8, 16
    and an fc block at stride 16 (3×3 max pool with stride 1, dilated 3×3 convolution, 1×1 convolution)."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128, 128)) -> None:
        super().__init__()
        w2, w4, w8, w16, wfc = widths
        self.slice1 = nn.Sequential(*_conv_bn(3, w2, stride=2))
        self.slice2 = nn.Sequential(*_conv_bn(w2, w4, stride=2), *_conv_bn(w4, w4))
        self.slice3 = nn.Sequential(*_conv_bn(w4, w8, stride=2), *_conv_bn(w8, w8))
        self.slice4 = nn.Sequential(*_conv_bn(w8, w16, stride=2), *_conv_bn(w16, w16))
        self.slice5 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            *_conv_bn(w16, wfc, dilation=4),
            nn.Conv2d(wfc, wfc, kernel_size=1, bias=False),
            nn.BatchNorm2d(wfc),
            nn.ReLU(inplace=True),
        )
        self.out_channels = (wfc, w16, w8, w4, w2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s2 = self.slice1(x)
        s4 = self.slice2(s2)
        s8 = self.slice3(s4)
        s16 = self.slice4(s8)
        fc = self.slice5(s16)
        return fc, s16, s8, s4, s2


class DoubleConv(nn.Module):
    """The published up-sampling block: 1×1 convolution of the concatenated input to `mid_ch`, then 3×3
    convolution to `out_ch`, each followed by batch norm and ReLU."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, mid_ch, kernel_size=1),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CRAFT(nn.Module):
    """Backbone + U-Net head + classifier; `forward` returns N×2×(H/2)×(W/2) (region, affinity)."""

    def __init__(self, basenet: nn.Module, up: Sequence[tuple[int, int]], cls: Sequence[int]) -> None:
        """`up`: (mid, out) channels of the four up-sampling blocks; `cls`: channels of the classifier's
        hidden layers (3×3 convolutions, then one 1×1 convolution, then a 1×1 convolution to 2 maps)."""
        super().__init__()
        self.basenet = basenet
        fc_ch, s16_ch, s8_ch, s4_ch, s2_ch = basenet.out_channels
        skips = (s16_ch, s8_ch, s4_ch, s2_ch)
        in_ch = fc_ch
        for n, ((mid, out), skip) in enumerate(zip(up, skips, strict=True), start=1):
            setattr(self, f"upconv{n}", DoubleConv(in_ch + skip, mid, out))
            in_ch = out
        layers: list[nn.Module] = []
        *hidden3x3, hidden1x1 = cls
        for ch in hidden3x3:
            layers += [nn.Conv2d(in_ch, ch, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_ch = ch
        layers += [nn.Conv2d(in_ch, hidden1x1, kernel_size=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(hidden1x1, 2, kernel_size=1))
        self.conv_cls = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc, s16, s8, s4, s2 = self.basenet(x)
        y = self.upconv1(torch.cat([fc, s16], dim=1))
        for block, skip in ((self.upconv2, s8), (self.upconv3, s4), (self.upconv4, s2)):
            y = F.interpolate(y, size=skip.shape[2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return self.conv_cls(y)


def _init_xavier(model: nn.Module) -> None:
    """The released code's initialisation: Xavier-uniform convolutions, zero biases, unit batch norms."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _init_kaiming(model: nn.Module) -> None:
    """He initialisation for training from scratch, with a small last layer so early maps stay near 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    last = model.conv_cls[-1]
    nn.init.normal_(last.weight, std=0.01)
    nn.init.zeros_(last.bias)


def craft_vgg16_bn() -> CRAFT:
    """The published CRAFT (VGG16-BN backbone), randomly initialised as in the released code."""
    model = CRAFT(VGG16BNBase(), up=((512, 256), (256, 128), (128, 64), (64, 32)), cls=(32, 32, 16, 16))
    _init_xavier(model)
    return model


def craft_compact() -> CRAFT:
    """The compact CRAFT trained from scratch for this benchmark (≈1.3 M parameters)."""
    model = CRAFT(CompactBase(), up=((64, 64), (48, 32), (32, 24), (16, 16)), cls=(16,))
    _init_kaiming(model)
    return model
