"""Model complexity measured by the harness itself: parameters, serialized bytes, dtypes, and MACs.

MACs follow the papers' convention: multiply-accumulates of convolutions (incl. transposed) and linear
layers only (torchvision mobilenet_v2 at 224x224 = 300.8 M, resnet50 = 4.09 G). They are counted with
forward hooks while the predictor runs on real inputs, so data-dependent work (detector proposals) is
counted as it happens; for such models the mean and std over a fixed image set are reported.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def count_params(model: Any) -> int:
    """Unique parameter tensors (shared weights counted once)."""
    seen: set[int] = set()
    total = 0
    for param in model.parameters():
        key = param.data_ptr() if param.numel() else id(param)
        if key in seen:
            continue
        seen.add(key)
        total += param.numel()
    return total


def serialized_bytes(model: Any) -> tuple[int, dict[str, int]]:
    """Size of the model's weights as stored, and elements per dtype.

    Float models: safetensors of the state dict (shared tensors once). Quantized models (quantized tensors,
    packed parameters) cannot be stored as safetensors: their size is that of the quantized state dict as
    `torch.save` writes it, so int8 weights count one byte per element plus their scales.
    """
    import torch
    from safetensors.torch import save

    state = model.state_dict()
    dtypes: dict[str, int] = {}
    for tensor in _tensors_in(list(state.values())):
        name = str(tensor.dtype).removeprefix("torch.")
        dtypes[name] = dtypes.get(name, 0) + tensor.numel()
    plain = all(isinstance(v, torch.Tensor) and not v.is_quantized for v in state.values())
    if plain and state:
        tensors: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        for name, tensor in state.items():
            ptr = tensor.data_ptr()
            if ptr and ptr in seen:
                continue
            seen.add(ptr)
            tensors[name] = tensor.detach().cpu().contiguous()
        return len(save(tensors)), dtypes
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes, dtypes


def _tensors_in(values: list[Any]) -> list[Any]:
    """Tensors in state-dict values, also inside the tuples that quantized modules pack their weights into."""
    import torch

    found = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, list | tuple):
            found.extend(_tensors_in(list(value)))
    return found


class MacCounter:
    """Forward hooks on conv and linear layers that add up multiply-accumulates per call."""

    def __init__(self, model: Any):
        import torch.nn as nn

        self.total = 0
        self._handles = []
        for module in model.modules():
            if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
                self._handles.append(module.register_forward_hook(self._conv))
            elif isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d):
                self._handles.append(module.register_forward_hook(self._conv_transpose))
            elif isinstance(module, nn.Linear):
                self._handles.append(module.register_forward_hook(self._linear))

    def _conv(self, module: Any, inputs: Any, output: Any) -> None:
        kernel = int(np.prod(module.kernel_size))
        self.total += output.numel() * (module.in_channels // module.groups) * kernel

    def _conv_transpose(self, module: Any, inputs: Any, output: Any) -> None:
        kernel = int(np.prod(module.kernel_size))
        self.total += inputs[0].numel() * (module.out_channels // module.groups) * kernel

    def _linear(self, module: Any, inputs: Any, output: Any) -> None:
        self.total += output.numel() * module.in_features

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> MacCounter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def count_macs(predictor: Any, images: Sequence[np.ndarray]) -> list[int]:
    """MACs of the predictor's model for each image, run one image at a time through `predict`."""
    per_image = []
    with MacCounter(predictor.model) as counter:
        for image in images:
            before = counter.total
            predictor.predict([image])
            per_image.append(counter.total - before)
    return per_image
