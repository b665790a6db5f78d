"""What the FocalNet and Focal Transformer classifiers share: one interface, written once.

Both are a stem (``patch_embed``), stages (``layers[i]`` with ``blocks``, ``forward_blocks`` and
``forward_downsample``), a final ``norm`` and a ``head``, with channels-last tokens ``(B, H, W, C)`` between
them. This base class gives them the same classification, dense-prediction, optimizer and block-selection API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def init_weights_original(m: nn.Module) -> None:
    """The authors' model-level init (both families): Linear ~ trunc_normal(std .02) with absolute bounds +-2
    (effectively N(0, .02^2)), zero bias; LayerNorm weight 1, bias 0; Conv2d keeps PyTorch's default."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class Stage(nn.Module):
    """Blocks at one resolution on channels-last tokens, then (except in the last stage) a downsampling
    ``PatchEmbed`` that consumes NCHW. ``grad_checkpointing`` recomputes each block in the backward pass."""

    def __init__(self, blocks: Iterable[nn.Module], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample
        self.grad_checkpointing = False

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward_downsample(self, x: torch.Tensor, pad: bool = False) -> torch.Tensor:
        if self.downsample is None:
            return x
        return self.downsample(x.permute(0, 3, 1, 2), pad=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_downsample(self.forward_blocks(x))


class HierarchicalClassifier(nn.Module):
    """Shared methods. Subclasses build ``patch_embed, pos_drop, layers, norm, head`` and set ``in_chans``,
    ``num_features``, ``num_classes`` and ``stride`` (the last stage's total downsampling)."""

    family_label = "the network"
    # Parameters (besides 1-D tensors and biases) that get no weight decay, by name fragment.
    no_decay_keywords: tuple[str, ...] = (".gamma_",)
    # Whether dense features (which pad any input) still require sides >= the total stride.
    dense_requires_min_size = False

    # ------------------------------------------------------------------ utilities
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations."""
        for stage in self.layers:
            stage.grad_checkpointing = enable

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head by a freshly initialised one with ``num_classes`` outputs (0 removes it)."""
        self.num_classes = num_classes
        ref = self.norm.weight
        if num_classes > 0:
            self.head = nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype)
            init_weights_original(self.head)
        else:
            self.head = nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.head

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that get no weight decay: 1-D tensors (norms), biases and ``no_decay_keywords``."""
        return {
            name
            for name, p in self.named_parameters()
            if p.ndim <= 1 or name.endswith(".bias") or any(k in name for k in self.no_decay_keywords)
        }

    def param_groups(self, weight_decay: float = 0.05) -> list[dict]:
        """Two optimizer groups: decayed weights, and the undecayed names of :meth:`no_weight_decay`."""
        skip = self.no_weight_decay()
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (no_decay if name in skip else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter-name groups in depth order, for timm's layer-wise lr decay."""
        if coarse:
            return {"stem": r"^patch_embed", "blocks": r"^layers\.(\d+)"}
        return {
            "stem": r"^patch_embed",
            "blocks": [
                (r"^layers\.(\d+)\.blocks\.(\d+)", None),
                (r"^layers\.(\d+)\.downsample", (99998,)),  # belongs between stage i and stage i+1
                (r"^norm", (99999,)),
            ],
        }

    # ------------------------------------------------------------------ forward passes
    def _check_input(self, x: torch.Tensor, check_size: bool = True) -> None:
        if x.ndim != 4:
            raise ValueError(f"expected an image batch of shape (B, {self.in_chans}, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected {self.in_chans} input channels, got {x.shape[1]} (input shape {tuple(x.shape)}); "
                f"convert grayscale/RGBA images to RGB, or build the model with in_chans={x.shape[1]}"
            )
        if check_size and (x.shape[2] < self.stride or x.shape[3] < self.stride):
            raise ValueError(
                f"input {x.shape[2]}x{x.shape[3]} is smaller than the network's total stride {self.stride}; "
                f"{self.family_label} needs images of at least {self.stride}x{self.stride}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, C_in, H, W) -> final-normed feature map, channels-last (B, h, w, C)."""
        self._check_input(x)
        x = self.pos_drop(self.patch_embed(x))
        for stage in self.layers:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Mean over positions (the original's AdaptiveAvgPool1d), then the classifier."""
        x = x.mean(dim=(1, 2))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, indices: Iterable[int] | None = None) -> list[torch.Tensor]:
        """Dense-prediction features: NCHW maps at strides 4/8/16/32 (hierarchical models).

        Each map is a stage's output after its blocks and before its downsampling, un-normalised (a backbone adds
        its own per-output norms, see :mod:`focalnet.backbones`). Any input size is accepted: the input and each
        stage are padded right/bottom to the next stride multiple, as the authors' FocalNet detection backbone
        does, so stage ``i`` has ``ceil(H / (4 * 2**i))`` rows.
        """
        n = len(self.layers)
        wanted = sorted({i % n for i in (range(n) if indices is None else indices)})
        self._check_input(x, check_size=self.dense_requires_min_size)
        outs = []
        x = self.pos_drop(self.patch_embed(x, pad=True))
        for i, stage in enumerate(self.layers):
            x = stage.forward_blocks(x)
            if i in wanted:
                outs.append(x.permute(0, 3, 1, 2))
            if i == wanted[-1]:
                break
            x = stage.forward_downsample(x, pad=True)
        return outs

    # ------------------------------------------------------------------ choosing blocks (for maps)
    def block_paths(self, suffix: str = "") -> list[str]:
        """``layers.{i}.blocks.{j}{suffix}`` for every block, in forward order."""
        return [f"layers.{i}.blocks.{j}{suffix}" for i, s in enumerate(self.layers) for j in range(len(s.blocks))]

    def _resolve_blocks(
        self, which, suffix: str = "", aliases: tuple[str, ...] = (), label: str = "block"
    ) -> set[str]:
        """Block paths chosen by ``which``: ``None`` (all), paths, or ``(stage, block)`` pairs (negatives ok).

        Paths may be given with ``suffix`` or with any of ``aliases`` in its place."""
        names = self.block_paths(suffix)
        if which is None:
            return set(names)
        if isinstance(which, (str, tuple)):
            which = [which]
        chosen = set()
        for w in which:
            if isinstance(w, tuple):  # (stage, block), negative indices allowed
                stage, block = w
                stage = stage % len(self.layers)
                block = block % len(self.layers[stage].blocks)
                w = f"layers.{stage}.blocks.{block}{suffix}"
            for alias in aliases:
                if alias and w.endswith(alias):
                    w = w[: -len(alias)] + suffix
            if w not in names:
                raise KeyError(f"no {label} named {w!r}; choose from e.g. {names[0]!r} .. {names[-1]!r}")
            chosen.add(w)
        return chosen

    def _forward_collecting(
        self, x: torch.Tensor, chosen: set[str], suffix: str, call: Callable[[nn.Module, torch.Tensor], Any]
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Classify ``x``; every block whose path (``layers.i.blocks.j{suffix}``) is in ``chosen`` runs as
        ``call(block, x) -> (x, extra)`` and its ``extra`` is returned by path. Nothing is stored on the model."""
        self._check_input(x)
        extras: dict[str, Any] = {}
        x = self.pos_drop(self.patch_embed(x))
        for i, stage in enumerate(self.layers):
            for j, blk in enumerate(stage.blocks):
                name = f"layers.{i}.blocks.{j}{suffix}"
                if name in chosen:
                    x, extras[name] = call(blk, x)
                else:
                    x = blk(x)
            x = stage.forward_downsample(x)
        return self.forward_head(self.norm(x)), extras
