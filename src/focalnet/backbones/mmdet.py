"""Loading the backbone part of an original mmdetection/mmsegmentation FocalNet checkpoint, strictly.

The authors' detection checkpoints (e.g. ``focalnet_tiny_lrf_cascade_maskrcnn_3x.pth``) hold the whole detector
under ``state_dict``; the backbone is ``backbone.*`` in the classification layout plus one LayerNorm per output,
``backbone.norm{i}.*``. Our adapter keeps the body as ``body.*`` and those norms as ``norms.{i}.*``. The detector
was trained with its own focal windows, so nothing is resized: every tensor must be there with its exact shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from focalnet.weights.loading import CheckpointError

__all__ = ["mmdet_backbone_state_dict", "load_mmdet_backbone"]

_NORM = re.compile(r"^norm(\d+)\.(weight|bias)$")


def mmdet_backbone_state_dict(sd: Mapping[str, torch.Tensor], prefix: str = "backbone.") -> dict[str, torch.Tensor]:
    """``backbone.X`` -> ``body.X``, ``backbone.norm{i}.*`` -> ``norms.{i}.*``; other keys (neck, heads) dropped."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not k.startswith(prefix):
            continue
        k = k[len(prefix):]
        m = _NORM.match(k)
        out[f"norms.{m.group(1)}.{m.group(2)}" if m else f"body.{k}"] = v
    if not out:
        raise CheckpointError(f"the checkpoint has no '{prefix}*' keys: not an mmdetection/mmsegmentation detector "
                              "checkpoint (for classification weights use load_backbone_weights)")
    return out


def load_mmdet_backbone(backbone: nn.Module, source, map_location: str = "cpu") -> None:
    """Load ``source`` (path, URL or state dict of a detector) into a ``FocalNetBackbone``; strict on keys and
    shapes, with one message listing what is missing, unexpected or of the wrong shape."""
    from focalnet.weights.loading import _read_source, state_dict_mismatch, unwrap_state_dict

    sd = mmdet_backbone_state_dict(unwrap_state_dict(_read_source(source, map_location)))
    mismatch = state_dict_mismatch(backbone.state_dict(), sd)
    if mismatch:
        raise CheckpointError("detector checkpoint does not fit the backbone (were focal windows/levels/out_indices "
                              f"the same?):{mismatch}")
    backbone.load_state_dict(sd, strict=True)
