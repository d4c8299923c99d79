"""The CRAFT predictor: resize and normalise, run the network, turn score maps into word quadrilaterals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from craft_ref.postprocess import LINK_THRESHOLD, LOW_TEXT, TEXT_THRESHOLD, detect_boxes, to_image_coordinates
from harness.contract import Predictor, TextPolygons

# ImageNet statistics, as the published model uses (pixels in 0..255).
MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
STRIDE = 32


def resize_ratio(height: int, width: int, canvas_size: int, mag_ratio: float) -> float:
    """The published rule: scale the long side by `mag_ratio`, but to at most `canvas_size` pixels."""
    long_side = max(height, width)
    return min(mag_ratio * long_side, canvas_size) / long_side


class CraftPredictor(Predictor):
    """Images are resized (aspect kept) by `resize_ratio`, padded at the bottom and right to a multiple of 32
    (to the largest in the batch), normalised on the device; the network returns N×2×(H/2)×(W/2) maps."""

    def __init__(
        self,
        model: nn.Module,
        canvas_size: int = 1280,
        mag_ratio: float = 1.0,
        text_threshold: float = TEXT_THRESHOLD,
        link_threshold: float = LINK_THRESHOLD,
        low_text: float = LOW_TEXT,
    ) -> None:
        self.model = model.eval()
        self.canvas_size = canvas_size
        self.mag_ratio = mag_ratio
        self.text_threshold = text_threshold
        self.link_threshold = link_threshold
        self.low_text = low_text

    def _ratio(self, image: np.ndarray) -> float:
        return resize_ratio(image.shape[0], image.shape[1], self.canvas_size, self.mag_ratio)

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        resized = []
        for image in images:
            image = np.asarray(image)
            ratio = self._ratio(image)
            if ratio != 1.0:
                size = (round(image.shape[1] * ratio), round(image.shape[0] * ratio))
                image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
            resized.append(image)
        height = math.ceil(max(im.shape[0] for im in resized) / STRIDE) * STRIDE
        width = math.ceil(max(im.shape[1] for im in resized) / STRIDE) * STRIDE
        batch = np.zeros((len(resized), height, width, 3), np.uint8)
        valid = np.zeros((len(resized), height, width, 1), bool)
        for i, im in enumerate(resized):
            batch[i, : im.shape[0], : im.shape[1]] = im
            valid[i, : im.shape[0], : im.shape[1]] = True
        device = self.device
        x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float()
        mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
        # Padding becomes 0 after normalisation, i.e. the mean colour.
        x = (x - mean) / std * torch.from_numpy(valid).to(device).permute(0, 3, 1, 2)
        return x.to(self.input_dtype).contiguous()

    def postprocess(self, raw: Any, images: Sequence[np.ndarray]) -> list[TextPolygons]:
        maps = raw.float().cpu().numpy()
        outputs = []
        for score, image in zip(maps, images, strict=True):
            height, width = image.shape[:2]
            ratio = self._ratio(image)
            map_h = math.ceil(round(height * ratio) / 2)
            map_w = math.ceil(round(width * ratio) / 2)
            found = detect_boxes(
                score[0, :map_h, :map_w],
                score[1, :map_h, :map_w],
                self.text_threshold,
                self.link_threshold,
                self.low_text,
            )
            polygons = to_image_coordinates(found.boxes, ratio, width, height)
            outputs.append(TextPolygons(polygons=polygons.reshape(-1, 4, 2), scores=found.scores))
        return outputs
