"""The driver's check that the harness's own clocks and timers were not replaced while a submission ran."""

from __future__ import annotations

import torch

import harness.measure.latency as latency
from harness.sandbox.timed import timer_snapshot, timers_replaced


def test_nothing_replaced_reports_nothing():
    assert timers_replaced(timer_snapshot()) == []


def test_replacing_torch_cuda_event_does_not_reach_the_harness(monkeypatch):
    before = timer_snapshot()
    held = latency.capture_cuda_timers()["Event"]

    class Fake:
        def __init__(self, *args, **kwargs):
            pass

    monkeypatch.setattr(torch.cuda, "Event", Fake)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    assert latency.capture_cuda_timers()["Event"] is held  # the timers still use the class held at start
    assert timers_replaced(before) == []


def test_patching_the_held_event_class_is_found(monkeypatch):
    before = timer_snapshot()
    event = latency.capture_cuda_timers()["Event"]
    monkeypatch.setattr(event, "elapsed_time", lambda self, other: 0.001)
    assert timers_replaced(before) == ["torch.cuda.Event.elapsed_time"]


def test_replacing_the_captured_clock_or_its_code_is_found(monkeypatch):
    before = timer_snapshot()
    monkeypatch.setattr(latency, "_perf_counter_ns", lambda: 0)
    assert timers_replaced(before) == ["harness.measure.latency._perf_counter_ns"]
    monkeypatch.undo()
    before = timer_snapshot()
    original = latency.wall_clock_ns.__code__
    monkeypatch.setattr(latency.wall_clock_ns, "__code__", (lambda: 0).__code__)
    assert "harness.measure.latency.wall_clock_ns" in timers_replaced(before)
    latency.wall_clock_ns.__code__ = original
