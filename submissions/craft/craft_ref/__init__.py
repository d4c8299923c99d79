"""Reference CRAFT submissions for the text-detection track: a compact CRAFT trained from scratch on the
track's synthetic scene text, and the published VGG16-BN CRAFT architecture (untrained, see README.md)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from craft_ref.model import CRAFT, craft_compact, craft_vgg16_bn
from craft_ref.predictor import CraftPredictor
from harness.contract import BuildContext
from harness.errors import SubmissionError

__all__ = ["CRAFT", "CraftPredictor", "build_compact", "build_vgg16_bn", "craft_compact", "craft_vgg16_bn"]

WEIGHTS_DIR = Path(__file__).resolve().parent
COMPACT_WEIGHTS = WEIGHTS_DIR / "craft_compact.safetensors"


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d inside an nn.Sequential into the convolution
    (inference only: the outputs are unchanged up to rounding, the model runs faster)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            layers, folded, i = list(child), [], 0
            while i < len(layers):
                conv, nxt = layers[i], layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(conv, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d):
                    folded.append(fuse_conv_bn_eval(conv, nxt))
                    i += 2
                else:
                    folded.append(fold_batch_norms(conv))
                    i += 1
            setattr(module, name, nn.Sequential(*folded))
        else:
            fold_batch_norms(child)
    return module


def load_compact(weights: str | Path = COMPACT_WEIGHTS) -> CRAFT:
    """The compact CRAFT with trained weights from a safetensors file (eval mode, batch norms not folded)."""
    from safetensors.torch import load_file

    path = Path(weights)
    if not path.is_file():
        raise SubmissionError(
            f"craft_compact: weights file {path} not found",
            "train them with `python submissions/craft/train.py --out DIR --max-minutes 8 --device cuda`, "
            "copy DIR/craft_compact.safetensors into submissions/craft/craft_ref/, "
            "or pass ctx.extra['weights']",
        )
    model = craft_compact()
    try:
        state = load_file(str(path))
        model.load_state_dict(state)
    except Exception as exc:  # a truncated file or one of another model: say which file and why
        raise SubmissionError(
            f"craft_compact: cannot load weights from {path}: {exc}",
            "the file must be a safetensors state dict of craft_ref.craft_compact() (as train.py writes it)",
        ) from exc
    return model.eval()


def _predictor(model: nn.Module, ctx: BuildContext) -> CraftPredictor:
    predictor = CraftPredictor(
        fold_batch_norms(model.eval()),
        canvas_size=int(ctx.extra.get("canvas_size", 1280)),
        mag_ratio=float(ctx.extra.get("mag_ratio", 1.0)),
    )
    return predictor.to(ctx.device)


def build_compact(ctx: BuildContext) -> CraftPredictor:
    """Entry point `craft_compact`: the compact CRAFT with its committed weights (or ctx.extra['weights'])."""
    return _predictor(load_compact(ctx.extra.get("weights", COMPACT_WEIGHTS)), ctx)


def build_vgg16_bn(ctx: BuildContext) -> CraftPredictor:
    """Entry point `craft_vgg16_bn`: the published architecture. No trained weights ship (none can be
    downloaded here and training it is out of this project's budget), so it is built only on request with
    `ctx.extra['allow_untrained'] = True`, for complexity and latency measurement; its detections are
    meaningless. `ctx.extra['weights']` loads a state dict (e.g. the authors' checkpoint, converted)."""
    weights = ctx.extra.get("weights")
    model = craft_vgg16_bn()
    if weights is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(weights)))
    elif not ctx.extra.get("allow_untrained"):
        raise SubmissionError(
            "craft_vgg16_bn has no trained weights: it measures the published architecture's cost only",
            "build it with ctx.extra={'allow_untrained': True} for params/MACs/latency, or give "
            "ctx.extra['weights'] = a safetensors state dict of the published model",
        )
    return _predictor(model, ctx)
