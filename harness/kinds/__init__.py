"""Task kinds: everything that differs between classification, detection and text detection, in one place.

A track card names its kind; the kind says what a prediction record is, how a predictor's outputs are
validated, how records are written to and read from `predictions.npz`, how the performance pass's outputs are
compared with the accuracy pass's (the cross-check), which label ids and how many classes a split has, and
how predictions are scored against the hidden ground truth. The harness never switches on a kind's name:
it asks the kind (`get_kind(card.kind)`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.contract import OutputError
from harness.measure.crosscheck import CrossCheck, Tolerance
from harness.plugins import Registry, builtin_entries, load_target

if TYPE_CHECKING:
    from harness.metrics.intervals import Interval
    from harness.predictions import Predictions
    from harness.tracks.card import TrackCard


class TaskKind(ABC):
    """The interface of a task kind; `harness.kinds.<name>.KIND` is the instance of each built-in kind."""

    name: str
    record_type: type
    scorer_version: str
    needs_image_sizes = True  # do its records hold coordinates to check against the image?
    tolerances: dict[bool, Tolerance]  # cross-check tolerances, by "reduced precision"
    # The ground truth a split's `hidden/` holds: glob patterns relative to `hidden/`, each of which must match at
    # least one file there (a competition bundle's dataset folder is checked so). Empty: the kind does not say,
    # and cannot split its ground truth (`subset_truth`).
    truth_files: tuple[str, ...] = ()

    @abstractmethod
    def check_record(self, record: Any, height: int, width: int, context: dict[str, Any], where: str) -> None:
        """Raise `OutputError` naming the fault of one record (type already checked)."""

    @abstractmethod
    def encode(self, records: Sequence[Any]) -> dict[str, np.ndarray]:
        """The records as named arrays for `predictions.npz`."""

    @abstractmethod
    def decode(self, arrays: dict[str, np.ndarray], count: int, source: str) -> list[Any]:
        """`count` records from the arrays `encode` wrote; `PredictionError` naming `source` when they do not fit."""

    @abstractmethod
    def compare(self, expected: Sequence[Any], got: Sequence[Any], reduced_precision: bool) -> CrossCheck:
        """Cross-check: do `got` (performance pass) and `expected` (accuracy pass) agree?"""

    def label_ids(self, card: TrackCard, hidden_dir: Path) -> list[int] | None:
        """The label ids a prediction may use (public: a detector must output them), if the kind has any."""
        return None

    def num_classes(self, card: TrackCard, hidden_dir: Path) -> int | None:
        return card.num_classes

    @abstractmethod
    def score(self, card: TrackCard, predictions: Predictions, hidden_dir: Path) -> dict[str, float]:
        """The track's metrics of `predictions` against the ground truth in `hidden_dir`."""

    def subset_truth(self, hidden_dir: Path, ids: Sequence[str], dest: Path) -> None:
        """Write into `dest` (a new hidden/ folder) the ground truth of only the images `ids` (split ids as in
        inputs/index.json), so that the kind's scorer, given predictions restricted to `ids` and `dest`, scores
        exactly that part (a competition's public and private parts of its hidden test set). An id the ground
        truth lacks is a `DatasetError`."""
        from harness.errors import HarnessError

        raise HarnessError(
            f"task kind `{self.name}` cannot split its ground truth into parts",
            "a competition needs a kind that implements `subset_truth` (and declares `truth_files`)",
        )

    def score_with_interval(
        self, card: TrackCard, predictions: Predictions, hidden_dir: Path, **options: Any
    ) -> tuple[dict[str, float], Interval | None]:
        """The metrics, and the confidence interval of the card's primary metric (harness.metrics.intervals)
        from the same scoring; None where the kind cannot resample it. `options` are the kind's own (the
        detection kind's `coco_backend`); a kind ignores those it does not know."""
        return self.score(card, predictions, hidden_dir), None


KINDS: Registry[TaskKind] = Registry(
    "task kind",
    None,
    loader=lambda entry, _site: load_target(entry.target),
    builtins=builtin_entries(
        {
            "classification": "harness.kinds.classification:KIND",
            "detection": "harness.kinds.detection:KIND",
            "text": "harness.kinds.text:KIND",
        }
    ),
)


def get_kind(name: str) -> TaskKind:
    return KINDS.get(name)


def validate_outputs(
    kind: str,
    outputs: Any,
    images: Sequence[Any],
    num_classes: int | None = None,
    label_ids: set[int] | None = None,
) -> list[Any]:
    """Check a predictor's outputs for one batch: one record per image, of the kind's type, each valid
    (shape, dtype, finite, inside the image, known labels). Raises `OutputError` naming the fault. `images`
    need only a `.shape` (H, W, ...)."""
    task = get_kind(kind)
    record_type = task.record_type
    if not isinstance(outputs, list | tuple):
        raise OutputError(f"predict returned a {type(outputs).__name__}, expected a list of {record_type.__name__}")
    if len(outputs) != len(images):
        raise OutputError(
            f"predict returned {len(outputs)} outputs for {len(images)} images",
            "return exactly one record per input image, in order",
        )
    context = {"num_classes": num_classes, "label_ids": label_ids}
    for i, (out, img) in enumerate(zip(outputs, images, strict=True)):
        where = f"output {i}"
        if not isinstance(out, record_type):
            raise OutputError(f"{where} is a {type(out).__name__}, expected harness.contract.{record_type.__name__}")
        height, width = img.shape[:2]
        task.check_record(out, height, width, context, where)
    return list(outputs)


def compare_outputs(
    kind: str, expected: Sequence[Any], got: Sequence[Any], reduced_precision: bool = False
) -> CrossCheck:
    """The cross-check of one kind's records (see harness.measure.crosscheck)."""
    task = get_kind(kind)
    tolerance = task.tolerances[reduced_precision]
    if len(expected) != len(got):
        return CrossCheck.failed(
            len(expected), reduced_precision, tolerance, f"{len(got)} outputs for {len(expected)} images"
        )
    return task.compare(expected, got, reduced_precision)


def check_array(name: str, value: Any, ndim: int, last: int | None, where: str) -> np.ndarray:
    """A record field must be a finite numeric numpy array of `ndim` dimensions (and `last` columns)."""
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


def check_inside(points: np.ndarray, width: int, height: int, where: str, slack: float = 1.0) -> None:
    """Coordinates may touch the border (pixel edges) but not lie outside it."""
    xs, ys = points[:, 0], points[:, 1]
    if xs.min() < -slack or ys.min() < -slack or xs.max() > width + slack or ys.max() > height + slack:
        raise OutputError(
            f"{where}: coordinates outside the {width}x{height} image "
            f"(x in [{xs.min():.1f}, {xs.max():.1f}], y in [{ys.min():.1f}, {ys.max():.1f}])",
            "return coordinates in pixels of the original image; clip them to the image",
        )


def concatenated(parts: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """`parts` concatenated as `dtype`, or an empty array of `shape` when there are none."""
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)


def offsets(source: str, counts: np.ndarray, n: int, total: int) -> list[tuple[int, int]]:
    """(start, end) of each record's entries from per-record counts; `PredictionError` when they do not fit, or
    when a record has more entries than `HARNESS_MAX_PREDICTIONS_PER_IMAGE`."""
    from harness.config import settings
    from harness.errors import PredictionError

    if len(counts) != n or (counts < 0).any() or counts.sum() != total:
        raise PredictionError(f"{source}: per-image counts do not match the {n} ids and {total} entries")
    most = settings().max_predictions_per_image
    if n and counts.max() > most:
        raise PredictionError(
            f"{source}: image {int(counts.argmax())} has {int(counts.max()):,} predictions, over the limit of "
            f"{most:,} per image",
            "keep the most confident predictions of each image, or raise HARNESS_MAX_PREDICTIONS_PER_IMAGE",
        )
    ends = np.cumsum(counts)
    starts = ends - counts
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def subset_ids(known: Sequence[str], ids: Sequence[str], source: Path) -> set[str]:
    """`ids` as a set, each of them one of `known` (the images of the ground truth read from `source`);
    `DatasetError` naming those it lacks."""
    from harness.errors import DatasetError

    wanted = set(ids)
    unknown = sorted(wanted - set(known))
    if unknown:
        raise DatasetError(
            f"{source}: no ground truth for {len(unknown)} of the ids asked for (e.g. {unknown[:3]})",
            "take the ids from the split's inputs/index.json",
        )
    return wanted
