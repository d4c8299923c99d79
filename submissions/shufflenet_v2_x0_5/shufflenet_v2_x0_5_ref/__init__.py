"""Classification reference submission: torchvision's ShuffleNetV2 x0.5, trained on the shapetex dataset.

Trained by `submissions/train_classifiers.py`; the figures it reached are in ../README.md and metrics.json.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torchvision.models import shufflenet_v2_x0_5

from harness.contract import BuildContext, ClassifierPredictor, wrap_classifier
from harness.zoo.weights import check_num_classes, load_weights

NAME = "shufflenet_v2_x0_5"
NUM_CLASSES = 50  # the shapetex classes (classification track version 3)
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
WEIGHTS = Path(__file__).parent / "weights.safetensors"


def make_model(num_classes: int = NUM_CLASSES) -> nn.Module:
    return shufflenet_v2_x0_5(weights=None, num_classes=num_classes)


def build(ctx: BuildContext) -> ClassifierPredictor:
    model = make_model(check_num_classes(ctx.num_classes, NUM_CLASSES, NAME))
    return wrap_classifier(load_weights(model, WEIGHTS), MEAN, STD)
