"""Per-layer-type time breakdown of a model: where the milliseconds of one inference go (sandbox side; the
host side is `harness.service.layers`).

`profile_forward` times the forward step under `torch.profiler` and adds up the *self* time of every
operator (so nothing is counted twice) by category: convolution, linear/matmul, activation,
normalization, pooling, upsampling, elementwise, other. On CUDA the self time is the GPU time of the
kernels an operator launched; on the CPU its CPU time. For the `onnxruntime` variant, whose graph torch
cannot see into, ONNX Runtime's own profiler gives the time per ONNX node type instead.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

CATEGORIES = (
    "convolution",
    "linear/matmul",
    "activation",
    "normalization",
    "pooling",
    "upsampling",
    "elementwise",
    "other",
)

# Matched, in this order, against the operator's name without namespace, lower case. Works for aten ops
# (`aten::mkldnn_convolution`), quantized ops (`quantized::conv2d_relu`, `onednn::qconv2d_pointwise`),
# Inductor/Triton kernels (`triton_poi_fused_convolution_relu_0`) and ONNX node types (`Conv`, `Gemm`).
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("convolution", re.compile(r"conv(?!ert)")),
    ("linear/matmul", re.compile(r"(?<!bi)(?<!tri)linear|addmm|matmul|gemm|(^|_)b?mm($|_)|einsum|bmm")),
    ("normalization", re.compile(r"batch_?norm|layer_?norm|group_?norm|instance_?norm|rms_?norm|normalization")),
    ("pooling", re.compile(r"pool")),
    ("upsampling", re.compile(r"upsample|interpolate|resize|grid_sampl|pixel_shuffle")),
    (
        "activation",
        re.compile(r"relu|gelu|silu|sigmoid|tanh|hardswish|hardtanh|elu|softmax|mish|clamp|clip|swish|prelu"),
    ),
    (
        "elementwise",
        re.compile(
            r"^(add|sub|mul|div|pow|sqrt|rsqrt|exp|log|neg|abs|where|maximum|minimum|copy|to|_to_copy|fill|"
            r"cast|sum|mean|quantize|dequantize|quantize_per_tensor|round|floor|ceil)(_|$)|^(add|mul|sub|div)"
        ),
    ),
]


def categorize(*op_names: str) -> str:
    """The layer-type category of an operator or kernel name. Given the chain of operators an operator ran
    inside (outermost first), the outermost one that names a layer type decides: the `copy_` inside a
    convolution's im2col is convolution time, a top-level `copy_` is elementwise."""
    for op_name in op_names:
        base = op_name.split("::")[-1].strip().lower().lstrip("_")
        for category, pattern in _RULES:
            if pattern.search(base):
                return category
    return "other"


def _aggregate(times_us: dict[tuple[str, ...], float], calls: int) -> dict[str, float]:
    per_category = dict.fromkeys(CATEGORIES, 0.0)
    for chain, us in times_us.items():
        per_category[categorize(*chain)] += us / 1000.0 / calls
    return {k: round(v, 6) for k, v in per_category.items()}


def _chain(event: Any) -> tuple[str, ...]:
    """The names of the operators `event` ran inside, outermost first, ending with its own."""
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    return tuple(reversed(names))


def profile_forward(predictor: Any, inputs: Any, device: str, iterations: int = 20, warmup: int = 5) -> dict:
    """Milliseconds per forward call by category, and the top operators, for `predictor.forward(inputs)`."""
    if getattr(predictor, "onnx_graph", None) is not None:
        return _profile_onnxruntime(predictor, inputs, device, iterations, warmup)
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = str(device).startswith("cuda")
    with torch.inference_mode():
        for _ in range(warmup):
            predictor.forward(inputs)
        if cuda:
            torch.cuda.synchronize()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            for _ in range(iterations):
                predictor.forward(inputs)
            if cuda:
                torch.cuda.synchronize()
    times: dict[tuple[str, ...], float] = {}
    for event in prof.events():
        if str(getattr(event, "device_type", "")).endswith("CUDA"):
            continue  # kernels are counted through the operators that launched them
        us = _self_device_us(event) if cuda else float(event.self_cpu_time_total)
        if us > 0:
            chain = _chain(event)
            times[chain] = times.get(chain, 0.0) + us
    return _result(times, iterations, "torch.profiler (self " + ("GPU" if cuda else "CPU") + " time)")


def _self_device_us(event: Any) -> float:
    for attr in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, attr):
            return float(getattr(event, attr))
    return 0.0


def _profile_onnxruntime(predictor: Any, inputs: Any, device: str, iterations: int, warmup: int) -> dict:
    from harness.variants.onnxrt import OrtForward

    threads = getattr(predictor.forward, "session", None)
    threads = threads.get_session_options().intra_op_num_threads if threads is not None else 1
    with tempfile.TemporaryDirectory(prefix="harness-ortprof-") as tmp:
        runner = OrtForward(predictor.onnx_graph, device, threads, profiling_prefix=str(Path(tmp) / "ort"))
        for _ in range(warmup + iterations):
            runner(inputs)
        trace = json.loads(Path(runner.session.end_profiling()).read_text())
    runs = warmup + iterations
    times: dict[tuple[str, ...], float] = {}
    for event in trace:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            op = (str(event.get("args", {}).get("op_name", "?")),)
            times[op] = times.get(op, 0.0) + float(event.get("dur", 0.0))
    return _result(times, runs, "onnxruntime profiler (node kernel time)")


def _result(times: dict[tuple[str, ...], float], calls: int, source: str) -> dict:
    by_outer: dict[str, tuple[str, float]] = {}  # outermost operator -> (category, us)
    for chain, us in times.items():
        category, total = by_outer.get(chain[0], (categorize(*chain), 0.0))
        by_outer[chain[0]] = (category, total + us)
    top = sorted(by_outer.items(), key=lambda kv: -kv[1][1])[:15]
    return {
        "layers": _aggregate(times, calls),
        "top_ops": [
            {"op": name, "category": category, "ms": round(us / 1000.0 / calls, 6)} for name, (category, us) in top
        ],
        "iterations": calls,
        "source": source,
    }
