"""The `int8-cpu` variant: post-training static int8 quantization for x86 CPUs, calibrated on a fixed split.

Two flows, the current one first:
- PT2E (torchao): `torch.export` of the model, `prepare_pt2e` with the `X86InductorQuantizer` (per-channel
  weights, per-tensor activations), calibration, `convert_pt2e`, then lowering to oneDNN int8 kernels by
  TorchInductor with freezing. Without that lowering the converted graph would only simulate int8 in float
  arithmetic, so lowering is part of the flow and is done (and checked) before the variant is accepted.
- FX graph mode (`torch.ao.quantization.quantize_fx`, x86 qconfig mapping): for when torchao is missing or
  the model does not export; it runs real quantized kernels eagerly.
A flow "works" when it quantizes the model and its int8 model stays faithful to float32 on the calibration
images (no labels needed: SQNR of the forward outputs >= 20 dB and, for classifiers, >= 99 % top-1
agreement). Seen here: PT2E's Inductor-lowered MobileNetV2 lost 3.6 points of top-1 on digits while its
un-lowered reference graph lost none, so the check runs on the lowered model. The flow used, the fidelity of
each flow tried and why the others were not used are recorded in the run's details. A model neither flow
can quantize (e.g. data-dependent control flow of detectors) makes the variant unavailable with both reasons.

Calibration uses `context["calibration"]`: the first images of the track's calibration split, the same for
every run. The quantized weights are what the run's `bytes` measures (serialized quantized state dict).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from harness.variants import Variant, VariantUnavailable

CALIBRATION_BATCH = 32


def _available(device: str) -> str | None:
    import torch

    if str(device) != "cpu":
        return "int8-cpu runs x86 int8 CPU kernels (oneDNN/FBGEMM); evaluate it with --device cpu"
    engines = torch.backends.quantized.supported_engines
    if "x86" not in engines and "fbgemm" not in engines:
        return f"this torch build has no x86 quantized engine (it has {', '.join(engines)})"
    return None


def pt2e_available() -> str | None:
    """None when the PT2E flow can be tried here, else why not."""
    try:
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
    except ImportError as exc:
        return f"torchao is not installed ({exc})"
    from harness.variants.compile import available as compile_available

    return compile_available("cpu")


def capture_model_args(predictor: Any, inputs: Any) -> tuple[tuple, dict]:
    """The positional and keyword arguments `predictor.forward(inputs)` passes to `predictor.model`."""
    import torch

    captured: list[tuple[tuple, dict]] = []

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        if not captured:
            captured.append((args, kwargs))

    handle = predictor.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            predictor.forward(inputs)
    finally:
        handle.remove()
    if not captured:
        raise VariantUnavailable("predictor.forward does not call predictor.model, so there is nothing to quantize")
    return captured[0]


def quantize_pt2e(model: Any, example_args: tuple, example_kwargs: dict, calibrate: Callable[[Any], None]) -> Any:
    """PT2E static quantization with the x86 Inductor quantizer, lowered by TorchInductor (freezing)."""
    import torch
    import torch._inductor.config as inductor_config
    from torch.export import Dim
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    # The batch dimension stays dynamic so that the accuracy pass (large batches) and the performance pass
    # (the track's batch size) use one graph.
    dynamic = tuple({0: Dim.AUTO} if torch.is_tensor(a) and a.dim() >= 1 else None for a in example_args)
    exported = torch.export.export(
        model, example_args, example_kwargs or None, dynamic_shapes=dynamic if not example_kwargs else None
    )
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported.module(), quantizer)
    move_exported_model_to_eval(prepared)
    calibrate(prepared)
    converted = convert_pt2e(prepared)
    drop_unused_tensors(converted)
    inductor_config.freezing = True
    return torch.compile(converted)


def drop_unused_tensors(graph_module: Any) -> list[str]:
    """Delete parameters and buffers the graph no longer reads. After `convert_pt2e` the float weights stay
    attached beside their int8 copies; left there, they would count in the quantized model's bytes."""
    nodes = list(graph_module.graph.nodes)
    used = {str(node.target) for node in nodes if node.op == "get_attr"}
    called = tuple(f"{node.target}." for node in nodes if node.op == "call_module")
    dropped = []
    for name, _ in [*graph_module.named_parameters(), *graph_module.named_buffers()]:
        if name in used or name.startswith(called):
            continue
        owner_path, _, attr = name.rpartition(".")
        owner = graph_module.get_submodule(owner_path) if owner_path else graph_module
        delattr(owner, attr)
        dropped.append(name)
    return dropped


def quantize_fx(model: Any, example_args: tuple, calibrate: Callable[[Any], None]) -> Any:
    """FX graph mode static quantization with the x86 backend's default qconfig mapping."""
    import warnings

    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notes pointing to PT2E, which is tried first
        prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"), example_args)
        calibrate(prepared)
        return convert_fx(prepared)


# Fidelity bar a flow's int8 model must meet on the calibration images against float32 (no labels needed):
# the signal-to-quantization-noise ratio of the forward step's outputs and, for classifiers, top-1 agreement.
MIN_SQNR_DB = 20.0
MIN_TOP1_AGREEMENT = 0.99


def output_fidelity(reference: list[Any], outputs: list[Any], classification: bool) -> dict[str, Any]:
    """SQNR (dB) of the float leaves of `outputs` against `reference` (one forward output per batch), and
    the top-1 agreement of 2-D outputs for classifiers. Outputs of data-dependent shape (detections) are
    not comparable element by element: then `comparable` is False."""
    import torch
    from torch.utils._pytree import tree_flatten

    want, have = [], []
    for ref, out in zip(reference, outputs, strict=True):
        ref_leaves, out_leaves = tree_flatten(ref)[0], tree_flatten(out)[0]
        if len(ref_leaves) != len(out_leaves):
            return {"comparable": False}
        for a, b in zip(ref_leaves, out_leaves, strict=True):
            if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.shape != b.shape or not a.is_floating_point():
                return {"comparable": False}
            want.append(a.detach().double().flatten())
            have.append(b.detach().double().flatten())
    if not want:
        return {"comparable": False}
    signal, noise = torch.cat(want), torch.cat(want) - torch.cat(have)
    sqnr = float(10 * torch.log10(signal.pow(2).sum() / noise.pow(2).sum().clamp_min(1e-30)))
    result: dict[str, Any] = {"comparable": True, "sqnr_db": round(sqnr, 2)}
    first_ref = [tree_flatten(r)[0][0] for r in reference]
    if classification and all(t.dim() == 2 for t in first_ref):
        first_out = [tree_flatten(o)[0][0] for o in outputs]
        agree = torch.cat([a.argmax(1) == b.argmax(1) for a, b in zip(first_ref, first_out, strict=True)])
        result["top1_agreement"] = round(float(agree.double().mean()), 4)
    return result


def meets_bar(fidelity: dict[str, Any]) -> bool:
    if not fidelity.get("comparable"):
        return True  # nothing to judge by; the run's metric on the test split tells
    if fidelity["sqnr_db"] < MIN_SQNR_DB:
        return False
    return fidelity.get("top1_agreement", 1.0) >= MIN_TOP1_AGREEMENT


def quantize_predictor(
    predictor: Any,
    calibration: list[Any],
    flows: tuple[str, ...] = ("pt2e", "fx"),
    classification: bool = False,
) -> dict:
    """Quantize `predictor.model` in place with the first flow that works and whose int8 model meets the
    fidelity bar against float32 on the calibration images; when none meets it, the most faithful one.
    Returns what was done (flow, fidelity of each flow tried, why others were not used)."""
    import torch

    if not calibration:
        raise VariantUnavailable("no calibration images (the track's calibration split is empty or missing)")
    original = predictor.model
    batches = [calibration[i : i + CALIBRATION_BATCH] for i in range(0, len(calibration), CALIBRATION_BATCH)]
    with torch.no_grad():
        calibration_inputs = [predictor.preprocess(batch) for batch in batches]
        reference = [predictor.forward(inputs) for inputs in calibration_inputs]
    example_args, example_kwargs = capture_model_args(predictor, calibration_inputs[0])

    def calibrate(candidate: Any) -> None:
        predictor.model = candidate
        try:
            with torch.no_grad():
                for inputs in calibration_inputs:
                    predictor.forward(inputs)
        finally:
            predictor.model = original

    info: dict[str, Any] = {"calibration_images": len(calibration), "fidelity": {}}
    errors: dict[str, str] = {}
    candidates: dict[str, tuple[Any, str]] = {}
    for flow in flows:
        try:
            if flow == "pt2e":
                reason = pt2e_available()
                if reason:
                    errors[flow] = reason
                    continue
                quantized = quantize_pt2e(original, example_args, example_kwargs, calibrate)
                quantizer = "torchao X86InductorQuantizer (default static config), Inductor freezing"
            else:
                if example_kwargs:
                    errors[flow] = "the model is called with keyword arguments, which FX quantization cannot take"
                    continue
                quantized = quantize_fx(original, example_args, calibrate)
                quantizer = "torch.ao FX, x86 default qconfig mapping"
            # Run it on the calibration images: PT2E lowers here, a model that breaks on int8 kernels fails
            # here (not mid-run), and the outputs say how faithful the int8 model is.
            predictor.model = quantized
            with torch.no_grad():
                outputs = [predictor.forward(inputs) for inputs in calibration_inputs]
            fidelity = output_fidelity(reference, outputs, classification)
        except Exception as exc:
            errors[flow] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:400] if str(exc) else ''}"
            continue
        finally:
            predictor.model = original
        info["fidelity"][flow] = fidelity
        candidates[flow] = (quantized, quantizer)
        if meets_bar(fidelity):
            break
        errors[flow] = (
            f"int8 outputs too far from float32 on the calibration images ({fidelity}; needed SQNR >= "
            f"{MIN_SQNR_DB} dB" + (f", top-1 agreement >= {MIN_TOP1_AGREEMENT}" if classification else "") + ")"
        )
    if not candidates:
        raise VariantUnavailable(
            "the model cannot be quantized to int8: " + "; ".join(f"{flow}: {why}" for flow, why in errors.items())
        )
    chosen = next((f for f in candidates if meets_bar(info["fidelity"][f])), None)
    if chosen is None:
        chosen = max(candidates, key=lambda f: info["fidelity"][f].get("sqnr_db", float("-inf")))
        info["below_fidelity_bar"] = True
    predictor.model, info["quantizer"] = candidates[chosen]
    info["flow"] = chosen
    not_used = {flow: why for flow, why in errors.items() if flow != chosen}
    if not_used:
        info["not_used"] = not_used
    return info


def _apply(predictor: Any, context: dict) -> Any:
    calibration = list(context.get("calibration") or [])
    classification = context.get("kind") == "classification"
    context.setdefault("info", {})["int8"] = quantize_predictor(predictor, calibration, classification=classification)
    return predictor


def _guard() -> Any:
    from harness.variants.compile import no_recompilation

    # PT2E models run compiled: a recompilation while timing is an error, as for `compile`.
    return no_recompilation()


INT8_CPU = Variant(
    "int8-cpu",
    "post-training static int8 quantization (PT2E x86 Inductor quantizer, else FX), calibrated on a fixed split",
    _apply,
    _available,
    reduced_precision=True,
    timing_guard=_guard,
    needs_calibration=True,
)
