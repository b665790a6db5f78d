"""What the FocalNet and Focal Transformer classifiers share: one interface, written once.

Both are a stem (``patch_embed``), stages (``layers[i]`` with ``blocks``, ``forward_blocks`` and
``forward_downsample``), a final ``norm`` and a ``head``, with channels-last tokens ``(B, H, W, C)`` between
them. This base class gives them the same classification, dense-prediction, optimizer and block-selection API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.utils.checkpoint import checkpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GLOBAL_POOLS = ("avg", "")


def feature_take_indices(num_features: int, indices: int | Sequence[int] | None = None) -> tuple[list[int], int]:
    """timm's index rule: ``None`` = all, an int ``n`` = the last ``n``, a sequence = those indices (negatives count
    from the end). Out-of-range raises ``IndexError`` naming the valid range (never wraps). Returns
    ``(sorted unique indices, max index)``."""
    if indices is None:
        indices = num_features
    if isinstance(indices, int):
        if not 0 < indices <= num_features:
            raise IndexError(f"last-n indices={indices} is out of range: choose 1..{num_features}")
        take = list(range(num_features - indices, num_features))
    else:
        take = []
        for i in indices:
            idx = num_features + int(i) if int(i) < 0 else int(i)
            if not 0 <= idx < num_features:
                raise IndexError(
                    f"feature index {i} is out of range: the network has {num_features} stages, valid indices are "
                    f"{-num_features}..{num_features - 1}"
                )
            take.append(idx)
        if not take:
            raise IndexError("no feature index given")
        take = sorted(set(take))
    return take, max(take)


def check_image_batch(x: torch.Tensor, in_chans: int, min_size: int, label: str) -> torch.Tensor:
    """Raise a ``ValueError`` saying what was expected unless ``x`` is ``(B, in_chans, H>=min_size, W>=min_size)``.

    Returns ``x`` so that, under ``torch.fx`` tracing (it is registered with ``torch.fx.wrap``), the check stays in
    the traced graph as one call and runs on the real tensor instead of breaking the trace.
    """
    if x.ndim != 4:
        raise ValueError(f"expected an image batch of shape (B, {in_chans}, H, W), got {tuple(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(
            f"expected {in_chans} input channels, got {x.shape[1]} (input shape {tuple(x.shape)}); "
            f"convert grayscale/RGBA images to RGB, or build the model with in_chans={x.shape[1]}"
        )
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(
            f"input {x.shape[2]}x{x.shape[3]} is smaller than the network's total stride {min_size}; "
            f"{label} needs images of at least {min_size}x{min_size}"
        )
    return x


torch.fx.wrap("check_image_batch")


class FeatureInfo(list):
    """timm's ``feature_info``: a list of ``{"num_chs", "reduction", "module", "index"}`` dicts, one per feature,
    with timm's accessors ``channels()``, ``reduction()`` and ``module_name()`` (all, or one ``idx``)."""

    def get(self, key: str, idx: int | Sequence[int] | None = None):  # type: ignore[override]
        if idx is None:
            return [f[key] for f in self]
        if isinstance(idx, int):
            return self[idx][key]
        return [self[i][key] for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None):
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None):
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None):
        return self.get("module", idx)


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
    # timm's contract: forward_features returns channels-last maps; forward_head pools them ("avg") or not ("").
    output_fmt = "NHWC"
    global_pool = "avg"
    # Parameters (besides 1-D tensors and biases) that get no weight decay, by name fragment.
    no_decay_keywords: tuple[str, ...] = (".gamma_",)
    # Whether dense features (which pad any input) still require sides >= the total stride.
    dense_requires_min_size = False

    # ------------------------------------------------------------------ utilities
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations."""
        for stage in self.layers:
            stage.grad_checkpointing = enable

    def _feature_info(self) -> FeatureInfo:
        """Per stage: its width, stride and the module whose output *is* that feature (the stage's last block,
        whose channels-last output precedes the downsampling), so forward hooks and FX extractors get it."""
        return FeatureInfo(
            {
                "num_chs": self.embed_dims[i],
                "reduction": self.patch_size * 2**i,
                "module": f"layers.{i}.blocks.{len(stage.blocks) - 1}" if len(stage.blocks) else f"layers.{i}",
                "index": i,
            }
            for i, stage in enumerate(self.layers)
        )

    @property
    def head_hidden_size(self) -> int:
        """Width of the pre-logits features (timm's name)."""
        return self.num_features

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's ``pretrained_cfg`` dict (input size, interpolation, crop, mean/std, classes, ...).

        ``create_model`` sets it from the variant's weights record (whether or not weights were loaded); a model
        built directly gets a generic one from its own constructor arguments."""
        cfg = self.__dict__.get("_pretrained_cfg")
        return cfg if cfg is not None else self._generic_pretrained_cfg()

    @pretrained_cfg.setter
    def pretrained_cfg(self, value: Any) -> None:
        if hasattr(value, "pretrained_cfg"):  # a WeightsRecord
            value = value.pretrained_cfg(in_chans=self.in_chans, stride=self.stride)
        self.__dict__["_pretrained_cfg"] = dict(value)

    default_cfg = pretrained_cfg  # timm's older name for the same dict

    def _generic_pretrained_cfg(self) -> dict[str, Any]:
        size = self.img_size if isinstance(self.img_size, (tuple, list)) else (self.img_size, self.img_size)
        h, w = int(size[0]), int(size[1])
        return {
            "architecture": type(self).__name__,
            "tag": None,
            "input_size": (self.in_chans, h, w),
            "fixed_input_size": False,
            "interpolation": "bicubic",
            "crop_pct": 0.875 if max(h, w) <= 224 else 1.0,
            "crop_mode": "center",
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "num_classes": self.num_classes,
            "pool_size": (h // self.stride, w // self.stride),
            "first_conv": "patch_embed.proj",
            "classifier": "head",
            "license": "mit",
        }

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head by a freshly initialised one with ``num_classes`` outputs (0 removes it).

        ``global_pool``: ``"avg"`` (the published models) or ``""`` (no pooling: ``forward`` then returns the
        channels-last map, or per-position logits); ``None`` keeps the current pooling."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        ref = self.patch_embed.proj.weight  # device and dtype of the model (the norm may have been pruned)
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
    def _check_input(self, x: torch.Tensor, check_size: bool = True) -> torch.Tensor:
        return check_image_batch(x, self.in_chans, self.stride if check_size else 1, self.family_label)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, C_in, H, W) -> final-normed feature map, channels-last (B, h, w, C) (``output_fmt``)."""
        x = self._check_input(x)
        x = self.pos_drop(self.patch_embed(x))
        for stage in self.layers:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Mean over positions (the original's AdaptiveAvgPool1d; skipped with ``global_pool=""``), then the
        classifier (skipped with ``pre_logits``)."""
        if self.global_pool == "avg":
            x = x.mean(dim=(1, 2))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature API: stage outputs (after the blocks, before the downsampling), plus the final features.

        ``indices``: ``None`` (all stages), an int ``n`` (the last ``n``) or stage indices (negatives from the end);
        out of range raises ``IndexError``. ``norm`` applies the final norm to the last stage's map. ``output_fmt``
        ``"NCHW"`` (default) or ``"NHWC"`` for the intermediates. Returns ``(final, intermediates)`` with ``final``
        the normed channels-last map of ``forward_features`` (or the last stage reached with ``stop_early``), or
        only the intermediates with ``intermediates_only`` (which also stops after the last wanted stage).

        Unlike ``forward_features``, any input size is accepted: the input and each stage are padded right/bottom
        to the next stride multiple, as the authors' FocalNet detection backbone does, so stage ``i`` has
        ``ceil(H / (4 * 2**i))`` rows; for sizes that are multiples of the stride the maps are those of ``forward``.
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        take, max_index = feature_take_indices(len(self.layers), indices)
        last = len(self.layers) - 1
        stages = self.layers[: max_index + 1] if (stop_early or intermediates_only) else self.layers
        x = self._check_input(x, check_size=self.dense_requires_min_size)
        x = self.pos_drop(self.patch_embed(x, pad=True))
        outs = []
        for i, stage in enumerate(stages):
            x = stage.forward_blocks(x)
            if i in take:
                y = self.norm(x) if norm and i == last else x
                outs.append(y.permute(0, 3, 1, 2) if output_fmt == "NCHW" else y)
            if i < len(stages) - 1:
                x = stage.forward_downsample(x, pad=True)
        if intermediates_only:
            return outs
        if len(stages) == len(self.layers):
            x = self.norm(x)
        return x, outs

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` (timm's API); returns the kept indices.

        The last kept stage loses its downsampling (nothing consumes it). When stages are removed the final norm
        (sized for the removed last stage) goes too; ``prune_head`` removes the classifier (``reset_classifier(0,
        "")``)."""
        take, max_index = feature_take_indices(len(self.layers), indices)
        if max_index < len(self.layers) - 1:
            self.layers = self.layers[: max_index + 1]
            self.layers[-1].downsample = None
            self.feature_info = FeatureInfo(self.feature_info[: max_index + 1])
            prune_norm = True
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take

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
