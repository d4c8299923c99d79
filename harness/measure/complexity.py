"""Model complexity measured by the harness itself, from what a predictor actually computes and reads.

Everything is observed at PyTorch's dispatcher (a `TorchDispatchMode` around `predict`), below any Python a
submission writes, so how the model is written does not matter: modules or functional calls, weights registered
as parameters, as buffers, or held anywhere else.

MACs (multiply-accumulates, = FLOPs / 2, the papers' convention: torchvision mobilenet_v2 at 224x224 = 300.8 M,
resnet50 = 4.09 G, vit_b_16 = 17.56 G) of: convolutions (incl. transposed, grouped), matrix products
(mm, addmm, bmm, baddbmm, mv, dot, ...: linear layers, einsum and matmul end up there), attention (scaled
dot-product attention, `nn.MultiheadAttention`'s and `nn.TransformerEncoderLayer`'s fused fast paths: the
projections and both attention products), FFTs (5 N log2 N real FLOPs per complex transform) and dot products
written out as an element-wise product reduced by a sum or mean (`(a * b).sum(-1)`). Element-wise work,
normalisation, pooling and resizing are not MACs. The whole `predict` is counted, so work moved out of
`forward` is counted too; detectors' data-dependent work is counted as it happens (mean and std over a fixed
image set).

Weights are the tensors that exist before a call and are read during it (the bytes of storages that operators
read, each byte once; a warm-up call comes
first, so lazily built weights count): everything an operator computes with inside `forward` (views only look),
and what the matrix and convolution operators read in pre- and post-processing (a network run there). `params`
counts their elements whatever the dtype (int8 weights dequantized on the fly are parameters), except those read
only as batch-norm statistics, indices or masks; `bytes` counts every such storage's bytes. The call's own inputs
are not weights, nor are 0-d tensors (Python numbers in arithmetic reach the dispatcher as 0-d tensors that no
operator made).
"""

from __future__ import annotations

import io
import math
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FAMILIES = ("convolution", "matmul", "attention", "fft", "dot-product")
# Arguments that are read but are not parameters: batch-norm statistics, indices and masks (by schema name).
NOT_PARAMETERS = frozenset({"running_mean", "running_var", "indices", "index", "mask", "condition"})
# Operators that only view a tensor: they read nothing, so a weight is counted where it is computed with.
_VIEW_OPS = frozenset(
    {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "squeeze", "unsqueeze", "alias",
     "flatten", "unflatten", "slice", "select", "narrow", "as_strided", "detach", "unbind", "split",
     "split_with_sizes", "chunk", "movedim", "view_as", "expand_as", "lift_fresh"}
)  # fmt: skip
_REDUCTIONS = frozenset({"sum", "mean", "nansum"})
_SHAPE_OPS = frozenset(
    {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "squeeze", "unsqueeze", "clone",
     "contiguous", "alias", "flatten", "slice", "select", "narrow", "_to_copy"}
)  # fmt: skip


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape)


def _attention_macs(batch_heads: int, queries: int, keys: int, qk_dim: int, v_dim: int) -> int:
    return batch_heads * queries * keys * (qk_dim + v_dim)


def _mha_macs(query: Any, key: Any, embed_dim: int, num_heads: int) -> int:
    """`nn.MultiheadAttention`'s fused fast path: q, k, v projections, the two attention products, out projection."""
    q, k = _shape(query), _shape(key)
    batch = math.prod(q[:-2]) if len(q) > 2 else 1
    length, source = q[-2], k[-2]
    projections = batch * (length + 2 * source) * embed_dim * embed_dim + batch * length * embed_dim * embed_dim
    return projections + _attention_macs(batch, length, source, embed_dim, embed_dim)


def _encoder_layer_macs(args: tuple) -> int:
    src, embed_dim, num_heads = args[0], int(args[1]), int(args[2])
    ffn_weight_1 = args[14]
    tokens = math.prod(_shape(src)[:-1])
    return _mha_macs(src, src, embed_dim, num_heads) + 2 * tokens * embed_dim * int(_shape(ffn_weight_1)[0])


def _fft_macs(tensor: Any, dims: Sequence[int]) -> int:
    n = math.prod(_shape(tensor)[d] for d in dims) or 1
    return int(tensor.numel() * 5 * math.log2(n) / 2) if n > 1 else 0


def _sdpa_macs(query: Any, key: Any, value: Any) -> int:
    q, k, v = _shape(query), _shape(key), _shape(value)
    return _attention_macs(math.prod(q[:-2]), q[-2], k[-2], q[-1], v[-1])


# Operators the flop counter of torch.utils.flop_counter does not know (fused paths, vectors, FFTs):
# name -> (family, MACs from the call's arguments).
_EXTRA: dict[str, tuple[str, Any]] = {
    "_native_multi_head_attention": ("attention", lambda a, k: _mha_macs(a[0], a[1], int(a[3]), int(a[4]))),
    "_transformer_encoder_layer_fwd": ("attention", lambda a, k: _encoder_layer_macs(a)),
    "_scaled_dot_product_flash_attention_for_cpu": ("attention", lambda a, k: _sdpa_macs(a[0], a[1], a[2])),
    "_scaled_dot_product_fused_attention_overrideable": ("attention", lambda a, k: _sdpa_macs(a[0], a[1], a[2])),
    "_scaled_dot_product_attention_math": ("attention", lambda a, k: 0),  # decomposes into counted bmm
    "mv": ("matmul", lambda a, k: a[0].numel()),
    "addmv": ("matmul", lambda a, k: a[1].numel()),
    "dot": ("matmul", lambda a, k: a[0].numel()),
    "vdot": ("matmul", lambda a, k: a[0].numel()),
    "addbmm": ("matmul", lambda a, k: _shape(a[1])[0] * _shape(a[1])[1] * _shape(a[1])[2] * _shape(a[2])[2]),
    "_addmm_activation": ("matmul", lambda a, k: _shape(a[1])[0] * _shape(a[1])[1] * _shape(a[2])[1]),
    "_fft_r2c": ("fft", lambda a, k: _fft_macs(a[0], a[1])),
    "_fft_c2r": ("fft", lambda a, k: _fft_macs(a[0], a[1])),
    "_fft_c2c": ("fft", lambda a, k: _fft_macs(a[0], a[1])),
}


def _family(name: str) -> str:
    if "conv" in name:
        return "convolution"
    if "attention" in name:
        return "attention"
    return "matmul"


@dataclass
class Reads:
    """The byte ranges of one storage that operators read: all of them, and those read as parameters."""

    element_size: int = 1
    read: list[tuple[int, int]] = field(default_factory=list)
    parameters: list[tuple[int, int]] = field(default_factory=list)

    def add(self, start: int, end: int, parameter: bool, element_size: int) -> None:
        self.read.append((start, end))
        if parameter:
            self.parameters.append((start, end))
            self.element_size = element_size

    def merge(self, other: Reads) -> None:
        self.read += other.read
        self.parameters += other.parameters
        self.element_size = max(self.element_size, other.element_size)

    @property
    def read_bytes(self) -> int:
        return _covered(self.read)

    @property
    def parameter_elements(self) -> int:
        return _covered(self.parameters) // self.element_size


def _covered(ranges: list[tuple[int, int]]) -> int:
    """The length of the union of half-open ranges."""
    total, reach = 0, None
    for start, end in sorted(ranges):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def _byte_range(tensor: Any) -> tuple[int, int]:
    """The bytes of its storage a (possibly strided) tensor spans."""
    size = tensor.element_size()
    start = tensor.storage_offset() * size
    if tensor.numel() == 0:
        return start, start
    extent = sum((dim - 1) * abs(stride) for dim, stride in zip(tensor.shape, tensor.stride(), strict=True)) + 1
    return start, start + extent * size


@dataclass
class Trace:
    """What one traced call computed (MACs by family) and read (weight storages, by key)."""

    macs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAMILIES, 0))
    weights: dict[tuple, Reads] = field(default_factory=dict)
    outside_forward_macs: int = 0  # of the MACs, those computed in preprocess or postprocess
    own_cpu_s: float = 0.0  # CPU time of the calling thread during the call ...
    other_threads_cpu_s: float = 0.0  # ... and of every other thread of the process (work the tracer cannot see)

    @property
    def total_macs(self) -> int:
        return int(sum(self.macs.values()))


def _storage_key(tensor: Any) -> tuple | None:
    try:
        storage = tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None  # tensors without storage (sparse, nested, meta)
    return (str(tensor.device), storage.data_ptr())


def _tensors(values: Any) -> list[Any]:
    import torch

    found: list[Any] = []
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    return found


def _dispatch_mode() -> type:
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class ComputeTracer(TorchDispatchMode):
        """Counts MACs and records pre-existing tensors read, op by op, while active."""

        def __init__(self, trace: Trace) -> None:
            super().__init__()
            self.trace = trace
            self.in_forward = False
            self.produced: set[tuple] = set()
            self.inputs: set[tuple] = set()  # storages of the inputs `forward` is called with
            self.products: dict[int, tuple[weakref.ref, int]] = {}  # element-wise products, by id

        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            name = func._schema.name.split("::")[-1]
            if func.overloadpacket not in flop_registry and name not in _EXTRA:
                # A composite operator (conv2d, linear, einsum, matmul, ...): count what it decomposes into.
                with self:
                    decomposed = func.decompose(*args, **kwargs)
                if decomposed is not NotImplemented:
                    return decomposed
            out = func(*args, **kwargs)
            family, macs = self._macs(func, name, args, kwargs, out)
            self.trace.macs[family] += macs
            if not self.in_forward:
                self.trace.outside_forward_macs += macs
            if macs > 0 or (self.in_forward and name not in _VIEW_OPS):
                _record_reads(self.trace, (self.produced, self.inputs), func, args, kwargs)
            self._products(name, func, args, out)
            self._produced(args, kwargs, out)
            return out

        def _produced(self, args: tuple, kwargs: dict, out: Any) -> None:
            """Note the storages an operator made (not views or in-place results of its arguments' storages)."""
            read = {_storage_key(t) for t in _tensors(args) + _tensors(kwargs)}
            for tensor in _tensors(out):
                key = _storage_key(tensor)
                if key is not None and key not in read:
                    self.produced.add(key)

        def _macs(self, func: Any, name: str, args: tuple, kwargs: dict, out: Any) -> tuple[str, int]:
            packet = func.overloadpacket
            if packet in flop_registry:
                return _family(name), int(flop_registry[packet](*args, **kwargs, out_val=out)) // 2
            if name in _EXTRA:
                family, formula = _EXTRA[name]
                return family, int(formula(args, kwargs))
            if name in _REDUCTIONS and args and id(args[0]) in self.products:
                ref, elements = self.products.pop(id(args[0]))
                if ref() is args[0]:
                    return "dot-product", elements
            return "matmul", 0

        def _products(self, name: str, func: Any, args: tuple, out: Any) -> None:
            import torch

            if not isinstance(out, torch.Tensor):
                return
            if name in ("mul", "mul_") and len(args) == 2:
                a, b = args
                if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and min(a.numel(), b.numel()) > 1:
                    self.products[id(out)] = (weakref.ref(out), out.numel())
            elif name in _SHAPE_OPS and args and id(args[0]) in self.products:
                ref, elements = self.products[id(args[0])]
                if ref() is args[0]:
                    self.products[id(out)] = (weakref.ref(out), elements)

    return ComputeTracer


def _record_reads(trace: Trace, skipped: tuple[set[tuple], ...], func: Any, args: tuple, kwargs: dict) -> None:
    """Record the pre-existing tensors an operator read (not those in `skipped`: made during the call, inputs)
    as weights, by argument name (running statistics, indices and masks are read but are not parameters)."""
    names = [argument.name for argument in func._schema.arguments]
    values = list(zip(names, args, strict=False)) + list(kwargs.items())
    for arg_name, value in values:
        for tensor in _tensors(value):
            if tensor.dim() == 0:
                continue  # Python numbers in arithmetic arrive as 0-d tensors made outside the dispatcher
            key = _storage_key(tensor)
            if key is None or any(key in keys for keys in skipped):
                continue
            reads = trace.weights.setdefault(key, Reads())
            reads.add(*_byte_range(tensor), arg_name not in NOT_PARAMETERS, tensor.element_size())


WARM_UP_SEED = 20261205
SETTLE_MIN_S, SETTLE_MAX_S = 0.02, 0.25  # after a traced call, other threads' CPU time is watched this long


def trace_predict(predictor: Any, images: Sequence[np.ndarray]) -> Trace:
    """One `predict(images)` under the tracer (call it after a warm-up call). The tracer sees the calling thread
    only (dispatch modes are thread-local), so the call runs with one intra-op thread and the CPU time of the
    process's other threads is recorded, during the call and for a short idle while after it (`SETTLE_*`): work
    handed to another thread, finished or left running, is seen there."""
    import time

    import torch

    trace = Trace()
    tracer = _dispatch_mode()(trace)
    forward = predictor.forward

    def traced_forward(inputs: Any) -> Any:
        tracer.inputs |= {key for key in map(_storage_key, _tensors(inputs)) if key is not None}
        tracer.in_forward = True
        try:
            return forward(inputs)
        finally:
            tracer.in_forward = False

    own_forward = "forward" in vars(predictor)  # set on the instance (a variant's), or the class's method
    predictor.forward = traced_forward
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode(), tracer:
            family = family_cpu_s()
            process, own, wall = time.process_time(), time.thread_time(), time.perf_counter()
            predictor.predict(list(images))
            # A while longer, idle: work the call left running on other threads shows there.
            time.sleep(min(SETTLE_MAX_S, max(SETTLE_MIN_S, 2 * (time.perf_counter() - wall))))
            own = time.thread_time() - own
            process = time.process_time() - process
            family = family_cpu_s() - family
    finally:
        torch.set_num_threads(threads)
        if own_forward:
            predictor.forward = forward
        else:
            del predictor.forward
    trace.own_cpu_s, trace.other_threads_cpu_s = own, max(0.0, process - own) + max(0.0, family)
    return trace


def _in_sandbox_namespace() -> bool:
    """Whether this process runs in the docker runner's container, whose process namespace holds nothing but the
    sandbox (its first process is the harness's supervisor)."""
    try:
        with open("/proc/1/cmdline", "rb") as fh:
            return b"harness.sandbox.supervisor" in fh.read()
    except OSError:
        return False


def family_cpu_s() -> float:
    """CPU seconds used so far by the other processes this one started (its descendants, live ones from /proc and
    ended ones it waited for) or shares its session with, and in the docker runner's container by every other
    process there: work handed to another process is as invisible to the tracer as work on another thread."""
    me, session = os.getpid(), os.getsid(0)
    everything = _in_sandbox_namespace()
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    in_session: set[int] = set()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue  # it ended meanwhile
        fields = data[data.rindex(b")") + 2 :].split()
        pid = int(entry)
        parent[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
        if everything or int(fields[3]) == session:
            in_session.add(pid)

    def descends(pid: int) -> bool:
        for _ in range(64):
            pid = parent.get(pid, 0)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    waited = os.times()
    return sum(t for pid, t in cpu.items() if pid in in_session or descends(pid)) + waited[2] + waited[3]


@dataclass
class Complexity:
    """What the harness reports of a predictor: MACs per image, and the weights its computation reads."""

    macs_per_image: list[int]
    macs_by_family: dict[str, int]
    params: int
    read_bytes: int
    outside_forward_macs: int = 0  # summed over the images
    own_cpu_s: float = 0.0  # summed over the traced calls
    other_threads_cpu_s: float = 0.0


def measure(predictor: Any, images: Sequence[np.ndarray]) -> Complexity:
    """MACs of `predict` on each image (one at a time, after a warm-up call) and the weights read."""
    # Warm-up, so that lazily built weights exist before the traced calls, on an image unlike any traced one (a
    # predictor that answers what it has seen from memory must compute the traced images).
    noise = np.random.default_rng(WARM_UP_SEED).integers(0, 256, np.shape(images[0]), dtype=np.uint8)
    predictor.predict([noise])
    per_image: list[int] = []
    families = dict.fromkeys(FAMILIES, 0)
    weights: dict[tuple, Reads] = {}
    outside = 0
    own_cpu = other_cpu = 0.0
    for image in images:
        trace = trace_predict(predictor, [image])
        per_image.append(trace.total_macs)
        outside += trace.outside_forward_macs
        own_cpu += trace.own_cpu_s
        other_cpu += trace.other_threads_cpu_s
        for family, macs in trace.macs.items():
            families[family] += macs
        for key, reads in trace.weights.items():
            weights.setdefault(key, Reads()).merge(reads)
    return Complexity(
        macs_per_image=per_image,
        macs_by_family=families,
        params=sum(reads.parameter_elements for reads in weights.values()),
        read_bytes=sum(reads.read_bytes for reads in weights.values()),
        outside_forward_macs=outside,
        own_cpu_s=own_cpu,
        other_threads_cpu_s=other_cpu,
    )


def count_macs(predictor: Any, images: Sequence[np.ndarray]) -> list[int]:
    """MACs of the predictor for each image, run one image at a time through `predict`."""
    return measure(predictor, images).macs_per_image


def count_params(model: Any) -> int:
    """Unique parameter tensors of a module (shared weights counted once): what the module declares, not what
    its computation reads (`measure` says that)."""
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
    for tensor in _tensors(list(state.values())):
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
