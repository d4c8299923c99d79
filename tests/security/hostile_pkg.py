"""The hostile submissions: one installable package, one entry point per attack (written out by the tests).

Every attack stays dormant while `harness check` would run (batches of one or two images) and strikes once
the accuracy pass starts (a batch of more than two), so that the project also passes the ordinary
`harness submit`. `CONFIG` is filled in by the test: the port of its loopback server and the host paths it
watches.
"""

import atexit
import hashlib
import json
import os
import socket
import sys
import time

import numpy as np
import torch
from torch import nn

from harness.contract import ClassifierPredictor, ClassScores

CONFIG = json.loads("""__CONFIG__""")
STATE = {"accuracy_pass": False, "struck": False}


class Tiny(nn.Module):
    def __init__(self, sleep_s=0.0):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 10)
        self.sleep_s = sleep_s

    def forward(self, x):
        if self.sleep_s and STATE["accuracy_pass"]:
            time.sleep(self.sleep_s)
        return self.head(self.conv(x).mean((2, 3)))


class Hostile(ClassifierPredictor):
    """An honest tiny classifier until the accuracy pass starts; from then on `strike(images, outputs)` may
    replace the outputs of every call, and `later()` runs on each call after the accuracy pass (the
    performance pass, batches of one)."""

    def __init__(self, strike=None, later=None, sleep_s=0.0):
        torch.manual_seed(0)
        super().__init__(Tiny(sleep_s), (0.5,) * 3, (0.5,) * 3)
        self.strike, self.later = strike, later

    def postprocess(self, raw, images):
        # The strike sits in postprocess, so the scored outputs and the timed forward's outputs go through the
        # same code: a predictor whose predict differs from postprocess(forward(...)) fails the cross-check.
        outputs = super().postprocess(raw, images)
        if len(images) > 2:
            STATE["accuracy_pass"] = True
        if STATE["accuracy_pass"] and self.strike is not None:
            outputs = self.strike(images, outputs)
        return outputs

    def predict(self, images):
        later = STATE["accuracy_pass"] and len(images) <= 2
        outputs = super().predict(images)
        if later and self.later is not None:
            self.later()
        return outputs


def _job():
    with open(sys.argv[1]) as fh:
        return json.load(fh)


# the network ----------------------------------------------------------------------------------------------


def connect(images, outputs):
    with socket.create_connection(("127.0.0.1", CONFIG["port"]), timeout=5) as conn:
        conn.sendall(b"escaped")
    return outputs


def lookup(images, outputs):
    socket.getaddrinfo("harness-canary.invalid", 80)
    return outputs


# the filesystem -------------------------------------------------------------------------------------------


def _image_key(image):
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def _find_labels():
    """The exact host paths first, then a bounded walk of everything readable."""
    found = {}

    def take(path):
        try:
            with open(path) as fh:
                data = json.load(fh)
            found.update(zip(data["ids"], data["labels"], strict=True))
        except Exception:
            pass

    for path in CONFIG["labels"]:
        take(path)
    seen, deadline = 0, time.monotonic() + 15
    for root, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys", "/dev")]
        for name in files:
            if name == "labels.json":
                take(os.path.join(root, name))
        seen += len(files) + len(dirs)
        if seen > 50_000 or time.monotonic() > deadline:
            break
    return found


def search_truth(images, outputs):
    """Cheat if the ground truth can be read: map each image to its id through the inputs' pixels."""
    if "labels" not in STATE:
        STATE["labels"] = _find_labels()
        STATE["id_of"] = {}
        if STATE["labels"]:
            from PIL import Image

            inputs = _job()["inputs_dir"]
            with open(os.path.join(inputs, "index.json")) as fh:
                index = json.load(fh)
            for sample_id, name in zip(index["ids"], index["files"], strict=True):
                with Image.open(os.path.join(inputs, name)) as img:
                    STATE["id_of"][_image_key(np.asarray(img.convert("RGB")))] = sample_id
    cheated = []
    for image in images:
        label = STATE["labels"].get(STATE["id_of"].get(_image_key(image)), 0)
        logits = np.zeros(10, np.float32)
        logits[label] = 1.0
        cheated.append(ClassScores(logits=logits))
    return cheated


def _once():
    """True the first time: attacks with side effects strike once, not on every call of the timing loop."""
    first = not STATE["struck"]
    STATE["struck"] = True
    return first


def write_outside(images, outputs):
    if not _once():
        return outputs
    targets = [
        "/hostile",
        "/etc/hostile",
        "/job/hostile",
        "/submission/hostile",
        "/inputs/hostile",
        "/opt/harness/harness/hostile",
        os.path.join(sys.prefix, "hostile"),
        os.path.join(os.path.dirname(os.path.realpath(sys.executable)), "hostile"),
        *CONFIG["write"],
    ]
    escaped = []
    for target in targets:
        try:
            with open(target, "a") as fh:
                fh.write("hostile")
            escaped.append(target)
        except OSError:
            pass
    if escaped:
        raise RuntimeError(f"wrote outside the output folder: {escaped}")
    return outputs


def write_store(images, outputs):
    import sqlite3

    if not _once():
        return outputs
    wrote = []
    for path in CONFIG["db"]:
        try:
            with open(path, "ab") as fh:
                fh.write(b"hostile")
            wrote.append(path)
        except OSError:
            pass
        try:
            con = sqlite3.connect(path)
            con.execute("CREATE TABLE hostile (x)")
            con.commit()
            wrote.append(f"sqlite:{path}")
        except sqlite3.Error:
            pass
    if wrote:
        raise RuntimeError(f"wrote the store: {wrote}")
    return outputs


# resources ------------------------------------------------------------------------------------------------


def fork_bomb(images, outputs):
    """Every process forks on until the process limit stops it; the parent's failed fork ends the run."""
    while True:
        if os.fork() == 0:
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.1)


def hoard_memory(images, outputs):
    hoard = []
    while True:
        hoard.append(np.ones(1 << 25, dtype=np.uint8))


def endless_loop(images, outputs):
    while True:
        pass


def flood_logs(images, outputs):
    line = "x" * (1 << 20)
    while True:
        print(line, flush=True)
        print(line, file=sys.stderr, flush=True)


def flood_output(images, outputs):
    chunk = b"\0" * (1 << 20)
    for folder in (_job()["out_dir"], "/tmp"):
        try:
            with open(os.path.join(folder, "flood.npz"), "wb") as fh:
                while True:
                    fh.write(chunk)
        except OSError:
            pass
    return outputs


# bad predictions ------------------------------------------------------------------------------------------


def nan_logits(images, outputs):
    return [ClassScores(logits=np.full(10, np.nan, np.float32)) for _ in outputs]


def inf_logits(images, outputs):
    return [ClassScores(logits=np.full(10, np.inf, np.float32)) for _ in outputs]


def wrong_shape(images, outputs):
    return [ClassScores(logits=np.zeros(7, np.float32)) for _ in outputs]


def wrong_type(images, outputs):
    return [{"logits": o.logits.tolist()} for o in outputs]


def fewer(images, outputs):
    return outputs[:-1]


def more(images, outputs):
    return outputs + outputs[:1]


def _forge_predictions(logits_for):
    """After the driver wrote predictions.npz (performance pass), write another one in its place."""
    path = os.path.join(_job()["out_dir"], "predictions.npz")
    with np.load(path) as real:
        ids = real["ids"]
    np.savez(path, ids=ids, kind=np.asarray("classification"), logits=logits_for(len(ids)))


def forge_nan_predictions():
    if _once():
        _forge_predictions(lambda n: np.full((n, 10), np.nan, np.float32))


def forge_huge_header():
    """An npy header that claims 4 TB: numpy would allocate by the header before reading a byte."""
    if not _once():
        return
    _forge_predictions(lambda n: np.zeros((n, 10), np.float32))
    import zipfile

    path = os.path.join(_job()["out_dir"], "predictions.npz")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 10), np.float32))
    header["shape"] = (10**11, 10)
    forged = bytearray()

    class Sink:
        def write(self, data):
            forged.extend(data)

    np.lib.format.write_array_header_1_0(Sink(), header)
    members["logits.npy"] = bytes(forged) + b"\0" * 64
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


# timing ---------------------------------------------------------------------------------------------------


class FakeEvent:
    def __init__(self, *args, **kwargs):
        pass

    def record(self, *args, **kwargs):
        pass

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return 0.001


def patch_time(images, outputs):
    """The public clocks run a thousand times slower from here on; the harness's captured clock does not."""
    if _once():
        real_ns, real_s, real_mono = time.perf_counter_ns, time.perf_counter, time.monotonic
        time.perf_counter_ns = lambda: real_ns() // 1000
        time.perf_counter = lambda: real_s() / 1000
        time.monotonic = lambda: real_mono() / 1000
        torch.cuda.Event = FakeEvent
    return outputs


def patch_harness_clock(images, outputs):
    """Reach into the harness and slow its own captured clock down: the host's clock sees the difference."""
    if _once():
        import harness.measure.latency as latency

        real = latency._perf_counter_ns
        base = real()
        latency._perf_counter_ns = lambda: base + (real() - base) // 1000
    return outputs


def forge_measurements(images, outputs):
    """Rewrite measurements.json when the driver exits, with every latency sample a thousand times smaller."""
    if _once():
        path = os.path.join(_job()["out_dir"], "measurements.json")

        def rewrite():
            try:
                with open(path) as fh:
                    data = json.load(fh)
                for summary in data["latency"].values():
                    summary["samples_ms"] = [x / 1000 for x in summary["samples_ms"]]
                    for key in ("ranked_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms"):
                        summary[key] /= 1000
                with open(path, "w") as fh:
                    json.dump(data, fh)
            except OSError:
                pass

        atexit.register(rewrite)
    return outputs


# entry points ---------------------------------------------------------------------------------------------

STRIKES = {
    "connect": connect,
    "lookup": lookup,
    "search_truth": search_truth,
    "write_outside": write_outside,
    "write_store": write_store,
    "fork_bomb": fork_bomb,
    "hoard_memory": hoard_memory,
    "endless_loop": endless_loop,
    "flood_logs": flood_logs,
    "flood_output": flood_output,
    "nan_logits": nan_logits,
    "inf_logits": inf_logits,
    "wrong_shape": wrong_shape,
    "wrong_type": wrong_type,
    "fewer": fewer,
    "more": more,
    "patch_time": patch_time,
    "patch_harness_clock": patch_harness_clock,
    "forge_measurements": forge_measurements,
}
LATER = {"forge_nan_predictions": forge_nan_predictions, "forge_huge_header": forge_huge_header}
SLOW_MODEL = {"patch_time", "patch_harness_clock", "forge_measurements"}


def build(name):
    def builder(ctx):
        return Hostile(STRIKES.get(name), LATER.get(name), sleep_s=0.002 if name in SLOW_MODEL else 0.0)

    return builder


for _name in [*STRIKES, *LATER]:
    globals()[f"build_{_name}"] = build(_name)
