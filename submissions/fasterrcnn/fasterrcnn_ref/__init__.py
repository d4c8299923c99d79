"""Reference Faster R-CNN submissions of the small-object track: `build_small` (small-object settings)
and `build_default` (torchvision's default anchors and settings), both on one light backbone trained from
scratch by `submissions/fasterrcnn/train.py`."""

from __future__ import annotations

from pathlib import Path

from fasterrcnn_ref.model import MODEL_KINDS, NUM_CLASSES, load_weights, make_model, weights_filename
from harness.contract import BuildContext, DetectorPredictor, wrap_detector
from harness.errors import SubmissionError

WEIGHTS_DIR = Path(__file__).resolve().parent

__all__ = ["MODEL_KINDS", "build_default", "build_small", "load_detector", "make_model"]


def load_detector(kind: str, weights_dir: Path = WEIGHTS_DIR) -> DetectorPredictor:
    """The trained detector `kind` as a predictor; its labels are the dataset's category ids 1..5."""
    path = Path(weights_dir) / weights_filename(kind)
    if not path.is_file():
        raise SubmissionError(
            f"fasterrcnn_ref: trained weights {path} are missing; the {kind} detector will not run with random weights",
            f"train them with `python submissions/fasterrcnn/train.py --model {kind} --out DIR` on a GPU and "
            f"copy DIR/{weights_filename(kind)} into {WEIGHTS_DIR}",
        )
    model = make_model(kind)
    try:
        load_weights(model, path)
    except (RuntimeError, OSError, ValueError) as exc:
        raise SubmissionError(
            f"fasterrcnn_ref: {path} does not hold weights of the {kind} detector ({exc})",
            f"re-train with `python submissions/fasterrcnn/train.py --model {kind} --out DIR`",
        ) from exc
    return wrap_detector(model)


def _check_context(ctx: BuildContext) -> None:
    if ctx.num_classes is not None and ctx.num_classes != NUM_CLASSES:
        raise SubmissionError(
            f"fasterrcnn_ref detects {NUM_CLASSES} classes (the synthetic small-object set), "
            f"the track asks for {ctx.num_classes}",
            "train a detector for this dataset's categories",
        )


def build_small(ctx: BuildContext) -> DetectorPredictor:
    """Entry point `fasterrcnn_small`: stride-4 FPN level, 4–64 px anchors, up to 300 detections."""
    _check_context(ctx)
    return load_detector("small")


def build_default(ctx: BuildContext) -> DetectorPredictor:
    """Entry point `fasterrcnn_default`: torchvision's default anchors (32–512 px) and settings."""
    _check_context(ctx)
    return load_detector("default")
