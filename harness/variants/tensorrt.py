"""The `tensorrt-fp16` and `tensorrt-int8` variants: the model compiled to a TensorRT engine by Torch-TensorRT.

The engine is built inside the run, on the GPU that is measured, and never cached or shipped: TensorRT
engines are specific to the TensorRT version and the GPU they were built on. The predictor's model is
compiled with `torch_tensorrt.compile(ir="dynamo")` for image batches from 1 up to the accuracy batch size
(optimised for the performance pass's batch size). `tensorrt-int8` first inserts calibrated quantize/dequantize
nodes with NVIDIA ModelOpt (`mtq.INT8_DEFAULT_CFG`, calibrated on `context["calibration"]`), which TensorRT
turns into int8 layers. Both need the optional extra `harness[tensorrt]` (tensorrt, torch-tensorrt; plus
nvidia-modelopt for int8); without it they are unavailable with that reason.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

from harness.variants import Variant, VariantUnavailable
from harness.variants.int8 import CALIBRATION_BATCH, capture_model_args

DEFAULT_MAX_BATCH = 64


def _missing(int8: bool) -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed here (pip install 'harness[tensorrt]', or use the NVIDIA PyTorch image)"
    try:
        import torch_tensorrt  # noqa: F401
    except ImportError:
        return "torch-tensorrt is not installed here (pip install torch-tensorrt matching this torch)"
    if int8:
        try:
            import modelopt.torch.quantization  # noqa: F401
        except ImportError:
            return "NVIDIA ModelOpt is not installed here (pip install nvidia-modelopt), needed for int8 calibration"
    return None


def _available_fp16(device: str) -> str | None:
    if not str(device).startswith("cuda"):
        return "TensorRT runs on NVIDIA GPUs; evaluate tensorrt-fp16 with --device cuda"
    return _missing(int8=False)


def _available_int8(device: str) -> str | None:
    if not str(device).startswith("cuda"):
        return "TensorRT runs on NVIDIA GPUs; evaluate tensorrt-int8 with --device cuda"
    return _missing(int8=True)


def _input_specs(example_args: tuple, max_batch: int) -> list[Any]:
    import torch
    import torch_tensorrt

    specs = []
    for arg in example_args:
        if not torch.is_tensor(arg):
            raise VariantUnavailable("the model takes non-tensor arguments; TensorRT engines take tensors")
        shape = tuple(arg.shape)
        if arg.dim() == 4:  # an image batch: engines for batch sizes 1..max_batch, tuned for this one
            specs.append(
                torch_tensorrt.Input(
                    min_shape=(1, *shape[1:]),
                    opt_shape=shape,
                    max_shape=(max(max_batch, shape[0]), *shape[1:]),
                    dtype=arg.dtype,
                )
            )
        else:
            specs.append(torch_tensorrt.Input(shape=shape, dtype=arg.dtype))
    return specs


def build_engine(predictor: Any, context: dict, int8: bool) -> dict[str, Any]:
    """Compile `predictor.model` with Torch-TensorRT (after ModelOpt calibration for int8), in place."""
    import torch
    import torch_tensorrt

    samples = list(context.get("sample_images") or [])
    if not samples:
        raise VariantUnavailable("no sample images to build the TensorRT engine with")
    batch_size = int(context.get("batch_size") or 1)
    opt_batch = (samples * batch_size)[:batch_size]
    with torch.no_grad():
        example_args, example_kwargs = capture_model_args(predictor, predictor.preprocess(opt_batch))
    if example_kwargs:
        raise VariantUnavailable("the model is called with keyword arguments; the TensorRT path takes positional ones")
    model = predictor.model
    max_batch = int(context.get("max_batch") or DEFAULT_MAX_BATCH)
    precisions = {torch.float16, torch.float32}
    info: dict[str, Any] = {
        "tensorrt": __import__("tensorrt").__version__,
        "torch_tensorrt": torch_tensorrt.__version__,
    }
    if int8:
        import modelopt.torch.quantization as mtq
        from modelopt.torch.quantization.utils import export_torch_mode

        calibration = list(context.get("calibration") or [])
        if not calibration:
            raise VariantUnavailable("no calibration images (the track's calibration split is empty or missing)")

        def forward_loop(candidate: Any) -> None:
            with torch.no_grad():
                for start in range(0, len(calibration), CALIBRATION_BATCH):
                    (args, _) = capture_model_args(
                        predictor, predictor.preprocess(calibration[start : start + CALIBRATION_BATCH])
                    )
                    candidate(*args)

        model = mtq.quantize(model, mtq.INT8_DEFAULT_CFG, forward_loop=forward_loop)
        precisions = {torch.int8, torch.float16, torch.float32}
        info["calibration_images"] = len(calibration)
        exporting = export_torch_mode()  # ModelOpt's quantizers export as TensorRT's Q/DQ nodes
    else:
        exporting = contextlib.nullcontext()
    with torch.no_grad(), exporting:
        compiled = torch_tensorrt.compile(
            model,
            ir="dynamo",
            arg_inputs=_input_specs(example_args, max_batch),
            enabled_precisions=precisions,
            min_block_size=1,
        )
    predictor.model = compiled
    info["serialized_bytes"] = _engine_bytes(compiled, example_args)
    return info


def _engine_bytes(compiled: Any, example_args: tuple) -> int | None:
    """Size of the compiled program as Torch-TensorRT saves it (engines included)."""
    import torch_tensorrt

    with tempfile.TemporaryDirectory(prefix="harness-trt-") as tmp:
        path = os.path.join(tmp, "engine.ep")
        try:
            torch_tensorrt.save(compiled, path, arg_inputs=list(example_args))
        except Exception:
            return None
        return os.path.getsize(path)


def _apply(predictor: Any, context: dict, int8: bool) -> Any:
    info = build_engine(predictor, context, int8=int8)
    context.setdefault("info", {})["tensorrt"] = info
    if info.get("serialized_bytes"):
        context["info"]["serialized_bytes"] = info["serialized_bytes"]
    return predictor


def _apply_fp16(predictor: Any, context: dict) -> Any:
    return _apply(predictor, context, int8=False)


def _apply_int8(predictor: Any, context: dict) -> Any:
    return _apply(predictor, context, int8=True)


TENSORRT_FP16 = Variant(
    "tensorrt-fp16",
    "TensorRT engine (float16 layers allowed) built by Torch-TensorRT on the measured GPU",
    _apply_fp16,
    _available_fp16,
    reduced_precision=True,
)
TENSORRT_INT8 = Variant(
    "tensorrt-int8",
    "TensorRT engine with int8 layers from ModelOpt post-training calibration on a fixed split",
    _apply_int8,
    _available_int8,
    reduced_precision=True,
    needs_calibration=True,
)
