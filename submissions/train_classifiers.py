"""Train the classification track's reference submissions on a classification dataset's train split, on CPU.

For each model: build it with its submission package's `make_model()`, train it on the train split (20,000
images of `shapetex`, the default track's data since track version 3; random flips, rotation, scale and
shift), save the weights as safetensors, report top-1 on the val split (the split any choice is made on),
then load the weights back through the submission's own `build(ctx)` and measure top-1 on the test split,
once, at the end (no model selection on the test split). Writes `weights.safetensors` into the package
folder and `metrics.json` ({top1, val_top1, epochs, seconds, command, ...}) beside the submission's
pyproject.toml.

    PYTHONPATH=. python submissions/train_classifiers.py                      # all four, the recipes below
    PYTHONPATH=. python submissions/train_classifiers.py --models gtsnet --epochs 1 --out /tmp/smoke

`--out DIR` writes to DIR/<model>/ instead of the submissions (for trials); `--max-minutes` bounds each
model's training (it stops after the epoch that crosses the bound and says so).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SUBMISSIONS_DIR = Path(__file__).resolve().parent
EPOCHS_GTSNET, EPOCHS_SHUFFLENET, EPOCHS_MOBILENET, EPOCHS_GHOSTNET = 20, 25, 14, 20


@dataclass(frozen=True)
class Recipe:
    """How one model is trained (AdamW, one-cycle cosine schedule, label smoothing). The epochs were chosen to
    fit a CPU budget of about ten minutes of one thread per model on the 20,000 shapetex train images (one-epoch
    throughput: docs/training/classifiers_train_log.json), so the heavier models see fewer epochs; on the shared
    machine that trained the shipped weights the `--max-minutes` bound stopped some of them earlier (their
    metrics.json says after how many epochs)."""

    package: str
    epochs: int
    lr: float
    weight_decay: float = 0.05
    batch_size: int = 64
    label_smoothing: float = 0.1


RECIPES: dict[str, Recipe] = {
    "gtsnet": Recipe("gtsnet_ref", epochs=EPOCHS_GTSNET, lr=4e-3),
    "shufflenet_v2_x0_5": Recipe("shufflenet_v2_x0_5_ref", epochs=EPOCHS_SHUFFLENET, lr=4e-3),
    "mobilenet_v2": Recipe("mobilenet_v2_ref", epochs=EPOCHS_MOBILENET, lr=2e-3),
    "ghostnet": Recipe("ghostnet_ref", epochs=EPOCHS_GHOSTNET, lr=4e-3),
}


def import_submission(name: str) -> ModuleType:
    """The submission's package, from its folder (installed or not)."""
    folder = str(SUBMISSIONS_DIR / name)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(RECIPES[name].package)


def random_affine(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip left-right half of an N×3×32×32 batch in [0, 1], then rotate each image ±12°, scale it 0.9–1.1
    and shift it ±2 px; the uncovered border repeats the edge pixels."""
    n = batch.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip.view(n, 1, 1, 1), batch.flip(-1), batch)

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-12.0, 12.0) * math.pi / 180.0
    scale = uniform(0.9, 1.1)
    shift = 2.0 * 2.0 / batch.shape[-1]  # 2 px in the [-1, 1] coordinates of affine_grid
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)


def normalise(batch01: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """The same normalisation as the submission's predictor (`wrap_classifier(model, mean, std)`)."""
    return (batch01 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def train_one(
    model: nn.Module,
    recipe: Recipe,
    images: np.ndarray,
    labels: np.ndarray,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    epochs: int,
    max_seconds: float,
    seed: int,
) -> int:
    """Train in place; returns the number of epochs done."""
    generator = torch.Generator().manual_seed(seed)
    inputs01 = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    targets = torch.from_numpy(labels)
    steps_per_epoch = math.ceil(len(targets) / recipe.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=epochs * steps_per_epoch, pct_start=0.15
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(targets), generator=generator)
        loss_sum, correct = 0.0, 0
        for step in range(steps_per_epoch):
            idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            batch = normalise(random_affine(inputs01[idx], generator), mean, std)
            logits = model(batch)
            loss = criterion(logits, targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == targets[idx]).sum())
        elapsed = time.perf_counter() - start
        print(
            f"  epoch {epoch:3d}/{epochs}  loss {loss_sum / len(targets):.4f}  "
            f"train top-1 {correct / len(targets):.4f}  {elapsed:6.1f} s",
            flush=True,
        )
        if elapsed > max_seconds and epoch < epochs:
            print(f"  stopped after epoch {epoch}: the --max-minutes bound was reached", flush=True)
            return epoch
    return epochs


def top1_through_build(
    package: ModuleType, weights: Path, images: np.ndarray, labels: np.ndarray, num_classes: int
) -> float:
    """Top-1 of the predictor the submission's `build(ctx)` returns, fed uint8 RGB images as the harness
    does."""
    from harness.contract import BuildContext, wrap_classifier
    from harness.zoo.weights import load_weights

    if weights == Path(package.WEIGHTS):
        predictor = package.build(BuildContext(track="classification", num_classes=num_classes))
    else:  # a trial written elsewhere: the same steps as build(), with that weights file
        model = load_weights(package.make_model(num_classes), weights)
        predictor = wrap_classifier(model, package.MEAN, package.STD)
    correct = 0
    for start in range(0, len(labels), 64):
        outputs = predictor.predict(list(images[start : start + 64]))
        predicted = np.array([int(np.argmax(o.logits)) for o in outputs])
        correct += int((predicted == labels[start : start + 64]).sum())
    return correct / len(labels)


def load_dataset(name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (images, labels)} of a generated classification dataset; digits has no val split."""
    if name == "digits":
        from harness.datasets.digits import load_digits_split

        return {split: load_digits_split(split) for split in ("train", "test")}
    from harness.datasets.shapetex import load_shapetex_split

    return {split: load_shapetex_split(split) for split in ("train", "val", "test")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--dataset", choices=("shapetex", "digits"), default="shapetex")
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's epoch count")
    parser.add_argument("--max-minutes", type=float, default=12.0, help="bound on each model's training")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write to OUT/<model>/ instead")
    parser.add_argument("--val-only", action="store_true", help="trials: measure val top-1, leave test alone")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "submissions/train_classifiers.py", *(sys.argv[1:] if argv is None else argv)])
    data = load_dataset(args.dataset)
    sizes = ", ".join(f"{split} {len(labels)}" for split, (_, labels) in data.items())
    print(f"{args.dataset}: {sizes}; {args.threads} thread(s)", flush=True)
    summary = {name: train_and_record(name, args, data, f"PYTHONPATH=. {command}") for name in args.models}
    print("\nmodel                 val top-1  test top-1  epochs  seconds")
    for name, m in summary.items():
        print(f"{name:20s} {m['val_top1'] or 0:.4f}     {m['top1']:.4f}   {m['epochs']:6d}  {m['seconds']:7.1f}")
    return 0


def train_and_record(name: str, args: argparse.Namespace, data: dict, command: str) -> dict:
    """Train one model, save its weights, measure val then test top-1 once; write and return its metrics."""
    from safetensors.torch import save_file

    recipe = RECIPES[name]
    package = import_submission(name)
    (train_images, train_labels), (test_images, test_labels) = data["train"], data["test"]
    num_classes = int(train_labels.max()) + 1
    torch.manual_seed(args.seed)
    model = package.make_model(num_classes)
    params = sum(p.numel() for p in model.parameters())
    epochs = args.epochs or recipe.epochs
    print(f"{name}: {params:,} parameters, {epochs} epochs, lr {recipe.lr}", flush=True)
    start = time.perf_counter()
    mean, std = package.MEAN, package.STD
    done = train_one(model, recipe, train_images, train_labels, mean, std, epochs, args.max_minutes * 60.0, args.seed)
    seconds = time.perf_counter() - start
    if args.out is None:
        weights, metrics_path = Path(package.WEIGHTS), SUBMISSIONS_DIR / name / "metrics.json"
    else:
        (args.out / name).mkdir(parents=True, exist_ok=True)
        weights, metrics_path = args.out / name / "weights.safetensors", args.out / name / "metrics.json"
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    val_top1 = None
    if "val" in data:
        val_top1 = round(top1_through_build(package, weights, *data["val"], num_classes), 6)
        print(f"{name}: val top-1 {val_top1:.4f}", flush=True)
    if args.val_only:
        return {"top1": float("nan"), "val_top1": val_top1, "epochs": done, "seconds": round(seconds, 1)}
    top1 = top1_through_build(package, weights, test_images, test_labels, num_classes)
    metrics = {
        "dataset": args.dataset,
        "top1": round(top1, 6),
        "val_top1": val_top1,
        "epochs": done,
        "seconds": round(seconds, 1),
        "command": command,
        "params": params,
        "threads": args.threads,
        "seed": args.seed,
        "train_images": len(train_labels),
        "val_images": len(data["val"][1]) if "val" in data else 0,
        "test_images": len(test_labels),
        "weights_bytes": weights.stat().st_size,
        "torch": torch.__version__,
    }
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"{name}: test top-1 {top1:.4f} ({done} epochs, {seconds:.1f} s) -> {weights}", flush=True)
    return metrics


if __name__ == "__main__":
    sys.exit(main())
