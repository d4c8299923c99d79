"""Device latency without the host: the model's forward captured once in a CUDA graph, its replays timed.

At batch 1 a small model on a large GPU is launch-bound: eager PyTorch spends most of each forward in the
host's Python and dispatcher (several times the GPU work: docs/BENCHMARKS.md has the H200 figures), and on a
shared host that time drifts from minute to minute. That is not what the model costs
the GPU, and it cannot be ranked. So on CUDA the device latency ("model only") times replays of the
forward's captured GPU work; the end-to-end latency still times the eager `predict`, host included.

A graph is used only when it reproduces the eager forward. It is captured on the timed input, then the
timed input's buffers are filled with a second input nobody can predict (the first plus fresh random
noise), the graph is replayed, and its output must equal the eager forward on that second input. A forward
that computes on the host (which a replay skips), branches on values, or returns a cached answer fails this
check, or fails to capture at all, and is timed eagerly with CUDA events instead; the reason is recorded.
The replay's output is poisoned before each checking replay, so a graph that leaves its output unwritten
(returning memory that the eager forward filled) cannot pass for one that computes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Graph replay and eager forward run the same kernels, so their outputs agree to the bit in practice; the
# tolerance only allows for kernels that accumulate in a non-deterministic order.
REPLAY_TOLERANCE = 1e-4  # largest ||replay - eager|| / max(||eager||, tiny) per output tensor


@dataclass
class GraphedForward:
    """A captured forward: `replay()` re-runs its GPU work on the buffers it was captured with, and
    `output` holds what the latest replay computed."""

    graph: Any
    output: Any

    def replay(self) -> Any:
        self.graph.replay()
        return self.output


def _tensors(tree: Any) -> list[Any]:
    import torch
    from torch.utils._pytree import tree_flatten

    return [leaf for leaf in tree_flatten(tree)[0] if isinstance(leaf, torch.Tensor)]


def second_input(inputs: Any, seed: int | None = None) -> Any:
    """A different input of the same structure, shapes and dtypes: floating tensors plus random noise of
    their own scale (seeded from the OS unless `seed` is given, so that a model cannot know it in advance);
    integer tensors shifted by one, wrapping within their observed range."""
    import torch
    from torch.utils._pytree import tree_map

    generator = torch.Generator(device="cpu")
    generator.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1 if seed is None else seed)

    def change(leaf: Any) -> Any:
        if not isinstance(leaf, torch.Tensor) or leaf.numel() == 0:
            return leaf
        if leaf.is_floating_point():
            scale = float(leaf.float().std()) if leaf.numel() > 1 else 1.0
            noise = torch.randn(leaf.shape, generator=generator, dtype=torch.float32)
            return (leaf.float() + noise.to(leaf.device) * (scale or 1.0)).to(leaf.dtype)
        if leaf.dtype == torch.bool:
            return ~leaf
        low, high = int(leaf.min()), int(leaf.max())
        return ((leaf.long() - low + 1) % (high - low + 2) + low).to(leaf.dtype)

    return tree_map(change, inputs)


def outputs_match(got: Any, expected: Any, tolerance: float = REPLAY_TOLERANCE) -> str | None:
    """None when both output trees hold tensors of the same shapes and dtypes whose relative difference is
    within `tolerance`; otherwise what differs."""
    import torch
    from torch.utils._pytree import tree_flatten

    got_leaves, got_spec = tree_flatten(got)
    want_leaves, want_spec = tree_flatten(expected)
    if got_spec != want_spec:
        return "the replayed output has another structure than the eager output"
    for index, (a, b) in enumerate(zip(got_leaves, want_leaves, strict=True)):
        if not isinstance(b, torch.Tensor):
            if a != b:
                return f"output {index} is a host value ({type(b).__name__}) that a replay does not recompute"
            continue
        if not isinstance(a, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
            return f"output {index}: shape or dtype differs"
        a64, b64 = a.detach().double(), b.detach().double()
        nan_a, inf_a = torch.isnan(a64), torch.isinf(a64)
        if not torch.equal(nan_a, torch.isnan(b64)) or not torch.equal(inf_a, torch.isinf(b64)):
            return f"output {index}: non-finite values at other places"
        if not torch.equal(a64[inf_a], b64[inf_a]):
            return f"output {index}: infinities of other signs"
        finite = ~(nan_a | inf_a)
        a64, b64 = a64[finite], b64[finite]
        diff = float(torch.linalg.vector_norm(a64 - b64))
        norm = float(torch.linalg.vector_norm(b64))
        if diff > tolerance * max(norm, 1e-12):
            return f"output {index}: relative difference {diff / max(norm, 1e-12):.2e} > {tolerance:.0e}"
    return None


def poison(tree: Any) -> list[tuple[Any, Any]]:
    """Overwrite every output tensor with values no forward computes by accident (NaN; integers plus one;
    booleans inverted), so that a replay that does not write its whole output is caught. Returns what was
    there, for `restore` (an output may alias a model's own tensor)."""
    import torch

    saved = []
    for tensor in _tensors(tree):
        saved.append((tensor, tensor.clone()))
        if tensor.is_floating_point() or tensor.is_complex():
            tensor.fill_(float("nan"))
        elif tensor.dtype == torch.bool:
            tensor.logical_not_()
        else:
            tensor.add_(1)
    return saved


def restore(saved: list[tuple[Any, Any]]) -> None:
    for tensor, value in saved:
        tensor.copy_(value)


def _cloned(tree: Any) -> Any:
    import torch
    from torch.utils._pytree import tree_map

    return tree_map(lambda leaf: leaf.clone() if isinstance(leaf, torch.Tensor) else leaf, tree)


def capture_forward(
    forward: Callable[[Any], Any], inputs: Any, warmup: int = 3
) -> tuple[GraphedForward | None, str | None]:
    """Capture `forward(inputs)` in a CUDA graph and check that replays reproduce the eager forward.

    Returns (graph, None), or (None, why not) when the forward cannot be captured or its replay is not
    faithful; then the caller times the forward eagerly. `inputs` are the timed input (CUDA tensors in any
    nesting of lists, tuples and dicts); their buffers are reused by the graph and restored before return."""
    import torch

    tensors = _tensors(inputs)
    if not tensors or not all(t.is_cuda for t in tensors):
        return None, "the forward's inputs are not all CUDA tensors (a replay would not see new inputs)"
    originals = [t.clone() for t in tensors]
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # as torch.cuda.graphs recommends: warm up on a side stream
            for _ in range(warmup):
                forward(inputs)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        # thread_local: only this thread's calls are checked during the capture (decoding threads of the
        # accuracy pass may still be alive; they do not touch CUDA, and must not spoil the capture).
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            output = forward(inputs)
        torch.cuda.synchronize()
    except Exception as exc:  # any capture failure means: time it eagerly
        torch.cuda.synchronize()  # a failed capture leaves no error behind; if it did, this raises it here
        return None, f"capture failed: {type(exc).__name__}: {_first_line(exc)}"
    captured = GraphedForward(graph, output)

    def replay_matches(expected: Any) -> str | None:
        # The eager result is copied before the replay (its memory could be what the graph returns), and the
        # replay's output is poisoned first: a graph that does not recompute it is caught either way.
        expected = _cloned(expected)
        saved = poison(captured.output)
        captured.replay()
        torch.cuda.synchronize()
        problem = outputs_match(captured.output, expected)
        if problem is not None:
            restore(saved)
        return problem

    try:
        probe = second_input(inputs)
        expected = forward(probe)
        for buffer, value in zip(tensors, _tensors(probe), strict=True):
            buffer.copy_(value)
        problem = replay_matches(expected)
        for buffer, value in zip(tensors, originals, strict=True):
            buffer.copy_(value)
        if problem is None:
            problem = replay_matches(forward(inputs))
    except Exception as exc:
        for buffer, value in zip(tensors, originals, strict=True):
            buffer.copy_(value)
        return None, f"replay check failed: {type(exc).__name__}: {_first_line(exc)}"
    if problem is not None:
        return None, f"the replay does not reproduce the eager forward ({problem})"
    return captured, None


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:limit]
