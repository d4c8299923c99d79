"""Loading a reference submission's trained weights (safetensors, shipped as package data)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from harness.errors import SubmissionError


def check_num_classes(num_classes: int | None, trained_for: int, submission: str) -> int:
    """The class count a model is built with: what it was trained for; a track asking for another fails."""
    if num_classes is not None and num_classes != trained_for:
        raise SubmissionError(
            f"{submission}: its weights were trained for {trained_for} classes, the track has {num_classes}",
            f"retrain it for this dataset, or evaluate it on a {trained_for}-class track",
        )
    return trained_for


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load a safetensors state dict into `model` (strictly: every tensor present, nothing extra)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise SubmissionError(
            f"{path}: weights file missing",
            "reinstall the submission with its package data (*.safetensors), or train it with "
            "`python submissions/train_classifiers.py`",
        )
    try:
        state = load_file(str(path))
    except Exception as exc:  # a truncated or foreign file: the submission's fault
        raise SubmissionError(f"{path}: not a readable safetensors file ({exc})") from exc
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshapen = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or misshapen:
        raise SubmissionError(
            f"{path}: weights do not fit {type(model).__name__} (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, other shapes {misshapen[:3]})",
            "the weights were saved from another architecture; retrain or restore the matching file",
        )
    model.load_state_dict(state)
    return model
