"""The submission contract: the predictor protocol and the typed output records (validated by their task kind,
`harness.kinds.validate_outputs`).

A submission's entry point `build(ctx)` returns a `Predictor`. The harness owns data loading, timing and
scoring; the predictor owns the model. A predictor splits inference in three steps so that the harness can
time the model alone (`forward`) apart from the host-side work around it (`preprocess`, `postprocess`):

    outputs = predictor.postprocess(predictor.forward(predictor.preprocess(images)), images)

`images` is a list of decoded RGB images (H×W×3 uint8 numpy arrays, sizes may differ). Outputs are one
record per image, of the track's type: `ClassScores`, `Detections` or `TextPolygons`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import SubmissionError

# torch is imported lazily inside functions so that `import harness.contract` stays cheap for the CLI.


@dataclass(frozen=True)
class BuildContext:
    """What the harness tells a submission's `build(ctx)`."""

    track: str
    device: str = "cpu"
    variant: str = "fp32"
    num_classes: int | None = None
    input_size: tuple[int, int] | None = None  # (H, W) of the track's primary resolution
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassScores:
    """Classification output for one image: unnormalised class scores, shape (C,)."""

    logits: np.ndarray


@dataclass(frozen=True)
class Detections:
    """Detection output for one image: K boxes xyxy in pixels of the original image, scores, labels."""

    boxes: np.ndarray  # (K, 4) float
    scores: np.ndarray  # (K,) float
    labels: np.ndarray  # (K,) int, the dataset's category ids


@dataclass(frozen=True)
class TextPolygons:
    """Text detection output for one image: K polygons of P points (x, y) in pixels, and scores."""

    polygons: np.ndarray  # (K, P, 2) float, P >= 4
    scores: np.ndarray  # (K,) float


class Predictor:
    """Base class of predictors. Subclasses set `model` and override the three steps as needed.

    `device` and `dtype` are owned by the harness: it calls `to(device)` and variants may change `dtype`
    (e.g. float16); `preprocess` must honour both.
    """

    model: Any  # torch.nn.Module
    device: Any = "cpu"
    dtype: Any = None  # torch dtype of the model's floating inputs; None = float32

    def preprocess(self, images: Sequence[np.ndarray]) -> Any:
        raise SubmissionError(f"{type(self).__name__} does not implement preprocess(images)")

    def forward(self, inputs: Any) -> Any:
        return self.model(inputs)

    def postprocess(self, raw: Any, images: Sequence[np.ndarray]) -> list[Any]:
        raise SubmissionError(f"{type(self).__name__} does not implement postprocess(raw, images)")

    def predict(self, images: Sequence[np.ndarray]) -> list[Any]:
        import torch

        with torch.inference_mode():
            return self.postprocess(self.forward(self.preprocess(images)), images)

    def to(self, device: Any) -> Predictor:
        import torch

        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @property
    def input_dtype(self) -> Any:
        import torch

        return self.dtype or torch.float32


class ClassifierPredictor(Predictor):
    """Wraps an `nn.Module` mapping a normalised N×3×H×W float batch to N×C logits."""

    def __init__(self, model: Any, mean: Sequence[float], std: Sequence[float], resize: int | None = None):
        self.model = model.eval()
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
        self.resize = resize

    def preprocess(self, images: Sequence[np.ndarray]) -> Any:
        import torch

        batch = np.stack([np.asarray(img) for img in images]).astype(np.float32) / 255.0
        batch = (batch.transpose(0, 3, 1, 2) - self.mean) / self.std
        tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, self.input_dtype)
        if self.resize is not None:
            tensor = torch.nn.functional.interpolate(
                tensor, size=(self.resize, self.resize), mode="bilinear", align_corners=False
            )
        return tensor

    def postprocess(self, raw: Any, images: Sequence[np.ndarray]) -> list[ClassScores]:
        logits = raw.float().cpu().numpy()
        return [ClassScores(logits=row) for row in logits]


class DetectorPredictor(Predictor):
    """Wraps a torchvision-style detector: list of 3×H×W float tensors in [0, 1] → list of dicts
    with `boxes` (xyxy, input pixels), `scores`, `labels`. `label_map` maps model labels to dataset ids."""

    def __init__(self, model: Any, label_map: dict[int, int] | None = None):
        self.model = model.eval()
        self.label_map = label_map

    def preprocess(self, images: Sequence[np.ndarray]) -> Any:
        import torch

        return [
            torch.from_numpy(np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1)))
            .to(self.device)
            .to(self.input_dtype)
            .div_(255.0)
            for img in images
        ]

    def postprocess(self, raw: Any, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for det in raw:
            labels = det["labels"].cpu().numpy().astype(np.int64)
            if self.label_map is not None:
                labels = np.array([self.label_map.get(int(x), int(x)) for x in labels], dtype=np.int64)
            out.append(
                Detections(
                    boxes=det["boxes"].float().cpu().numpy().reshape(-1, 4),
                    scores=det["scores"].float().cpu().numpy().reshape(-1),
                    labels=labels,
                )
            )
        return out


def wrap_classifier(
    model: Any,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    resize: int | None = None,
) -> ClassifierPredictor:
    """The simplest classification submission: `return wrap_classifier(MyNet())`."""
    return ClassifierPredictor(model, mean, std, resize)


def wrap_detector(model: Any, label_map: dict[int, int] | None = None) -> DetectorPredictor:
    """A torchvision-style detector (`model(list_of_tensors) -> list[dict]`) as a predictor."""
    return DetectorPredictor(model, label_map)


class OutputError(SubmissionError):
    """A predictor returned something that breaks the contract."""
