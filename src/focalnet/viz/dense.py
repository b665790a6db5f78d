"""The FocalNet inside a detector or segmenter checkpoint, as a plain FocalNet for modulation and gating maps.

What does the detection backbone focus on? A ``focalnet detect``/``focalnet segment`` run (or any checkpoint
holding a FocalNet backbone: torchvision Mask R-CNN/RetinaNet/FCOS, UPerNet, Mask2Former, DINO...) stores the
backbone's tensors under some prefix (``backbone.body.body.``, ``backbone.body.``...). :func:`backbone_from_checkpoint`
finds that prefix by the FocalNet key pattern, rebuilds the body with the architecture its tensors imply (the
registered variant when one fits, else the exact widths/depths/levels/windows of the tensors), takes the two flags
that leave no trace in the tensors (``use_postln``, ``normalize_modulator``) and ``stem_padding`` from the
checkpoint's stored config when present, and loads the tensors strictly (only the classifier's unused final norm
and head may be absent). Its ``forward_modulation`` then runs exactly the blocks the dense model runs, so the maps
of :func:`focalnet.viz.compute_maps` are the backbone's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["DenseBackbone", "backbone_from_checkpoint", "find_backbone_prefix"]

_ANCHOR = re.compile(r"^(.*?)layers\.0\.blocks\.0\.modulation\.f\.weight$")
_FLAGS = ("use_postln", "normalize_modulator", "stem_padding")


@dataclass
class DenseBackbone:
    """A FocalNet rebuilt from a dense checkpoint: ``model``, the ``variant`` it matches (or ``None``), the key
    ``prefix`` it was found under, and a short ``description`` for titles."""

    model: nn.Module
    variant: str | None
    prefix: str
    description: str


def _state_dicts(obj: Any, path: str = "", depth: int = 0):
    """Every mapping of tensors inside a checkpoint (``model``, ``ema``, ``state_dict``...), shallow first."""
    if not isinstance(obj, Mapping) or depth > 3:
        return
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if tensors:
        yield path, tensors
    for k, v in obj.items():
        if isinstance(v, Mapping):
            yield from _state_dicts(v, f"{path}{k}/", depth + 1)


def find_backbone_prefix(sd: Mapping[str, torch.Tensor]) -> str | None:
    """The key prefix of the FocalNet body in ``sd`` (``""`` for a bare FocalNet), or ``None`` if there is none."""
    prefixes = sorted({m.group(1) for k in sd if (m := _ANCHOR.match(k))}, key=len)
    return prefixes[0] if prefixes else None


def _config_flags(obj: Any, depth: int = 0) -> dict[str, Any]:
    """``use_postln`` / ``normalize_modulator`` / ``stem_padding`` wherever the stored config spells them."""
    found: dict[str, Any] = {}
    if depth > 6:
        return found
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if k in _FLAGS and isinstance(v, (bool, int)) and not isinstance(v, torch.Tensor):
                found.setdefault(k, v)
            elif isinstance(v, (Mapping, list, tuple)):
                for kk, vv in _config_flags(v, depth + 1).items():
                    found.setdefault(kk, vv)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            for kk, vv in _config_flags(v, depth + 1).items():
                found.setdefault(kk, vv)
    return found


def backbone_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> DenseBackbone:
    """Rebuild the FocalNet backbone stored in a detection/segmentation checkpoint (see the module docstring).

    Raises ``ValueError`` with one line when the file is unreadable or holds no FocalNet.
    """
    from focalnet.models.focalnet import FocalNet
    from focalnet.weights.identify import fingerprint, guess_variant

    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__})") from None
    candidates = [(where, sd, find_backbone_prefix(sd)) for where, sd in _state_dicts(blob)]
    candidates = [c for c in candidates if c[2] is not None]
    if not candidates:
        raise ValueError(f"{path} holds no FocalNet backbone (no '...layers.0.blocks.0.modulation' tensors)")
    # the trained model first; an EMA copy or an optimizer state only if nothing else holds the backbone
    candidates.sort(key=lambda c: (0 if c[0] in ("", "model/", "state_dict/") else 1, len(c[0])))
    where, sd, prefix = candidates[0]
    sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    sub = {k: v for k, v in sub.items() if k.split(".")[0] in ("patch_embed", "layers", "norm", "head")}
    fp = fingerprint(sub)
    if fp is None:
        raise ValueError(f"{path}: the tensors under {prefix!r} are not a FocalNet's")
    flags = _config_flags(blob.get("config", {})) if isinstance(blob, Mapping) else {}
    variant = guess_variant(sub)
    kwargs = dict(
        embed_dim=fp["embed_dims"], depths=fp["depths"], patch_size=fp["patch_size"],
        use_conv_embed=fp["use_conv_embed"], focal_levels=fp["focal_levels"], focal_windows=fp["focal_windows"],
        use_layerscale=fp["use_layerscale"], use_postln_in_modulation=fp["use_postln_in_modulation"],
        num_classes=fp["num_classes"], drop_path_rate=0.0, **flags,
    )
    with torch.device(device):
        model = FocalNet(**kwargs)
    try:
        from focalnet.weights.convert import to_canonical

        sub = to_canonical(model, sub)
    except ImportError:
        pass
    result = model.load_state_dict(sub, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(("norm.", "head."))]
    if missing or result.unexpected_keys:
        raise ValueError(f"{path}: the backbone under {prefix!r} does not load into the FocalNet its tensors imply "
                         f"({len(missing)} missing, {len(result.unexpected_keys)} unexpected keys)")
    model.eval()
    kind = None
    if isinstance(blob, Mapping):  # the old per-task format tag, or the engine's task name
        kind = next((blob[k] for k in ("format", "task") if isinstance(blob.get(k), str)), None)
    desc = f"FocalNet backbone ({variant or 'custom'}) of {path.name}" + (f" [{kind}]" if kind else "")
    return DenseBackbone(model=model, variant=variant, prefix=prefix, description=desc)
