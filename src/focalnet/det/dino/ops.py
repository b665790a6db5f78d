"""Building blocks of DINO: multi-scale deformable attention (pure PyTorch), box maths, sine embeddings.

Our own implementation of what the authors' FocalNet-DINO code computes (``ms_deform_attn_core_pytorch``,
``util/box_ops.py``, ``gen_sineembed_for_position``, ``PositionEmbeddingSineHW``); the formulas are kept in the
same order where rounding could change a top-k selection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MSDeformAttn",
    "ms_deform_attn",
    "inverse_sigmoid",
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "generalized_box_iou",
    "sine_embed_boxes",
    "SinePositionEncoding",
    "MLP",
    "set_deform_attn_backend",
]


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """log(x / (1 - x)) with both clamped at ``eps`` (the original's 1e-3)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def box_cxcywh_to_xyxy(x: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = x.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_xyxy_to_cxcywh(x: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = x.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def _area(b: torch.Tensor) -> torch.Tensor:
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise GIoU of xyxy boxes (N, M), with the original's 1e-6 guards (zero-area boxes are allowed)."""
    if not bool((boxes1[:, 2:] >= boxes1[:, :2]).all()) or not bool((boxes2[:, 2:] >= boxes2[:, :2]).all()):
        raise ValueError("degenerate boxes: every box needs x1 >= x0 and y1 >= y0 (and no NaN); "
                         "check the targets' (cx, cy, w, h) for negative widths/heights")
    area1, area2 = _area(boxes1), _area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    iou = inter / (union + 1e-6)
    lt = torch.min(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.max(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    area = wh[:, :, 0] * wh[:, :, 1]
    return iou - (area - union) / (area + 1e-6)


def sine_embed_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Sine embedding of (..., 4) boxes in [0, 1]: 128 frequencies per coordinate, order (y, x, w, h) -> (..., 512).

    128 is hard-coded in the original, which makes hidden size 256 structural for DINO.
    """
    dim_t = torch.arange(128, dtype=torch.float32, device=boxes.device)
    dim_t = 10000 ** (2 * (dim_t // 2) / 128)
    scale = 2 * math.pi
    outs = []
    for i in (1, 0, 2, 3):  # y, x, w, h
        p = boxes[..., i, None] * scale / dim_t
        outs.append(torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(-2))
    return torch.cat(outs, dim=-1)


class SinePositionEncoding(nn.Module):
    """DETR sine position encoding of a padding mask, normalised to 2*pi, separate temperatures for H and W."""

    def __init__(self, num_pos_feats: int = 128, temperature_h: float = 20, temperature_w: float = 20) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature_h = temperature_h
        self.temperature_w = temperature_w
        self.scale = 2 * math.pi

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """``mask``: (B, H, W) bool, True on padding -> (B, 2 * num_pos_feats, H, W)."""
        not_mask = ~mask
        y = not_mask.cumsum(1, dtype=torch.float32)
        x = not_mask.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y = y / (y[:, -1:, :] + eps) * self.scale
        x = x / (x[:, :, -1:] + eps) * self.scale
        n = self.num_pos_feats
        d = torch.arange(n, dtype=torch.float32, device=mask.device)
        dim_tx = self.temperature_w ** (2 * (d // 2) / n)
        dim_ty = self.temperature_h ** (2 * (d // 2) / n)
        px = x[..., None] / dim_tx
        py = y[..., None] / dim_ty
        px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
        py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (parameter names ``layers.{i}`` as in the original)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, outs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < n - 1 else layer(x)
        return x


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention by bilinear ``grid_sample`` (align_corners=False, zero padding).

    ``value`` (N, S, M, D) with S = sum(H*W); ``sampling_locations`` (N, Lq, M, L, P, 2) in [0, 1] (x, y);
    ``attention_weights`` (N, Lq, M, L, P). Returns (N, Lq, M*D). Runs on any device.
    """
    N, _, M, D = value.shape
    _, Lq, _, L, P, _ = sampling_locations.shape
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(N * M, D, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)  # (N*M, Lq, P, 2)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    weights = attention_weights.transpose(1, 2).reshape(N * M, 1, Lq, L * P)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1).view(N, M * D, Lq)
    return out.transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Deformable DETR), parameter names as the original module's."""

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value_in: torch.Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``query`` (N, Lq, C); ``reference_points`` (N, Lq, L, 2) points or (N, Lq, L, 4) boxes in [0, 1];
        ``value_in`` (N, S, C); ``padding_mask`` (N, S) True on padding."""
        N, Lq, _ = query.shape
        S = value_in.shape[1]
        M, L, P = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(value_in)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(N, S, M, self.d_model // M)
        offsets = self.sampling_offsets(query).view(N, Lq, M, L, P, 2)
        weights = F.softmax(self.attention_weights(query).view(N, Lq, M, L * P), -1).view(N, Lq, M, L, P)
        if reference_points.shape[-1] == 2:
            normalizer = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=query.dtype, device=query.device)
            locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            locations = (reference_points[:, :, None, :, None, :2]
                         + offsets / P * reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError(f"reference_points must end in 2 or 4 values, got {reference_points.shape[-1]}")
        out = _BACKEND["fn"](value, spatial_shapes, locations, weights)
        return self.output_proj(out)


_BACKEND = {"name": "torch", "fn": ms_deform_attn}


def _transformers_kernel():
    """Hugging Face's ``MultiScaleDeformableAttention`` as a drop-in for :func:`ms_deform_attn`.

    On CPU it runs the same ``grid_sample`` algorithm; with the ``kernels`` package and a cached hub kernel it
    dispatches to Hugging Face's compiled CUDA kernel.
    """
    from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

    layer = MultiScaleDeformableAttention()

    def fn(value, spatial_shapes, sampling_locations, attention_weights):
        shapes = [(int(h), int(w)) for h, w in spatial_shapes]
        shapes_t = torch.as_tensor(shapes, dtype=torch.long, device=value.device)
        start = torch.cat((shapes_t.new_zeros((1,)), shapes_t.prod(1).cumsum(0)[:-1]))
        return layer(value, shapes_t, shapes, start, sampling_locations, attention_weights, 64)

    return fn


def set_deform_attn_backend(name: str = "torch") -> str:
    """Choose the deformable-attention kernel for every :class:`MSDeformAttn`: ``"torch"`` (ours, default) or
    ``"transformers"`` (Hugging Face's, when installed; proven equal in ``tests/test_dino.py``). Returns the
    previous name."""
    prev = _BACKEND["name"]
    if name == "torch":
        _BACKEND.update(name="torch", fn=ms_deform_attn)
    elif name == "transformers":
        try:
            fn = _transformers_kernel()
        except ImportError as e:
            raise ValueError("the 'transformers' deformable-attention backend needs Hugging Face transformers "
                             "(pip install transformers)") from e
        _BACKEND.update(name="transformers", fn=fn)
    else:
        raise ValueError(f"unknown deformable-attention backend {name!r}; choose 'torch' or 'transformers'")
    return prev
