"""Gradient-based effective receptive field (Luo et al., 2016): which input pixels move one output location.

For a stage's feature map ``F`` (``forward_intermediates``: after the stage's blocks, before downsampling) and a
location ``(y, x)``, the ERF is ``sum_c |d F[c, y, x] / d input|`` summed over the colour channels and averaged
over the batch. With more focal levels (larger, stacked depthwise kernels) and in later stages the mass spreads
further; :func:`erf_radius` turns that into one number per map. The global focal level lets every pixel contribute
a little, so the map never falls exactly to zero away from the location.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .maps import _eval_mode

__all__ = ["effective_receptive_field", "erf_radius"]


def effective_receptive_field(
    model: nn.Module, x: torch.Tensor, stage: int = -1, location: tuple[int, int] | None = None
) -> tuple[torch.Tensor, tuple[float, float]]:
    """ERF of one output location of ``stage`` on the input ``x`` ``(B, 3, H, W)``.

    Returns the ``(H, W)`` map (sum 1) and the pixel centre ``(y, x)`` of the chosen token. ``location`` is
    ``(row, col)`` on that stage's token grid (default: its centre). The model's weights get no gradient and the
    model is left in the mode it was in.
    """
    n = len(model.layers)
    stage = stage % n
    x = x.detach().clone().requires_grad_(True)
    with _eval_mode(model), torch.enable_grad():
        feats = model.forward_intermediates(x, indices=[stage])[0]  # (B, C, h, w)
        h, w = feats.shape[-2:]
        y0, x0 = (h // 2, w // 2) if location is None else location
        if not (0 <= y0 < h and 0 <= x0 < w):
            raise ValueError(f"location {(y0, x0)} is outside stage {stage}'s {h}x{w} token grid")
        (grad,) = torch.autograd.grad(feats[:, :, y0, x0].sum(), x)
    erf = grad.abs().sum(1).mean(0)  # (H, W)
    total = erf.sum()
    r = model.feature_info[stage]["reduction"]  # token (y0, x0) covers pixels [y0*r, (y0+1)*r)
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
