"""FocalNet: Focal Modulation Networks (Yang, Li, Dai & Gao, NeurIPS 2022, arXiv:2203.11926).

Focal modulation replaces self-attention: a linear layer splits each token into a query, a context and per-level
gates; a stack of depthwise convolutions (kernel ``focal_window + 2*l``) gathers context from short to long range,
a global average adds the widest level, the gates mix the levels per location, and a 1x1 projection of the mixed
context (the *modulator*) multiplies the query element-wise.

Parameter names and shapes are those of the authors' ``classification/focalnet.py``, so their checkpoints load
without renaming (timm and Hugging Face layouts are converted in :mod:`focalnet.convert`).

Deliberate differences from the original code, none of which changes a number:

* Tokens stay channels-last, ``(B, H, W, C)``, through the whole network. The depthwise convolutions run on a
  channels-last view of the context and the 1x1 ``h`` conv runs as a linear layer on the channels, which removes
  the permute-and-copy round trips of the original.
* The forward pass is stateless. The original stores ``modulator``/``gates`` on the module and ``H``/``W`` on each
  block; here maps are returned by :meth:`FocalNet.forward_modulation` on request.
* ``focal_levels``/``focal_windows`` may be ints or per-stage lists; every published variant is a complete entry in
  the registry at the bottom of this file (the original builds the wrong network unless a YAML adds the flags).
* Invalid input (wrong channel count, an image smaller than the network's stride) raises a ``ValueError`` that
  says what was expected.
* :meth:`FocalNet.forward_intermediates` serves dense prediction: stage outputs before downsampling, with the
  input padded right/bottom like the authors' detection backbone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from focalnet.layers import DropPath, Mlp
from focalnet.layers import fused as _fused
from focalnet.layers.dwconv import LARGE_KERNEL, depthwise_conv2d

from .base import HierarchicalClassifier, Stage, init_weights_original
from .registry import ModelSpec, register_model

__all__ = ["FocalModulation", "FocalNetBlock", "FocalNetStage", "PatchEmbed", "FocalNet", "ModulationMaps"]

_logger = logging.getLogger(__name__)


@dataclass
class ModulationMaps:
    """What one focal modulation computed for an input.

    ``modulator`` is ``h(ctx_all)`` as ``(B, C, H, W)``: the context that multiplies the query (before that
    multiplication), the quantity the paper's modulation maps visualise. ``gates`` are the raw gate logits,
    ``(B, L+1, H, W)``: one map per focal level, the last for the global level. No sigmoid/softmax is applied,
    exactly as in the original.
    """

    modulator: torch.Tensor
    gates: torch.Tensor


def _as_list(value: int | Sequence[int], n: int, name: str) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} entries but the network has {n} stages")
    return value


class FocalModulation(nn.Module):
    """Focal modulation on channels-last tokens ``(B, H, W, C)``."""

    def __init__(
        self,
        dim: int,
        focal_window: int,
        focal_level: int,
        focal_factor: int = 2,
        bias: bool = True,
        proj_drop: float = 0.0,
        use_postln_in_modulation: bool = False,
        normalize_modulator: bool = False,
    ) -> None:
        super().__init__()
        if focal_level < 1:
            raise ValueError(f"focal_level must be >= 1, got {focal_level}")
        self.dim = dim
        self.focal_level = focal_level
        self.focal_window = focal_window
        self.normalize_modulator = normalize_modulator
        self.use_postln_in_modulation = use_postln_in_modulation
        self.kernel_sizes = [focal_factor * k + focal_window for k in range(focal_level)]

        # One projection gives query (C), context (C) and L+1 gates.
        self.f = nn.Linear(dim, 2 * dim + focal_level + 1, bias=bias)
        self.h = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)
        self.act = nn.GELU()
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.focal_layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim, bias=False), nn.GELU())
            for k in self.kernel_sizes
        )
        if use_postln_in_modulation:
            self.ln = nn.LayerNorm(dim)
        # CPU inference without autograd may use the fused oneDNN kernels of focalnet.layers.fused (conv+GELU,
        # h+multiply by q, proj+residual); False keeps the plain ops (focalnet.Predictor's exact path).
        self.fused_inference = True

    def forward(self, x: torch.Tensor, return_maps: bool = False, residual: torch.Tensor | None = None):
        """``x``: (B, H, W, C) -> (B, H, W, C). With ``residual``, returns ``residual + output`` (one fused pass
        on the CPU inference path)."""
        C, L = self.dim, self.focal_level
        fused = self.fused_inference and not self.training and _fused.fusable(x)
        q, ctx, gates = self.f(x).split((C, C, L + 1), dim=-1)  # (B,H,W,C), (B,H,W,C), (B,H,W,L+1)

        # NCHW view with channels-last memory: the depthwise convs read it without a layout round trip.
        ctx = ctx.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        g = gates.permute(0, 3, 1, 2)  # (B, L+1, H, W) view
        # Gated sum of the levels, accumulated in place (addcmul_): one pass over memory per level instead of a
        # product, a sum and two fresh tensors. Autograd allows it: mul/addcmul save their factors, not ctx_all.
        ctx_all = None
        for level, layer in enumerate(self.focal_layers):
            # each level refines the previous one: hierarchical contextualisation
            conv = layer[0]
            if fused:
                ctx = _fused.dwconv_gelu(ctx, conv.weight, conv.padding[0])
            elif conv.kernel_size[0] >= LARGE_KERNEL and ctx.device.type == "cpu" and torch.is_grad_enabled() \
                    and not _fused._tracing():
                # aten's CPU weight gradient of a 15x15 depthwise conv crawls (a bf16 step seemed to hang)
                ctx = layer[1](depthwise_conv2d(ctx, conv.weight, conv.padding[0]))
            else:
                ctx = layer(ctx)
            gate = g[:, level : level + 1]
            ctx_all = ctx * gate if ctx_all is None else ctx_all.addcmul_(ctx, gate)
        ctx_global = self.act(ctx.mean((2, 3), keepdim=True))  # (B, C, 1, 1) from the last level
        ctx_all = ctx_all.addcmul_(ctx_global, g[:, L:])
        if self.normalize_modulator:
            ctx_all = ctx_all.div_(L + 1)

        # h is a 1x1 conv: a linear map over channels of the channels-last context.
        if fused and not return_maps:
            out = _fused.linear_mul(ctx_all.permute(0, 2, 3, 1), self.h.weight.flatten(1), self.h.bias, q)
        else:
            modulator = F.linear(ctx_all.permute(0, 2, 3, 1), self.h.weight.flatten(1), self.h.bias)  # (B,H,W,C)
            out = q * modulator
        if self.use_postln_in_modulation:
            out = self.ln(out)
        if fused and residual is not None:
            out = _fused.linear_add(out, self.proj.weight, self.proj.bias, residual)
        else:
            out = self.proj_drop(self.proj(out))
            if residual is not None:
                out = residual + out
        if return_maps:
            return out, ModulationMaps(modulator.permute(0, 3, 1, 2), g)
        return out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kernel_sizes={self.kernel_sizes}, normalize_modulator={self.normalize_modulator}"


_GEMMS = (torch.ops.aten.addmm.default, torch.ops.aten.mm.default, torch.ops.aten.bmm.default)


def _gemm_policy(recompute_width: int | None):
    """Save GEMM outputs, recompute everything else; a GEMM whose output has ``recompute_width`` columns (the
    MLP's hidden layer) is recomputed too."""

    def policy(ctx, op, *args, **kwargs) -> CheckpointPolicy:
        if op in _GEMMS and not (recompute_width is not None and args[-1].shape[-1] == recompute_width):
            return CheckpointPolicy.MUST_SAVE
        return CheckpointPolicy.PREFER_RECOMPUTE

    return policy


class FocalNetBlock(nn.Module):
    """Modulation + MLP with residuals; pre-norm, or the res-post-norm of the large models (``use_postln``)."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        focal_level: int = 2,
        focal_window: int = 3,
        use_layerscale: bool = False,
        layerscale_value: float = 1e-4,
        use_postln: bool = False,
        use_postln_in_modulation: bool = False,
        normalize_modulator: bool = False,
    ) -> None:
        super().__init__()
        self.use_postln = use_postln
        self.norm1 = nn.LayerNorm(dim)
        self.modulation = FocalModulation(
            dim,
            focal_window=focal_window,
            focal_level=focal_level,
            proj_drop=drop,
            use_postln_in_modulation=use_postln_in_modulation,
            normalize_modulator=normalize_modulator,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        if use_layerscale:
            self.gamma_1 = nn.Parameter(layerscale_value * torch.ones(dim))
            self.gamma_2 = nn.Parameter(layerscale_value * torch.ones(dim))
        else:
            self.gamma_1 = 1.0
            self.gamma_2 = 1.0
        self.fused_inference = True  # see FocalModulation.fused_inference
        # Selective recomputation (FocalNet.set_selective_recompute): keep only the GEMM outputs for the backward
        # pass and recompute the cheap element-wise work (LayerNorms, GELUs, depthwise levels, gating).
        self.recompute_cheap: bool | str = False

    def forward(self, x: torch.Tensor, return_maps: bool = False):
        """``x``: (B, H, W, C). Post-norm reuses ``norm1``/``norm2`` after the branch, as the original does."""
        if self.recompute_cheap and not return_maps and torch.is_grad_enabled() and not _fused._tracing():
            width = self.mlp.fc1.out_features if self.recompute_cheap == "mlp" else None
            return checkpoint(self._forward, x, use_reentrant=False,
                              context_fn=lambda: create_selective_checkpoint_contexts(_gemm_policy(width)))
        return self._forward(x, return_maps)

    def _forward(self, x: torch.Tensor, return_maps: bool = False):
        if (not return_maps and not self.use_postln and isinstance(self.gamma_1, float) and self.gamma_1 == 1.0
                and self.gamma_2 == 1.0 and self.fused_inference and not self.training and _fused.fusable(x)):
            # CPU inference: residual adds and the MLP's GELU ride in the GEMMs' epilogues.
            x = self.modulation(self.norm1(x), residual=x)
            mlp = self.mlp
            h = _fused.linear_gelu(self.norm2(x), mlp.fc1.weight, mlp.fc1.bias)
            return _fused.linear_add(h, mlp.fc2.weight, mlp.fc2.bias, x)
        y = self.norm1(x) if not self.use_postln else x
        y = self.modulation(y, return_maps=return_maps)
        maps = None
        if return_maps:
            y, maps = y
        if self.use_postln:
            y = self.norm1(y)
        x = x + self.drop_path(self._scale(self.gamma_1, y))
        if self.use_postln:
            x = x + self.drop_path(self._scale(self.gamma_2, self.norm2(self.mlp(x))))
        else:
            x = x + self.drop_path(self._scale(self.gamma_2, self.mlp(self.norm2(x))))
        return (x, maps) if return_maps else x

    @staticmethod
    def _scale(gamma: torch.Tensor | float, y: torch.Tensor) -> torch.Tensor:
        # Without layer scale gamma is the float 1.0: skip a multiply that would copy the whole tensor.
        return y if isinstance(gamma, float) and gamma == 1.0 else gamma * y


class PatchEmbed(nn.Module):
    """Stem or downsampling: a strided conv, then LayerNorm; consumes NCHW, returns channels-last ``(B,H,W,C)``.

    ``use_conv_embed`` selects the overlapping convs of the large models (stem k7 s4 p2, downsample k3 s2 p1).
    ``pad=True`` in ``forward`` pads right/bottom to a multiple of the stride first, as the authors' detection
    backbone does; without it the conv floors, as their classifier does.
    """

    def __init__(
        self,
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        use_conv_embed: bool = False,
        is_stem: bool = False,
        norm: bool = True,
        stem_padding: int = 2,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        if use_conv_embed:
            kernel, stride, padding = (7, 4, stem_padding) if is_stem else (3, 2, 1)
        else:
            kernel, stride, padding = patch_size, patch_size, 0
        self.stride = stride
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor, pad: bool = False) -> torch.Tensor:
        if pad:
            # Padding unconditionally (a zero pad is a plain copy) keeps the graph free of a branch on the input
            # size, so torch.export can trace one program for every size.
            H, W = x.shape[-2], x.shape[-1]  # no tuple unpacking: stays FX-traceable
            x = F.pad(x, (0, (-W) % self.patch_size, 0, (-H) % self.patch_size))
        x = self.proj(x).permute(0, 2, 3, 1)  # (B, H', W', C)
        if self.norm is not None:
            x = self.norm(x)
        return x


class FocalNetStage(Stage):
    """``depth`` FocalNet blocks at one resolution, then (except in the last stage) the downsampling."""

    def __init__(
        self,
        dim: int,
        out_dim: int | None,
        depth: int,
        drop_path: Sequence[float],
        downsample: bool,
        use_conv_embed: bool = False,
        **block_kwargs,
    ) -> None:
        super().__init__(
            (FocalNetBlock(dim, drop_path=drop_path[i], **block_kwargs) for i in range(depth)),
            PatchEmbed(2, dim, out_dim, use_conv_embed=use_conv_embed, is_stem=False) if downsample else None,
        )


_init_weights = init_weights_original  # the original init, shared with Focal Transformer


class FocalNet(HierarchicalClassifier):
    """FocalNet classifier, hierarchical (4 stages, patch 4) or isotropic (1 stage, patch 16).

    Keyword arguments and defaults follow the original constructor, so ``FocalNet(**original_kwargs)`` builds the
    same network. ``img_size`` only feeds FLOP reporting: the network takes any input whose sides are at least
    the total stride (32 for four stages at patch 4, 16 for the isotropic models).
    """

    family_label = "FocalNet"

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int | Sequence[int] = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        focal_levels: int | Sequence[int] = (2, 2, 2, 2),
        focal_windows: int | Sequence[int] = (3, 3, 3, 3),
        use_conv_embed: bool = False,
        use_layerscale: bool = False,
        layerscale_value: float = 1e-4,
        use_postln: bool = False,
        use_postln_in_modulation: bool = False,
        normalize_modulator: bool = False,
        stem_padding: int = 2,
    ) -> None:
        super().__init__()
        depths = list(depths)
        n = len(depths)
        if isinstance(embed_dim, int):
            embed_dims = [embed_dim * 2**i for i in range(n)]
        else:
            embed_dims = _as_list(embed_dim, n, "embed_dim")
        focal_levels = _as_list(focal_levels, n, "focal_levels")
        focal_windows = _as_list(focal_windows, n, "focal_windows")

        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.depths = depths
        self.focal_levels = focal_levels
        self.focal_windows = focal_windows
        self.num_features = embed_dims[-1]
        self.drop_rate = drop_rate
        self.stride = patch_size * 2 ** (n - 1)  # total downsampling of the last stage

        self.patch_embed = PatchEmbed(
            patch_size, in_chans, embed_dims[0], use_conv_embed=use_conv_embed, is_stem=True, norm=patch_norm,
            stem_padding=stem_padding,  # conv-embed stem only: 2 as in the classifier, 3 in the mmdet backbone
        )
        self.pos_drop = nn.Dropout(drop_rate)
        # Stochastic depth grows linearly per block (computed on the CPU so meta-device builds work).
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i in range(n):
            self.layers.append(
                FocalNetStage(
                    dim=embed_dims[i],
                    out_dim=embed_dims[i + 1] if i < n - 1 else None,
                    depth=depths[i],
                    drop_path=dpr[sum(depths[:i]) : sum(depths[: i + 1])],
                    downsample=i < n - 1,
                    use_conv_embed=use_conv_embed,
                    mlp_ratio=mlp_ratio,
                    drop=drop_rate,
                    focal_level=focal_levels[i],
                    focal_window=focal_windows[i],
                    use_layerscale=use_layerscale,
                    layerscale_value=layerscale_value,
                    use_postln=use_postln,
                    use_postln_in_modulation=use_postln_in_modulation,
                    normalize_modulator=normalize_modulator,
                )
            )
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info = self._feature_info()
        self.apply(_init_weights)  # leaves the layer-scale gammas at layerscale_value
        self.set_grad_checkpointing(use_checkpoint)

    def set_selective_recompute(self, enable: bool | str = True) -> None:
        """Selective recomputation: keep only the GEMM outputs of each block for the backward pass and recompute
        the cheap parts (LayerNorms, GELUs, depthwise focal levels, gating, residual adds) there, instead of whole
        blocks. ``"mlp"`` also recomputes the MLP's hidden layer (its GEMM, the block's largest activation): less
        memory for more time. Numerics are unchanged: the same ops run again. See docs/benchmarks.md."""
        if enable not in (True, False, "mlp"):
            raise ValueError(f"set_selective_recompute takes True, False or 'mlp', got {enable!r}")
        for stage in self.layers:
            for blk in stage.blocks:
                blk.recompute_cheap = enable

    def modulation_names(self) -> list[str]:
        """Module paths of every focal modulation, e.g. ``layers.3.blocks.1.modulation``, in forward order."""
        return self.block_paths(".modulation")

    def forward_modulation(self, x: torch.Tensor, which=None) -> tuple[torch.Tensor, dict[str, ModulationMaps]]:
        """Classify ``x`` and return the modulators and gates of the chosen blocks.

        ``which``: ``None`` for every block, or module paths (``"layers.3.blocks.1.modulation"``) and/or
        ``(stage, block)`` index pairs such as ``(-1, -1)`` for the last block. Returns ``(logits, maps)`` with
        ``maps[path] = ModulationMaps(modulator (B,C,h,w), gates (B,L+1,h,w))``. Nothing is stored on the model.
        """
        chosen = self._resolve_blocks(which, suffix=".modulation", label="focal modulation")
        return self._forward_collecting(x, chosen, ".modulation", lambda blk, t: blk(t, return_maps=True))


# ---------------------------------------------------------------------------------------------------- variants
_SRC = "microsoft/FocalNet classification/focalnet.py + configs (spec §3.1); params measured on the original code"

_FOCALNET_VARIANTS = {
    # name: (kwargs, params@1000 classes, GMACs @ img_size with a 1000-class head, top1, num_classes, img_size)
    # GMACs: README figures for T/S/B/iso. L/XL/H have none published; theirs are the authors' flops() formula with
    # the real 7x7/3x3 conv-embed kernels (their flops() counts patch_size**2, i.e. 102.25/102.40/180.73/180.93/
    # 115.10/115.81, ~2.5 % low). See focalnet.utils.flops.analytic_macs; tests/test_flops.py checks both.
    "focalnet_tiny_srf": (dict(depths=[2, 2, 6, 2], embed_dim=96, focal_levels=2, focal_windows=3, drop_path_rate=0.2),
                          28_427_116, 4.4, 82.1, 1000, 224),
    "focalnet_tiny_lrf": (dict(depths=[2, 2, 6, 2], embed_dim=96, focal_levels=3, focal_windows=3, drop_path_rate=0.2),
                          28_647_928, 4.5, 82.3, 1000, 224),
    "focalnet_small_srf": (dict(depths=[2, 2, 18, 2], embed_dim=96, focal_levels=2, focal_windows=3,
                                drop_path_rate=0.3), 49_891_216, 8.6, 83.4, 1000, 224),
    "focalnet_small_lrf": (dict(depths=[2, 2, 18, 2], embed_dim=96, focal_levels=3, focal_windows=3,
                                drop_path_rate=0.3), 50_342_440, 8.7, 83.5, 1000, 224),
    "focalnet_base_srf": (dict(depths=[2, 2, 18, 2], embed_dim=128, focal_levels=2, focal_windows=3,
                               drop_path_rate=0.5), 88_148_144, 15.3, 83.7, 1000, 224),
    "focalnet_base_lrf": (dict(depths=[2, 2, 18, 2], embed_dim=128, focal_levels=3, focal_windows=3,
                               drop_path_rate=0.5), 88_749_768, 15.4, 83.9, 1000, 224),
    "focalnet_tiny_iso": (dict(depths=[12], embed_dim=192, patch_size=16, focal_levels=3, focal_windows=3,
                               drop_path_rate=0.2), 5_880_280, 1.1, 74.1, 1000, 224),
    "focalnet_small_iso": (dict(depths=[12], embed_dim=384, patch_size=16, focal_levels=3, focal_windows=3,
                                drop_path_rate=0.2), 22_376_344, 4.3, 80.9, 1000, 224),
    # base_iso: the released checkpoint was trained with the init-commit code, where `use_postln` meant a LayerNorm
    # inside the modulation of a pre-norm block. We build what the checkpoint holds (87,255,832 params). The HEAD
    # reading (block post-norm, 87,237,400) is reachable with
    # create_model("focalnet_base_iso", use_postln=True, use_postln_in_modulation=False).
    "focalnet_base_iso": (dict(depths=[12], embed_dim=768, patch_size=16, focal_levels=3, focal_windows=3,
                               use_layerscale=True, use_postln=False, use_postln_in_modulation=True,
                               drop_path_rate=0.2), 87_255_832, 16.9, 82.4, 1000, 224),
    "focalnet_large_fl3": (dict(depths=[2, 2, 18, 2], embed_dim=192, focal_levels=3, focal_windows=5,
                                use_conv_embed=True, use_postln=True, use_layerscale=True, drop_path_rate=0.5),
                           207_100_744, 104.97, None, 21842, 384),
    # fl4 + normalize_modulator: the L yaml and FocalNet-DINO (which used the L-fl4 checkpoint for its published
    # results) set it; for XL only DINO does (the yaml is silent, timm/HF never set it). We follow the authors'
    # DINO code for both; `normalize_modulator=False` gives the other reading.
    "focalnet_large_fl4": (dict(depths=[2, 2, 18, 2], embed_dim=192, focal_levels=4, focal_windows=3,
                                use_conv_embed=True, use_postln=True, use_layerscale=True, normalize_modulator=True,
                                drop_path_rate=0.5), 207_281_248, 105.12, None, 21842, 384),
    "focalnet_xlarge_fl3": (dict(depths=[2, 2, 18, 2], embed_dim=256, focal_levels=3, focal_windows=5,
                                 use_conv_embed=True, use_postln=True, use_layerscale=True, drop_path_rate=0.5),
                            366_082_120, 185.49, None, 21842, 384),
    "focalnet_xlarge_fl4": (dict(depths=[2, 2, 18, 2], embed_dim=256, focal_levels=4, focal_windows=3,
                                 use_conv_embed=True, use_postln=True, use_layerscale=True, normalize_modulator=True,
                                 drop_path_rate=0.5), 366_322_784, 185.69, None, 21842, 384),
    "focalnet_huge_fl3": (dict(depths=[2, 2, 18, 2], embed_dim=352, focal_levels=3, focal_windows=3,
                               use_conv_embed=True, use_postln=True, use_layerscale=True,
                               use_postln_in_modulation=True, drop_path_rate=0.5),
                          686_564_424, 118.12, None, 21842, 224),
    "focalnet_huge_fl4": (dict(depths=[2, 2, 18, 2], embed_dim=352, focal_levels=4, focal_windows=3,
                               use_conv_embed=True, use_postln=True, use_layerscale=True,
                               use_postln_in_modulation=True, drop_path_rate=0.5),
                          689_277_664, 118.83, None, 21842, 224),
}

for _name, (_kw, _params, _gmacs, _top1, _ncls, _res) in _FOCALNET_VARIANTS.items():
    register_model(
        ModelSpec(
            name=_name,
            family="focalnet",
            builder=FocalNet,
            kwargs={**_kw, "img_size": _res},
            num_classes=_ncls,
            img_size=_res,
            params=_params,
            gmacs=_gmacs,
            top1=_top1,
            source=_SRC,
        )
    )
