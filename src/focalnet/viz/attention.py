"""Focal Transformer attention of one query location, mapped back onto the image.

Uses the model's explicit ``forward_attention(x, which) -> (logits, {"layers.i.blocks.j": maps})``, where each
``maps`` object offers ``query_map(y, x, head=None) -> (B, gh, gw)``: the attention weights of query token
``(y, x)`` over its fine (window + surroundings) and pooled keys, scattered back onto the stage's ``grid_size``
``(gh, gw)`` token grid (pooled keys spread over the tokens they pool). This module only converts image
coordinates to tokens and upsamples the result, so it works with any object that keeps that contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .maps import _eval_mode, upsample_to_image

__all__ = ["AttentionOverlay", "attention_map", "has_attention"]


def has_attention(model: nn.Module) -> bool:
    """Whether the model offers the ``forward_attention`` API (Focal Transformer)."""
    return callable(getattr(model, "forward_attention", None))


@dataclass
class AttentionOverlay:
    """Attention of one query: ``grid`` on the token grid ``(gh, gw)``, ``image`` upsampled to the input."""

    block: str
    query_token: tuple[int, int]
    query_pixel: tuple[float, float]
    grid: np.ndarray
    image: np.ndarray
    logits: np.ndarray


def _block_key(model: nn.Module, which) -> tuple[tuple[int, int], str]:
    stage, block = which
    n = len(model.layers)
    stage %= n
    block %= len(model.layers[stage].blocks)
    return (stage, block), f"layers.{stage}.blocks.{block}"


def attention_map(
    model: nn.Module,
    x: torch.Tensor,
    which: tuple[int, int] = (-1, -1),
    query: tuple[float, float] = (0.5, 0.5),
    head: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> AttentionOverlay:
    """Attention weights of the token under ``query`` in block ``which`` (stage, block), on the image.

    ``query`` is ``(y, x)`` as fractions of the image height/width (size independent; ``(0.5, 0.5)`` is the
    centre). ``head=None`` averages the heads. ``image_size`` is the displayed ``(H, W)`` (default: ``x``'s).
    Only the first image of the batch is returned.
    """
    if not has_attention(model):
        raise TypeError(f"{type(model).__name__} has no forward_attention(); attention maps need a Focal Transformer")
    qy, qx = query
    if not (0.0 <= qy <= 1.0 and 0.0 <= qx <= 1.0):
        raise ValueError(f"query {query} must be fractions of the image height and width, in [0, 1]")
    pair, key = _block_key(model, which)
    with _eval_mode(model), torch.no_grad():
        logits, maps = model.forward_attention(x, which=[pair])
    if key not in maps:  # accept implementations that key by the attention module path too
        matches = [k for k in maps if k.startswith(key + ".") or k == key]
        if not matches:
            raise KeyError(f"forward_attention returned {sorted(maps)}, not {key!r}")
        key = matches[0]
    fm = maps[key]
    gh, gw = fm.grid_size
    ty, tx = min(int(qy * gh), gh - 1), min(int(qx * gw), gw - 1)
    grid = fm.query_map(ty, tx, head=head)[:1].float()  # (1, gh, gw)
    H, W = image_size or tuple(x.shape[-2:])
    reduction = max(1, round(x.shape[-2] / gh))
    up = upsample_to_image(grid[:, None], reduction, (H, W))[0, 0]
    return AttentionOverlay(
        block=key,
        query_token=(ty, tx),
        query_pixel=((ty + 0.5) * H / gh - 0.5, (tx + 0.5) * W / gw - 0.5),
        grid=grid[0].cpu().numpy(),
        image=up.cpu().numpy(),
        logits=logits[0].float().cpu().numpy(),
    )
