"""The submission contract: the predictor protocol, the typed output records, and their validation.

A submission's entry point `build(ctx)` returns a `Predictor`. The harness owns data loading, timing and
scoring; the predictor owns the model. A predictor splits inference in three steps so that the harness can
time the model alone (`forward`) apart from the host-side work around it (`preprocess`, `postprocess`):

    outputs = predictor.postprocess(predictor.forward(predictor.preprocess(images)), images)

`images` is a list of decoded RGB images (H×W×3 uint8 numpy arrays, sizes may differ). Outputs are one
record per image, of the track's type: `ClassScores`, `Detections` or `TextPolygons`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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


OUTPUT_TYPES = {"classification": ClassScores, "detection": Detections, "text": TextPolygons}


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


def _check_array(name: str, value: Any, ndim: int, last: int | None, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise OutputError(
            f"{where}: `{name}` is a {type(value).__name__}, expected a numpy array",
            "convert tensors with .cpu().numpy() in postprocess",
        )
    if value.dtype.kind not in "fiu":
        raise OutputError(f"{where}: `{name}` has dtype {value.dtype}, expected a numeric dtype")
    if value.ndim != ndim or (last is not None and value.shape[-1] != last):
        want = f"{ndim}-D" + (f" with last dimension {last}" if last is not None else "")
        raise OutputError(f"{where}: `{name}` has shape {value.shape}, expected {want}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise OutputError(f"{where}: `{name}` contains NaN or infinite values")
    return value


def validate_outputs(
    kind: str,
    outputs: Any,
    images: Sequence[np.ndarray],
    num_classes: int | None = None,
    label_ids: set[int] | None = None,
) -> list[Any]:
    """Check a predictor's outputs for one batch: one record per image, of the right type, shape,
    dtype, finite, boxes and polygons inside the image. Raises `OutputError` naming the fault."""
    record_type = OUTPUT_TYPES[kind]
    if not isinstance(outputs, list | tuple):
        raise OutputError(f"predict returned a {type(outputs).__name__}, expected a list of {record_type.__name__}")
    if len(outputs) != len(images):
        raise OutputError(
            f"predict returned {len(outputs)} outputs for {len(images)} images",
            "return exactly one record per input image, in order",
        )
    for i, (out, img) in enumerate(zip(outputs, images, strict=True)):
        where = f"output {i}"
        if not isinstance(out, record_type):
            raise OutputError(f"{where} is a {type(out).__name__}, expected harness.contract.{record_type.__name__}")
        height, width = img.shape[:2]
        if kind == "classification":
            logits = _check_array("logits", out.logits, 1, None, where)
            if num_classes is not None and logits.shape[0] != num_classes:
                raise OutputError(f"{where}: `logits` has {logits.shape[0]} classes, the track has {num_classes}")
        elif kind == "detection":
            boxes = _check_array("boxes", out.boxes, 2, 4, where)
            scores = _check_array("scores", out.scores, 1, None, where)
            labels = _check_array("labels", out.labels, 1, None, where)
            if not (len(boxes) == len(scores) == len(labels)):
                raise OutputError(f"{where}: {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels differ")
            if labels.dtype.kind not in "iu":
                raise OutputError(f"{where}: `labels` has dtype {labels.dtype}, expected integers")
            if len(boxes):
                if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
                    raise OutputError(f"{where}: a box has x2 < x1 or y2 < y1 (boxes must be xyxy)")
                _check_inside(boxes.reshape(-1, 2), width, height, where)
            if label_ids is not None and len(labels):
                unknown = sorted(set(labels.tolist()) - label_ids)
                if unknown:
                    raise OutputError(
                        f"{where}: unknown category ids {unknown[:5]}; the track's ids are {sorted(label_ids)}"
                    )
        else:
            polygons = _check_array("polygons", out.polygons, 3, 2, where)
            scores = _check_array("scores", out.scores, 1, None, where)
            if len(polygons) != len(scores):
                raise OutputError(f"{where}: {len(polygons)} polygons but {len(scores)} scores")
            if len(polygons) and polygons.shape[1] < 4:
                raise OutputError(f"{where}: polygons have {polygons.shape[1]} points, at least 4 are needed")
            if len(polygons):
                _check_inside(polygons.reshape(-1, 2), width, height, where)
    return list(outputs)


def _check_inside(points: np.ndarray, width: int, height: int, where: str, slack: float = 1.0) -> None:
    """Coordinates may touch the border (pixel edges) but not lie outside it."""
    xs, ys = points[:, 0], points[:, 1]
    if xs.min() < -slack or ys.min() < -slack or xs.max() > width + slack or ys.max() > height + slack:
        raise OutputError(
            f"{where}: coordinates outside the {width}x{height} image "
            f"(x in [{xs.min():.1f}, {xs.max():.1f}], y in [{ys.min():.1f}, {ys.max():.1f}])",
            "return coordinates in pixels of the original image; clip them to the image",
        )


def is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


BuildFn = Callable[[BuildContext], Predictor]
