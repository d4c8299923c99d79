"""What fresh timed inputs cost a small model's forward, in process: the same input every call, a fresh input
preprocessed just before each call, the harness's own preparation before each call (`DevicePass.prepare` with
`AHEAD` = 1), and inputs made `AHEAD` at a time as the harness does.

    .venv/bin/python scripts/bench_timed_inputs.py [--submission gtsnet] [--blocks 8] [--calls 400]

One intra-op thread. The four ways are timed in interleaved blocks of `--calls` forward calls (timed with
`perf_counter_ns` around `forward` only); printed: the median over blocks of each block's median, in ms.
docs/BENCHMARKS.md ("Honest references before and after the new timing protocol") holds the figures.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def build(name: str):
    from harness.contract import BuildContext

    folder = ROOT / "submissions" / name
    sys.path.insert(0, str(folder))
    entries = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["entry-points"]
    module, attr = entries["harness.submissions"][name].split(":")
    return getattr(importlib.import_module(module), attr)(BuildContext(track="classification", num_classes=10))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submission", default="gtsnet")
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()

    import torch

    import harness.sandbox.timed as timed

    torch.set_num_threads(1)
    predictor = build(args.submission)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(64)]
    inputs = timed.TimedInputs.__new__(timed.TimedInputs)  # the pool given here instead of read from a split
    inputs.pool, inputs.batch_size, inputs.rng, inputs.made = images[:16], 1, np.random.default_rng(1), 0
    same = predictor.preprocess(images[:1])

    def block(prepare) -> float:
        samples = []
        for i in range(args.calls):
            x = prepare(i)
            start = time.perf_counter_ns()
            predictor.forward(x)
            samples.append(time.perf_counter_ns() - start)
        return float(np.median(samples)) / 1e6

    def harness_way(ahead: int):
        device = timed.DevicePass(predictor, inputs)

        def prepare(_: int):
            timed.AHEAD = ahead  # read by `prepare` when it makes the next inputs
            device.prepare()
            return device.current

        return prepare

    ahead = timed.AHEAD
    ways = {
        "same input": lambda i: same,
        "fresh, preprocessed just before": lambda i: predictor.preprocess([images[i % 64]]),
        "harness preparation, one at a time": harness_way(1),
        f"harness preparation, {ahead} at a time": harness_way(ahead),
    }
    results: dict[str, list[float]] = {name: [] for name in ways}
    with torch.inference_mode():
        for prepare in ways.values():  # warm-up
            block(prepare)
        for _ in range(args.blocks):
            for name, prepare in ways.items():
                results[name].append(block(prepare))
    for name, values in results.items():
        print(f"{name}: {np.median(values):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
