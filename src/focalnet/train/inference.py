"""Loading a model for evaluation or prediction, with its preprocessing and class names taken from the weights.

Two sources: a training checkpoint of this package (its ``meta`` records the model, preprocessing and class
names), or a registered variant with released weights / a weights file (preprocessing from the weights record,
ImageNet-1K or -22K names from the size of the head).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focalnet.errors import InputNotFoundError

_logger = logging.getLogger(__name__)

__all__ = ["Loaded", "resolve_checkpoint", "load_for_inference", "label_set_for", "predict_images"]


@dataclass
class Loaded:
    model: nn.Module
    preprocess: dict[str, Any]
    class_names: list[str] | None
    source: str
    label_set: str | None = None
    config: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def resolve_checkpoint(path: str | os.PathLike | None, default_run: str = "runs/digits") -> Path:
    """A checkpoint file, or the newest checkpoint of a run directory (default: the built-in job's run)."""
    from focalnet.engine.checkpoint import find_latest

    p = Path(path) if path else Path(default_run)
    if p.is_dir():
        latest = find_latest(p / "checkpoints") or find_latest(p)
        if latest is None:
            raise InputNotFoundError(
                f"no checkpoint in {p}" + (" (run `focalnet train` first, or pass --checkpoint / --model)"
                                           if not path else "")
            )
        return latest
    if not p.is_file():
        raise InputNotFoundError(f"checkpoint not found: {p}")
    return p


def head_size(sd: dict[str, torch.Tensor]) -> int | None:
    """Classes of a state dict's classifier in any layout: ``head.weight`` (ours / the authors'), ``head.fc.weight``
    (timm), ``classifier.weight`` (Hugging Face); ``None`` when it has none."""
    for key in ("head.weight", "head.fc.weight", "classifier.weight"):
        if key in sd and sd[key].ndim >= 2:
            return int(sd[key].shape[0])
    return None


def label_set_for(num_classes: int) -> str | None:
    return {1000: "imagenet-1k", 21842: "imagenet-22k"}.get(num_classes)


def _default_preprocess(name: str) -> dict[str, Any]:
    from focalnet import get_spec
    from focalnet.weights.records import IMAGENET_MEAN, IMAGENET_STD

    size = get_spec(name).img_size
    return {"input_size": size, "interpolation": "bicubic", "crop_pct": 0.875 if size == 224 else 1.0,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def load_for_inference(
    checkpoint: str | os.PathLike | None = None,
    model_name: str | None = None,
    pretrained: str | None = None,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    use_ema: bool = False,
) -> Loaded:
    """Build the model in eval mode on ``device`` with its preprocessing and class names."""
    from focalnet import create_model
    from focalnet.data import class_names, preprocess_from_weights
    from focalnet.weights.loading import check_finite

    if model_name is None:
        from focalnet.engine.checkpoint import load_checkpoint

        path = resolve_checkpoint(checkpoint)
        ck = load_checkpoint(path)
        meta = ck.get("meta") or {}
        if "model_name" not in meta:
            raise ValueError(f"{path} has no model metadata; use --model NAME --weights {path}")
        kw = dict(meta["model_kwargs"])
        kw["drop_path_rate"] = 0.0
        model = create_model(meta["model_name"], **kw)
        sd = ck["ema"] if use_ema and ck.get("ema") is not None else ck["model"]
        model.load_state_dict(sd)
        check_finite(model, path)
        label_set = meta.get("label_set")
        names = class_names(label_set) if label_set else meta.get("class_names")
        return Loaded(model.eval().to(device), dict(meta["preprocess"]), names, str(path), label_set,
                      ck.get("config"), meta)
    record = None
    if pretrained or not weights:
        try:
            from focalnet.weights import get_weights

            p = str(pretrained) if pretrained else "true"
            record = get_weights(model_name if p.lower() in ("true", "default") else f"{model_name}.{p}")
        except (ImportError, KeyError) as e:
            if not weights:
                raise ValueError(f"no released weights for {model_name!r} ({e}); pass --weights FILE") from e
    dir_preprocess, dir_names = None, None
    if weights:
        from focalnet.weights.hf import is_hf_dir, read_hf_dir

        if is_hf_dir(weights):  # a Hugging Face folder: classes, flags and preprocessing from its JSON files
            hf = read_hf_dir(weights)
            model = create_model(model_name, pretrained=str(weights), drop_path_rate=0.0)
            n = model.num_classes
            dir_preprocess, dir_names = hf.preprocess, hf.class_names
        else:
            from focalnet.weights import load_weights
            from focalnet.weights.loading import load_state_dict_file, unwrap_state_dict

            sd = unwrap_state_dict(load_state_dict_file(weights))
            n = head_size(sd)
            if n is None:
                raise ValueError(f"{weights} has no classifier (no head.*, head.fc.* or classifier.* tensors); it "
                                 "cannot classify images")
            model = create_model(model_name, num_classes=n, drop_path_rate=0.0)
            load_weights(model, sd)
        if n <= 0:
            raise ValueError(f"{weights} has no classifier head; it cannot classify images")
        source = str(weights)
    else:
        n = record.num_classes
        if n <= 0:
            raise ValueError(f"{record.name} has no classifier head (a feature extractor); it cannot classify images")
        flag: bool | str = True if str(pretrained or "true").lower() in ("true", "default") else str(pretrained)
        model = create_model(model_name, pretrained=flag, num_classes=n, drop_path_rate=0.0)
        source = record.name
    check_finite(model, source)
    preprocess = (dir_preprocess or (preprocess_from_weights(record) if record is not None
                                     else _default_preprocess(model_name)))
    label_set = record.label_set if record is not None else label_set_for(n)
    names = dir_names or (class_names(label_set) if label_set else None)
    return Loaded(model.eval().to(device), preprocess, names, source, label_set)


@torch.no_grad()
def predict_images(loaded: Loaded, paths: list[str], topk: int = 5, device: str | torch.device = "cpu",
                   batch_size: int = 16, exact: bool = False) -> list[dict[str, Any]]:
    """Top-k predictions per image path; an unreadable image gives ``{"path", "error"}`` and the rest go on.

    Runs through :class:`focalnet.Predictor`'s fast path (bf16 where the hardware has it, channels-last); ``exact``
    switches back to plain fp32."""
    from focalnet.data import ImageLoadError, build_transform, load_rgb
    from focalnet.predictor import Predictor

    predictor = Predictor(loaded.model, device=device, compile=False, exact=exact)

    tf = build_transform(loaded.preprocess)
    results: list[dict[str, Any]] = [{} for _ in paths]
    ok: list[tuple[int, torch.Tensor]] = []
    for i, p in enumerate(paths):
        try:
            ok.append((i, tf(load_rgb(p))))
        except ImageLoadError as e:
            results[i] = {"path": str(p), "error": str(e)}
    for s in range(0, len(ok), batch_size):
        chunk = ok[s : s + batch_size]
        x = torch.stack([t for _, t in chunk]).to(device)
        probs = predictor(x).softmax(-1)
        k = min(topk, probs.shape[1])
        top = probs.topk(k, dim=1)
        for (i, _), pv, iv in zip(chunk, top.values.tolist(), top.indices.tolist(), strict=True):
            preds = []
            for prob, idx in zip(pv, iv, strict=True):
                name = loaded.class_names[idx] if loaded.class_names and idx < len(loaded.class_names) else str(idx)
                preds.append({"index": idx, "label": name, "prob": prob})
            results[i] = {"path": str(paths[i]), "top": preds}
    return results
