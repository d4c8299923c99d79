"""Train the reference Faster R-CNN detectors of the small-object track from scratch, in a wall-time budget.

    python submissions/fasterrcnn/train.py --model small|default|both --out DIR --max-minutes 8 \
        [--device cuda] [--iiou]

Training images are generated on the fly (`harness.datasets.smallobj`, split "train") in DataLoader workers;
the learning rate follows a warm-up then a cosine over the time budget (or over `--iterations`). Weights
are saved (fp16 safetensors) to DIR every `--save-every-s` seconds and at the end; then the val split is
scored with a built-in COCO-style evaluator (pycocotools need not be installed) and DIR gets
`val_detections_<model>.json` (COCO results), `val_instances.json` (its ground truth), `train_log.json`.
`--model both` trains the two detectors at once in two processes sharing the GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

SCRIPT_STARTED = time.monotonic()  # the budget counts from here: imports and start-up included
SUBMISSION_DIR = Path(__file__).resolve().parent
REPO_ROOT = SUBMISSION_DIR.parents[1]
for _path in (SUBMISSION_DIR, REPO_ROOT):  # runs from a checkout, installed or not
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from harness.datasets import smallobj  # noqa: E402

AREA_RANGES = {
    "all": (0.0, 1e10),
    "verytiny": (0.0, 8.0**2),
    "tiny": (8.0**2, 16.0**2),
    "small": (16.0**2, 32.0**2),
}


def log(tag: str, message: str) -> None:
    print(f"[{tag}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------
# Data


MAX_TRAIN_BOXES = 64  # objects (<= 40) plus crowd-cluster members (<= 20) of one training image


class SampleCache:
    """Generated training samples kept in memory-mapped files shared by all workers and both training
    processes: each image is made once, later epochs read it back. A row is written before its flag, and
    two workers that make the same image write the same bytes, so no locking is needed."""

    def __init__(self, folder: Path, count: int):
        self.folder = Path(folder)
        self.count = count
        size = smallobj.IMAGE_SIZE
        self.shapes = {
            "pixels": (count, size, size, 3),
            "boxes": (count, MAX_TRAIN_BOXES, 5),
            "ready": (count,),
        }
        self.dtypes = {"pixels": np.uint8, "boxes": np.float32, "ready": np.uint8}
        self._maps: dict[str, np.memmap] | None = None

    def _path(self, name: str) -> Path:
        # Named by a hash of the generator's source too, so an edited generator never reads stale images.
        source = hashlib.sha256(Path(smallobj.__file__).read_bytes()).hexdigest()[:12]
        return self.folder / f"{smallobj.GENERATOR_VERSION}-{source}-train{self.count}-{name}.bin"

    def create(self) -> bool:
        """Make the (sparse, zero-filled) files if they are missing or of another size; call before workers
        start, in one process. False when the disk lacks room for them: a worker writing into a full disk
        through a memory map would die of SIGBUS, so the caller then trains without the cache."""
        self.folder.mkdir(parents=True, exist_ok=True)
        needed = 256 * 2**20  # margin for everything else written meanwhile
        sizes = {}
        for name, shape in self.shapes.items():
            path = self._path(name)
            sizes[name] = int(np.prod(shape)) * np.dtype(self.dtypes[name]).itemsize
            allocated = path.stat().st_blocks * 512 if path.is_file() and path.stat().st_size == sizes[name] else 0
            needed += max(0, sizes[name] - allocated)
        if shutil.disk_usage(self.folder).free < needed:
            return False
        for name, nbytes in sizes.items():
            path = self._path(name)
            if not path.is_file() or path.stat().st_size != nbytes:
                with open(path, "wb") as handle:
                    handle.truncate(nbytes)
        return True

    def _open(self) -> dict[str, np.memmap]:
        if self._maps is None:  # opened lazily, in each worker after the fork
            self._maps = {
                name: np.memmap(self._path(name), dtype=self.dtypes[name], mode="r+", shape=shape)
                for name, shape in self.shapes.items()
            }
        return self._maps

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image `index` (H×W×3 uint8) and its training boxes (K, 5): x1, y1, x2, y2, label."""
        maps = self._open()
        if maps["ready"][index]:
            rows = maps["boxes"][index]
            return np.array(maps["pixels"][index]), rows[rows[:, 4] > 0].copy()
        image, rows = generate_training_sample(index)
        if len(rows) > MAX_TRAIN_BOXES:
            raise AssertionError(f"train image {index} has {len(rows)} boxes, more than {MAX_TRAIN_BOXES}")
        maps["pixels"][index] = image
        maps["boxes"][index] = 0
        maps["boxes"][index, : len(rows)] = rows
        maps["ready"][index] = 1
        return image, rows


def generate_training_sample(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Train image `index` and its boxes (K, 5): x1, y1, x2, y2, label; crowd members as boxes."""
    image, annotations = smallobj.generate_sample("train", index, crowd_members=True)
    rows = np.array([[*a["bbox"], a["category_id"]] for a in annotations if not a["iscrowd"]], np.float32).reshape(
        -1, 5
    )
    rows[:, 2:4] += rows[:, 0:2]  # xywh -> xyxy
    return image, rows


class TrainStream:
    """Map-style dataset over an endless stream of draws: draw k is image perm_e[k mod n] of epoch
    e = k // n, flipped by bits of a hash of k. Deterministic whatever the number of workers."""

    def __init__(self, count: int, seed: int, cache: SampleCache | None = None):
        self.count = count
        self.seed = seed
        self.cache = cache
        self._epoch = -1
        self._order = np.arange(count)

    def _index(self, draw: int) -> int:
        epoch, position = divmod(draw, self.count)
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.count)
            self._epoch = epoch
        return int(self._order[position])

    def __getitem__(self, draw: int) -> tuple[Any, Any, Any]:
        import torch

        index = self._index(draw)
        image, rows = self.cache.get(index) if self.cache is not None else generate_training_sample(index)
        boxes = np.ascontiguousarray(rows[:, :4])
        labels = rows[:, 4].astype(np.int64)
        flips = np.random.default_rng([self.seed, 1 << 20, draw]).integers(0, 2, 2)
        size = image.shape[1]
        if flips[0]:
            image = image[:, ::-1]
            boxes[:, [0, 2]] = size - boxes[:, [2, 0]]
        if flips[1]:
            image = image[::-1]
            boxes[:, [1, 3]] = size - boxes[:, [3, 1]]
        chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return chw, torch.from_numpy(boxes), torch.from_numpy(labels)


class EndlessSampler:
    """Yields 0, 1, 2, ... forever; the stream maps each draw to an image and its flips."""

    def __iter__(self) -> Iterator[int]:
        draw = 0
        while True:
            yield draw
            draw += 1


def collate(batch: list[tuple[Any, Any, Any]]) -> tuple[Any, list[Any], list[Any]]:
    import torch

    return torch.stack([b[0] for b in batch]), [b[1] for b in batch], [b[2] for b in batch]


def _quiet_worker(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------------
# COCO-style box AP (pycocotools' COCOeval for iouType "bbox", maxDets 100, re-implemented in numpy)


def _iou_matrix(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes (D, G); against a crowd box the union is the detection's own area."""
    dx2, dy2 = dets[:, 0] + dets[:, 2], dets[:, 1] + dets[:, 3]
    gx2, gy2 = gts[:, 0] + gts[:, 2], gts[:, 1] + gts[:, 3]
    iw = np.minimum(dx2[:, None], gx2[None]) - np.maximum(dets[:, 0][:, None], gts[:, 0][None])
    ih = np.minimum(dy2[:, None], gy2[None]) - np.maximum(dets[:, 1][:, None], gts[:, 1][None])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    det_area = (dets[:, 2] * dets[:, 3])[:, None]
    union = np.where(crowd[None], det_area, det_area + (gts[:, 2] * gts[:, 3])[None] - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(
    dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray, gt_ignore: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of score-sorted detections to gts (ignored gts last), per IoU threshold."""
    ious = _iou_matrix(dets, gts, crowd) if len(gts) and len(dets) else np.zeros((len(dets), len(gts)))
    matched = np.zeros((len(thresholds), len(dets)), bool)
    ignored = np.zeros((len(thresholds), len(dets)), bool)
    for t, threshold in enumerate(thresholds):
        gt_taken = np.zeros(len(gts), bool)
        for d in range(len(dets)):
            best, best_iou = -1, min(threshold, 1 - 1e-10)
            for g in range(len(gts)):
                if gt_taken[g] and not crowd[g]:
                    continue
                if best > -1 and not gt_ignore[best] and gt_ignore[g]:
                    break
                if ious[d, g] < best_iou:
                    continue
                best, best_iou = g, ious[d, g]
            if best > -1:
                matched[t, d] = True
                ignored[t, d] = gt_ignore[best]
                gt_taken[best] = True
    return matched, ignored


def coco_box_ap(
    ground_truth: dict[str, Any],
    detections: list[dict[str, Any]],
    area_ranges: dict[str, tuple[float, float]] = AREA_RANGES,
    max_dets: int = 100,
) -> dict[str, float]:
    """AP@[.5:.95], AP50, AP75 over all areas, and AP per named area range (key `AP_<name>`), computed as
    pycocotools' COCOeval does for boxes: per image and category at most `max_dets` detections, crowd
    gts are ignore regions, 101-point interpolated precision, categories without gts left out."""
    thresholds = np.linspace(0.5, 0.95, 10)
    recall_points = np.linspace(0.0, 1.0, 101)
    image_ids = sorted(img["id"] for img in ground_truth["images"])  # the order breaks score ties
    category_ids = sorted(c["id"] for c in ground_truth["categories"])
    gts: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for ann in ground_truth["annotations"]:
        gts.setdefault((ann["image_id"], ann["category_id"]), []).append(ann)
    dts: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for det in detections:
        dts.setdefault((det["image_id"], det["category_id"]), []).append(det)

    results: dict[str, float] = {}
    for range_name, (low, high) in area_ranges.items():
        precision = -np.ones((len(thresholds), len(recall_points), len(category_ids)))
        for k, category_id in enumerate(category_ids):
            scores, matched, ignored, positives = [], [], [], 0
            for image_id in image_ids:
                g = gts.get((image_id, category_id), [])
                d = dts.get((image_id, category_id), [])
                if not g and not d:
                    continue
                g_ignore = np.array([bool(a.get("iscrowd", 0)) or not low <= a["area"] <= high for a in g], bool)
                g_order = np.argsort(g_ignore, kind="mergesort")
                g_boxes = np.array([g[i]["bbox"] for i in g_order], float).reshape(-1, 4)
                g_crowd = np.array([bool(g[i].get("iscrowd", 0)) for i in g_order], bool)
                g_ignore = g_ignore[g_order]
                d_scores = np.array([x["score"] for x in d], float)
                d_order = np.argsort(-d_scores, kind="mergesort")[:max_dets]
                d_boxes = np.array([d[i]["bbox"] for i in d_order], float).reshape(-1, 4)
                m, ig = _match(d_boxes, g_boxes, g_crowd, g_ignore, thresholds)
                d_area = d_boxes[:, 2] * d_boxes[:, 3]
                ig |= ~m & ((d_area < low) | (d_area > high))[None]
                scores.append(d_scores[d_order])
                matched.append(m)
                ignored.append(ig)
                positives += int((~g_ignore).sum())
            if positives == 0:
                continue
            all_scores = np.concatenate(scores) if scores else np.zeros(0)
            order = np.argsort(-all_scores, kind="mergesort")
            m_all = np.concatenate(matched, axis=1)[:, order] if matched else np.zeros((len(thresholds), 0), bool)
            ig_all = np.concatenate(ignored, axis=1)[:, order] if ignored else np.zeros((len(thresholds), 0), bool)
            tps = np.cumsum(m_all & ~ig_all, axis=1, dtype=float)
            fps = np.cumsum(~m_all & ~ig_all, axis=1, dtype=float)
            for t in range(len(thresholds)):
                recall = tps[t] / positives
                prec = tps[t] / (tps[t] + fps[t] + np.spacing(1))
                prec = np.maximum.accumulate(prec[::-1])[::-1]
                at = np.searchsorted(recall, recall_points, side="left")
                row = np.zeros(len(recall_points))
                valid = at < len(prec)
                row[valid] = prec[at[valid]]
                precision[t, :, k] = row

        def mean_valid(values: np.ndarray) -> float:
            values = values[values > -1]
            return float(values.mean()) if values.size else -1.0

        if range_name == "all":
            results["AP"] = mean_valid(precision)
            results["AP50"] = mean_valid(precision[0])
            results["AP75"] = mean_valid(precision[5])
        else:
            results[f"AP_{range_name}"] = mean_valid(precision)
    return results


# ---------------------------------------------------------------------------------------------------
# Training of one model


def _device(name: str) -> Any:
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("train.py: CUDA is not available here; pass --device cpu (for a smoke test only)")
    return torch.device(name)


def _learning_rate(args: argparse.Namespace, iteration: int, progress: float) -> float:
    warm = min(1.0, (iteration + 1) / max(1, args.warmup_iters))
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return args.lr * warm * (args.min_lr_fraction + (1.0 - args.min_lr_fraction) * cosine)


def evaluate(model: Any, device: Any, images: list[np.ndarray], batch_size: int) -> list[dict[str, Any]]:
    """COCO results (image ids 1..N in order) of `model` on `images`."""
    import torch

    model.eval()
    results: list[dict[str, Any]] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = [
                torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(device).float().div_(255.0)
                for img in images[start : start + batch_size]
            ]
            for offset, out in enumerate(model(batch)):
                boxes = out["boxes"].float().cpu().numpy()
                for box, score, label in zip(
                    boxes, out["scores"].float().cpu().numpy(), out["labels"].cpu().numpy(), strict=True
                ):
                    x1, y1, x2, y2 = (float(v) for v in box)
                    results.append(
                        {
                            "image_id": start + offset + 1,
                            "category_id": int(label),
                            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                            "score": round(float(score), 5),
                        }
                    )
    return results


def train_model(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from fasterrcnn_ref.model import make_model, save_weights, weights_filename

    started = SCRIPT_STARTED
    kind = args.model
    tag = kind
    device = _device(args.device)
    torch.manual_seed(args.seed)
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # every training batch is 16×3×512×512: one shape to tune
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / weights_filename(kind)

    model = make_model(kind).to(device)
    model.roi_heads.iiou_weight = args.iiou_weight if args.iiou else 0.0
    amp = args.amp if args.amp != "auto" else ("bf16" if on_cuda else "off")
    if amp == "bf16":
        model.backbone.amp_dtype = torch.bfloat16
    if on_cuda:
        model.backbone.body.to(memory_format=torch.channels_last)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.999),
    )

    train_count = args.train_count or smallobj.SPLITS["train"]
    cache = None
    if args.cache_dir != "none":
        cache = SampleCache(Path(args.cache_dir), train_count)
        if not cache.create():
            log(tag, f"no room for the sample cache in {args.cache_dir}; every image will be generated anew")
            cache = None
    loader = torch.utils.data.DataLoader(
        TrainStream(train_count, args.seed, cache),
        batch_size=args.batch_size,
        sampler=EndlessSampler(),
        num_workers=args.workers,
        collate_fn=collate,
        pin_memory=on_cuda,
        worker_init_fn=_quiet_worker if args.workers else None,
        prefetch_factor=4 if args.workers else None,
        persistent_workers=bool(args.workers),
    )
    val_count = args.val_count if args.val_count is not None else smallobj.SPLITS["val"]
    val_images, val_annotations = [], []
    for index in range(val_count):
        image, annotations = smallobj.generate_sample("val", index)
        val_images.append(image)
        val_annotations.append(annotations)
    val_truth = smallobj.coco_instances("val", val_annotations)

    budget_s = args.max_minutes * 60.0
    reserve_s = args.eval_reserve_s
    if reserve_s is None:
        per_image = 0.05 if on_cuda else 1.5
        reserve_s = 10.0 + 0.04 * budget_s + per_image * val_count
    train_until = started + budget_s - reserve_s
    device_name = torch.cuda.get_device_name(device) if on_cuda else platform.processor() or "cpu"
    log(
        tag,
        f"device {device} ({device_name}), "
        f"torch {torch.__version__}, batch {args.batch_size}, workers {args.workers}, amp {amp}, "
        f"lr {args.lr}, iiou {model.roi_heads.iiou_weight}, train images {train_count}, "
        f"budget {budget_s:.0f}s of which {reserve_s:.0f}s kept for the final evaluation",
    )
    if train_until <= time.monotonic():
        raise SystemExit(f"train.py: --max-minutes {args.max_minutes} leaves no time to train after the evaluation")

    model.train()
    history: list[dict[str, float]] = []
    iteration = images_seen = bad_steps = 0
    data_wait = 0.0
    train_started = time.monotonic()
    last_save = last_log_time = train_started
    window: dict[str, list[float]] = {}
    batches = iter(loader)
    train_span = train_until - train_started
    while True:
        now = time.monotonic()
        progress = (now - train_started) / train_span
        if args.iterations:
            progress = max(progress, iteration / args.iterations)
        if progress >= 1.0 or (args.iterations and iteration >= args.iterations):
            break
        lr = _learning_rate(args, iteration, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        fetch = time.monotonic()
        images_u8, boxes, labels = next(batches)
        data_wait += time.monotonic() - fetch
        images_u8 = images_u8.to(device, non_blocking=True)
        images = list(images_u8.float().div_(255.0).unbind(0))
        targets = [
            {"boxes": b.to(device, non_blocking=True), "labels": c.to(device, non_blocking=True)}
            for b, c in zip(boxes, labels, strict=True)
        ]
        losses = model(images, targets)
        loss = sum(losses.values())
        # One device-to-host copy per iteration for the finiteness check and the running means.
        values = torch.stack([loss.detach(), *(v.detach() for v in losses.values())]).float().cpu().tolist()
        if not math.isfinite(values[0]):
            bad_steps += 1
            log(
                tag,
                f"iteration {iteration}: non-finite loss {values[0]}; step skipped ({bad_steps} in a row)",
            )
            if bad_steps >= 20:
                raise RuntimeError(f"{kind}: 20 non-finite losses in a row at iteration {iteration}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            continue
        bad_steps = 0
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        iteration += 1
        images_seen += len(images)
        for name, value in zip(["loss", *losses], values, strict=True):
            window.setdefault(name, []).append(value)

        now = time.monotonic()
        if iteration % args.log_every == 0:
            means = {name: float(np.mean(values)) for name, values in window.items()}
            rate = args.log_every * args.batch_size / max(now - last_log_time, 1e-9)
            history.append({"iteration": iteration, "seconds": round(now - started, 1), "lr": lr, **means})
            parts = " ".join(f"{name.removeprefix('loss_')} {v:.3f}" for name, v in means.items() if name != "loss")
            log(
                tag,
                f"it {iteration} t {now - started:.0f}s lr {lr:.2e} loss {means['loss']:.3f} ({parts}) "
                f"{rate:.1f} img/s, waiting for data {100 * data_wait / (now - train_started):.0f}%",
            )
            window = {}
            last_log_time = now
        if now - last_save >= args.save_every_s:
            save_weights(model, weights_path, {"kind": kind, "iterations": iteration, "final": False})
            last_save = now
    train_seconds = time.monotonic() - train_started
    del batches, loader  # stops the workers before the evaluation
    metadata = {
        "kind": kind,
        "iterations": iteration,
        "images_seen": images_seen,
        "iiou_weight": model.roi_heads.iiou_weight,
        "dataset": smallobj.GENERATOR_VERSION,
        "final": True,
    }
    save_weights(model, weights_path, metadata)
    log(
        tag,
        f"trained {iteration} iterations ({images_seen} images) in {train_seconds:.0f}s, saved {weights_path.name}",
    )

    eval_started = time.monotonic()
    model.backbone.amp_dtype = None
    detections = evaluate(model, device, val_images, args.eval_batch)
    (out_dir / f"val_detections_{kind}.json").write_text(json.dumps(detections) + "\n")
    (out_dir / "val_instances.json").write_text(json.dumps(val_truth) + "\n")
    val = coco_box_ap(val_truth, detections)
    val = {name: round(value, 4) for name, value in val.items()}
    eval_seconds = time.monotonic() - eval_started
    log(
        tag,
        f"val ({val_count} images): AP {val['AP']:.4f} AP50 {val['AP50']:.4f} AP75 {val['AP75']:.4f} "
        f"AP_verytiny {val['AP_verytiny']:.4f} AP_tiny {val['AP_tiny']:.4f} AP_small {val['AP_small']:.4f} "
        f"(evaluated in {eval_seconds:.0f}s)",
    )
    return {
        "model": kind,
        "device": device_name,
        "torch": torch.__version__,
        "settings": {
            key: value for key, value in vars(args).items() if key not in ("out",) and not key.startswith("_")
        },
        "amp": amp,
        "iterations": iteration,
        "images_seen": images_seen,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "data_wait_fraction": round(data_wait / max(train_seconds, 1e-9), 3),
        "history": history,
        "val": {"images": val_count, **val},
        "weights": str(weights_path),
        "weights_bytes": weights_path.stat().st_size,
    }


# ---------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("small", "default", "both"), required=True)
    parser.add_argument("--out", required=True, help="folder for the weights, logs and val detections")
    parser.add_argument("--max-minutes", type=float, required=True, help="wall-time budget, evaluation included")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iiou", action="store_true", help="add the IIoU box loss (small model only)")
    parser.add_argument("--iiou-weight", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1.5e-3, help="AdamW peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-iters", type=int, default=300)
    parser.add_argument("--min-lr-fraction", type=float, default=0.02, help="the cosine ends at this fraction")
    parser.add_argument("--clip-grad", type=float, default=10.0)
    parser.add_argument("--iterations", type=int, default=0, help="stop after this many (0: the time budget alone)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: from the CPU count)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on --device cpu")
    parser.add_argument("--amp", choices=("auto", "bf16", "off"), default="auto", help="auto: bf16 on CUDA")
    parser.add_argument("--train-count", type=int, default=0, help="train on the first N images (0: the split)")
    parser.add_argument("--val-count", type=int, default=None, help="evaluate on the first N val images")
    parser.add_argument("--eval-batch", type=int, default=8)
    parser.add_argument("--eval-reserve-s", type=float, default=None, help="seconds kept for the final evaluation")
    parser.add_argument(
        "--cache-dir",
        default=str(Path(tempfile.gettempdir()) / "smallobj-train-cache"),
        help="where generated training images are kept for later epochs (3 GiB for 4000); 'none': regenerate",
    )
    parser.add_argument("--save-every-s", type=float, default=60.0)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.iiou and args.model == "default":
        parser.error("--iiou belongs to the small model; the default model keeps torchvision's losses")
    if args.max_minutes <= 0 or args.batch_size <= 0 or args.log_every <= 0:
        parser.error("--max-minutes, --batch-size and --log-every must be positive")
    return args


def _default_workers(models: int) -> int:
    cpus = os.cpu_count() or 2
    return max(0, min(12, (cpus - 2 * models) // models))


def _child_argv(args: argparse.Namespace, kind: str, workers: int) -> list[str]:
    argv = [sys.executable, "-u", str(Path(__file__).resolve()), "--model", kind, "--workers", str(workers)]
    for key, value in vars(args).items():
        if key in ("model", "workers", "iiou") or value is None:
            continue
        argv += [f"--{key.replace('_', '-')}", str(value)]
    if args.iiou and kind == "small":
        argv.append("--iiou")
    return argv


def train_both(args: argparse.Namespace) -> int:
    """Both models at once, one process each, sharing the device; the children print their own lines."""
    workers = args.workers if args.workers is not None else _default_workers(2)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.cache_dir != "none":  # made here once, so that the two children never race to create it
        SampleCache(Path(args.cache_dir), args.train_count or smallobj.SPLITS["train"]).create()
    # The children get what is left of the budget, so that the whole command ends within --max-minutes.
    child_args = argparse.Namespace(**vars(args))
    child_args.max_minutes = round(args.max_minutes - (time.monotonic() - SCRIPT_STARTED) / 60.0 - 0.02, 3)
    children = {}
    for kind in ("small", "default"):
        argv = _child_argv(child_args, kind, workers) + ["--_log-name", f"train_log_{kind}.json"]
        children[kind] = subprocess.Popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    grace_s = 180.0  # past the budget, a child is hung, not slow
    deadline = time.monotonic() + args.max_minutes * 60.0 + grace_s
    codes = {}
    for kind, child in children.items():
        try:
            codes[kind] = child.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            codes[kind] = child.wait()
            log("both", f"{kind} ran {grace_s:.0f}s past its budget and was killed")
    merged = {}
    for kind in children:
        path = out_dir / f"train_log_{kind}.json"
        merged[kind] = json.loads(path.read_text()) if path.is_file() else {"error": f"exit code {codes[kind]}"}
    (out_dir / "train_log.json").write_text(json.dumps({"models": merged}, indent=1) + "\n")
    for kind in children:  # merged above; fewer files to carry back from a GPU machine
        (out_dir / f"train_log_{kind}.json").unlink(missing_ok=True)
    failed = [kind for kind, code in codes.items() if code != 0]
    if failed:
        log("both", f"failed: {', '.join(failed)} (exit codes {codes})")
        return 1
    log("both", f"done; logs in {out_dir / 'train_log.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    global SCRIPT_STARTED
    if argv is not None:  # called as a function (a test, a notebook): the budget counts from this call
        SCRIPT_STARTED = time.monotonic()
    parser_argv = list(sys.argv[1:] if argv is None else argv)
    log_name = "train_log.json"
    if "--_log-name" in parser_argv:  # set by train_both for its children
        at = parser_argv.index("--_log-name")
        log_name = parser_argv[at + 1]
        del parser_argv[at : at + 2]
    args = parse_args(parser_argv)
    if args.model == "both":
        return train_both(args)
    if args.workers is None:
        args.workers = _default_workers(1) if args.device.startswith("cuda") else 0
    record = train_model(args)
    out_dir = Path(args.out)
    payload = record if log_name != "train_log.json" else {"models": {args.model: record}}
    (out_dir / log_name).write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
