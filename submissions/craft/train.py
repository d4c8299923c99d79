"""Train the compact CRAFT from scratch on the synthetic scene-text stream, within a wall-time budget.

    python submissions/craft/train.py --out DIR --max-minutes 8 --device cuda

Samples are generated on the fly by `harness.datasets.scenetext` (split `train`, indices 0, 1, 2, …) in
DataLoader workers, with their region/affinity Gaussian targets at half resolution and a loss weight of 0
inside don't-care (`###`) words. Loss: per image and per map, the mean squared error over positive pixels
(target > 0.1) plus the mean over the hardest negatives, three per positive (at least 1,000) — the paper's
online hard-negative mining, balancing positives and negatives. AdamW with a short warm-up and a cosine decay
fitted to the time budget (the schedule follows elapsed time, so the run ends on time whatever the speed);
bf16 autocast and channels-last on CUDA. The weights are saved (safetensors, fp32) every
`--save-every-minutes` and at the end, then the model is evaluated on the `val` split with the published
post-processing and an ICDAR2015-style IoU h-mean; everything is written to DIR/train_log.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from craft_ref.model import craft_compact  # noqa: E402
from craft_ref.predictor import MEAN, STD, CraftPredictor  # noqa: E402
from craft_ref.quick_eval import iou_hmean  # noqa: E402
from craft_ref.targets import score_maps  # noqa: E402
from torch.utils.data import DataLoader, IterableDataset, get_worker_info  # noqa: E402

from harness.datasets.scenetext import generate_sample  # noqa: E402

WEIGHTS_NAME = "craft_compact.safetensors"


MAX_CONSECUTIVE_FAILURES = 20


def training_sample(split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image (H×W×3 uint8) and targets (3×H/2×W/2 uint8: region and affinity ×255, loss weight 0/1) of one
    sample; uint8 keeps the shared memory and the host-to-device copies small."""
    image, words = generate_sample(split, index)
    region, affinity, weight = score_maps(
        [w.chars for w in words if w.legible],
        image.shape[:2],
        ignore_quads=[w.quad for w in words if not w.legible],
    )
    maps = np.stack([np.rint(region * 255), np.rint(affinity * 255), weight]).astype(np.uint8)
    return image, maps


def collate_numpy(samples: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Stacks a batch as numpy arrays, which go back to the main process pickled rather than in /dev/shm."""
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def collate_tensors(samples: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, maps = collate_numpy(samples)
    return torch.from_numpy(images), torch.from_numpy(maps)


class SceneTextStream(IterableDataset):
    """Samples start, start+1, … of a split, dealt round-robin to the DataLoader workers."""

    def __init__(self, split: str = "train", start: int = 0) -> None:
        self.split = split
        self.start = start

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        index = self.start + worker
        failures = 0
        while True:
            try:
                sample = training_sample(self.split, index)
            except Exception as exc:  # one bad sample must not end a one-shot run; it is reported and skipped
                failures += 1
                print(f"[craft] skipped {self.split} sample {index}: {exc!r}", flush=True)
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise RuntimeError(f"{failures} consecutive training samples failed; last: {exc!r}") from exc
            else:
                failures = 0
                yield sample
            index += workers


cv2.setNumThreads(1)  # before any OpenCV call in this process, so no thread pool exists when workers start


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def shared_memory_free() -> int | None:
    """Free bytes in /dev/shm, where DataLoader workers put batches; None where it cannot be read."""
    try:
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return None


def default_workers() -> int:
    """CPU cores this process may use, less one for the training loop, at most 31."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 2
    return min(max(cores - 1, 1), 31)


def ohem_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    neg_ratio: float = 3.0,
    min_neg: int = 1000,
) -> torch.Tensor:
    """Mean over the batch of (mean positive squared error + mean of the hardest negatives' errors)."""
    loss = (pred - target).pow(2) * weight
    positive = (target > 0.1) & (weight > 0)
    negative = ~positive & (weight > 0)
    n_pos = positive.sum(dim=(1, 2)).float()
    pos_term = (loss * positive).sum(dim=(1, 2)) / n_pos.clamp(min=1)
    n_neg = negative.sum(dim=(1, 2)).float()
    k = torch.minimum(torch.clamp(n_pos * neg_ratio, min=float(min_neg)), n_neg)
    neg_sorted, _ = (loss * negative).flatten(1).sort(dim=1, descending=True)
    ranks = torch.arange(neg_sorted.shape[1], device=pred.device).unsqueeze(0)
    neg_term = (neg_sorted * (ranks < k.unsqueeze(1))).sum(dim=1) / k.clamp(min=1)
    return (pos_term + neg_term).mean()


def learning_rate(base: float, progress: float, iteration: int, warmup: int, final_fraction: float = 0.02) -> float:
    """Linear warm-up over `warmup` iterations, then cosine decay over the budget's progress (0..1)."""
    warm = min(1.0, (iteration + 1) / max(warmup, 1))
    cosine = final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return base * warm * cosine


def save_weights(model: torch.nn.Module, path: Path) -> int:
    """Atomically write the model's state dict (fp32, CPU) as safetensors; returns the file size."""
    from safetensors.torch import save_file

    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"model": "craft_ref.craft_compact", "format": "pt"})
    os.replace(tmp, path)
    return path.stat().st_size


def evaluate(model: torch.nn.Module, device: torch.device, samples: list, batch_size: int = 8) -> dict:
    """ICDAR2015-style IoU figures on (image, words) samples, with the published post-processing."""
    predictor = CraftPredictor(model.eval())
    predictor.device = device
    triples = []
    start = time.perf_counter()
    for i in range(0, len(samples), batch_size):
        chunk = samples[i : i + batch_size]
        images = [image for image, _ in chunk]
        with torch.inference_mode():
            outputs = predictor.postprocess(predictor.forward(predictor.preprocess(images)), images)
        for (_, words), out in zip(chunk, outputs, strict=True):
            triples.append(([w.quad for w in words], [w.legible for w in words], list(out.polygons)))
    score = iou_hmean(triples)
    return {
        "images": len(samples),
        "precision": round(score.precision, 4),
        "recall": round(score.recall, 4),
        "hmean": round(score.hmean, 4),
        "matched": score.matched,
        "ground_truths": score.ground_truths,
        "detections": score.detections,
        "eval_seconds": round(time.perf_counter() - start, 2),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the weights and train_log.json")
    parser.add_argument("--max-minutes", type=float, default=8.0, help="wall-time budget of the whole run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--warmup-iters", type=int, default=300)
    parser.add_argument("--workers", type=int, default=None, help="data workers (default: CPU cores - 1)")
    parser.add_argument("--max-iters", type=int, default=0, help="stop after this many iterations (0: time only)")
    parser.add_argument("--val-count", type=int, default=50, help="val images for the final evaluation")
    parser.add_argument("--reserve-seconds", type=float, default=40.0, help="budget kept for the final save+eval")
    parser.add_argument("--save-every-minutes", type=float, default=2.0)
    parser.add_argument(
        "--no-eval-at-saves",
        dest="eval_at_saves",
        action="store_false",
        help="skip the val evaluation at each periodic save (it costs a few seconds on a GPU)",
    )
    parser.add_argument("--log-every-seconds", type=float, default=15.0)
    parser.add_argument("--start-index", type=int, default=0, help="first train sample index")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads of the main process")
    parser.add_argument(
        "--no-shared-memory",
        action="store_true",
        help="send batches through pipes, not /dev/shm (chosen by itself when /dev/shm is small)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.time()
    budget = args.max_minutes * 60.0
    train_budget = max(budget - args.reserve_seconds, 1.0)
    args.out.mkdir(parents=True, exist_ok=True)
    weights_path = args.out / WEIGHTS_NAME
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = args.workers if args.workers is not None else default_workers()
    print(f"[craft] device={device} workers={workers} batch={args.batch_size} budget={budget:.0f}s", flush=True)

    # Fail now, not in the workers, if the generator cannot run here (e.g. a Pillow without FreeType).
    probe_image, probe_maps = training_sample("train", args.start_index)
    prefetch = 4
    in_flight = workers * prefetch * args.batch_size * (probe_image.nbytes + probe_maps.nbytes)
    shm_free = shared_memory_free()
    use_shm = not args.no_shared_memory and (workers == 0 or shm_free is None or shm_free > 2 * in_flight)
    print(
        f"[craft] batches in flight: {in_flight / 2**20:.0f} MiB; /dev/shm free: "
        f"{'unknown' if shm_free is None else f'{shm_free / 2**20:.0f} MiB'}; "
        f"{'tensors in shared memory' if use_shm else 'numpy batches through pipes (small /dev/shm)'}",
        flush=True,
    )
    # Workers fork before CUDA is initialised in this process.
    loader = DataLoader(
        SceneTextStream("train", args.start_index),
        batch_size=args.batch_size,
        num_workers=workers,
        collate_fn=collate_tensors if use_shm else collate_numpy,
        pin_memory=cuda and use_shm,
        prefetch_factor=prefetch if workers > 0 else None,
        worker_init_fn=_worker_init if workers > 0 else None,
        timeout=180 if workers > 0 else 0,
        # Spawned, not forked: a fork after OpenCV's thread pool started can deadlock the workers (seen on the
        # GPU box: "DataLoader timed out after 180 seconds").
        multiprocessing_context="spawn" if workers > 0 else None,
        persistent_workers=workers > 0,
    )
    batches = iter(loader)
    val_samples = [generate_sample("val", i) for i in range(args.val_count)]

    torch.manual_seed(0)
    model = craft_compact().to(device)
    if cuda:
        torch.backends.cudnn.benchmark = True  # the training input shape never changes
        model = model.to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    print(
        f"[craft] compact CRAFT: {params:,} parameters; val set of {len(val_samples)} images ready "
        f"after {time.time() - started:.1f}s",
        flush=True,
    )

    history: list[dict] = []
    val_history: list[dict] = []
    iteration, lr_scale, restarts = 0, 1.0, 0
    loss_sum = torch.zeros((), device=device)
    loss_count, wait_seconds, last_log, last_save = 0, 0.0, time.time(), time.time()
    snapshot = None
    train_start = time.time()
    model.train()
    while True:
        elapsed = time.time() - started
        if elapsed >= train_budget or (args.max_iters and iteration >= args.max_iters):
            break
        progress = elapsed / train_budget
        if args.max_iters:
            progress = max(progress, iteration / args.max_iters)
        lr = learning_rate(args.lr, progress, iteration, args.warmup_iters) * lr_scale
        for group in optimizer.param_groups:
            group["lr"] = lr
        wait_start = time.time()
        images, maps = next(batches)
        wait_seconds += time.time() - wait_start
        if isinstance(images, np.ndarray):
            images, maps = torch.from_numpy(images), torch.from_numpy(maps)
        x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = (x - mean) / std
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        maps = maps.to(device, non_blocking=True).float()
        maps[:, :2] /= 255.0
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            out = model(x)
        out = out.float()
        loss = ohem_mse(out[:, 0], maps[:, 0], maps[:, 2]) + ohem_mse(out[:, 1], maps[:, 1], maps[:, 2])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        iteration += 1
        loss_sum += loss.detach()
        loss_count += 1

        now = time.time()
        if now - last_log >= args.log_every_seconds or iteration == 1 or iteration == args.max_iters:
            mean_loss = loss_sum.item() / loss_count
            if not math.isfinite(mean_loss):
                # Divergence: go back to the last good weights with half the learning rate.
                restarts += 1
                lr_scale *= 0.5
                if snapshot is not None:
                    model.load_state_dict(snapshot[0])
                    optimizer.load_state_dict(snapshot[1])
                print(
                    f"[craft] non-finite loss at iteration {iteration}; restored, lr scale {lr_scale}",
                    flush=True,
                )
            else:
                snapshot = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))
            run_seconds = now - train_start
            record = {
                "iteration": iteration,
                "seconds": round(now - started, 1),
                "loss": round(mean_loss, 5),
                "lr": round(lr, 7),
                "images_per_second": round(iteration * args.batch_size / max(run_seconds, 1e-6), 1),
                "data_wait_fraction": round(wait_seconds / max(run_seconds, 1e-6), 3),
            }
            history.append(record)
            print("[craft] " + " ".join(f"{k}={v}" for k, v in record.items()), flush=True)
            loss_sum.zero_()
            loss_count, last_log = 0, now
        if now - last_save >= args.save_every_minutes * 60 and snapshot is not None:
            save_weights(model, weights_path)
            print(f"[craft] saved {weights_path} at iteration {iteration}", flush=True)
            if args.eval_at_saves and val_samples:
                checkpoint_val = evaluate(model, device, val_samples)
                model.train()
                val_history.append(
                    {"iteration": iteration, "seconds": round(time.time() - started, 1), **checkpoint_val}
                )
                print(
                    f"[craft] val at iteration {iteration}: hmean={checkpoint_val['hmean']} "
                    f"precision={checkpoint_val['precision']} recall={checkpoint_val['recall']}",
                    flush=True,
                )
            last_save = time.time()

    train_seconds = time.time() - train_start
    if loss_count:
        history.append(
            {
                "iteration": iteration,
                "seconds": round(time.time() - started, 1),
                "loss": round(loss_sum.item() / loss_count, 5),
                "lr": round(lr, 7),
            }
        )
    del batches  # stops the workers
    weights_bytes = save_weights(model, weights_path)
    print(
        f"[craft] trained {iteration} iterations in {train_seconds:.0f}s; saved {weights_path} "
        f"({weights_bytes / 2**20:.2f} MiB)",
        flush=True,
    )
    val = evaluate(model, device, val_samples)
    print(
        f"[craft] val ({val['images']} images): precision={val['precision']} recall={val['recall']} "
        f"hmean={val['hmean']} (ICDAR2015 IoU > 0.5)",
        flush=True,
    )
    log = {
        "model": "craft_ref.craft_compact",
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "workers": workers,
        "parameters": params,
        "iterations": iteration,
        "samples": iteration * args.batch_size,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "divergence_restarts": restarts,
        "final_loss": history[-1]["loss"] if history else None,
        "history": history,
        "weights": str(weights_path),
        "weights_bytes": weights_bytes,
        "val_history": val_history,
        "val": val,
    }
    (args.out / "train_log.json").write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    print(f"[craft] wrote {args.out / 'train_log.json'} after {log['total_seconds']}s", flush=True)
    return log


if __name__ == "__main__":
    main()
