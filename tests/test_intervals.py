"""Confidence intervals of the primary metrics (bootstrap over test images): each statistic recomputed from draw
counts equals the scorer's own figure when every image is drawn once, intervals are reproducible and contain
the figure, and the COCO re-accumulation reproduces COCOeval's AP exactly."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics.intervals import hmean_interval, mean_interval, resample_counts


def test_resample_counts_are_draws_with_replacement_and_reproducible():
    counts = resample_counts(50, samples=300, seed=3)
    assert counts.shape == (300, 50) and (counts.sum(axis=1) == 50).all()
    assert np.array_equal(counts, resample_counts(50, samples=300, seed=3))
    # Each image is drawn once per resample on average, and about 1 - 1/e of the images appear in each.
    assert abs(counts.mean() - 1.0) < 1e-12
    assert 0.58 < (counts > 0).mean() < 0.68


def test_top1_interval_matches_the_binomial_spread():
    """360 images at 99.2 % (the classification references' neighbourhood): a 95 % interval about
    +-1.96 * sqrt(p(1-p)/n) = +-0.0092 wide, containing the figure; one to three images apart is inside it."""
    correct = np.zeros(360)
    correct[:357] = 1
    interval = mean_interval(correct)
    assert interval.low <= correct.mean() <= interval.high
    half = 1.96 * np.sqrt(correct.mean() * (1 - correct.mean()) / len(correct))
    assert abs((interval.high - interval.low) / 2 - half) < 0.004
    assert interval.to_dict()["method"] == "percentile bootstrap over test images"
    assert mean_interval(correct) == interval  # the same predictions always give the same interval


def test_all_right_or_all_wrong_gives_a_point_interval():
    assert (mean_interval(np.ones(20)).low, mean_interval(np.ones(20)).high) == (1.0, 1.0)
    assert mean_interval(np.zeros(0)) is None


def test_hmean_statistic_reproduces_the_protocols_dataset_figures():
    from harness.metrics.deteval import deteval, deteval_images
    from harness.metrics.text_records import ImageDet, ImageGT

    rng = np.random.default_rng(5)

    def boxes(n):
        x, y = rng.uniform(0, 400, n), rng.uniform(0, 400, n)
        w, h = rng.uniform(10, 80, n), rng.uniform(8, 30, n)
        return np.stack([np.stack(p, 1) for p in ((x, y), (x + w, y), (x + w, y + h), (x, y + h))], 1)

    gt, det = [], []
    for _ in range(40):
        g = boxes(int(rng.integers(0, 6)))
        gt.append(ImageGT(polygons=g, dont_care=rng.random(len(g)) < 0.1))
        d = np.concatenate([g + rng.normal(0, 3, g.shape), boxes(int(rng.integers(0, 3)))])
        det.append(ImageDet(polygons=d, scores=np.ones(len(d))))
    images = deteval_images(gt, det, "quad")
    table = np.array([(i.recall_sum, i.precision_sum, i.gt_care, i.det_care) for i in images])
    expected = deteval(gt, det, "quad")
    for which in ("hmean", "precision", "recall"):
        once = hmean_interval(*table.T, which=which, samples=1, seed=0)
        interval = hmean_interval(*table.T, which=which)
        assert interval.low <= expected[f"deteval_{which}"] <= interval.high
        assert once is not None
    # Drawing every image once is the dataset figure itself.
    from harness.metrics import intervals

    ones = np.ones((1, len(table)))
    r, p, g, d = (ones @ table).T
    recall, precision = r / g, p / d
    assert np.isclose(2 * recall * precision / (recall + precision), expected["deteval_hmean"], rtol=0, atol=1e-12)
    assert intervals.LEVEL == 0.95


@pytest.mark.parametrize("seed", range(3))
def test_coco_reaccumulation_with_every_image_once_is_cocoevals_ap(seed):
    from harness.metrics.coco import SUMMARY_KEYS, score_coco
    from harness.metrics.coco_bootstrap import coco_interval, per_image_matches, weighted_ap
    from tests.test_coco_metrics import _random_set

    gt, results = _random_set(seed, n_images=40)
    scored = score_coco(gt, results)
    for key in ("AP", "AP50", "AP75", "AP_small", "AP_tiny", "AP_verytiny"):
        _, iou, area, max_dets = SUMMARY_KEYS[key]
        categories, thresholds, images = per_image_matches(gt, results, area, max_dets)
        mask = np.isclose(thresholds, iou) if iou is not None else np.ones(len(thresholds), bool)
        (again,) = weighted_ap(categories, np.ones((1, images)), mask)
        assert abs(again - scored[key]) <= 1e-12, (key, again, scored[key])
    interval = coco_interval(gt, results, "AP")
    assert interval.low <= scored["AP"] <= interval.high and interval.samples == 200
    assert coco_interval(gt, results, "AR_100") is None  # recall figures are not resampled


def test_detection_kind_scores_with_either_backend_and_an_interval(tmp_path):
    """The detection kind through its public entry: perfect predictions of generated ground truth score AP 1
    under both COCO backends, with the point interval [1, 1]."""
    from harness.contract import Detections
    from harness.kinds import get_kind
    from harness.predictions import Predictions

    gt = {
        "images": [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in (1, 2, 3)],
        "annotations": [
            {"id": n + 1, "image_id": i, "category_id": 1, "bbox": [10 * n, 5, 8, 8], "area": 64.0, "iscrowd": 0}
            for n, i in enumerate((1, 1, 2, 3))
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    import json

    (tmp_path / "instances.json").write_text(json.dumps(gt))
    records = []
    for image_id in (1, 2, 3):
        anns = [a for a in gt["annotations"] if a["image_id"] == image_id]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=np.float64)
        records.append(Detections(boxes=boxes, scores=np.full(len(anns), 0.9), labels=np.ones(len(anns), int)))
    predictions = Predictions("detection", ["1", "2", "3"], records)
    kind = get_kind("detection")

    class Card:
        primary_metric = "AP"

    for backend in (None, "pycocotools", "faster-coco-eval"):
        metrics, interval = kind.score_with_interval(Card, predictions, tmp_path, coco_backend=backend)
        assert metrics["AP"] == pytest.approx(1.0) and (interval.low, interval.high) == (1.0, 1.0)


def test_evaluate_refuses_an_unknown_coco_backend(harness_env):
    from tests.conftest import run_cli

    refused = run_cli("evaluate", "--track", "small-object", "--coco-backend", "cocoapi", env=harness_env)
    assert refused.returncode == 2 and "unknown COCO backend `cocoapi`" in refused.stderr
    assert "faster-coco-eval" in refused.stderr and "Traceback" not in refused.stderr
