"""GTSNet: a tiny NAS-style classifier mixing Ghost, MobileNetV2/V3 and EfficientNet blocks.

Layer by layer (c = output channels, t = expansion ratio, s = stride, k = kernel):

    Conv 3×3, c16, s2, BN, ReLU
    MaxPool 3×3, s2 (padding 1)
    GhostBottleneck          k3, t5.9, c64, s2           (mid = make_divisible(16 × 5.9) = 96)
    InvertedResidualV3       k3, t2.1, c80, s2, SE, ReLU (expanded = make_divisible(64 × 2.1) = 136)
    3 × InvertedResidualV2   t1, c64, s1                 (the first maps 80 → 64; the other two are residual)
    MBConv                   k3, t1, c96, s1             (SE from 64 × 0.25 = 16 channels, SiLU)
    MaxPool 3×3, s2 (padding 1)
    Conv 1×1, c1024, BN, ReLU
    global average pool → dropout → Linear(1024, num_classes)

Fractional expansions are rounded with `make_divisible(·, 8)`. Parameters: 173,866 at 10 classes (the
≈0.17 M of the design; the 1×1 head convolution alone holds 100,352 of them), 1,188,616 at 1,000
classes. At 32×32 input the last feature map is 1×1 (32 → 16 → 8 → 4 → 2 → 1).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.zoo.blocks import (
    ConvBNAct,
    GhostBottleneck,
    InvertedResidualV2,
    InvertedResidualV3,
    MBConv,
    make_divisible,
)


class GTSNet(nn.Module):
    def __init__(self, num_classes: int = 10, dropout: float = 0.2):
        super().__init__()
        stem = 16
        ghost_out, ir3_out, ir2_out, mb_out, head = 64, 80, 64, 96, 1024
        self.features = nn.Sequential(
            ConvBNAct(3, stem, 3, 2, act="relu"),
            nn.MaxPool2d(3, 2, 1),
            GhostBottleneck(stem, make_divisible(stem * 5.9), ghost_out, dw_kernel=3, stride=2),
            InvertedResidualV3(
                ghost_out,
                make_divisible(ghost_out * 2.1),
                ir3_out,
                kernel=3,
                stride=2,
                use_se=True,
                act="relu",
            ),
            InvertedResidualV2(ir3_out, ir2_out, stride=1, expand_ratio=1),
            InvertedResidualV2(ir2_out, ir2_out, stride=1, expand_ratio=1),
            InvertedResidualV2(ir2_out, ir2_out, stride=1, expand_ratio=1),
            MBConv(ir2_out, mb_out, kernel=3, stride=1, expand_ratio=1),
            nn.MaxPool2d(3, 2, 1),
            ConvBNAct(mb_out, head, 1, act="relu"),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def gtsnet(num_classes: int = 10) -> GTSNet:
    return GTSNet(num_classes=num_classes)
