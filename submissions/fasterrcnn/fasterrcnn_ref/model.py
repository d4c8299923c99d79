"""The two reference Faster R-CNN detectors of the small-object track: one light from-scratch backbone,
two heads: `small` (stride-4 level, 4–64 px anchors, more detections) and `default` (torchvision's
anchors and settings). Also the IIoU box loss and fp16 safetensors saving/loading of the weights."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7

NUM_CLASSES = 5  # dataset category ids 1..5; the model's label 0 is background
MODEL_KINDS = ("small", "default")
FPN_CHANNELS = 64
REPRESENTATION_SIZE = 256  # the box head's MLP width, the same for both kinds
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DetectorConfig:
    """What differs between the two reference detectors."""

    backbone_levels: tuple[str, ...]  # backbone stages fed to the FPN, finest first
    extra_levels: str  # "maxpool" (P6 by max-pooling) or "p6p7" (RetinaNet-style P6 and P7 convolutions)
    anchor_sizes: tuple[tuple[int, ...], ...]
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_fg_iou_thresh: float = 0.7
    rpn_post_nms_top_n_test: int = 1000
    box_score_thresh: float = 0.05
    box_detections_per_img: int = 100


CONFIGS = {
    # Stride 4 to 64 (P2..P6): a 4 px object still covers a cell of P2, and anchors start at 4 px. The
    # RPN's positive IoU is lowered to 0.5 because a 4–8 px box rarely reaches 0.7 with any anchor on a
    # stride-4 grid; more detections per image because images hold up to 40 objects plus clusters.
    "small": DetectorConfig(
        backbone_levels=("c2", "c3", "c4", "c5"),
        extra_levels="maxpool",
        anchor_sizes=((4,), (8,), (16,), (32,), (64,)),
        rpn_fg_iou_thresh=0.5,
        box_score_thresh=0.02,
        box_detections_per_img=300,
    ),
    # torchvision's defaults: anchors 32..512 px on five levels (here P3..P7, as the backbone has no
    # pretrained stride-4 stage to spare), IoU 0.7, 100 detections, score threshold 0.05.
    "default": DetectorConfig(
        backbone_levels=("c3", "c4", "c5"),
        extra_levels="p6p7",
        anchor_sizes=((32,), (64,), (128,), (256,), (512,)),
    ),
}


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block; a strided 1×1 projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv_bn(in_channels, out_channels, stride)
        self.conv2 = _conv_bn(out_channels, out_channels, relu=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x), inplace=True)


class LightResNet(nn.Module):
    """A small ResNet trained from scratch (BatchNorm, so it trains at batch 16+ without pretraining).
    Returns the stride-4/8/16/32 feature maps c2..c5."""

    channels = {"c2": 32, "c3": 64, "c4": 128, "c5": 192}

    def __init__(self) -> None:
        super().__init__()
        ch = self.channels
        self.stem = nn.Sequential(_conv_bn(3, 24, stride=2), _conv_bn(24, 32, stride=2))
        self.c2 = BasicBlock(32, ch["c2"])
        self.c3 = nn.Sequential(BasicBlock(ch["c2"], ch["c3"], 2), BasicBlock(ch["c3"], ch["c3"]))
        self.c4 = nn.Sequential(BasicBlock(ch["c3"], ch["c4"], 2), BasicBlock(ch["c4"], ch["c4"]))
        # One block at stride 32: objects here are at most 32 px, so the coarsest stage only adds context.
        self.c5 = BasicBlock(ch["c4"], ch["c5"], 2)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for module in self.modules():
            # Zero-initialised last BatchNorm of each residual branch: every block starts as the identity,
            # which keeps the from-scratch start stable.
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.conv2[1].weight)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c2 = self.c2(self.stem(x))
        c3 = self.c3(c2)
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        return {"c2": c2, "c3": c3, "c4": c4, "c5": c5}


class BackboneWithFPN(nn.Module):
    """LightResNet + FPN over the configured levels. `amp_dtype` (set by the training script, never
    saved) runs the convolutions in reduced precision; the features leave in float32 so that anchors,
    proposals and box decoding keep full precision (bf16 would round 512-px coordinates to 2 px)."""

    def __init__(self, config: DetectorConfig):
        super().__init__()
        self.body = LightResNet()
        self.levels = config.backbone_levels
        in_channels = [LightResNet.channels[name] for name in self.levels]
        extra: nn.Module
        extra = LastLevelMaxPool() if config.extra_levels == "maxpool" else LastLevelP6P7(FPN_CHANNELS, FPN_CHANNELS)
        self.fpn = FeaturePyramidNetwork(in_channels, FPN_CHANNELS, extra_blocks=extra)
        self.out_channels = FPN_CHANNELS
        self.amp_dtype: torch.dtype | None = None

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        with torch.autocast(x.device.type, dtype=self.amp_dtype or torch.bfloat16, enabled=self.amp_dtype is not None):
            features = self.body(x)
            selected = OrderedDict((str(i), features[name]) for i, name in enumerate(self.levels))
            pyramid = self.fpn(selected)
        if self.amp_dtype is None:
            return pyramid
        return OrderedDict((name, level.float()) for name, level in pyramid.items())


def iiou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-box 1 − IIoU for xyxy boxes (N, 4), where IIoU = IoU − (|C| − |A∪B|)/|C| and C is the smallest
    box enclosing A and B (the GIoU form): 0 for identical boxes, up to 2 for distant ones."""
    pred, target = pred.float(), target.float()
    ix1 = torch.maximum(pred[:, 0], target[:, 0])
    iy1 = torch.maximum(pred[:, 1], target[:, 1])
    ix2 = torch.minimum(pred[:, 2], target[:, 2])
    iy2 = torch.minimum(pred[:, 3], target[:, 3])
    intersection = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    area_pred = (pred[:, 2] - pred[:, 0]).clamp(min=0) * (pred[:, 3] - pred[:, 1]).clamp(min=0)
    area_target = (target[:, 2] - target[:, 0]).clamp(min=0) * (target[:, 3] - target[:, 1]).clamp(min=0)
    union = area_pred + area_target - intersection
    iou = intersection / (union + eps)
    cx1 = torch.minimum(pred[:, 0], target[:, 0])
    cy1 = torch.minimum(pred[:, 1], target[:, 1])
    cx2 = torch.maximum(pred[:, 2], target[:, 2])
    cy2 = torch.maximum(pred[:, 3], target[:, 3])
    enclosing = (cx2 - cx1) * (cy2 - cy1)
    return 1.0 - (iou - (enclosing - union) / (enclosing + eps))


class IIoURoIHeads(RoIHeads):
    """torchvision's box heads with an optional IIoU loss on the decoded boxes of the positive samples,
    beside the smooth-L1 loss on the encoded deltas. `iiou_weight` 0 (the default) is plain RoIHeads."""

    iiou_weight: float = 0.0

    def forward(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        if not self.training or self.iiou_weight == 0.0:
            return super().forward(features, proposals, image_shapes, targets)
        proposals, _matched, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
        labels_cat = torch.cat(labels)
        positive = torch.where(labels_cat > 0)[0]
        proposals_cat = torch.cat(proposals)[positive].float()
        deltas = box_regression.reshape(len(labels_cat), -1, 4)[positive, labels_cat[positive]].float()
        predicted = self.box_coder.decode_single(deltas, proposals_cat)
        wanted = self.box_coder.decode_single(torch.cat(regression_targets)[positive].float(), proposals_cat)
        loss_iiou = iiou_loss(predicted, wanted).mean() if len(positive) else box_regression.sum() * 0.0
        losses = {
            "loss_classifier": loss_classifier,
            "loss_box_reg": loss_box_reg,
            "loss_box_iiou": self.iiou_weight * loss_iiou,
        }
        return [], losses


def make_model(kind: str) -> FasterRCNN:
    """A randomly initialised reference detector (`kind` "small" or "default"), labels 1..5."""
    if kind not in CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    config = CONFIGS[kind]
    backbone = BackboneWithFPN(config)
    num_levels = len(config.anchor_sizes)
    anchors = AnchorGenerator(config.anchor_sizes, (config.aspect_ratios,) * num_levels)
    roi_levels = [str(i) for i in range(len(config.backbone_levels))]
    model = FasterRCNN(
        backbone,
        # 512×512 images pass at their own size (no resize); others are scaled to a 512 px short side.
        min_size=512,
        max_size=1024,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
        rpn_anchor_generator=anchors,
        rpn_fg_iou_thresh=config.rpn_fg_iou_thresh,
        rpn_post_nms_top_n_test=config.rpn_post_nms_top_n_test,
        box_roi_pool=MultiScaleRoIAlign(roi_levels, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(FPN_CHANNELS * 7 * 7, REPRESENTATION_SIZE),
        box_predictor=FastRCNNPredictor(REPRESENTATION_SIZE, NUM_CLASSES + 1),
        box_score_thresh=config.box_score_thresh,
        box_detections_per_img=config.box_detections_per_img,
    )
    heads = model.roi_heads
    model.roi_heads = IIoURoIHeads(
        heads.box_roi_pool,
        heads.box_head,
        heads.box_predictor,
        fg_iou_thresh=0.5,
        bg_iou_thresh=0.5,
        batch_size_per_image=512,
        positive_fraction=0.25,
        bbox_reg_weights=None,
        score_thresh=heads.score_thresh,
        nms_thresh=heads.nms_thresh,
        detections_per_img=heads.detections_per_img,
    )
    return model


def weights_filename(kind: str) -> str:
    return f"fasterrcnn_{kind}.safetensors"


def half_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with floating tensors in float16 (halves the shipped file; cast back on load)."""
    return {
        name: (value.detach().to(torch.float16) if value.is_floating_point() else value.detach()).contiguous().cpu()
        for name, value in model.state_dict().items()
    }


def save_weights(model: nn.Module, path: Path, metadata: dict[str, Any] | None = None) -> None:
    """Write the fp16 weights atomically (a reader never sees a half-written file)."""
    from safetensors.torch import save_file

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    save_file(half_state_dict(model), str(partial), metadata={k: str(v) for k, v in (metadata or {}).items()})
    partial.replace(path)


def load_weights(model: nn.Module, path: Path) -> dict[str, str]:
    """Load fp16 (or fp32) weights into `model` in place, cast to its dtypes; returns the file's metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    state = load_file(str(path))
    model.load_state_dict(state, strict=True)
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})
