"""MACs and parameters as the harness counts them, for every torchvision classification model whose default input
is 224x224, against the figures torchvision publishes with its weights (`meta["_ops"]`, GMACs; `num_params`).

    .venv/bin/python scripts/bench_torchvision_macs.py [--models resnet50,vit_b_16]

Each model is built with `num_classes=1000` and random weights (nothing is downloaded), wrapped as a classifier
predictor, and measured by `harness.measure.complexity.measure` on one 224x224 image, as `harness check
--input-size 224` does. A model passes when its MACs are within 0.5 % of the published figure (or within the
rounding of its three decimals) and its parameters are equal. docs/BENCHMARKS.md holds the table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np


def models_at_224() -> list[str]:
    import torchvision

    names = []
    for name in torchvision.models.list_models(module=torchvision.models):
        weights = next(iter(torchvision.models.get_model_weights(name)))
        if weights.transforms().crop_size == [224] and "_ops" in weights.meta:
            names.append(name)
    return sorted(names)


def main() -> int:
    import torch
    import torchvision

    from harness.contract import wrap_classifier
    from harness.measure.complexity import measure

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: every 224x224 model)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    warnings.filterwarnings("ignore")
    names = [n for n in args.models.split(",") if n] or models_at_224()
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    print("| model | MACs (G) | published (G) | difference | params | published | result |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    start = time.perf_counter()
    for name in names:
        meta = next(iter(torchvision.models.get_model_weights(name))).meta
        model = torchvision.models.get_model(name, num_classes=1000).eval()
        found = measure(wrap_classifier(model, resize=None), [image])
        macs = found.macs_per_image[0] / 1e9
        published = float(meta["_ops"])
        difference = (macs - published) / published
        ok = (abs(difference) <= 0.005 or abs(macs - published) <= 0.0005) and found.params == meta["num_params"]
        failed += not ok
        print(
            f"| {name} | {macs:.4f} | {published:.3f} | {difference:+.3%} | {found.params:,} | "
            f"{meta['num_params']:,} | {'ok' if ok else 'DIFFERS'} |"
        )
    print(f"\n{len(names) - failed} of {len(names)} models agree; {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
