"""The `onnxruntime` variant: the predictor's forward step exported to ONNX and run by ONNX Runtime.

The export traces `predictor.forward` on what `predictor.preprocess` makes of real sample images, so the
graph sees exactly the inputs it will get. Nested inputs and outputs (lists of images, dicts of boxes) are
flattened to ONNX's flat tensor lists and rebuilt afterwards. Image batches get a dynamic batch, height and
width (fixed height and width where an operator only exports so); a forward that takes a list of images
is exported for one image and run once per image. Before it
is used, the exported graph must reproduce PyTorch's outputs on the samples (also at another batch size);
a model that cannot be exported, or whose export computes something else, makes the variant unavailable
with the exporter's reason.

On `--device cuda` ONNX Runtime's CUDA execution provider is required (a CPU fallback would time the wrong
hardware under a GPU label); on the CPU it runs with the run's thread count.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.measure.latency import describe_briefly
from harness.variants import Variant, VariantUnavailable

OPSET = 17
# Exported graphs must match PyTorch within these (float32 end to end; only kernel order differs).
RTOL = 1e-3
ATOL_FRACTION = 1e-3  # of the largest magnitude of each output


def _available(device: str) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu for CUDA)"
    if str(device).startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        return (
            "this onnxruntime has no CUDAExecutionProvider (it has "
            f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu built for this CUDA "
            "version, or evaluate onnxruntime with --device cpu"
        )
    return None


@dataclass
class OnnxGraph:
    """An exported forward step: the ONNX bytes and how to map nested inputs/outputs to flat tensor lists."""

    model_bytes: bytes
    input_spec: Any  # pytree spec of the exported (possibly one-image) input
    output_spec: Any
    per_image: bool  # the forward takes a list of images: run once per image, concatenate the output lists
    exporter: str
    dynamic_image_size: bool  # False: exported for the sample's height and width only


class _FlatForward:
    """`forward` as a function of flat tensors returning flat tensors (what ONNX exporters trace)."""

    def __init__(self, forward: Callable[[Any], Any], input_spec: Any):
        self.forward = forward
        self.input_spec = input_spec
        self.output_spec: Any = None

    def __call__(self, *leaves: Any) -> tuple:
        from torch.utils._pytree import tree_flatten, tree_unflatten

        out_leaves, self.output_spec = tree_flatten(self.forward(tree_unflatten(list(leaves), self.input_spec)))
        return tuple(out_leaves)


def _dynamic_axes(leaves: list[Any], prefix: str, spatial: bool) -> dict[str, dict[int, str]]:
    """Dynamic batch for image batches, and (when `spatial`) dynamic height and width."""
    axes = {}
    for i, leaf in enumerate(leaves):
        if leaf.dim() == 4:  # an image batch N x C x H x W
            axes[f"{prefix}{i}"] = {0: "batch", **({2: f"{prefix}{i}_h", 3: f"{prefix}{i}_w"} if spatial else {})}
        elif leaf.dim() == 3 and spatial:  # one image C x H x W
            axes[f"{prefix}{i}"] = {1: f"{prefix}{i}_h", 2: f"{prefix}{i}_w"}
        elif leaf.dim() >= 1 and prefix.startswith("output"):
            axes[f"{prefix}{i}"] = {d: f"{prefix}{i}_d{d}" for d in range(leaf.dim())}
    return axes


def export_forward(predictor: Any, inputs: Any) -> OnnxGraph:
    """Export `predictor.forward` at `inputs` (preprocessed) to ONNX; raises `VariantUnavailable` when the
    exporters cannot."""
    import torch
    from torch.utils._pytree import tree_flatten

    per_image = isinstance(inputs, list | tuple) and len(inputs) > 1 and all(torch.is_tensor(x) for x in inputs)
    if per_image:
        inputs = type(inputs)(inputs[:1])
    leaves, input_spec = tree_flatten(inputs)
    if not leaves or not all(torch.is_tensor(leaf) for leaf in leaves):
        raise VariantUnavailable("the forward step's inputs are not (nested) tensors; ONNX export needs tensors")
    flat = _FlatForward(predictor.forward, input_spec)

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = predictor.model  # registered so the exporter sees the weights as initialisers

        def forward(self, *xs: Any) -> tuple:
            return flat(*xs)

    # Eval mode on the wrapper too: exporters restore the wrapper's mode afterwards, recursively, and a
    # wrapper left in training mode would switch the predictor's model to training (batch-norm statistics).
    wrapper = Wrapper().eval()
    with torch.no_grad():
        sample_out = wrapper(*leaves)
    if not sample_out or not all(torch.is_tensor(x) for x in sample_out):
        raise VariantUnavailable("the forward step returns something other than (nested) tensors")
    input_names = [f"input_{i}" for i in range(len(leaves))]
    output_names = [f"output_{i}" for i in range(len(sample_out))]
    buffer = io.BytesIO()
    errors = []
    # Dynamic image sizes first; some operators (adaptive pooling to a size other than 1) only export for
    # fixed sizes, so fixed height and width (batch still dynamic) come next.
    attempts = [("torchscript", True), ("torchscript", False), ("dynamo", True)]
    for exporter, spatial in attempts:
        axes = {**_dynamic_axes(leaves, "input_", spatial), **_dynamic_axes(list(sample_out), "output_", spatial)}
        try:
            with torch.no_grad():
                if exporter == "torchscript":
                    torch.onnx.export(
                        wrapper,
                        tuple(leaves),
                        buffer,
                        dynamo=False,
                        opset_version=OPSET,
                        input_names=input_names,
                        output_names=output_names,
                        dynamic_axes=axes,
                    )
                else:
                    program = torch.onnx.export(
                        wrapper,
                        tuple(leaves),
                        dynamo=True,
                        input_names=input_names,
                        output_names=output_names,
                        dynamic_axes=axes,
                    )
                    buffer = io.BytesIO()
                    program.save(buffer)
            return OnnxGraph(buffer.getvalue(), input_spec, flat.output_spec, per_image, exporter, spatial)
        except Exception as exc:
            predictor.model.eval()
            sizes = "dynamic" if spatial else "fixed"
            errors.append(f"{exporter} exporter ({sizes} image sizes): {describe_briefly(exc)}")
            buffer = io.BytesIO()
    raise VariantUnavailable("the model cannot be exported to ONNX: " + "; ".join(errors))


class OrtForward:
    """Runs an `OnnxGraph` with ONNX Runtime and returns the same nested structure as the PyTorch forward."""

    def __init__(self, graph: OnnxGraph, device: str, threads: int, profiling_prefix: str | None = None):
        import onnxruntime as ort
        import torch

        self.graph = graph
        self.device = torch.device(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        if profiling_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profiling_prefix
        if self.device.type == "cuda":
            index = self.device.index or 0
            providers: list[Any] = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(graph.model_bytes, options, providers=providers)
        self.providers = self.session.get_providers()
        self.input_names = [i.name for i in self.session.get_inputs()]

    def _run_one(self, inputs: Any) -> Any:
        import torch
        from torch.utils._pytree import tree_flatten, tree_unflatten

        leaves, _ = tree_flatten(inputs)
        feeds = {name: leaf.detach().cpu().numpy() for name, leaf in zip(self.input_names, leaves, strict=True)}
        outputs = self.session.run(None, feeds)
        tensors = [torch.from_numpy(np.ascontiguousarray(out)).to(self.device) for out in outputs]
        return tree_unflatten(tensors, self.graph.output_spec)

    def __call__(self, inputs: Any) -> Any:
        if not self.graph.per_image:
            return self._run_one(inputs)
        merged: list[Any] = []
        for image in inputs:
            merged.extend(self._run_one(type(inputs)([image])))
        return merged


def _max_relative_error(expected: Any, got: Any) -> float:
    import torch
    from torch.utils._pytree import tree_flatten

    want, _ = tree_flatten(expected)
    have, _ = tree_flatten(got)
    if len(want) != len(have):
        return float("inf")
    worst = 0.0
    for a, b in zip(want, have, strict=True):
        if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.shape != b.shape:
            return float("inf")
        a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
        if a64.numel() == 0:
            continue
        scale = float(a64.abs().max()) or 1.0
        excess = ((a64 - b64).abs() - RTOL * a64.abs()) / scale
        worst = max(worst, float(excess.max()))
    return worst


def _apply(predictor: Any, context: dict) -> Any:
    import torch

    samples = list(context.get("sample_images") or [])
    if not samples:
        raise VariantUnavailable("no sample images to export the model with")
    batch = samples[:2] if len(samples) >= 2 else samples * 2
    with torch.no_grad():
        inputs = predictor.preprocess(batch)
        expected = predictor.forward(inputs)
        graph = export_forward(predictor, inputs)
        runner = OrtForward(graph, context.get("device", "cpu"), int(context.get("threads", 1)))
        error = _max_relative_error(expected, runner(inputs))
        # Another batch size than the exported one: dynamic axes must really be dynamic.
        single_inputs = predictor.preprocess(batch[:1])
        error = max(error, _max_relative_error(predictor.forward(single_inputs), runner(single_inputs)))
    if error > ATOL_FRACTION:
        raise VariantUnavailable(
            f"the ONNX export computes something else than the PyTorch model (largest error {error:.2e} of the "
            f"output's range, allowed {ATOL_FRACTION:.0e}); a shape or control flow was frozen at export"
        )
    predictor.forward = runner
    predictor.onnx_graph = graph
    context.setdefault("info", {})["onnxruntime"] = {
        "exporter": graph.exporter,
        "opset": OPSET,
        "providers": runner.providers,
        "per_image": graph.per_image,
        "dynamic_image_size": graph.dynamic_image_size,
        "max_error_vs_torch": error,
    }
    context["info"]["serialized_bytes"] = len(graph.model_bytes)
    return predictor


ONNXRUNTIME = Variant(
    "onnxruntime",
    "forward exported to ONNX and run by ONNX Runtime (CUDA provider on GPU, CPU provider on CPU)",
    _apply,
    _available,
)
