"""The `compile` variant: the predictor's forward step through `torch.compile` (TorchInductor, default mode).

Compilation happens on the first calls (the accuracy pass and the warm-up of the performance pass). A
recompilation while latency is being timed would put compile time into the samples, so it is an error there:
`no_recompilation()` is entered around the timed repeats and makes Dynamo raise instead of recompiling. Dynamo
is also told to fail rather than silently fall back to eager when its recompile limit is hit, so a run
labelled `compile` never measures the uncompiled model.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.variants import Variant

RECOMPILE_LIMIT = 64  # compiled versions of one frame before the run fails (Dynamo's default: 8)


def available(device: str) -> str | None:
    import torch

    if str(device).startswith("cuda"):
        from torch.utils._triton import has_triton

        if not has_triton():
            return "torch.compile on CUDA needs Triton, which is not installed with this torch"
        return None
    if not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        return "torch.compile on CPU (TorchInductor) needs a C++ compiler (g++ or clang++); none is on PATH"
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    return None


def compile_predictor(predictor: Any, backend: str = "inductor", mode: str | None = None) -> Any:
    """Replace `predictor.forward` by its compiled form; `preprocess` and `postprocess` stay eager."""
    import torch
    import torch._dynamo

    torch._dynamo.config.fail_on_recompile_limit_hit = True
    # Dynamo's default of 8 compiled versions per frame is too few for a detector: torchvision's `roi_align`
    # is compiled once per FPN level (`spatial_scale` is a specialised constant) and again for box counts it
    # specialises (no boxes, a new batch length): 9 versions after 7 batches of fasterrcnn_default
    # (TORCH_LOGS=recompiles), which failed its cross-check on the H200. Recompiling during timing stays an
    # error (`no_recompilation`).
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    predictor.forward = torch.compile(predictor.forward, backend=backend, mode=mode)
    return predictor


def _apply(predictor: Any, context: dict) -> Any:
    import torch._dynamo

    compiled = compile_predictor(predictor)
    context.setdefault("info", {})["compile"] = {
        "backend": "inductor",
        "mode": "default",
        "recompile_limit": torch._dynamo.config.recompile_limit,
    }
    return compiled


@contextmanager
def no_recompilation() -> Iterator[None]:
    """Within this block a Dynamo recompilation raises `torch._dynamo.exc.RecompileError`."""
    import torch._dynamo

    with torch._dynamo.config.patch(error_on_recompile=True):
        yield


COMPILE = Variant(
    "compile",
    "forward through torch.compile (TorchInductor); a recompilation during timing fails the run",
    _apply,
    available,
    timing_guard=no_recompilation,
)
