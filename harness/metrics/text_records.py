"""Per-image records that the text-detection scorers (DetEval, ICDAR2015 IoU) take: quads in pixels.

Both protocols work on integer pixel coordinates, as the official Robust Reading Competition scripts do
(their file formats only hold integers). Float coordinates, such as a model's outputs, are rounded to the
nearest integer (halves away from zero) by `integer_coordinates`, and `harness.formats.rrc` writes result
files with the same rounding, so scoring in memory and scoring a written archive give the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.errors import DatasetError, PredictionError


def integer_coordinates(polygons: np.ndarray) -> np.ndarray:
    """Round pixel coordinates to the nearest integer (halves away from zero), as float64."""
    values = np.asarray(polygons, dtype=np.float64)
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def _as_quads(polygons: object, what: str, error: type[Exception]) -> np.ndarray:
    array = np.asarray(polygons, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4, 2), dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (4, 2):
        raise error(
            f"{what}: polygons have shape {array.shape}, expected (N, 4, 2) quadrilaterals",
            "give four (x, y) corners per word",
        )
    if not np.isfinite(array).all():
        raise error(f"{what}: polygons contain NaN or infinite coordinates")
    return array


@dataclass(frozen=True)
class ImageGT:
    """Ground truth of one image: G quads (corners in pixels) and which of them are don't care (`###`)."""

    polygons: np.ndarray  # (G, 4, 2) float64
    dont_care: np.ndarray  # (G,) bool
    transcriptions: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        polygons = _as_quads(self.polygons, "ground truth", DatasetError)
        dont_care = np.asarray(self.dont_care, dtype=bool).reshape(-1)
        if len(dont_care) != len(polygons):
            raise DatasetError(f"ground truth: {len(polygons)} polygons but {len(dont_care)} don't-care flags")
        if self.transcriptions and len(self.transcriptions) != len(polygons):
            raise DatasetError(f"ground truth: {len(polygons)} polygons but {len(self.transcriptions)} transcriptions")
        object.__setattr__(self, "polygons", polygons)
        object.__setattr__(self, "dont_care", dont_care)
        object.__setattr__(self, "transcriptions", tuple(self.transcriptions))

    @classmethod
    def from_transcriptions(cls, polygons: np.ndarray, transcriptions: list[str] | tuple[str, ...]) -> ImageGT:
        """Ground truth whose don't-care flags come from the transcriptions (`###` = don't care)."""
        return cls(
            polygons=polygons,
            dont_care=np.array([text == "###" for text in transcriptions], dtype=bool),
            transcriptions=tuple(transcriptions),
        )

    @classmethod
    def empty(cls) -> ImageGT:
        return cls(polygons=np.zeros((0, 4, 2)), dont_care=np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class ImageDet:
    """Detections of one image: D quads (corners in pixels) and their confidences."""

    polygons: np.ndarray  # (D, 4, 2) float64
    scores: np.ndarray  # (D,) float64

    def __post_init__(self) -> None:
        polygons = _as_quads(self.polygons, "detections", PredictionError)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(polygons):
            raise PredictionError(f"detections: {len(polygons)} polygons but {len(scores)} scores")
        object.__setattr__(self, "polygons", polygons)
        object.__setattr__(self, "scores", scores)

    @classmethod
    def empty(cls) -> ImageDet:
        return cls(polygons=np.zeros((0, 4, 2)), scores=np.zeros(0))


def check_aligned(gt: list[ImageGT], det: list[ImageDet]) -> None:
    """The scorers take one ground-truth record and one detection record per image, in the same order."""
    if len(gt) != len(det):
        raise PredictionError(
            f"{len(det)} detection records for {len(gt)} ground-truth images",
            "give one ImageDet per image (ImageDet.empty() where nothing was found), in ground-truth order",
        )


@dataclass(frozen=True)
class PackedText:
    """Ground truth and detections of a whole dataset, concatenated, with integer corners.

    Image i owns ground-truth rows gt_offsets[i]:gt_offsets[i + 1] and detection rows likewise.
    """

    gt_quads: np.ndarray  # (Gt, 4, 2)
    gt_offsets: np.ndarray  # (images + 1,)
    gt_image: np.ndarray  # (Gt,) image index of each row
    gt_dont_care: np.ndarray  # (Gt,) bool
    det_quads: np.ndarray  # (Dt, 4, 2)
    det_offsets: np.ndarray  # (images + 1,)
    det_image: np.ndarray  # (Dt,)

    @property
    def images(self) -> int:
        return len(self.gt_offsets) - 1


def pack(gt: list[ImageGT], det: list[ImageDet]) -> PackedText:
    """Concatenate per-image records (one ImageGT and one ImageDet per image, same order)."""
    check_aligned(gt, det)
    gt_counts = np.array([len(image.polygons) for image in gt], dtype=np.int64)
    det_counts = np.array([len(image.polygons) for image in det], dtype=np.int64)
    empty = np.zeros((0, 4, 2))
    return PackedText(
        gt_quads=integer_coordinates(np.concatenate([empty, *(image.polygons for image in gt)])),
        gt_offsets=np.concatenate([[0], np.cumsum(gt_counts)]),
        gt_image=np.repeat(np.arange(len(gt)), gt_counts),
        gt_dont_care=np.concatenate([np.zeros(0, dtype=bool), *(image.dont_care for image in gt)]),
        det_quads=integer_coordinates(np.concatenate([empty, *(image.polygons for image in det)])),
        det_offsets=np.concatenate([[0], np.cumsum(det_counts)]),
        det_image=np.repeat(np.arange(len(det)), det_counts),
    )
