"""`harness.service.evaluate` in process, with a fake runner: the plan (names resolved, data checked, nothing
claimed), claims (one run per job, never twice), and the failure paths (a failed step, tampered output, a lost
job, a runner that breaks, an interrupt) - each leaving the store consistent. The CLI end-to-end tests run the
same code with real runners."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.errors import DatasetError, HarnessError
from harness.kinds import get_kind
from harness.measure.latency import summarize
from harness.predictions import save_predictions
from harness.runners import BaseRunner, IngestResult
from harness.sandbox.job import IngestJob
from harness.sandbox.measurements import Complexity, Measurements
from harness.service import evaluate as service
from harness.store.repo import Store
from harness.tracks import get_card
from tests.conftest import make_submission


def fake_outputs(job: IngestJob) -> None:
    """What a driver would write for the job: logits for every input id, and consistent measurements."""
    index = json.loads((Path(job.inputs_dir) / "index.json").read_text())
    logits = np.random.default_rng(0).normal(size=(len(index["ids"]), job.num_classes)).astype(np.float32)
    records = [get_kind("classification").record_type(logits=row) for row in logits]
    save_predictions(Path(job.out_dir) / "predictions.npz", "classification", index["ids"], records)
    summaries = {
        kind: summarize(kind, 1, [np.array([1.0, 1.1, 0.9]), np.array([1.0, 1.05, 0.95])], "perf_counter_ns").to_dict()
        for kind in ("device", "e2e")
    }
    measured = Measurements(
        complexity=Complexity(params=1000, bytes=4000, dtypes={"float32": 1000}, macs={"32x32": 5000}, macs_std={}),
        environment={"device": "cpu"},
        timings={"accuracy_s": 0.1},
        latency=summaries,
        crosscheck={"images": 8, "consistent": True, "reduced_precision": False, "reason": None},
    )
    (Path(job.out_dir) / "measurements.json").write_text(json.dumps(measured.to_json()))


class FakeRunner(BaseRunner):
    """Writes plausible outputs without running any code; `behaviour` picks a failure path."""

    name = "fake"
    trusted = False

    def __init__(self, behaviour: str = "ok"):
        self.behaviour = behaviour
        self.jobs: list[IngestJob] = []

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult:
        self.jobs.append(job)
        out = Path(job.out_dir)
        if self.behaviour == "broken":
            raise HarnessError("docker could not start the sandbox")
        if self.behaviour == "interrupt":
            raise KeyboardInterrupt
        if self.behaviour == "failed":
            return IngestResult(False, out, "[build] build(ctx) raised ValueError: no weights", log_tail="tail")
        fake_outputs(job)
        if self.behaviour == "tampered":
            data = json.loads((out / "measurements.json").read_text())
            data["complexity"]["params"] = -1
            (out / "measurements.json").write_text(json.dumps(data))
        return IngestResult(True, out, log_tail="ran")

    def run_many(self, jobs: Iterable[tuple[Any, IngestJob]], time_limit_s: float) -> Iterator[tuple[Any, Any]]:
        if self.behaviour != "lost":
            yield from super().run_many(jobs, time_limit_s)
            return
        for key, _job in list(jobs):  # claims every job up front, as Ray does, then loses them
            yield key, ConnectionError("node died")


@pytest.fixture()
def stored(harness_env, tmp_path) -> Store:
    from harness.service.submit import store_submission

    store = Store(harness_env["HARNESS_DB_URL"])
    store_submission(make_submission(tmp_path, "tiny", variants=["fp32", "channels-last"]), store)
    return store


def _plan(store: Store, **options: Any) -> service.Plan:
    return service.plan(service.EvaluationRequest("classification", **options), store)


def _evaluate(store: Store, runner: FakeRunner, events: list | None = None, **options: Any) -> list[dict]:
    plan = _plan(store, **options)
    plan.runner = runner

    def progress(event: str, info: dict) -> None:
        if events is not None:
            events.append((event, info))

    return service.execute(plan, store, progress)


def _running(store: Store) -> list:
    return store.runs(status="running")


def test_plan_resolves_and_prepares_without_claiming(stored):
    plan = _plan(stored)
    assert [(s.name, v) for s, v in plan.todo] == [("tiny", "fp32"), ("tiny", "channels-last")]
    assert plan.split.key == "shapetex/test" and plan.job_fields["num_classes"] == 50
    assert plan.job_fields["mac_inputs"] == {"32x32": {"size": [32, 32]}, "224x224": {"size": [224, 224]}}
    assert stored.count_runs() == 0
    with pytest.raises(HarnessError, match="unknown profile `fast`"):
        _plan(stored, profile="fast")
    with pytest.raises(HarnessError, match="unknown device `tpu`"):
        _plan(stored, device="tpu")
    with pytest.raises(DatasetError, match="`smallobj` is a detection dataset"):
        _plan(stored, dataset="smallobj")
    with pytest.raises(HarnessError) as caught:
        _plan(stored, submissions=["tinny"])
    assert "no submission named `tinny`" in caught.value.message and "did you mean `tiny`?" in caught.value.hint
    with pytest.raises(HarnessError, match="the local runner takes no option `address`"):
        _plan(stored, runner_options={"address": "10.0.0.1:6379"})


def test_runs_are_claimed_once_and_scored(stored):
    runner = FakeRunner()
    events: list = []
    results = _evaluate(stored, runner, events)
    assert [r["status"] for r in results] == ["ok", "ok"]
    assert results[0]["params"] == 1000 and 0.0 <= results[0]["metrics"]["top1"] <= 1.0
    assert results[0]["latency"]["ranked_ms"] == pytest.approx(1.0)
    assert [e for e, _ in events].count("run") == 2 and not _running(stored)
    classes = get_card("classification").num_classes  # the default data's classes reach every job
    assert len(runner.jobs) == 2 and runner.jobs[0].num_classes == classes and runner.jobs[0].calibration_dir is None
    again = FakeRunner()
    events.clear()
    assert _evaluate(stored, again, events) == [] and again.jobs == []
    assert [info["reason"] for e, info in events if e == "skip"] == ["already evaluated", "already evaluated"]
    forced = _evaluate(stored, FakeRunner(), force=True)
    assert len(forced) == 2 and stored.count_runs() == 4


def test_a_failed_step_and_tampered_output_are_stored_as_failed_runs(stored):
    (failed,) = _evaluate(stored, FakeRunner("failed"), variants=["fp32"])
    assert failed["status"] == "failed" and failed["error"].startswith("[build]") and failed["log_tail"] == "tail"
    (tampered,) = _evaluate(stored, FakeRunner("tampered"), variants=["channels-last"])
    assert tampered["status"] == "failed"
    assert "[tampered] measurements.json: `complexity.params` is -1" in tampered["error"]
    assert not _running(stored)


@pytest.mark.parametrize("behaviour", ["broken", "interrupt"])
def test_a_broken_runner_or_an_interrupt_releases_the_claim(stored, behaviour):
    expected = HarnessError if behaviour == "broken" else KeyboardInterrupt
    with pytest.raises(expected):
        _evaluate(stored, FakeRunner(behaviour))
    assert stored.count_runs() == 0, "the claimed run went back to the queue"
    assert len(_evaluate(stored, FakeRunner())) == 2


def test_jobs_a_runner_loses_go_back_to_the_queue(stored):
    events: list = []
    assert _evaluate(stored, FakeRunner("lost"), events) == []
    skipped = [info["reason"] for e, info in events if e == "skip"]
    assert skipped == ["lost by the fake runner (ConnectionError); queued again"] * 2
    assert stored.count_runs() == 0
    assert len(_evaluate(stored, FakeRunner())) == 2
