"""ViT attention maps from timm, for the blog's comparison: FocalNet modulation beside ViT attention.

Two standard readings of a timm :class:`~timm.models.vision_transformer.VisionTransformer`:

* **last-layer CLS attention**: the attention weights of the class token over the patch tokens in the last block,
  averaged over heads;
* **attention rollout** (Abnar & Zuidema, 2020): per block, the head-averaged attention plus the identity for the
  residual path, rows renormalised, multiplied through all blocks; the class token's row over the patches.

The weights are captured with forward hooks on each block's ``attn_drop`` (the softmaxed attention; timm's fused
kernel is switched off for the one pass and restored), so the model is not modified. Ours: the hooks and rollout;
timm's: the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["ViTAttention", "vit_attention", "create_vit"]


@dataclass
class ViTAttention:
    """``cls`` and ``rollout`` on the ``(gh, gw)`` patch grid; ``patch`` is the patch size in pixels."""

    cls: np.ndarray
    rollout: np.ndarray
    patch: int


def create_vit(name: str = "vit_small_patch16_224", weights: str | None = None, device: str = "cpu") -> nn.Module:
    """A timm ViT with random weights (never downloads), or with a local timm state dict loaded strictly."""
    import timm

    model = timm.create_model(name, pretrained=False)
    if not hasattr(model, "blocks") or not hasattr(model.blocks[0], "attn"):
        raise ValueError(f"{name} is not a ViT with attention blocks")
    if weights:
        from focalnet.weights.loading import load_state_dict_file, unwrap_state_dict

        model.load_state_dict(unwrap_state_dict(load_state_dict_file(weights)))
    return model.to(device).eval()


def vit_attention(model: nn.Module, x: torch.Tensor) -> ViTAttention:
    """Last-layer CLS attention and attention rollout of the first image of ``x`` (``(B, 3, H, W)``, normalised)."""
    blocks = list(model.blocks)
    captured: list[torch.Tensor] = []
    hooks, fused = [], []
    for blk in blocks:
        attn = blk.attn
        fused.append(getattr(attn, "fused_attn", False))
        attn.fused_attn = False
        hooks.append(attn.attn_drop.register_forward_hook(lambda _m, _i, out: captured.append(out[:1].detach())))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        for blk, f in zip(blocks, fused):
            blk.attn.fused_attn = f
        model.train(was_training)
    if len(captured) != len(blocks):
        raise RuntimeError(f"captured {len(captured)} attention maps from {len(blocks)} blocks")
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    patch = int(model.patch_embed.patch_size[0])
    gh, gw = x.shape[-2] // patch, x.shape[-1] // patch
    last = captured[-1][0].float().mean(0)  # (N, N), heads averaged
    cls = last[0, prefix:]
    n = last.shape[0]
    rollout = torch.eye(n)
    for a in captured:
        a = a[0].float().mean(0)
        a = 0.5 * a + 0.5 * torch.eye(n)
        a = a / a.sum(-1, keepdim=True)
        rollout = a @ rollout
    roll = rollout[0, prefix:]
    return ViTAttention(cls=cls.reshape(gh, gw).numpy(), rollout=roll.reshape(gh, gw).numpy(), patch=patch)
