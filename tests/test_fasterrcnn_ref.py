"""Tests of the reference Faster R-CNN submissions: both models run and meet the output contract, the
IIoU loss matches hand-worked values, weights fit the size rule and round-trip, missing weights fail."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.contract import BuildContext, wrap_detector
from harness.datasets.smallobj import generate_sample
from harness.errors import SubmissionError
from harness.kinds import validate_outputs

SUBMISSION_DIR = Path(__file__).resolve().parents[1] / "submissions" / "fasterrcnn"
sys.path.insert(0, str(SUBMISSION_DIR))

import fasterrcnn_ref  # noqa: E402
from fasterrcnn_ref.model import (  # noqa: E402
    half_state_dict,
    iiou_loss,
    load_weights,
    make_model,
    save_weights,
    weights_filename,
)

LABEL_IDS = {1, 2, 3, 4, 5}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", ["small", "default"])
def test_random_model_predicts_valid_detections(kind):
    torch.manual_seed(0)
    predictor = wrap_detector(make_model(kind))
    images = [generate_sample("val", 0)[0], np.full((300, 420, 3), 128, np.uint8)]
    outputs = predictor.predict(images)
    validate_outputs("detection", outputs, images, label_ids=LABEL_IDS)
    limit = {"small": 300, "default": 100}[kind]
    assert 0 < len(outputs[0].boxes) <= limit
    assert outputs[0].boxes.max() <= 512 and outputs[1].boxes[:, 2].max() <= 420


def test_iiou_loss_hand_worked_values():
    pred = torch.tensor(
        [
            [10.0, 20.0, 30.0, 50.0],  # identical to its target: IoU 1, C = A∪B, loss 0
            [0.0, 0.0, 1.0, 1.0],  # disjoint: IoU 0, |C| = 3 (0..3 × 0..1), |A∪B| = 2: IIoU -1/3, loss 4/3
            [0.0, 0.0, 2.0, 2.0],  # overlap 1, union 7, IoU 1/7; |C| = 9: IIoU 1/7 - 2/9 = -5/63, loss 68/63
            [0.0, 0.0, 1.0, 1.0],  # far apart: IoU 0, |C| = 100, union 2: IIoU -0.98, loss 1.98
        ]
    )
    target = torch.tensor(
        [
            [10.0, 20.0, 30.0, 50.0],
            [2.0, 0.0, 3.0, 1.0],
            [1.0, 1.0, 3.0, 3.0],
            [9.0, 9.0, 10.0, 10.0],
        ]
    )
    expected = torch.tensor([0.0, 4.0 / 3.0, 68.0 / 63.0, 1.98])
    assert torch.allclose(iiou_loss(pred, target), expected, atol=1e-6)
    assert torch.allclose(iiou_loss(target, pred), expected, atol=1e-6)  # symmetric


def test_iiou_loss_joins_the_training_losses():
    torch.manual_seed(0)
    model = make_model("small").train()
    model.roi_heads.iiou_weight = 1.0
    image, annotations = generate_sample("train", 0)
    boxes = torch.tensor([a["bbox"] for a in annotations if not a["iscrowd"]])
    boxes[:, 2:] += boxes[:, :2]
    labels = torch.tensor([a["category_id"] for a in annotations if not a["iscrowd"]])
    losses = model([torch.from_numpy(image).permute(2, 0, 1).float() / 255], [{"boxes": boxes, "labels": labels}])
    assert set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_box_iiou",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    assert all(torch.isfinite(v) for v in losses.values())
    # Ground-truth boxes join the proposals, so positives exist and the IIoU term is in (0, 2].
    assert 0 < float(losses["loss_box_iiou"].detach()) <= 2
    sum(losses.values()).backward()
    assert model.roi_heads.box_predictor.bbox_pred.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["small", "default"])
def test_fp16_weights_fit_the_size_rule_and_round_trip(kind, tmp_path):
    torch.manual_seed(1)
    model = make_model(kind)
    state = half_state_dict(model)
    assert sum(t.numel() * t.element_size() for t in state.values()) <= 15 * 2**20
    path = tmp_path / weights_filename(kind)
    save_weights(model, path, {"kind": kind})
    assert path.stat().st_size <= 15 * 2**20
    fresh = make_model(kind)
    assert load_weights(fresh, path)["kind"] == kind
    for name, value in fresh.state_dict().items():
        assert value.dtype == model.state_dict()[name].dtype  # cast back to float32 on load
        assert torch.equal(value, state[name].to(value.dtype)), name


def test_missing_weights_raise_a_submission_error(tmp_path):
    with pytest.raises(SubmissionError, match="fasterrcnn_small.safetensors are missing") as caught:
        fasterrcnn_ref.load_detector("small", weights_dir=tmp_path)
    assert "train.py --model small" in caught.value.hint


def test_weights_of_the_other_kind_are_refused(tmp_path):
    save_weights(make_model("default"), tmp_path / weights_filename("small"))
    with pytest.raises(SubmissionError, match="does not hold weights of the small detector"):
        fasterrcnn_ref.load_detector("small", weights_dir=tmp_path)


@pytest.mark.parametrize("build", [fasterrcnn_ref.build_small, fasterrcnn_ref.build_default])
def test_entry_points_load_shipped_weights_or_say_they_are_missing(build):
    ctx = BuildContext(track="small-object", num_classes=5)
    kind = "small" if build is fasterrcnn_ref.build_small else "default"
    if (fasterrcnn_ref.WEIGHTS_DIR / weights_filename(kind)).is_file():
        image = generate_sample("test", 0)[0]
        validate_outputs("detection", build(ctx).predict([image]), [image], label_ids=LABEL_IDS)
    else:
        with pytest.raises(SubmissionError, match="are missing"):
            build(ctx)
    with pytest.raises(SubmissionError, match="detects 5 classes"):
        build(BuildContext(track="small-object", num_classes=80))


def test_project_declares_both_entry_points():
    project = tomllib.loads((SUBMISSION_DIR / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["harness.submissions"] == {
        "fasterrcnn_small": "fasterrcnn_ref:build_small",
        "fasterrcnn_default": "fasterrcnn_ref:build_default",
    }
    assert project["tool"]["harness"] == {"track": "small-object", "variants": ["fp32", "fp16"]}
    assert project["tool"]["setuptools"]["package-data"]["fasterrcnn_ref"] == ["*.safetensors"]
