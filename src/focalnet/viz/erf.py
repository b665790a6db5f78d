"""Gradient-based effective receptive field (Luo et al., 2016): which input pixels move one output location.

Two targets:

* ``"features"``: a stage's output feature map ``F`` (``forward_intermediates``: after the stage's blocks, before
  downsampling). Its ERF includes the residual path, which at initialisation dominates (the modulation branches
  start small), so it mostly shows the patch hierarchy.
* ``"modulator"``: the modulator ``h(ctx_all)`` of one block (from ``forward_modulation``). It has no skip
  connection, so its ERF is the focal aggregation itself: the stacked depthwise kernels of every focal level
  (3, 5, 7... tokens) plus the global level. This is where more focal levels visibly widen the field.

The map is ``sum_c |d T[c, y, x] / d input|`` over the colour channels, averaged over the batch and normalised to
sum 1. The global focal level lets every pixel contribute a little, so the map never falls exactly to zero;
:func:`erf_radius` turns a map into one number.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .maps import _eval_mode, _reduction, resolve_blocks

__all__ = ["effective_receptive_field", "erf_radius"]


def effective_receptive_field(
    model: nn.Module,
    x: torch.Tensor,
    stage: int = -1,
    location: tuple[int, int] | None = None,
    target: str = "features",
    block: int = -1,
) -> tuple[torch.Tensor, tuple[float, float]]:
    """ERF of one location of ``stage`` on the input ``x`` ``(B, 3, H, W)``.

    ``target="features"`` uses the stage output, ``"modulator"`` the modulator of ``block`` in that stage.
    ``location`` is ``(row, col)`` on the stage's token grid (default: its centre). Returns the ``(H, W)`` map
    (sum 1) and the pixel centre ``(y, x)`` of the chosen token. The weights get no gradient and the model is left
    in the mode it was in.
    """
    if target not in ("features", "modulator"):
        raise ValueError(f"target must be 'features' or 'modulator', got {target!r}")
    ((stage, block),) = resolve_blocks(model, [(stage, block)])
    x = x.detach().clone().requires_grad_(True)
    with _eval_mode(model), torch.enable_grad():
        if target == "features":
            out = model.forward_intermediates(x, indices=[stage], intermediates_only=True)[0]  # (B, C, h, w)
        else:
            _, maps = model.forward_modulation(x, which=[(stage, block)])
            out = maps[f"layers.{stage}.blocks.{block}.modulation"].modulator  # (B, C, h, w)
        h, w = out.shape[-2:]
        y0, x0 = (h // 2, w // 2) if location is None else location
        if not (0 <= y0 < h and 0 <= x0 < w):
            raise ValueError(f"location {(y0, x0)} is outside stage {stage}'s {h}x{w} token grid")
        (grad,) = torch.autograd.grad(out[:, :, y0, x0].sum(), x)
    erf = grad.abs().sum(1).mean(0)  # (H, W)
    total = erf.sum()
    r = _reduction(model, stage)  # token (y0, x0) covers pixels [y0*r, (y0+1)*r)
    centre = ((y0 + 0.5) * r - 0.5, (x0 + 0.5) * r - 0.5)
    return (erf / total if total > 0 else erf), centre


def erf_radius(erf: torch.Tensor | np.ndarray, center: tuple[float, float], fraction: float = 0.5) -> float:
    """Radius (pixels) of the smallest disc around ``center`` holding ``fraction`` of the ERF mass."""
    e = torch.as_tensor(erf, dtype=torch.float64)
    e = e / e.sum()
    H, W = e.shape
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    r = torch.sqrt((yy - center[0]) ** 2 + (xx - center[1]) ** 2).flatten()
    order = torch.argsort(r)
    cum = torch.cumsum(e.flatten()[order], 0)
    idx = int(torch.searchsorted(cum, torch.tensor(fraction, dtype=torch.float64)).clamp(max=len(r) - 1))
    return float(r[order][idx])
