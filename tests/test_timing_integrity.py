"""Predictors that make the timed step cheaper than the work they really do, each beside its honest twin, through
the real CLI (`harness submit`, `harness evaluate --json`, `harness leaderboard --json`): every one either fails
with a reason or is ranked within 2x of the twin. The twin is a small conv net whose latency (a few ms on a
CPU) is well above the timer's noise."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_submission, run_cli

HONEST = """
    import threading
    import time
    import numpy as np
    import torch
    from torch import nn

    from harness.contract import ClassifierPredictor


    class Net(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(48, 96, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            )
            self.head = nn.Linear(96, num_classes)

        def forward(self, x):
            return self.head(self.features(x).flatten(1))


    class Honest(ClassifierPredictor):
        pass


    PREDICTOR = Honest


    def build(ctx):
        torch.manual_seed(0)
        return PREDICTOR(Net(ctx.num_classes or 10), (0.5,) * 3, (0.25,) * 3)
"""

# Each cheat replaces PREDICTOR; the network, its weights and its accuracy are the twin's.
CHEATS = {
    # Answers inputs it has seen before from memory (exact bytes): the timed inputs are never seen before.
    "cache_exact": """
        class Cheat(ClassifierPredictor):
            answers = {}

            def forward(self, x):
                key = x.numpy().tobytes()
                if key not in self.answers:
                    self.answers[key] = self.model(x)
                return self.answers[key]
    """,
    # Answers near-duplicates from memory (a coarse 4x4 thumbnail as the key): the timed inputs are mosaics of
    # the split's images, so no thumbnail repeats.
    "cache_fuzzy": """
        class Cheat(ClassifierPredictor):
            answers = {}

            def forward(self, x):
                thumb = torch.nn.functional.adaptive_avg_pool2d(x, 4)
                key = torch.round(thumb * 2).to(torch.int8).numpy().tobytes()
                if key not in self.answers:
                    self.answers[key] = self.model(x)
                return self.answers[key]
    """,
    # Runs the network in preprocess; forward only hands the logits on.
    "work_in_preprocess": """
        class Cheat(ClassifierPredictor):
            def preprocess(self, images):
                return self.model(super().preprocess(images))

            def forward(self, logits):
                return logits + 0
    """,
    # Runs the network in postprocess; forward only copies its input.
    "work_in_postprocess": """
        class Cheat(ClassifierPredictor):
            def forward(self, x):
                return x.clone()

            def postprocess(self, raw, images):
                return super().postprocess(self.model(raw), images)
    """,
    # Hands the network to another thread and returns at once; postprocess waits for the answer.
    "async_thread": """
        from concurrent.futures import ThreadPoolExecutor

        POOL = ThreadPoolExecutor(1)

        class Cheat(ClassifierPredictor):
            def forward(self, x):
                def run():
                    with torch.inference_mode():
                        return self.model(x)
                return POOL.submit(run)

            def postprocess(self, raw, images):
                return super().postprocess(raw.result(), images)
    """,
    # Runs the network in a worker process started at build and waits for its answer.
    "other_process": """
        import multiprocessing

        def serve(conn, state):
            torch.set_num_threads(1)
            net = Net(state["head.weight"].shape[0])
            net.load_state_dict(state)
            net.eval()
            while True:
                x = conn.recv()
                with torch.inference_mode():
                    conn.send(net(x))

        class Cheat(ClassifierPredictor):
            worker = None

            def forward(self, x):
                if Cheat.worker is None:
                    ours, theirs = multiprocessing.get_context("fork").Pipe()
                    process = multiprocessing.get_context("fork").Process(
                        target=serve, args=(theirs, self.model.state_dict()), daemon=True
                    )
                    process.start()
                    Cheat.worker = ours
                Cheat.worker.send(x)
                return Cheat.worker.recv()
    """,
    # Returns records at once and fills their logits from a background thread.
    "background_fill": """
        class Cheat(ClassifierPredictor):
            def predict(self, images):
                from harness.contract import ClassScores
                out = [ClassScores(logits=np.zeros(self.model.head.out_features, np.float32)) for _ in images]
                inputs = self.preprocess(images)

                def fill():
                    with torch.inference_mode():
                        logits = self.model(inputs).numpy()
                    for record, row in zip(out, logits):
                        record.logits[:] = row

                threading.Thread(target=fill).start()
                return out
    """,
    # Recognises the timing loop (calls in quick succession) and answers with the previous call's logits.
    "stale_when_rapid": """
        class Cheat(ClassifierPredictor):
            last, when = None, 0.0

            def forward(self, x):
                now = time.perf_counter()
                rapid, Cheat.when = now - Cheat.when < 0.05, now
                if rapid and self.last is not None and self.last.shape[0] == x.shape[0]:
                    return self.last
                self.last = self.model(x)
                return self.last
    """,
    # Recognises the harness's timer on the call stack and skips the network there.
    "detects_timer": """
        import sys

        class Cheat(ClassifierPredictor):
            def forward(self, x):
                frame = sys._getframe(1)
                while frame is not None:
                    if frame.f_code.co_name in ("time_callable", "timer", "_cpu_timer"):
                        return torch.zeros(x.shape[0], 10)
                    frame = frame.f_back
                return self.model(x)
    """,
    # Slows the harness's clock down by 100x.
    "slows_the_clock": """
        import harness.measure.latency as latency

        real = latency._perf_counter_ns
        start = real()
        latency._perf_counter_ns = lambda: start + (real() - start) // 100

        class Cheat(ClassifierPredictor):
            pass
    """,
}


def _body(cheat: str) -> str:
    import textwrap

    return textwrap.dedent(HONEST) + textwrap.dedent(CHEATS[cheat]) + "\nPREDICTOR = Cheat\n"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, session_home):
    """The twin and every cheat, submitted and evaluated on the classification track in one store. A cheat that
    `harness submit` refuses (its checks run the predictor too) is recorded as refused, with the message."""
    root = tmp_path_factory.mktemp("gaming")
    env = {"HARNESS_HOME": str(session_home), "HARNESS_DB_URL": f"sqlite:///{root / 'harness.db'}"}
    refused = {}
    for name, body in [("honest", HONEST)] + [(cheat, _body(cheat)) for cheat in CHEATS]:
        submitted = run_cli("submit", str(make_submission(root, name, module_body=body)), env=env)
        if submitted.returncode != 0:
            assert submitted.returncode == 2 and "Traceback" not in submitted.stderr, submitted.stderr
            refused[name] = {"submission": name, "status": "refused", "error": submitted.stderr}
    # The digits split (360 images): this is about timing, not about the default data's 10,000 images.
    done = run_cli("evaluate", "--track", "classification", "--dataset", "digits", "--json", env=env, timeout=1800)
    assert done.returncode == 0, done.stderr
    runs = {run["submission"]: run for run in json.loads(done.stdout)} | refused
    board = run_cli("leaderboard", "--track", "classification", "--dataset", "digits", "--json", env=env)
    assert board.returncode == 0, board.stderr
    return runs, {row["submission"]: row for row in json.loads(board.stdout)}


def test_the_honest_twin_is_ranked(evaluated):
    runs, board = evaluated
    assert runs["honest"]["status"] == "ok", runs["honest"]["error"]
    assert runs["honest"]["latency"]["ranked_ms"] > 0.5, "the twin must be slow enough to tell from noise"
    assert "honest" in board


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_a_cheat_fails_with_a_reason_or_ranks_within_2x_of_its_twin(evaluated, cheat):
    runs, board = evaluated
    run = runs[cheat]
    if run["status"] != "ok":
        assert run["error"] and "[" in run["error"], run["error"]  # the check that caught it, by name
        assert cheat not in board
        return
    honest = board["honest"]["latency"]["ranked_ms"]
    ranked = board[cheat]["latency"]["ranked_ms"]
    assert ranked >= honest / 2, f"{cheat} ranked at {ranked:.4f} ms against its twin's {honest:.4f} ms"
    assert run["metrics"]["top1"] == runs["honest"]["metrics"]["top1"]


# Which check catches each cheat that cannot be ranked honestly (the others, caches, are timed on inputs they
# have never seen and so do the work).
CAUGHT_BY = {
    "work_in_preprocess": "[latency]",
    "work_in_postprocess": "[latency]",
    "async_thread": "other threads",
    "background_fill": "other threads",
    "other_process": "other threads or processes",
    "stale_when_rapid": "[crosscheck]",
    "detects_timer": "[crosscheck]",
    "slows_the_clock": "timers were replaced",
}


@pytest.mark.parametrize("cheat", sorted(CAUGHT_BY))
def test_cheats_that_skip_work_fail_with_the_check_that_caught_them(evaluated, cheat):
    runs, _ = evaluated
    assert runs[cheat]["status"] in ("failed", "refused")
    assert CAUGHT_BY[cheat] in runs[cheat]["error"], runs[cheat]["error"]
