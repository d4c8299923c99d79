"""GhostNet (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020) with a width
multiplier, in the paper's configuration (Table 1).

Channel counts are `make_divisible(c × width, 4)`, as in the authors' code; the stem is a 3×3 stride-2
convolution, the head a 1×1 convolution to 960 × width channels, global average pooling, a 1×1
convolution to 1,280 channels with ReLU, dropout and the classifier. Parameters: 5,182,508 at width 1.0
and 1,000 classes (the paper's 5.2 M); 1,319,102 at width 0.5 and 10 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.zoo.blocks import ConvBNAct, GhostBottleneck, make_divisible
from harness.zoo.gtsnet import init_weights

# One row per Ghost bottleneck, grouped in stages: kernel, expansion size, output channels, SE ratio, stride.
PAPER_CONFIG: tuple[tuple[tuple[int, int, int, float, int], ...], ...] = (
    ((3, 16, 16, 0.0, 1),),
    ((3, 48, 24, 0.0, 2),),
    ((3, 72, 24, 0.0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0.0, 2),),
    (
        (3, 200, 80, 0.0, 1),
        (3, 184, 80, 0.0, 1),
        (3, 184, 80, 0.0, 1),
        (3, 480, 112, 0.25, 1),
        (3, 672, 112, 0.25, 1),
    ),
    ((5, 672, 160, 0.25, 2),),
    ((5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1)),
)
HEAD_CHANNELS = 1280


class GhostNet(nn.Module):
    def __init__(self, num_classes: int = 1000, width: float = 1.0, dropout: float = 0.2):
        super().__init__()
        channels = make_divisible(16 * width, 4)
        stages: list[nn.Module] = [ConvBNAct(3, channels, 3, 2, act="relu")]
        for stage in PAPER_CONFIG:
            layers = []
            for kernel, expansion, out, se_ratio, stride in stage:
                out_channels = make_divisible(out * width, 4)
                hidden = make_divisible(expansion * width, 4)
                layers.append(GhostBottleneck(channels, hidden, out_channels, kernel, stride, se_ratio))
                channels = out_channels
            stages.append(nn.Sequential(*layers))
        last = make_divisible(PAPER_CONFIG[-1][-1][1] * width, 4)
        stages.append(ConvBNAct(channels, last, 1, act="relu"))
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(last, HEAD_CHANNELS, 1, bias=True)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv_head(self.pool(self.features(x))))
        return self.classifier(self.dropout(x.flatten(1)))


def ghostnet(num_classes: int = 1000, width: float = 1.0) -> GhostNet:
    return GhostNet(num_classes=num_classes, width=width)
