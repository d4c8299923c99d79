"""Device latency from CUDA-graph replays (harness/measure/cudagraph.py): a graph is used only when its
replay reproduces the eager forward on an input nobody could predict.

The CPU tests cover the parts that need no GPU; the CUDA tests skip without one (CI has none) and ran on the
H200 (`scripts/gpu_measure.py` runs them there first; the output is in docs/BENCHMARKS.md)."""

from __future__ import annotations

import pytest
import torch

from harness.measure.cudagraph import capture_forward, outputs_match, poison, restore, second_input

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (CI has no GPU)")


def test_second_input_differs_everywhere_it_can_and_keeps_structure() -> None:
    inputs = {"image": torch.rand(1, 3, 8, 8), "ids": torch.tensor([3, 5, 7]), "mask": torch.tensor([True, False])}
    probe = second_input(inputs, seed=1)
    assert set(probe) == set(inputs)
    for key in inputs:
        assert probe[key].shape == inputs[key].shape and probe[key].dtype == inputs[key].dtype
    assert float((probe["image"] - inputs["image"]).abs().min()) > 0.0  # noise on every element
    assert torch.equal(probe["ids"], torch.tensor([4, 6, 8]))  # shifted by one within range 3..7 (+1 wraps at 9)
    assert torch.equal(probe["mask"], torch.tensor([False, True]))
    # Seeded from the OS when no seed is given: two calls differ, so a model cannot know the probe.
    assert not torch.equal(second_input(inputs)["image"], second_input(inputs)["image"])


def test_outputs_match_is_tight_and_names_what_differs() -> None:
    out = (torch.ones(4), [torch.arange(3.0)])
    assert outputs_match(out, (torch.ones(4), [torch.arange(3.0)])) is None
    assert outputs_match(out, (torch.ones(4) * (1 + 1e-6), [torch.arange(3.0)])) is None  # rounding
    assert "relative difference" in outputs_match(out, (torch.ones(4) * 1.01, [torch.arange(3.0)]))
    assert "structure" in outputs_match(out, (torch.ones(4),))
    assert "shape or dtype" in outputs_match(out, (torch.ones(5), [torch.arange(3.0)]))
    assert "host value" in outputs_match((torch.ones(1), 2), (torch.ones(1), 3))


def test_outputs_match_needs_nans_at_the_same_places() -> None:
    nan = float("nan")
    assert outputs_match(torch.tensor([nan, 1.0]), torch.tensor([nan, 1.0])) is None
    # A poisoned output left unwritten where the eager output is zero must not pass.
    assert "non-finite" in outputs_match(torch.tensor([nan, 0.0]), torch.tensor([0.0, 0.0]))
    assert "signs" in outputs_match(torch.tensor([float("inf")]), torch.tensor([float("-inf")]))


def test_poison_changes_every_element_and_restore_undoes_it() -> None:
    out = {"logits": torch.zeros(3), "ids": torch.tensor([0, 7]), "keep": torch.tensor([True, False])}
    before = {k: v.clone() for k, v in out.items()}
    saved = poison(out)
    assert bool(out["logits"].isnan().all())
    assert torch.equal(out["ids"], torch.tensor([1, 8])) and torch.equal(out["keep"], torch.tensor([False, True]))
    assert outputs_match(out, before) is not None
    restore(saved)
    assert all(torch.equal(out[k], before[k]) for k in out)


def test_cpu_inputs_are_never_captured() -> None:
    graphed, why = capture_forward(lambda x: x * 2, torch.ones(2))
    assert graphed is None and "not all CUDA tensors" in why


@cuda
def test_a_plain_model_is_captured_and_its_replay_equals_eager() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(5))
    model = model.cuda().eval()
    x = torch.rand(1, 3, 16, 16, device="cuda")
    with torch.inference_mode():
        model(x)
        graphed, why = capture_forward(model, x)
        assert why is None and graphed is not None
        expected = model(x)
        out = graphed.replay()
        torch.cuda.synchronize()
    assert torch.equal(out, expected)


@cuda
def test_a_forward_that_computes_on_the_host_is_timed_eagerly() -> None:
    weight = torch.rand(3, 3)

    def forward(x: torch.Tensor) -> torch.Tensor:  # the work happens on the CPU; a replay would skip it
        return (x.cpu() @ weight).to(x.device)

    graphed, why = capture_forward(forward, torch.rand(3, 3, device="cuda"))
    assert graphed is None and why.startswith(("capture failed", "the replay does not reproduce"))
    # The CUDA context survived the failed capture.
    assert float(torch.ones(2, device="cuda").sum()) == 2.0


@cuda
def test_a_forward_that_does_no_work_while_captured_fails_the_replay_check() -> None:
    last: dict[str, torch.Tensor] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:  # an empty graph, and the last eager answer as its output
        if torch.cuda.is_current_stream_capturing():
            return last["out"]
        last["out"] = x * 3
        return last["out"]

    graphed, why = capture_forward(forward, torch.rand(8, device="cuda"))
    assert graphed is None and "does not reproduce" in why


@cuda
def test_a_graph_that_returns_memory_the_eager_forward_fills_is_caught() -> None:
    out = torch.zeros(8, device="cuda")

    def forward(x: torch.Tensor) -> torch.Tensor:  # an empty graph whose output the eager calls keep filling
        if not torch.cuda.is_current_stream_capturing():
            out.copy_(x * 3)
        return out

    graphed, why = capture_forward(forward, torch.rand(8, device="cuda"))
    assert graphed is None and "does not reproduce" in why


@cuda
def test_a_forward_with_data_dependent_shapes_falls_back() -> None:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x[x > 0.5]  # nonzero: the host must learn the size

    graphed, why = capture_forward(forward, torch.rand(64, device="cuda"))
    assert graphed is None and why.startswith("capture failed")
    assert float(torch.ones(2, device="cuda").sum()) == 2.0
