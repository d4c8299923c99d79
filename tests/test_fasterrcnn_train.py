"""Tests of the Faster R-CNN training script's parts: its COCO box AP against pycocotools' figures on the
shared conformance data, the training stream (flips, cache), and the two-process command lines."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.datasets.smallobj import generate_sample
from harness.kinds import validate_outputs

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT.parent / "shared" / "conformance" / "coco"


def _load_train_module():
    spec = importlib.util.spec_from_file_location("fasterrcnn_train", ROOT / "submissions/fasterrcnn/train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


train = _load_train_module()


@pytest.fixture(scope="module")
def conformance():
    if not (CONFORMANCE / "expected.json").is_file():
        pytest.skip(f"conformance data not found at {CONFORMANCE}")
    load = lambda name: json.loads((CONFORMANCE / name).read_text())  # noqa: E731
    return (
        load("instances_val2014_100.json"),
        load("instances_val2014_fakebbox100_results.json"),
        load("expected.json"),
    )


def test_box_ap_equals_pycocotools_on_conformance_data(conformance):
    truth, detections, expected = conformance
    standard = {"all": (0, 1e10), "small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 1e10)}
    ours = train.coco_box_ap(truth, detections, standard)
    for key in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"):
        assert ours[key] == pytest.approx(expected["standard"][key], abs=1e-12), key
    tiny = {"all": (0, 1e10), "nano": (0, 8**2), "micro": (8**2, 16**2), "small": (16**2, 32**2)}
    ours = train.coco_box_ap(truth, detections, tiny)
    for key in ("AP_nano", "AP_micro", "AP_small"):
        assert ours[key] == pytest.approx(expected["tiny_ranges"][key], abs=1e-12), key


def _truth(annotations):
    return {
        "images": [{"id": 1}, {"id": 2}],
        "categories": [{"id": 1}, {"id": 2}],
        "annotations": [{"id": i + 1, **a} for i, a in enumerate(annotations)],
    }


def test_box_ap_hand_cases():
    truth = _truth(
        [
            {"image_id": 1, "category_id": 1, "bbox": [10, 10, 6, 6], "area": 36, "iscrowd": 0},
            {"image_id": 2, "category_id": 1, "bbox": [40, 40, 10, 10], "area": 100, "iscrowd": 0},
            {"image_id": 2, "category_id": 1, "bbox": [100, 100, 40, 40], "area": 1600, "iscrowd": 1},
        ]
    )
    perfect = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 6, 6], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [40, 40, 10, 10], "score": 0.8},
    ]
    result = train.coco_box_ap(truth, perfect)
    assert result["AP"] == pytest.approx(1.0) and result["AP50"] == pytest.approx(1.0)
    assert result["AP_verytiny"] == pytest.approx(1.0) and result["AP_tiny"] == pytest.approx(1.0)
    assert result["AP_small"] == -1.0  # no ground truth of 16²..32²: left out, as COCOeval does
    # A detection inside the crowd region is ignored, even when it scores highest.
    in_crowd = [{"image_id": 2, "category_id": 1, "bbox": [110, 110, 8, 8], "score": 0.99}]
    assert train.coco_box_ap(truth, perfect + in_crowd)["AP"] == pytest.approx(1.0)
    # A false positive above both true ones: precisions 0, 1/2, 2/3 at recalls 0, 1/2, 1; interpolated
    # (the best precision at any higher recall) that is 2/3 at all 101 recall points.
    stray = [{"image_id": 1, "category_id": 1, "bbox": [300, 300, 8, 8], "score": 0.95}]
    assert train.coco_box_ap(truth, perfect + stray)["AP50"] == pytest.approx(2 / 3)


def test_training_stream_flips_boxes_with_the_image(tmp_path):
    stream = train.TrainStream(count=6, seed=3)
    cached = train.TrainStream(count=6, seed=3, cache=train.SampleCache(tmp_path, 6))
    assert cached.cache.create()
    seen_flips = set()
    for draw in range(4):
        image, boxes, labels = stream[draw]
        index = stream._index(draw)
        original, rows = train.generate_training_sample(index)
        flips = tuple(np.random.default_rng([3, 1 << 20, draw]).integers(0, 2, 2))
        seen_flips.add(flips)
        expected = original[:, ::-1] if flips[0] else original
        expected = expected[::-1] if flips[1] else expected
        assert np.array_equal(image.numpy().transpose(1, 2, 0), expected)
        x1, y1, x2, y2 = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        if flips[0]:
            x1, x2 = 512 - x2, 512 - x1
        if flips[1]:
            y1, y2 = 512 - y2, 512 - y1
        assert np.allclose(boxes.numpy(), np.stack([x1, y1, x2, y2], 1))
        assert labels.tolist() == rows[:, 4].astype(int).tolist()
        for second_read in range(2):  # the cache makes the image once, then reads it back
            cached_image, cached_boxes, cached_labels = cached[draw]
            assert np.array_equal(cached_image.numpy(), image.numpy()), second_read
            assert np.array_equal(cached_boxes.numpy(), boxes.numpy())
            assert np.array_equal(cached_labels.numpy(), labels.numpy())
    assert len(seen_flips) > 1
    assert sorted(stream._index(d) for d in range(6, 12)) == list(range(6))  # an epoch is a permutation


def test_both_runs_two_children_with_their_own_settings():
    args = train.parse_args(["--model", "both", "--out", "o", "--max-minutes", "8", "--iiou"])
    small = train._child_argv(args, "small", 6)
    default = train._child_argv(args, "default", 6)
    assert small[small.index("--model") + 1] == "small" and "--iiou" in small
    assert default[default.index("--model") + 1] == "default" and "--iiou" not in default
    assert default[default.index("--workers") + 1] == "6"
    reparsed = train.parse_args(default[3:])
    assert reparsed.max_minutes == 8.0 and reparsed.out == "o" and not reparsed.iiou
    with pytest.raises(SystemExit):
        train.parse_args(["--model", "default", "--out", "o", "--max-minutes", "8", "--iiou"])


@pytest.mark.slow
def test_cpu_training_run_saves_loadable_weights(tmp_path):
    import torch

    sys.path.insert(0, str(ROOT / "submissions" / "fasterrcnn"))
    import fasterrcnn_ref

    argv = ["--model", "small", "--out", str(tmp_path / "run"), "--max-minutes", "5", "--device", "cpu"]
    argv += ["--iterations", "3", "--batch-size", "1", "--train-count", "4", "--val-count", "2", "--iiou"]
    argv += ["--warmup-iters", "1", "--log-every", "1", "--cache-dir", str(tmp_path / "cache")]
    threads = torch.get_num_threads()
    try:
        assert train.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    record = json.loads((tmp_path / "run/train_log.json").read_text())["models"]["small"]
    assert record["iterations"] == 3 and record["images_seen"] == 3
    assert [h["iteration"] for h in record["history"]] == [1, 2, 3]
    assert record["val"]["images"] == 2 and -1 <= record["val"]["AP"] <= 1
    assert record["settings"]["iiou"] is True
    results = json.loads((tmp_path / "run/val_detections_small.json").read_text())
    assert {r["image_id"] for r in results} <= {1, 2}
    predictor = fasterrcnn_ref.load_detector("small", weights_dir=tmp_path / "run")
    image = generate_sample("test", 0)[0]
    validate_outputs("detection", predictor.predict([image]), [image], label_ids={1, 2, 3, 4, 5})


def test_box_ap_equals_pycocotools_on_the_synthetic_set_with_crowds():
    pytest.importorskip("pycocotools")
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from harness.datasets import smallobj

    truth = smallobj.coco_instances("val", [smallobj.generate_sample("val", i)[1] for i in range(16)])
    assert any(a["iscrowd"] for a in truth["annotations"])
    rng = np.random.default_rng(0)
    detections = []
    for a in truth["annotations"]:  # jittered true boxes, some with the wrong class
        x, y, w, h = a["bbox"]
        category = a["category_id"] if rng.random() < 0.8 else int(rng.integers(1, 6))
        box = [
            x + rng.normal(0, 1),
            y + rng.normal(0, 1),
            w * rng.uniform(0.8, 1.2),
            h * rng.uniform(0.8, 1.2),
        ]
        detections.append({"image_id": a["image_id"], "category_id": category, "bbox": box, "score": rng.random()})
    for image in truth["images"]:  # and background boxes
        for _ in range(40):
            x, y, side = *rng.uniform(0, 480, 2), rng.uniform(3, 40)
            detections.append(
                {
                    "image_id": image["id"],
                    "category_id": int(rng.integers(1, 6)),
                    "bbox": [x, y, side, side],
                    "score": rng.uniform(0, 0.6),
                }
            )
    ours = train.coco_box_ap(truth, detections)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_truth = COCO()
        coco_truth.dataset = truth
        coco_truth.createIndex()
        evaluation = COCOeval(coco_truth, coco_truth.loadRes(detections), "bbox")
        evaluation.params.areaRng = [list(r) for r in train.AREA_RANGES.values()]
        evaluation.params.areaRngLbl = list(train.AREA_RANGES)
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][..., -1]  # maxDets 100

    def mean(values):
        return values[values > -1].mean()

    assert ours["AP"] == pytest.approx(mean(precision[..., 0]), abs=1e-12)
    assert ours["AP50"] == pytest.approx(mean(precision[0, ..., 0]), abs=1e-12)
    assert ours["AP75"] == pytest.approx(mean(precision[5, ..., 0]), abs=1e-12)
    for a, name in enumerate(train.AREA_RANGES):
        if name != "all":
            assert ours[f"AP_{name}"] == pytest.approx(mean(precision[..., a]), abs=1e-12), name
