"""The timed passes of the performance pass, made so that a predictor cannot make the timed step cheaper than
the work it really does.

- Every timed call gets inputs the predictor has never seen: mosaics of real images of the split (each quadrant,
  split at a random point, from another image, flipped or not, at a random offset) with fresh per-pixel noise
  from an unpredictable seed, made (and, for the device latency, preprocessed and copied
  into the CUDA graph's input buffers) outside the timed region. A cache of answers never hits.
- Some timed calls are kept, at random, with their outputs; afterwards the same inputs are predicted again in
  one batch (another code path for the model: an independent computation) and must agree
  (`crosscheck`). A predictor that answers the timed calls from memory, or computes less when timed, fails.
- The steps of `predict` are timed apart on a few more inputs (`step_times`), so the host can bound the share
  of work done outside `forward` on tracks that rank the forward step alone.
The host adds the last check: a latency that implies more MACs per second than the hardware class can deliver
is implausible (`harness.service.integrity`).
"""

from __future__ import annotations

from harness.measure.latency import PROFILES, cuda_synchronize, time_callable, wall_clock_ns  # isort: skip

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.measure.cudagraph import _cloned, _tensors
from harness.sandbox.images import load_image
from harness.sandbox.job import IngestJob
from harness.sandbox.measurements import Measurements

POOL_SIZE = 16  # real images the timed inputs are made from
NOISE = 4  # per-pixel noise, in levels of 0-255
KEEP_PROBABILITY = 0.1  # share of timed calls kept for the cross-check ...
KEEP_MAX = 8  # ... at most this many per pass
AHEAD = 8  # timed inputs are made this many at a time: making one between every two calls sweeps the caches


class TimedInputs:
    """Fresh inputs for every timed call, and the few calls kept (inputs and outputs) for the cross-check."""

    def __init__(self, job: IngestJob, files: list[str]):
        folder = Path(job.inputs_dir or "")
        self.pool = [load_image(folder / name) for name in files[: max(job.batch_size, POOL_SIZE)]]
        self.batch_size = job.batch_size
        self.rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
        self.made = 0

    def images(self) -> list[np.ndarray]:
        """A batch of images nobody can predict: mosaics of pool images, with fresh noise."""
        batch = []
        for _ in range(self.batch_size):
            batch.append(with_noise(self.mosaic(), self.rng))
        self.made += 1
        return batch

    def mosaic(self) -> np.ndarray:
        return mosaic(self.pool, self.rng)

    def keep(self, kept: list, last: bool = False) -> bool:
        """Whether to keep the call that just returned: at random, and the last one if none was."""
        if len(kept) >= KEEP_MAX:
            return False
        return (last and not kept) or bool(self.rng.random() < KEEP_PROBABILITY)


def with_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.integers(-NOISE, NOISE + 1, image.shape, dtype=np.int16)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _pick(pool: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    image = pool[int(rng.integers(len(pool)))]
    return image[:, ::-1] if rng.random() < 0.5 else image


def mosaic(pool: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A pool image (its size, so the work per image stays that of the split) whose other three quadrants, split
    at a random point, are cut from other pool images at random offsets: no region of it matches an image seen
    before, so neither an exact nor a near-duplicate cache of answers can hit."""
    base = _pick(pool, rng)
    out = base.copy()
    height, width = base.shape[:2]
    cy = int(rng.integers(height // 4, 3 * height // 4 + 1))
    cx = int(rng.integers(width // 4, 3 * width // 4 + 1))
    for y0, y1, x0, x1 in ((0, cy, cx, width), (cy, height, 0, cx), (cy, height, cx, width)):
        source = _pick(pool, rng)
        h, w = y1 - y0, x1 - x0
        if h == 0 or w == 0 or source.shape[2:] != base.shape[2:]:
            continue
        if source.shape[0] < h or source.shape[1] < w:  # a smaller image: repeat it to cover the region
            reps = (-(-h // source.shape[0]), -(-w // source.shape[1])) + (1,) * (source.ndim - 2)
            source = np.tile(source, reps)
        oy = int(rng.integers(source.shape[0] - h + 1))
        ox = int(rng.integers(source.shape[1] - w + 1))
        out[y0:y1, x0:x1] = source[oy : oy + h, ox : ox + w]
    return out


def unseen_image(known: list[np.ndarray], real: bool) -> np.ndarray:
    """An image of `known[0]`'s size that nobody can have seen: a mosaic of the `known` images when they are real
    ones (the content stays natural for models whose work depends on it), else of random smooth patterns (a
    noise image and its warm-up twin look alike at low resolution), with fresh noise, from an unpredictable
    seed."""
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    if real:
        pool = list(known)
    else:
        shape = known[0].shape
        pool = []
        for _ in range(4):  # a random 4x4 grid of colours, scaled up to the size
            grid = rng.integers(0, 256, (4, 4) + tuple(shape[2:]), dtype=np.uint8)
            rows = np.linspace(0, 3, shape[0]).round().astype(int)
            cols = np.linspace(0, 3, shape[1]).round().astype(int)
            pool.append(grid[rows][:, cols])
    return with_noise(mosaic(pool, rng), rng)


def same_layout(a: Any, b: Any) -> bool:
    """Whether two preprocessed inputs hold tensors of the same shapes and dtypes, in the same places."""
    ta, tb = _tensors(a), _tensors(b)
    return len(ta) == len(tb) and all(x.shape == y.shape and x.dtype == y.dtype for x, y in zip(ta, tb, strict=True))


def copy_into(static: Any, fresh: Any) -> None:
    for target, source in zip(_tensors(static), _tensors(fresh), strict=True):
        target.copy_(source)


class DevicePass:
    """The forward step alone, on a fresh preprocessed input per call (copied into the CUDA graph's buffers
    when the replay of a captured graph is timed)."""

    def __init__(self, predictor: Any, inputs: TimedInputs):
        self.predictor, self.inputs = predictor, inputs
        self.images: list[np.ndarray] = inputs.images()
        self.current: Any = predictor.preprocess(self.images)
        self.output: Any = None
        self.static: Any = None  # the captured graph's input buffers, when a graph is timed
        self.kept: list[tuple[list[np.ndarray], Any]] = []
        self.ahead: list[tuple[list[np.ndarray], Any]] = []

    def forward(self) -> None:
        self.output = self.predictor.forward(self.current)

    def prepare(self, last: bool = False) -> None:
        # Whether the call just timed is kept is drawn only now, after it returned: no code in the call can know.
        # Its outputs are copied at once (on the stream the timer waited for): what is still being written then
        # was not finished when the timed step ended.
        if self.output is not None and self.images and self.inputs.keep(self.kept, last):
            raw = _cloned(self.output)
            self.kept.append((self.images, self.predictor.postprocess(raw, self.images)))
        self.output = None
        if not self.ahead:
            for _ in range(AHEAD):
                images = self.inputs.images()
                self.ahead.append((images, self.predictor.preprocess(images)))
        self.images, fresh = self.ahead.pop()
        if self.static is not None:
            copy_into(self.static, fresh)
        else:
            self.current = fresh


class EndToEndPass:
    """`predict` on fresh images per call."""

    def __init__(self, predictor: Any, inputs: TimedInputs):
        self.predictor, self.inputs = predictor, inputs
        self.images: list[np.ndarray] = []
        self.output: Any = None
        self.kept: list[tuple[list[np.ndarray], Any]] = []
        self.ahead: list[list[np.ndarray]] = []

    def predict(self) -> None:
        self.output = self.predictor.predict(self.images)

    def prepare(self, last: bool = False) -> None:
        # As `DevicePass.prepare`: drawn after the call, and the records copied at once (a record whose arrays a
        # background thread is still filling is caught unfinished).
        if self.output is not None and self.images and self.inputs.keep(self.kept, last):
            self.kept.append((self.images, copy.deepcopy(self.output)))
        self.output = None
        if not self.ahead:
            self.ahead = [self.inputs.images() for _ in range(AHEAD)]
        self.images = self.ahead.pop()


def timed_passes(
    job: IngestJob,
    predictor: Any,
    variant: Any,
    files: list[str],
    measured: Measurements,
    mark: Callable[[str], None],
    graph_forward: Callable[..., tuple[Callable[[], Any], str | None, Any]],
) -> tuple[list[Any], DevicePass, EndToEndPass, tuple[Any, Any]]:
    """The device (model only) and end-to-end latency summaries on fresh inputs, the passes (with the calls they
    kept) and the SM clocks before and after. `graph_forward(predictor, inputs, eager, measured)` returns what to
    time on CUDA, its timer's name and the graph's input buffers (None when the eager forward is timed)."""
    import torch

    from harness.measure.environment import read_sm_clock

    cuda = job.device.startswith("cuda")
    profile = PROFILES[job.profile]
    inputs = TimedInputs(job, files)
    device, e2e = DevicePass(predictor, inputs), EndToEndPass(predictor, inputs)
    timed_forward, timer_label = device.forward, None
    if cuda:
        for _ in range(3):  # first calls may compile or tune
            device.prepare()
            device.forward()
        cuda_synchronize()
        if same_layout(device.current, predictor.preprocess(inputs.images())):
            replay, timer_label, device.static = graph_forward(predictor, device.current, device.forward, measured)
            if device.static is not None:  # the replay's outputs are kept like the eager forward's

                def timed_forward() -> None:
                    device.output = replay()

            else:
                timed_forward = replay
        else:
            measured.info["device_timing"] = {"method": "cuda-events", "why_not_graph": "inputs vary in shape"}
    index = (torch.device(job.device).index or 0) if cuda else 0
    before = read_sm_clock(index, timed_forward) if cuda else None
    passes = ((timed_forward, device.prepare, "device", timer_label), (e2e.predict, e2e.prepare, "e2e", None))
    summaries = [
        time_callable(
            fn, profile, kind, job.batch_size, job.device, variant.timing_guard,
            on_phase=lambda phase, kind=kind: mark(f"{kind}:{phase}"), timer_label=label, prepare=prepare,
        )
        for fn, prepare, kind, label in passes
    ]  # fmt: skip
    after = read_sm_clock(index, timed_forward) if cuda else None
    device.prepare(last=True)  # the last call: kept if none was
    e2e.prepare(last=True)
    measured.info["timed_inputs"] = {"made": inputs.made, "pool": len(inputs.pool), "noise_levels": NOISE}
    return summaries, device, e2e, (before, after)


def step_times(job: IngestJob, predictor: Any, inputs: TimedInputs, calls: int) -> dict[str, float]:
    """Median milliseconds of preprocess, forward (synchronised) and postprocess over `calls` fresh inputs."""

    cuda = job.device.startswith("cuda")
    times: dict[str, list[float]] = {"preprocess": [], "forward": [], "postprocess": []}
    for _ in range(calls):
        images = inputs.images()
        t0 = wall_clock_ns()
        model_inputs = predictor.preprocess(images)
        if cuda:
            cuda_synchronize()
        t1 = wall_clock_ns()
        raw = predictor.forward(model_inputs)
        if cuda:
            cuda_synchronize()
        t2 = wall_clock_ns()
        predictor.postprocess(raw, images)
        t3 = wall_clock_ns()
        for name, span in (("preprocess", t1 - t0), ("forward", t2 - t1), ("postprocess", t3 - t2)):
            times[name].append(span / 1e6)
    return {name: float(np.median(values)) for name, values in times.items()}


def crosscheck_kept(job: IngestJob, predictor: Any, kept: list[tuple[list[np.ndarray], Any]], reduced: bool) -> dict:
    """The outputs of the kept timed calls against the same inputs predicted again, in one batch."""
    from harness.kinds import compare_outputs

    images = [image for batch, _ in kept for image in batch]
    timed = [record for _, records in kept for record in records]
    again: list[Any] = []
    for start in range(0, len(images), max(1, job.accuracy_batch_size)):
        again.extend(predictor.predict(images[start : start + job.accuracy_batch_size]))
    return compare_outputs(job.kind, again, timed, reduced).to_dict()


def timer_snapshot() -> dict[str, Any]:
    """What the timed passes' clocks and timers are now: taken before the submission is imported and compared
    after the performance pass (`timers_replaced`). Code in the sandbox can replace a module's function or a
    function's code; such a replacement is found here. The `time` module's own clocks are not held: the harness
    reads the one it captured at start, so slowing `time.perf_counter_ns` changes nothing it measures. (Nothing
    in the sandbox can change what the host's clock reads: the phase markers and the plausibility bound in
    `harness.service.integrity` check from outside.)"""
    import harness.measure.cudagraph as cudagraph
    import harness.measure.latency as latency
    import harness.sandbox.timed as timed

    # Functions of these modules, also where one module holds another's (timed's `time_callable`, `_cloned`).
    owners = (latency.__name__, timed.__name__, cudagraph.__name__, "time")
    held: dict[str, Any] = {}
    for module in (latency, timed):
        for name, value in vars(module).items():
            if callable(value) and getattr(value, "__module__", None) in owners:
                held[f"{module.__name__}.{name}"] = value
                if isinstance(value, type):  # and the methods of its classes
                    for attr, method in vars(value).items():
                        if callable(method):
                            held[f"{module.__name__}.{name}.{attr}"] = method
    try:
        import torch

        cuda = latency.capture_cuda_timers()  # the class and wait the timers use, whatever torch.cuda says later
        held["torch.cuda.synchronize (held)"] = cuda["synchronize"]
        for method in ("record", "elapsed_time", "synchronize", "query"):
            held[f"torch.cuda.Event.{method}"] = getattr(cuda["Event"], method)
        held["torch.cuda.CUDAGraph.replay"] = torch.cuda.CUDAGraph.replay
    except (ImportError, AttributeError):
        pass
    return {name: (value, getattr(value, "__code__", None), getattr(value, "__defaults__", None))
            for name, value in held.items()}  # fmt: skip


def timers_replaced(before: dict[str, Any]) -> list[str]:
    """The names of the clocks and timers that differ from `before`."""
    now = timer_snapshot()
    changed = []
    for name, (value, code, defaults) in before.items():
        current = now.get(name)
        if current is None or current[0] is not value or current[1] is not code or current[2] is not defaults:
            changed.append(name)
    return changed
