"""The reference CRAFT submission: models, training targets, post-processing, predictor, training script."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SUBMISSION = Path(__file__).resolve().parents[1] / "submissions" / "craft"
if str(SUBMISSION) not in sys.path:
    sys.path.insert(0, str(SUBMISSION))

from craft_ref import (  # noqa: E402
    COMPACT_WEIGHTS,
    build_compact,
    build_vgg16_bn,
    craft_compact,
    craft_vgg16_bn,
    fold_batch_norms,
)
from craft_ref.postprocess import detect_boxes, to_image_coordinates  # noqa: E402
from craft_ref.predictor import resize_ratio  # noqa: E402
from craft_ref.quick_eval import iou_hmean  # noqa: E402
from craft_ref.targets import affinity_quads, score_maps  # noqa: E402

from harness.contract import BuildContext  # noqa: E402
from harness.datasets.scenetext import generate_sample  # noqa: E402
from harness.errors import SubmissionError  # noqa: E402
from harness.kinds import validate_outputs  # noqa: E402

MIB = 2**20


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: the CI machine's two cores are shared, and these models are small."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _state_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def test_vgg16_bn_has_the_published_parameter_count():
    model = craft_vgg16_bn()
    params = sum(p.numel() for p in model.parameters())
    # VGG16-BN convolutions up to conv5_2 (12.96 M) + fc6/fc7 (4.72 M + 1.05 M) + U-Net head and classifier.
    assert params == 20_770_466
    assert abs(params - 20.77e6) / 20.77e6 < 0.01


def test_compact_model_is_small_and_keeps_the_output_shape():
    model = craft_compact().eval()
    assert _state_bytes(model) <= 15 * MIB
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 96, 128))
    assert out.shape == (2, 2, 48, 64)
    if COMPACT_WEIGHTS.is_file():
        assert COMPACT_WEIGHTS.stat().st_size <= 15 * MIB


def test_folding_batch_norms_keeps_the_outputs():
    torch.manual_seed(0)
    model = craft_compact()
    model.train()
    with torch.no_grad():  # a few batches give the batch norms non-trivial running statistics
        for _ in range(3):
            model(torch.randn(2, 3, 64, 64))
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
    reference = craft_compact()
    reference.load_state_dict(model.state_dict())
    folded = fold_batch_norms(reference.eval())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(folded(x), expected, atol=1e-4)


def test_region_target_peaks_at_the_character_centre():
    # Image quad x 20..42, y 20..62 -> map (½) x 10..21, y 10..31: centre (15.5, 20.5), pixel col 15 row 20.
    char = np.array([[[20, 20], [42, 20], [42, 62], [20, 62]]], np.float64)
    region, affinity, weight = score_maps([char], (80, 80))
    assert region.shape == (40, 40)
    row, col = np.unravel_index(region.argmax(), region.shape)
    assert (row, col) == (20, 15)
    assert region.max() > 0.95
    assert region[:, :9].max() == 0 and region[:9, :].max() == 0 and region[33:, :].max() == 0
    assert affinity.max() == 0 and weight.min() == 1


def test_rotated_character_peaks_at_its_centre():
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    square = np.array([[-12, -12], [12, -12], [12, 12], [-12, 12]], np.float64) @ rot.T + [61, 41]
    region, _, _ = score_maps([square[None]], (80, 120))
    row, col = np.unravel_index(region.argmax(), region.shape)
    assert (row, col) == (20, 30)  # image (61, 41) -> map (30.5, 20.5)


def test_affinity_boxes_join_the_triangle_centres_of_neighbours():
    chars = np.array([[[0, 0], [10, 0], [10, 20], [0, 20]], [[12, 0], [22, 0], [22, 20], [12, 20]]], np.float64)
    # Centres (5, 10) and (17, 10); upper triangle centres (5, 10/3), (17, 10/3); lower (5, 50/3), (17, 50/3).
    expected = np.array([[[5, 10 / 3], [17, 10 / 3], [17, 50 / 3], [5, 50 / 3]]])
    assert np.allclose(affinity_quads(chars), expected)
    assert affinity_quads(chars[:1]).shape == (0, 4, 2)

    # Scaled ×4 in the image, the affinity peaks midway between the characters: image (44, 40), map (22, 20).
    region, affinity, _ = score_maps([chars * 4], (100, 100))
    row, col = np.unravel_index(affinity.argmax(), affinity.shape)
    assert row in (19, 20) and col in (21, 22)
    assert affinity.max() > 0.9
    assert region[row, col] < affinity.max()  # the gap between characters is weaker in the region map


def test_dont_care_words_get_zero_loss_weight():
    word = np.array([[40, 40], [100, 40], [100, 60], [40, 60]], np.float64)
    _, _, weight = score_maps([], (100, 120), ignore_quads=[word])
    assert weight[25, 35] == 0 and weight[5, 5] == 1
    assert weight[20:30, 20:50].min() == 0


def test_postprocess_finds_two_rectangles_at_the_right_place():
    region = np.zeros((120, 160), np.float32)
    affinity = np.zeros_like(region)
    region[10:20, 20:60] = 0.9  # 40×10 component: niter = int(2·sqrt(400·10/400)) = 6, kernel 7 (±3 px)
    region[60:80, 30:50] = 0.8  # 20×20 component: niter = int(2·sqrt(400·20/400)) = 8, kernel 9 (±4 px)
    region[100:103, 100:103] = 0.9  # 9 pixels: below the size filter
    region[100:110, 130:150] = 0.5  # above low-text but its peak is below the text threshold
    found = detect_boxes(region, affinity)
    assert len(found.boxes) == 2
    order = np.argsort(found.boxes[:, 0, 1])
    wide, square = found.boxes[order]
    assert np.allclose(wide, [[17, 7], [62, 7], [62, 22], [17, 22]], atol=0.01)
    assert np.allclose(square, [[26, 56], [53, 56], [53, 83], [26, 83]], atol=0.01)  # axis-aligned branch
    assert np.allclose(found.scores[order], [0.9, 0.8])

    # The network saw the image at half size (ratio 0.5) and the map is half of that: ×4, at pixel centres.
    image = to_image_coordinates(found.boxes[order], ratio=0.5, image_width=640, image_height=480)
    assert np.allclose(image[0], [[70, 30], [250, 30], [250, 90], [70, 90]], atol=0.05)
    assert np.allclose(image[1], [[106, 226], [214, 226], [214, 334], [106, 334]], atol=0.05)


def test_postprocess_links_characters_and_clips_to_the_image():
    region = np.zeros((40, 60), np.float32)
    affinity = np.zeros_like(region)
    region[10:20, 0:8] = 0.9
    region[10:20, 12:20] = 0.9
    affinity[12:18, 6:14] = 0.6  # the link joins both characters into one word
    # Component: 80 + 80 text pixels + 24 link-only pixels = 184 in a 20×10 box: niter = int(2·sqrt(9.2)) = 6,
    # ±3 px of dilation of the text pixels, which also closes the 4-pixel gap; the left side stops at the map.
    found = detect_boxes(region, affinity)
    assert np.allclose(found.boxes, [[[0, 7], [22, 7], [22, 22], [0, 22]]], atol=0.01)
    image = to_image_coordinates(found.boxes, ratio=1.0, image_width=120, image_height=80)
    assert np.allclose(image, [[[1, 15], [45, 15], [45, 45], [1, 45]]], atol=0.05)

    outside = np.array([[[-3, -2], [70, -2], [70, 10], [-3, 10]]], np.float32)
    clipped = to_image_coordinates(outside, ratio=1.0, image_width=100, image_height=80)
    assert np.allclose(clipped, [[[0, 0], [100, 0], [100, 21], [0, 21]]])


def test_perfect_maps_give_a_perfect_iou_score():
    triples = []
    for index in range(5):
        image, words = generate_sample("val", index)
        region, affinity, _ = score_maps([w.chars for w in words if w.legible], image.shape[:2])
        found = detect_boxes(region, affinity)
        polygons = to_image_coordinates(found.boxes, 1.0, image.shape[1], image.shape[0])
        triples.append(([w.quad for w in words], [w.legible for w in words], list(polygons)))
    score = iou_hmean(triples)
    assert score.hmean >= 0.97


def test_iou_score_matches_one_to_one_and_ignores_dont_care():
    gt = [np.array([[0, 0], [100, 0], [100, 20], [0, 20]], np.float32)]
    dont_care = np.array([[0, 50], [100, 50], [100, 70], [0, 70]], np.float32)
    shifted = gt[0] + [60, 0]  # IoU 40/160 = 0.25
    score = iou_hmean([(gt + [dont_care], [True, False], [gt[0], gt[0].copy(), dont_care, shifted])])
    assert (score.matched, score.ground_truths, score.detections) == (1, 1, 3)
    assert score.recall == 1.0 and score.precision == pytest.approx(1 / 3)


def test_resize_ratio_follows_the_published_rule():
    assert resize_ratio(480, 640, canvas_size=1280, mag_ratio=1.0) == 1.0
    assert resize_ratio(720, 1280, canvas_size=960, mag_ratio=1.0) == 0.75
    assert resize_ratio(480, 640, canvas_size=1280, mag_ratio=1.5) == 1.5


def _saved_compact(tmp_path: Path) -> Path:
    from safetensors.torch import save_file

    path = tmp_path / "craft_compact.safetensors"
    save_file({k: v.contiguous() for k, v in craft_compact().state_dict().items()}, str(path))
    return path


def test_build_compact_predicts_valid_polygons(tmp_path):
    predictor = build_compact(BuildContext(track="text-detection", extra={"weights": _saved_compact(tmp_path)}))
    torch.set_num_threads(1)
    image, _ = generate_sample("test", 0)
    small = np.ascontiguousarray(image[:150, :250])  # another size, padded to 160×256 in the batch
    images = [image, small]
    outputs = predictor.predict(images)
    validate_outputs("text", outputs, images)
    raw = predictor.forward(predictor.preprocess(images))
    assert raw.shape == (2, 2, 240, 320)


def test_build_compact_without_weights_says_how_to_get_them(tmp_path):
    missing = tmp_path / "none.safetensors"
    with pytest.raises(SubmissionError, match="not found") as info:
        build_compact(BuildContext(track="text-detection", extra={"weights": missing}))
    assert "train.py" in str(info.value)


def test_vgg16_bn_builds_only_when_untrained_use_is_explicit():
    with pytest.raises(SubmissionError, match="no trained weights"):
        build_vgg16_bn(BuildContext(track="text-detection"))
    predictor = build_vgg16_bn(BuildContext(track="text-detection", extra={"allow_untrained": True}))
    image = np.zeros((64, 64, 3), np.uint8)
    assert predictor.forward(predictor.preprocess([image])).shape == (1, 2, 32, 32)
    validate_outputs("text", predictor.predict([image]), [image])


@pytest.mark.slow
def test_training_runs_lowers_the_loss_saves_and_reloads(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("craft_train", SUBMISSION / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    log = train.main(
        [
            "--out",
            str(tmp_path),
            "--device",
            "cpu",
            "--workers",
            "0",
            "--batch-size",
            "2",
            "--max-iters",
            "14",
            "--warmup-iters",
            "2",
            "--val-count",
            "2",
            "--threads",
            "1",
            "--log-every-seconds",
            "0",
        ]
    )
    assert log["iterations"] == 14
    losses = [h["loss"] for h in log["history"]]
    assert np.mean(losses[-3:]) < 0.8 * losses[0]
    saved = json.loads((tmp_path / "train_log.json").read_text(encoding="utf-8"))
    assert saved["iterations"] == 14 and 0.0 <= saved["val"]["hmean"] <= 1.0
    weights = tmp_path / "craft_compact.safetensors"
    assert weights.stat().st_size <= 15 * MIB
    predictor = build_compact(BuildContext(track="text-detection", extra={"weights": weights}))
    image, _ = generate_sample("test", 1)
    validate_outputs("text", predictor.predict([image]), [image])
