"""COCO scorer on hand-built cases whose AP/AR are worked out here, and its input validation."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from harness.contract import Detections
from harness.errors import DatasetError, HarnessError, PredictionError
from harness.metrics.coco import (
    BACKENDS,
    DEFAULT_BACKEND,
    METRIC_KEYS,
    RENUMBERED_NOTE,
    detections_to_coco,
    load_json,
    score_coco,
    score_coco_files,
    validate_ground_truth,
    validate_results,
)


def _gt() -> dict:
    """Two 100x100 images, each with one 40x40 box (area 1600: medium) and one 10x10 box (area 100: small,
    and in the tiny range 8²-16²) of category 1. Category 2 has no objects."""
    boxes = {1: [[10, 10, 40, 40], [60, 60, 10, 10]], 2: [[5, 5, 40, 40], [70, 70, 10, 10]]}
    annotations = [
        {
            "id": 10 * image_id + k,
            "image_id": image_id,
            "category_id": 1,
            "bbox": box,
            "area": box[2] * box[3],
            "iscrowd": 0,
        }
        for image_id, image_boxes in boxes.items()
        for k, box in enumerate(image_boxes)
    ]
    return {
        "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "dot"}, {"id": 2, "name": "blob"}],
    }


def _perfect(gt: dict, score: float = 0.9) -> list[dict]:
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": score}
        for a in gt["annotations"]
        if not a.get("iscrowd")
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_predictions(backend):
    gt = _gt()
    metrics = score_coco(gt, _perfect(gt), backend=backend)
    assert list(metrics) == METRIC_KEYS["all"]
    for key in (
        "AP",
        "AP50",
        "AP75",
        "AP_small",
        "AP_medium",
        "AP_tiny",
        "AR_10",
        "AR_100",
        "AR_small",
        "AR_tiny",
    ):
        assert metrics[key] == pytest.approx(1.0), key
    # One detection per image with 2 objects each: half of the objects are found.
    assert metrics["AR_1"] == pytest.approx(0.5)
    # No object is large, below 8 px or in 16²-32²: COCO's "not applicable".
    for key in ("AP_large", "AR_large", "AP_verytiny", "AR_verytiny", "AP_small16", "AR_small16"):
        assert metrics[key] == -1.0, key


@pytest.mark.parametrize("backend", BACKENDS)
def test_false_positive_ranked_first(backend):
    gt = _gt()
    # A 40x40 box on image 1 touching no object, scored above every true positive.
    false_positive = {"image_id": 1, "category_id": 1, "bbox": [50, 0, 40, 40], "score": 0.99}
    metrics = score_coco(gt, _perfect(gt) + [false_positive], backend=backend)
    # Ranked: FP, TP, TP, TP, TP -> precision 0, 1/2, 2/3, 3/4, 4/5 at recall 0..1; interpolated to 0.8.
    assert metrics["AP"] == pytest.approx(0.8)
    assert metrics["AP50"] == pytest.approx(0.8)
    assert metrics["AR_100"] == pytest.approx(1.0)
    # Medium objects (2): FP, TP, TP -> interpolated precision 2/3 everywhere.
    assert metrics["AP_medium"] == pytest.approx(2 / 3)
    # The FP is medium-sized, so in the small and tiny ranges it is ignored, not counted.
    assert metrics["AP_small"] == pytest.approx(1.0)
    assert metrics["AP_tiny"] == pytest.approx(1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_false_positive_ranked_last_costs_nothing(backend):
    gt = _gt()
    false_positive = {"image_id": 2, "category_id": 1, "bbox": [50, 0, 40, 40], "score": 0.1}
    metrics = score_coco(gt, _perfect(gt) + [false_positive], backend=backend)
    assert metrics["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loose_box_counts_at_half_the_iou_thresholds(backend):
    gt = {
        "images": [{"id": 7}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [0, 0, 10, 10]}],
        "categories": [{"id": 3}],
    }
    # Intersection 72, union 100: IoU 0.72 passes the thresholds .50 .55 .60 .65 .70, fails .75 ... .95.
    results = [{"image_id": 7, "category_id": 3, "bbox": [0, 0, 10, 7.2], "score": 0.5}]
    metrics = score_coco(gt, results, backend=backend, ranges="coco")
    assert metrics["AP"] == pytest.approx(0.5)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(0.0)
    assert metrics["AR_1"] == pytest.approx(0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_crowd_region_ignores_detections_of_its_own_category_only(backend):
    gt = {
        "images": [{"id": 1}, {"id": 2}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 40, 40], "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 2, "bbox": [0, 0, 20, 20]},
        ],
        "categories": [{"id": 1}, {"id": 2}],
    }
    hits = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.5},
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 20, 20], "score": 0.5},
    ]
    inside_crowd = {"image_id": 1, "bbox": [55, 55, 20, 20], "score": 0.9}
    same_category = score_coco(gt, hits + [{**inside_crowd, "category_id": 1}], backend=backend, ranges="coco")
    assert same_category["AP"] == pytest.approx(1.0)
    # Category 2: FP then TP -> precision 1/2 everywhere; category 1 stays 1.0; mean 0.75.
    other_category = score_coco(gt, hits + [{**inside_crowd, "category_id": 2}], backend=backend, ranges="coco")
    assert other_category["AP"] == pytest.approx(0.75)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_results_scores_zero(backend):
    metrics = score_coco(_gt(), [], backend=backend, ranges="tiny")
    assert list(metrics) == METRIC_KEYS["tiny"]
    assert metrics["AP"] == 0.0 and metrics["AR_100"] == 0.0
    assert metrics["AP_large"] == -1.0


def test_zero_size_box_is_a_false_positive():
    gt = _gt()
    degenerate = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 40], "score": 0.99}
    assert score_coco(gt, _perfect(gt) + [degenerate], backend="faster-coco-eval")["AP"] == pytest.approx(0.8)


def test_unknown_backend_and_ranges():
    with pytest.raises(HarnessError, match="unknown COCO scorer backend 'detectron'"):
        score_coco(_gt(), [], backend="detectron")
    with pytest.raises(HarnessError, match="unknown area range set 'huge'"):
        score_coco(_gt(), [], ranges="huge")


# --- results validation -----------------------------------------------------------------------------

GOOD = {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score": None}, r"result 1 \(image_id 1\): `score` is None, expected a finite number"),
        ({"score": float("nan")}, r"result 1 \(image_id 1\): `score` is nan"),
        ({"score": True}, r"result 1 \(image_id 1\): `score` is True"),
        (
            {"bbox": [1, 2, 3]},
            r"result 1 \(image_id 1\): `bbox` is \[1, 2, 3\], expected a list \[x, y, width",
        ),
        ({"bbox": [1, "2", 3, 4]}, r"result 1 \(image_id 1\): `bbox` y is '2', expected a finite number"),
        ({"bbox": [1, 2, float("inf"), 4]}, r"result 1 \(image_id 1\): `bbox` width is inf"),
        ({"bbox": [1, 2, -3, 4]}, r"result 1 \(image_id 1\): `bbox` \[1, 2, -3, 4\] has a negative width"),
        ({"category_id": 9}, r"result 1 \(image_id 1\): `category_id` 9 is not a category"),
        ({"image_id": 99}, r"result 1 \(image_id 99\): `image_id` 99 is not an image of the ground truth"),
        ({"image_id": 1.0}, r"result 1 \(image_id 1.0\): `image_id` 1.0 is not an image"),
    ],
)
def test_bad_result_names_entry_and_field(change, message):
    gt = validate_ground_truth(_gt())
    with pytest.raises(PredictionError, match=message):
        validate_results([GOOD, {**GOOD, **change}], gt, "dets.json")


def test_result_missing_keys_listed():
    gt = validate_ground_truth(_gt())
    with pytest.raises(PredictionError, match=r"dets.json: result 0 \(image_id 1\): has no `bbox`, `score`") as info:
        validate_results([{"image_id": 1, "category_id": 1}], gt, "dets.json")
    assert "every result needs image_id, category_id, bbox" in str(info.value)


def test_string_image_id_gets_a_hint():
    gt = validate_ground_truth(_gt())
    with pytest.raises(PredictionError) as info:
        validate_results([{**GOOD, "image_id": "2"}], gt)
    assert info.value.hint == "image ids are integers: write 2, not '2'"


def test_results_not_a_list_or_entry_not_an_object():
    gt = validate_ground_truth(_gt())
    with pytest.raises(PredictionError, match="results: is a dict, expected a list of detections"):
        validate_results({"annotations": []}, gt)
    with pytest.raises(PredictionError, match="results: result 0 is a list, expected an object"):
        validate_results([[1, 1, 0, 0, 2, 2, 0.5]], gt)


def test_valid_results_are_cleaned():
    gt = validate_ground_truth(_gt())
    clean = validate_results([{**GOOD, "bbox": [1, 2, 0, 4], "score": np.float32(0.25), "extra": 1}], gt)
    assert clean == [{"image_id": 1, "category_id": 1, "bbox": [1.0, 2.0, 0.0, 4.0], "score": 0.25}]


def test_score_coco_validates_results_first():
    with pytest.raises(PredictionError, match="result 0"):
        score_coco(_gt(), [{**GOOD, "image_id": 5}])


# --- ground-truth validation -------------------------------------------------------------------------


def _broken(edit) -> dict:
    gt = _gt()
    edit(gt)
    return gt


@pytest.mark.parametrize(
    ("gt", "message"),
    [
        ([], r"gt.json: is a list, expected a COCO object"),
        (_broken(lambda g: g.pop("annotations")), r"gt.json: has no `annotations` list"),
        (_broken(lambda g: g.update(images={})), r"gt.json: `images` is a dict, expected a list"),
        (_broken(lambda g: g.update(images=[])), r"gt.json: `images` is empty"),
        (
            _broken(lambda g: g["images"][1].update(id="2")),
            r"gt.json: images\[1\] has `id` '2', expected an integer",
        ),
        (_broken(lambda g: g["images"][1].update(id=1)), r"gt.json: images\[1\] repeats image id 1"),
        (_broken(lambda g: g["categories"][0].pop("id")), r"gt.json: categories\[0\] has `id` None"),
        (
            _broken(lambda g: g["annotations"][2].update(image_id=99)),
            r"gt.json: annotations\[2\] \(id 20, image_id 99\): `image_id` 99 is not in `images`",
        ),
        (
            _broken(lambda g: g["annotations"][1].update(category_id=5)),
            r"annotations\[1\] \(id 11, image_id 1\): `category_id` 5 is not in `categories` \[1, 2\]",
        ),
        (
            _broken(lambda g: g["annotations"][0].update(bbox=[0, 0, 5, -1])),
            r"annotations\[0\] \(id 10, image_id 1\): `bbox` \[0, 0, 5, -1\] has a negative width or height",
        ),
        (_broken(lambda g: g["annotations"][0].update(bbox=None)), r"annotations\[0\] .*: `bbox` is None"),
        (_broken(lambda g: g["annotations"][0].update(area=-1)), r"annotations\[0\] .*: `area` is -1"),
        (_broken(lambda g: g["annotations"][0].update(iscrowd=2)), r"annotations\[0\] .*: `iscrowd` is 2"),
        (
            _broken(lambda g: g["annotations"][1].update(id=10)),
            r"annotations\[1\] .*: repeats annotation id 10",
        ),
        (_broken(lambda g: g["annotations"][3].pop("image_id")), r"annotations\[3\] .*: has no `image_id`"),
    ],
)
def test_bad_ground_truth_names_entry_and_field(gt, message):
    with pytest.raises(DatasetError, match=message):
        validate_ground_truth(gt, "gt.json")


def test_ground_truth_defaults_and_no_mutation():
    gt = _gt()
    for ann in gt["annotations"]:
        del ann["area"], ann["iscrowd"]
    before = copy.deepcopy(gt)
    clean = validate_ground_truth(gt)
    assert gt == before
    assert [a["area"] for a in clean["annotations"]] == [1600.0, 100.0, 1600.0, 100.0]
    assert {a["iscrowd"] for a in clean["annotations"]} == {0}


def test_load_json_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"missing.json: no such file"):
        load_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n  1,\n  ]\n}')
    with pytest.raises(PredictionError, match=r"bad.json: invalid JSON at line 3, column 3"):
        load_json(bad, PredictionError)
    with pytest.raises(DatasetError, match="is a directory"):
        load_json(tmp_path)
    good = tmp_path / "good.json"
    good.write_text('[{"a": 1}]')
    assert load_json(good) == [{"a": 1}]


# --- harness records to COCO results -----------------------------------------------------------------


def test_detections_to_coco_converts_xyxy_and_maps_ids():
    gt = _gt()
    records = [
        Detections(
            boxes=np.array([[10, 10, 50, 50], [60, 60, 70, 70]], np.float32),
            scores=np.array([0.9, 0.8], np.float32),
            labels=np.array([1, 1]),
        ),
        Detections(boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32), labels=np.zeros(0, np.int64)),
    ]
    results = detections_to_coco(["1", "2"], records, gt)
    assert results == [
        {"image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 40.0, 40.0], "score": pytest.approx(0.9)},
        {"image_id": 1, "category_id": 1, "bbox": [60.0, 60.0, 10.0, 10.0], "score": pytest.approx(0.8)},
    ]
    assert detections_to_coco(["1", "2"], records) == results
    # Image 1 found perfectly, image 2's two objects missed: recall 1/2 at every threshold.
    assert score_coco(gt, results, backend="faster-coco-eval")["AR_100"] == pytest.approx(0.5)


def test_detections_to_coco_errors():
    record = Detections(boxes=np.zeros((1, 4)), scores=np.ones(1), labels=np.ones(1, np.int64))
    with pytest.raises(PredictionError, match="2 sample ids but 1 detection records"):
        detections_to_coco(["1", "2"], [record])
    with pytest.raises(PredictionError, match="sample id '3' is not an image of the ground truth"):
        detections_to_coco(["3"], [record], _gt())
    with pytest.raises(PredictionError, match="sample id 'img_3' is not an integer COCO image id"):
        detections_to_coco(["img_3"], [record])


# --- backends agree; annotation id 0; the vectorised checks equal the per-entry path --------------------------


def _random_set(seed: int, n_images: int = 24) -> tuple[dict, list[dict]]:
    """A random COCO set with what trips scorers up: crowd regions (with detections inside), images without
    ground truth or without detections, an image with 130 detections (over maxDets 100), scores rounded so that
    many tie, objects from 1 px to 150 px, a few `area`s that are not w*h, a few zero-size detections."""
    rng = np.random.default_rng(seed)
    annotations, results = [], []
    for image_id in range(1, n_images + 1):
        count = 0 if image_id % 7 == 0 else int(rng.integers(1, 14))
        sides = np.exp(rng.uniform(np.log(1.0), np.log(150.0), (count, 2)))
        corners = rng.uniform(0, 500, (count, 2))
        for side, corner in zip(sides, corners, strict=True):
            box = [round(float(v), 1) for v in (*corner, *side)]
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(rng.integers(1, 4))}
            ann |= {"bbox": box, "iscrowd": int(rng.random() < 0.1)}
            if rng.random() < 0.2:
                ann["area"] = round(box[2] * box[3] * float(rng.uniform(0.5, 1.0)), 2)
            annotations.append(ann)
            if image_id % 5 != 0 and rng.random() < 0.75:  # a hit, jittered (several per crowd region)
                for _ in range(3 if ann["iscrowd"] else 1):
                    jitter = rng.uniform(-0.2, 0.2, 4) * np.tile(side, 2)
                    hit = [round(float(v), 1) for v in np.maximum(np.array(box) + jitter, [0, 0, 0.5, 0.5])]
                    results.append({"image_id": image_id, "category_id": ann["category_id"], "bbox": hit})
        extra = 130 if image_id == 3 else int(rng.integers(0, 6))
        for _ in range(extra):  # false positives, some of zero size
            size = [0.0, 0.0] if rng.random() < 0.05 else [round(float(v), 1) for v in rng.uniform(1, 60, 2)]
            box = [round(float(v), 1) for v in rng.uniform(0, 500, 2)] + size
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 4)), "bbox": box})
    for det in results:
        det["score"] = round(float(rng.random()), 1)  # ties everywhere
    gt = {
        "images": [{"id": i, "width": 640, "height": 640} for i in range(1, n_images + 1)],
        "annotations": annotations,
        "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)],
    }
    return gt, results


@pytest.mark.parametrize("seed", range(6))
def test_backends_agree_on_random_sets(seed):
    gt, results = _random_set(seed)
    pycocotools = score_coco(gt, results, backend="pycocotools")
    faster = score_coco(gt, results, backend="faster-coco-eval")
    assert list(pycocotools) == list(faster) == METRIC_KEYS["all"]
    for key in METRIC_KEYS["all"]:
        assert abs(pycocotools[key] - faster[key]) <= 1e-12, (key, pycocotools[key], faster[key])
    assert 0.0 < faster["AP"] < 1.0  # a set that exercises the scorer, not a trivial one


def test_default_backend_is_faster_coco_eval():
    import inspect

    assert DEFAULT_BACKEND == "faster-coco-eval" and DEFAULT_BACKEND in BACKENDS
    assert inspect.signature(score_coco).parameters["backend"].default == DEFAULT_BACKEND


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("annotation_id", [0, -3])
def test_annotation_id_zero_is_renumbered(backend, annotation_id):
    gt = {
        "images": [{"id": 1}],
        "annotations": [{"id": annotation_id, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10]}],
        "categories": [{"id": 1}],
    }
    before = copy.deepcopy(gt)
    notes: list[str] = []
    metrics = score_coco(gt, _perfect(gt), backend=backend, notes=notes)
    assert metrics["AP"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["AR_1"] == pytest.approx(1.0, abs=1e-12)
    assert notes == [RENUMBERED_NOTE]
    assert gt == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_renumbering_changes_no_metric(backend):
    gt, results = _random_set(11)
    notes: list[str] = []
    expected = score_coco(gt, results, backend=backend, notes=notes)
    assert notes == []
    from_zero = copy.deepcopy(gt)
    for ann in from_zero["annotations"]:
        ann["id"] -= 1  # ids 0..N-1, as many converters write them
    assert score_coco(from_zero, results, backend=backend, notes=notes) == expected
    assert notes == [RENUMBERED_NOTE]


def _per_entry_path(monkeypatch) -> None:
    import harness.metrics.coco as coco

    for name in ("_entries_fast", "_annotations_fast", "_results_fast"):
        monkeypatch.setattr(coco, name, lambda *args, **kwargs: None)


@pytest.mark.parametrize("seed", range(3))
def test_vectorised_validation_equals_per_entry_path(monkeypatch, seed):
    gt, results = _random_set(seed)
    gt["annotations"][0]["area"] = 7  # an int area becomes 7.0
    gt["annotations"][1]["bbox"] = [1, 2, 3, 4]  # int coordinates become floats
    results[0]["score"], results[0]["extra"] = 1, "dropped"
    fast_gt = validate_ground_truth(gt, "gt.json")
    fast_results = validate_results(results, fast_gt, "dets.json")
    with monkeypatch.context() as patch:
        _per_entry_path(patch)
        slow_gt = validate_ground_truth(gt, "gt.json")
        slow_results = validate_results(results, slow_gt, "dets.json")
    assert fast_gt == slow_gt and fast_results == slow_results
    assert [list(a) for a in fast_gt["annotations"]] == [list(a) for a in slow_gt["annotations"]]
    for fast, slow in zip(fast_gt["annotations"], slow_gt["annotations"], strict=True):
        assert [type(v) for v in fast.values()] == [type(v) for v in slow.values()]
    assert [type(v) for d in fast_results for v in (*d.values(), *d["bbox"])] == [
        type(v) for d in slow_results for v in (*d.values(), *d["bbox"])
    ]


def test_unusual_but_valid_types_are_normalised():
    gt = _gt()
    gt["images"][0]["id"] = np.int64(1)
    gt["annotations"][0] |= {"id": np.int32(10), "bbox": (10, 10, np.float32(40), 40), "iscrowd": False}
    clean = validate_ground_truth(gt)
    assert type(clean["images"][0]["id"]) is int
    first = clean["annotations"][0]
    assert (type(first["id"]), first["bbox"], first["iscrowd"]) == (int, [10.0, 10.0, 40.0, 40.0], 0)
    results = [{**GOOD, "image_id": np.int64(2), "bbox": (1, 2, 3, np.float64(4))}]
    assert validate_results(results, clean) == [
        {"image_id": 2, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}
    ]


def test_first_bad_entry_of_a_large_file_is_named():
    gt, results = _random_set(5, n_images=200)
    gt["annotations"][700]["area"] = -1.0
    gt["annotations"][900]["image_id"] = 999
    with pytest.raises(DatasetError, match=r"gt.json: annotations\[700\] \(id 701, image_id \d+\): `area` is -1.0"):
        validate_ground_truth(gt, "gt.json")
    gt["annotations"][700]["area"] = 1.0
    with pytest.raises(DatasetError, match=r"annotations\[900\] \(id 901, image_id 999\): `image_id` 999 is not"):
        validate_ground_truth(gt, "gt.json")
    clean = validate_ground_truth(_random_set(5, n_images=200)[0])
    results[1100]["bbox"] = [1, 2, 3, float("nan")]
    results[1400]["score"] = "high"
    with pytest.raises(PredictionError, match=r"dets.json: result 1100 \(image_id \d+\): `bbox` height is nan"):
        validate_results(results, clean, "dets.json")
    results[1100]["bbox"] = [1, 2, 3, 4]
    with pytest.raises(PredictionError, match=r"result 1400 \(image_id \d+\): `score` is 'high', expected a finite"):
        validate_results(results, clean, "dets.json")


def test_score_coco_files_matches_score_coco_and_restores_the_collector(tmp_path):
    import gc

    gt, results = _random_set(3)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    assert score_coco_files(tmp_path / "gt.json", tmp_path / "res.json") == score_coco(gt, results)
    assert gc.isenabled()
    gc.disable()
    try:
        score_coco_files(tmp_path / "gt.json", tmp_path / "res.json", backend="pycocotools", ranges="tiny")
        assert not gc.isenabled()  # the caller's choice is restored, not overridden
    finally:
        gc.enable()
    with pytest.raises(PredictionError, match=r"missing.json: no such file"):
        score_coco_files(tmp_path / "gt.json", tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DatasetError, match=r"bad.json: invalid JSON"):
        score_coco_files(tmp_path / "bad.json", tmp_path / "res.json")
    with pytest.raises(HarnessError, match="unknown COCO scorer backend"):
        score_coco_files(tmp_path / "gt.json", tmp_path / "res.json", backend="detectron")


# --- `harness score` ----------------------------------------------------------------------------------------


def _files_with_id_zero(tmp_path) -> tuple[str, str]:
    gt = {
        "images": [{"id": 1}],
        "annotations": [{"id": 0, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10]}],
        "categories": [{"id": 1}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(_perfect(gt)))
    return str(tmp_path / "gt.json"), str(tmp_path / "res.json")


@pytest.mark.parametrize("option", [[], ["--coco-backend", "pycocotools"], ["--backend", "pycocotools"]])
def test_harness_score_backends_and_id_zero_note(tmp_path, option):
    from tests.conftest import run_cli

    gt_file, res_file = _files_with_id_zero(tmp_path)
    args = ["score", "--track", "small-object", "--ground-truth", gt_file, "--predictions", res_file, "--json"]
    result = run_cli(*args, *option)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metrics"]["AP"] == pytest.approx(1.0, abs=1e-12)
    assert result.stderr.strip().splitlines() == [RENUMBERED_NOTE]


def test_harness_score_option_names(tmp_path):
    from tests.conftest import run_cli

    gt_file, res_file = _files_with_id_zero(tmp_path)
    args = ["score", "--track", "small-object", "--ground-truth", gt_file, "--predictions", res_file]
    conflict = run_cli(*args, "--coco-backend", "pycocotools", "--backend", "faster-coco-eval")
    assert conflict.returncode == 2 and "disagree" in conflict.stderr
    unknown = run_cli(*args, "--coco-backend", "detectron")
    assert unknown.returncode == 2 and "unknown COCO scorer backend 'detectron'" in unknown.stderr
    help_text = run_cli("score", "--help").stdout
    assert "--coco-backend" in help_text and "--backend " not in help_text
