"""The built-in variants: fp32, fp16, bf16, channels-last."""

from __future__ import annotations

from typing import Any

from harness.variants import Variant


def _cuda_only(device: str) -> str | None:
    if not str(device).startswith("cuda"):
        return (
            "float16 inference is a GPU deployment target; CPU float16 kernels are emulated and their "
            "latency means nothing. Run with --device cuda"
        )
    return None


def _identity(predictor: Any, context: dict) -> Any:
    return predictor


def _to_dtype(dtype_name: str):
    def apply(predictor: Any, context: dict) -> Any:
        import torch

        dtype = getattr(torch, dtype_name)
        predictor.model.to(dtype)
        predictor.dtype = dtype
        return predictor

    return apply


def _channels_last(predictor: Any, context: dict) -> Any:
    import torch

    predictor.model.to(memory_format=torch.channels_last)
    original = predictor.preprocess

    def preprocess(images):
        inputs = original(images)
        if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
            return inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    predictor.preprocess = preprocess
    return predictor


FP32 = Variant("fp32", "the submission as built, float32", _identity)
FP16 = Variant("fp16", "weights and inputs in float16", _to_dtype("float16"), _cuda_only, reduced_precision=True)
BF16 = Variant("bf16", "weights and inputs in bfloat16", _to_dtype("bfloat16"), reduced_precision=True)
CHANNELS_LAST = Variant("channels-last", "NHWC memory format for 4-D tensors", _channels_last)
