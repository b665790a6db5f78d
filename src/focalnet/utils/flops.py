"""Counting multiply-accumulates (MACs) of a FocalNet forward pass.

Two independent counts, so each can check the other:

* :func:`count_macs` traces one forward with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts the
  matrix multiplications and convolutions that actually run (2 FLOPs per multiply-add, hence the division by 2).
  It works on ``meta``-device models, so the 700M-parameter variants are counted without allocating weights.
* :func:`analytic_macs` is the authors' closed-form ``FocalNet.flops()`` (classification/focalnet.py), which also
  counts LayerNorms and the element-wise gating as one MAC per element. With ``exact_patch_embed=False`` it
  reproduces their numbers exactly, including one mistake: the overlapping "conv-embed" stems and downsamplers
  of the large/xlarge/huge models (kernels 7 and 3) are counted as if their kernels were the patch size (4 and 2).
  That undercounts those models by about 2.5 %. The default, ``exact_patch_embed=True``, counts the real kernels.

Papers and READMEs quote MACs under the name "FLOPs"; both functions return GMACs (1e9 MACs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "macs_by_operator", "analytic_macs"]


def _input_like(model: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    return torch.zeros(tuple(input_size), device=device, dtype=dtype)


def _trace(model: nn.Module, input_size: Sequence[int]) -> FlopCounterMode:
    if len(input_size) != 4:
        raise ValueError(f"input_size must be (B, C, H, W), got {tuple(input_size)}")
    x = _input_like(model, input_size)
    was_training = model.training
    model.eval()  # drop path / dropout must not change the count
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return counter


def count_macs(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> float:
    """GMACs of ``model(x)`` for an input of ``input_size``, counted by running it under ``FlopCounterMode``.

    The input is created on the model's device: build big variants with ``device="meta"`` and nothing is
    computed or allocated, only shapes are propagated. Only matmuls and convolutions are counted (norms,
    activations and element-wise products are not), which is why this is ~0.2 % below :func:`analytic_macs`.
    """
    return _trace(model, input_size).get_total_flops() / 2e9


def macs_by_operator(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> dict[str, float]:
    """GMACs per ATen operator (e.g. ``addmm``, ``convolution``) for one forward, largest first."""
    counts = _trace(model, input_size).get_flop_counts()["Global"]
    return {str(getattr(op, "__name__", op)).split(".")[0]: n / 2e9 for op, n in sorted(counts.items(),
                                                                                      key=lambda kv: -kv[1])}


def _conv_out(size: int, conv: nn.Conv2d) -> int:
    return (size + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1


def analytic_macs(model: nn.Module, img_size: int | None = None, exact_patch_embed: bool = True) -> float:
    """The authors' closed-form MAC count for a :class:`focalnet.FocalNet` at a square ``img_size`` (GMACs).

    Mirrors ``FocalNet.flops()`` of the original code term by term: per block ``C·H·W`` for each LayerNorm, the
    modulation (``f``; ``(k²+1)·C`` per position for each depthwise level plus its gating; ``C`` for the global
    gate; ``h``; ``proj``), ``2·r·C²`` per position for the MLP; ``Ho·Wo·Cout·Cin·k²`` plus a norm term per patch
    embedding; and the original's final-norm and head terms. ``exact_patch_embed=False`` uses the patch size
    instead of the real kernel for every patch embedding, as the original does (see the module docstring).
    """
    img_size = int(img_size or model.img_size)
    pe = model.patch_embed
    p = model.patch_size

    def embed_macs(embed: nn.Module, h_in: int, patch: int) -> tuple[float, int]:
        conv = embed.proj
        ho = _conv_out(h_in, conv) if exact_patch_embed else h_in // patch
        k2 = conv.kernel_size[0] * conv.kernel_size[1] if exact_patch_embed else patch * patch
        macs = ho * ho * conv.out_channels * conv.in_channels * k2
        if embed.norm is not None:
            macs += ho * ho * conv.out_channels
        return macs, ho

    total, res = embed_macs(pe, img_size, p)
    patches_res = res
    for stage in model.layers:
        n = res * res
        for blk in stage.blocks:
            mod = blk.modulation
            c, levels = mod.dim, mod.focal_level
            total += 2 * c * n  # norm1, norm2
            total += n * c * (2 * c + levels + 1)  # f
            total += sum(n * (k * k + 1) * c for k in mod.kernel_sizes)  # depthwise convs + gating
            total += n * c  # global gating
            total += n * c * (c + 1)  # h (1x1 conv)
            total += n * c * c  # proj
            total += 2 * n * c * blk.mlp.fc1.out_features  # MLP
        if stage.downsample is not None:
            macs, res = embed_macs(stage.downsample, res, 2)
            total += macs
    # The original's last two terms, kept verbatim: a final-norm term and the head (at its class count).
    total += model.num_features * patches_res * patches_res // (2 ** len(model.layers))
    head = model.head
    if isinstance(head, nn.Linear):
        total += model.num_features * head.out_features
    return total / 1e9
