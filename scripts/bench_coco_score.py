"""Time `harness score` on a large COCO set against faster-coco-eval alone, side by side.

    .venv/bin/python scripts/bench_coco_score.py [--repeats 7] [--pycocotools-repeats 1] [--seed 17]

Generates (seeded, so every run scores the same files) 2,000 images with about 44 k ground-truth boxes, most of
them small or tiny, some crowd regions and some empty images, and about 64 k detections (jittered hits, misses,
false positives, tied scores, a few images with more than 100 detections), writes them as COCO json files in a
temporary folder, then measures, interleaved, `--repeats` times each:

  (a) the whole `harness score --track small-object --ground-truth GT --predictions RES --json` process: the real
      CLI (the `harness` script beside this Python), wall time from spawn to exit, Python start-up and JSON loading
      included; the harness scores all seven area ranges with its default backend, faster-coco-eval;
  (b) faster-coco-eval alone, in this process (imported beforehand): COCO(GT file) + loadRes(RES file) +
      COCOeval_faster evaluate + accumulate + summarize, COCO's default four area ranges (the release of its
      objects falls after the timing).

It prints the medians and the ratio (a)/(b) (target: at most 1.5), and checks that the CLI's twelve COCO figures
equal faster-coco-eval's own summary. For reference it also times, interleaved with the others,

  (c) the steps of (b) run as a fresh `python -c` process: start-up, imports, JSON loading and the release of
      its objects included, like (a);

and, after them, (a) with `--coco-backend pycocotools` (`--pycocotools-repeats` times, 0 to skip).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HARNESS = Path(sys.executable).parent / "harness"
N_IMAGES = 2000
SIZE = (640, 512)  # width, height
N_CATEGORIES = 8
# side length (sqrt of the area) ranges and their shares: verytiny, tiny, small16, medium, large
SIDES = [(2.0, 8.0), (8.0, 16.0), (16.0, 32.0), (32.0, 96.0), (96.0, 200.0)]
SIDE_SHARES = [0.35, 0.30, 0.20, 0.10, 0.05]
COCO_KEYS = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"]
COCO_KEYS += ["AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large"]


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` random [x, y, w, h] boxes inside the image, sizes drawn from SIDES."""
    bands = rng.choice(len(SIDES), size=n, p=SIDE_SHARES)
    low, high = np.array(SIDES)[bands].T
    side = rng.uniform(low, high)
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    w, h = np.minimum(w, SIZE[0] - 1), np.minimum(h, SIZE[1] - 1)
    x, y = rng.uniform(0, SIZE[0] - w), rng.uniform(0, SIZE[1] - h)
    return np.round(np.stack([x, y, w, h], axis=1), 2)


def generate(seed: int) -> tuple[dict, list]:
    """The ground truth (COCO instances) and the detections (COCO results) of the benchmark."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 45, N_IMAGES)  # mean 22: about 44 k boxes, some images without any
    image_of = np.repeat(np.arange(1, N_IMAGES + 1), counts)
    n_gt = len(image_of)
    gt_boxes = _boxes(rng, n_gt)
    gt_cats = rng.integers(1, N_CATEGORIES + 1, n_gt)
    crowd = rng.random(n_gt) < 0.02
    gt_boxes[crowd, 2:] = np.maximum(gt_boxes[crowd, 2:], 40.0)  # crowd regions are larger
    annotations = [
        {"id": i + 1, "image_id": int(img), "category_id": int(cat), "bbox": box, "area": round(box[2] * box[3], 2)}
        | {"iscrowd": int(c)}
        for i, (img, cat, box, c) in enumerate(zip(image_of, gt_cats, gt_boxes.tolist(), crowd, strict=True))
    ]
    # Hits: 80 % of the boxes, jittered by up to 15 % of their size, scores rounded so that many tie.
    hit = rng.random(n_gt) < 0.8
    jitter = rng.uniform(-0.15, 0.15, (int(hit.sum()), 4)) * np.tile(gt_boxes[hit, 2:], 2)
    hit_boxes = gt_boxes[hit] + jitter
    hit_boxes[:, 2:] = np.maximum(hit_boxes[:, 2:], 0.5)
    hit_scores = np.round(rng.beta(4, 2, len(hit_boxes)), 2)
    # False positives: random boxes on random images, plus 20 crowded images with 150 more each (> 100 per image).
    n_fp = 64_000 - len(hit_boxes) - 20 * 150
    fp_images = np.concatenate([rng.integers(1, N_IMAGES + 1, n_fp), np.repeat(rng.choice(N_IMAGES, 20) + 1, 150)])
    fp_boxes = _boxes(rng, len(fp_images))
    fp_scores = np.round(rng.beta(2, 4, len(fp_images)), 2)
    det_images = np.concatenate([image_of[hit], fp_images])
    det_cats = np.concatenate([gt_cats[hit], rng.integers(1, N_CATEGORIES + 1, len(fp_images))])
    det_boxes = np.round(np.concatenate([hit_boxes, fp_boxes]), 2).tolist()
    det_scores = np.concatenate([hit_scores, fp_scores]).tolist()
    order = rng.permutation(len(det_boxes))
    results = [
        {"image_id": int(det_images[i]), "category_id": int(det_cats[i]), "bbox": det_boxes[i], "score": det_scores[i]}
        for i in order
    ]
    ground_truth = {
        "images": [{"id": i, "width": SIZE[0], "height": SIZE[1]} for i in range(1, N_IMAGES + 1)],
        "annotations": annotations,
        "categories": [{"id": c, "name": f"class{c}"} for c in range(1, N_CATEGORIES + 1)],
    }
    return ground_truth, results


def write_files(seed: int, gt_path: Path, res_path: Path) -> str:
    """Generate the data, write both files, and describe them; nothing generated outlives the call."""
    ground_truth, results = generate(seed)
    gt_path.write_text(json.dumps(ground_truth))
    res_path.write_text(json.dumps(results))
    n_crowd = sum(a["iscrowd"] for a in ground_truth["annotations"])
    per_image = np.bincount([det["image_id"] for det in results])
    return (
        f"data: {len(ground_truth['images'])} images, {len(ground_truth['annotations'])} ground-truth boxes "
        f"({n_crowd} crowd), {len(results)} detections ({int((per_image > 100).sum())} images with more than 100); "
        f"gt.json {gt_path.stat().st_size / 1e6:.1f} MB, res.json {res_path.stat().st_size / 1e6:.1f} MB"
    )


def run_cli(gt: Path, res: Path, backend: str, home: str) -> tuple[float, dict]:
    """Wall time of one `harness score ... --json` process, and its metrics."""
    command = [str(HARNESS), "score", "--track", "small-object", "--ground-truth", str(gt), "--predictions", str(res)]
    command += ["--json"] if backend == "faster-coco-eval" else ["--coco-backend", backend, "--json"]
    env = {**os.environ, "HARNESS_HOME": home}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed, json.loads(done.stdout)["metrics"]


FRESH_PROCESS = """
import contextlib, io, sys
from faster_coco_eval import COCO, COCOeval_faster
quiet = lambda *args, **kwargs: None
with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = COCO(sys.argv[1], print_function=quiet)
    coco_dt = coco_gt.loadRes(sys.argv[2])
    evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=quiet)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
"""


def run_fresh_process(gt: Path, res: Path) -> float:
    """Wall time of (c): the steps of (b) as a process of their own."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(gt), str(res)], check=True, capture_output=True)
    return time.perf_counter() - start


def run_faster_coco_eval(gt: Path, res: Path) -> tuple[float, list[float]]:
    """Wall time of faster-coco-eval alone on the files (COCO, loadRes, evaluate, accumulate, summarize)."""
    from faster_coco_eval import COCO, COCOeval_faster

    def quiet(*args, **kwargs):
        return None

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt), print_function=quiet)
        coco_dt = coco_gt.loadRes(str(res))
        evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=quiet)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return time.perf_counter() - start, [float(v) for v in evaluator.stats[:12]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of (a), (b) and (c), interleaved")
    parser.add_argument("--pycocotools-repeats", type=int, default=1, help="runs of (a) with pycocotools")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    import faster_coco_eval  # noqa: F401  (b) is timed without its import, (a) with everything it does

    with tempfile.TemporaryDirectory() as folder:
        gt_path, res_path = Path(folder) / "gt.json", Path(folder) / "res.json"
        print(write_files(args.seed, gt_path, res_path))
        gc.collect()  # the generated objects are gone: (b) runs in a process that holds nothing else large
        times: dict[str, list[float]] = {"a": [], "b": [], "c": []}
        for i in range(args.repeats):
            cli_time, cli_metrics = run_cli(gt_path, res_path, "faster-coco-eval", folder)
            alone_time, stats = run_faster_coco_eval(gt_path, res_path)
            fresh_time = run_fresh_process(gt_path, res_path)
            for key, value in zip("abc", (cli_time, alone_time, fresh_time), strict=True):
                times[key].append(value)
            print(f"run {i + 1}: (a) {cli_time:.3f} s   (b) {alone_time:.3f} s   (c) {fresh_time:.3f} s")
        deviation = max(abs(cli_metrics[key] - value) for key, value in zip(COCO_KEYS, stats, strict=True))
        py_times = [run_cli(gt_path, res_path, "pycocotools", folder)[0] for _ in range(args.pycocotools_repeats)]
    a, b, c = (statistics.median(times[key]) for key in "abc")
    print(f"median (a) harness score (faster-coco-eval), whole process: {a:.3f} s")
    print(f"median (b) faster-coco-eval alone, in-process:              {b:.3f} s")
    print(f"ratio (a)/(b): {a / b:.2f} (target <= 1.5)")
    print(f"median (c) faster-coco-eval alone, whole process:           {c:.3f} s   (a)/(c): {a / c:.2f}")
    print(f"max deviation of the CLI's 12 COCO figures from faster-coco-eval's summary: {deviation:.1e}")
    if py_times:
        runs = f"{len(py_times)} run" + ("s" if len(py_times) > 1 else "")
        print(f"median (a) with --coco-backend pycocotools: {statistics.median(py_times):.3f} s ({runs})")
    return 0 if deviation <= 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
