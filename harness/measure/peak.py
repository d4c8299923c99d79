"""The most multiply-accumulates per second a machine delivers: the ceiling a plausible latency stays under.

    python -m harness.measure.peak DEVICE THREADS        prints {"macs_per_s": ..., "by_dtype": {...}} as JSON

Dense matrix products are the fastest work there is per MAC, so the best rate of large `torch.mm` calls, over
the dtypes a variant may compute in (float32, and on a GPU float32 on tensor cores; bfloat16 and float16 on a
GPU or a CPU that has fast kernels for them; int8 where `torch._int_mm` runs), bounds what any model's forward
can reach on this device and thread count: a full-precision variant's by the float32 rates, a reduced-precision
one's by the best of all (`ceiling`). It is measured once per hardware class, by the harness in a process of
its own (never in the sandbox), and stored (`harness.store`). A run whose latency implies more MACs per second
than this, by the margin in `harness.service.integrity`, is implausible.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _rate(mm: Any, a: Any, b: Any, sync: Any, seconds: float = 0.6, threads: int | None = None) -> float:
    """MACs per second of `mm(a, b)`: the best of short timed blocks after a warm-up. On a CPU (`threads`
    given) a block is also timed by the process's CPU time per thread, and the faster reading counts: on a
    machine busy with other work the wall clock also counts the time this process waited for a core, which
    would put the ceiling too low and refuse honest runs timed at a quieter moment. (CPU time can only raise
    the ceiling, which weakens the bound a little; it never rejects an honest run.)"""
    n, k = a.shape
    m = b.shape[1]
    for _ in range(2):
        mm(a, b)
    sync()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(4):
            mm(a, b)
        sync()
        elapsed = time.perf_counter() - start
        if threads:
            elapsed = min(elapsed, max((time.process_time() - cpu_start) / threads, 1e-9))
        best = max(best, 4 * n * k * m / elapsed)
    return best


def measure_peak(device: str = "cpu", threads: int = 1) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, int(threads)))
    torch.backends.cuda.matmul.allow_tf32 = False
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    cpu_threads = None if cuda else max(1, int(threads))
    size = 4096 if cuda else 768
    rates: dict[str, float] = {}
    dtypes = [torch.float32, torch.bfloat16] + ([torch.float16] if cuda else [])
    for dtype in dtypes:
        try:
            a = torch.randn(size, size, device=device).to(dtype)
            rates[str(dtype).removeprefix("torch.")] = _rate(torch.mm, a, a, sync, threads=cpu_threads)
        except (RuntimeError, TypeError):
            continue  # no kernel for this dtype here
    if cuda:  # float32 matrix products on tensor cores, which a float32 model may switch on for itself
        try:
            torch.backends.cuda.matmul.allow_tf32 = True
            a = torch.randn(size, size, device=device)
            rates["tfloat32"] = _rate(torch.mm, a, a, sync)
        except RuntimeError:
            pass
        finally:
            torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a = torch.randint(-8, 8, (size, size), dtype=torch.int8, device=device)
        rates["int8"] = _rate(torch._int_mm, a, a, sync, threads=cpu_threads)
    except (RuntimeError, TypeError, AttributeError):
        pass
    return {"macs_per_s": max(rates.values()), "by_dtype": rates, "device": device, "threads": int(threads)}


FULL_PRECISION = ("float32", "tfloat32")


def ceiling(peak: dict[str, Any], reduced_precision: bool) -> float:
    """The rate a run may not exceed: its dtypes' best (float32, or tensor-core float32, for a full-precision
    variant; any dtype for a reduced-precision one)."""
    rates = {name: float(rate) for name, rate in (peak.get("by_dtype") or {}).items()}
    if not reduced_precision:
        full = [rate for name, rate in rates.items() if name in FULL_PRECISION]
        if full:
            return max(full)
    return max(rates.values(), default=float(peak["macs_per_s"]))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m harness.measure.peak DEVICE THREADS   (e.g. cpu 1, cuda:0 1)", file=sys.stderr)
        return 2
    print(json.dumps(measure_peak(args[0], int(args[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
