"""UPerNet with an FCN auxiliary head on a FocalNet backbone (the authors' ADE20K setup).

The heads are the maintained ones from Hugging Face ``transformers`` (``UperNetHead``: PPM with pool scales
1/2/3/6 + FPN fuse; ``UperNetFCNHead``), which follow mmsegmentation's UPerHead/FCNHead layer for layer
(3x3/1x1 conv + BatchNorm + ReLU, bilinear ``align_corners=False``). ``UperNetForSemanticSegmentation`` itself
cannot take our backbone (it builds its backbone from an HF config through ``AutoBackbone`` and re-initialises
every submodule), so :class:`UperNetSegmentor` composes the heads with :class:`FocalNetBackbone` directly.

Deviations from the original, on purpose:

* mmseg applies ``Dropout2d(0.1)`` before each head's classifier; the HF heads have none, so ours wraps each
  classifier as ``Sequential(Dropout2d(p), Conv2d)`` (state-dict keys ``*.classifier.1.*``).
* BatchNorm instead of SyncBN (single process); the heads need at least two images per training batch.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from focalnet.backbones import FocalNetBackbone

__all__ = ["UperNetSegmentor", "build_segmentor"]

_logger = logging.getLogger(__name__)


def _hf_heads():
    try:
        from transformers import UperNetConfig
        from transformers.models.upernet.modeling_upernet import UperNetFCNHead, UperNetHead
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError("segmentation needs `transformers` (pip install 'focalnet[seg]')") from e
    return UperNetConfig, UperNetHead, UperNetFCNHead


def _with_dropout(classifier: nn.Conv2d, p: float) -> nn.Module:
    nn.init.normal_(classifier.weight, 0.0, 0.01)  # mmseg's conv_seg init
    nn.init.zeros_(classifier.bias)
    return nn.Sequential(nn.Dropout2d(p), classifier)


class UperNetSegmentor(nn.Module):
    """``backbone`` -> UPerNet decode head (+ FCN auxiliary head while training) -> logits at input size.

    ``forward(x)`` returns the decode head's logits (B, num_classes, H, W) at the input's size (the backbone pads
    right/bottom to its stride; the padding is cropped away here). ``losses(x, target)`` returns the weighted
    cross-entropy terms (ignore_index pixels excluded) used for training.
    """

    def __init__(
        self,
        backbone: FocalNetBackbone,
        num_classes: int,
        channels: int = 512,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
        aux_channels: int = 256,
        aux_in_index: int = 2,
        aux_weight: float = 0.4,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        UperNetConfig, UperNetHead, UperNetFCNHead = _hf_heads()
        if len(backbone.out_channels) != 4:
            raise ValueError(f"UPerNet needs the four backbone stages, got out_indices {backbone.out_indices}")
        cfg = UperNetConfig(
            num_labels=num_classes,
            hidden_size=channels,
            pool_scales=list(pool_scales),
            auxiliary_channels=aux_channels,
            auxiliary_in_channels=backbone.out_channels[aux_in_index],
            auxiliary_num_convs=1,
            auxiliary_concat_input=False,
        )
        self.backbone = backbone
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.aux_weight = aux_weight
        self.decode_head = UperNetHead(cfg, in_channels=list(backbone.out_channels))
        self.decode_head.classifier = _with_dropout(self.decode_head.classifier, dropout)
        self.auxiliary_head = None
        if aux_weight > 0:
            # transformers 5 takes the backbone channels; 4.x reads config.auxiliary_in_channels (set above).
            chans = {"in_channels": list(backbone.out_channels)}
            if "in_channels" not in inspect.signature(UperNetFCNHead).parameters:  # pragma: no cover
                chans = {}
            self.auxiliary_head = UperNetFCNHead(cfg, in_index=aux_in_index, **chans)
            self.auxiliary_head.classifier = _with_dropout(self.auxiliary_head.classifier, dropout)

    def _resize(self, logits: torch.Tensor, size: tuple[int, int], padded: tuple[int, int]) -> torch.Tensor:
        # Upsample to the padded input first, then crop: the maps cover the padded image, not the input.
        logits = F.interpolate(logits, size=padded, mode="bilinear", align_corners=False)
        return logits[..., : size[0], : size[1]]

    def _padded(self, x: torch.Tensor, feats: list[torch.Tensor]) -> tuple[int, int]:
        s = self.backbone.strides[0]
        return feats[0].shape[-2] * s, feats[0].shape[-1] * s

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None):
        """Logits at the input size; with ``target``, the loss dict of :meth:`losses` instead (so training goes
        through ``forward`` and wrappers such as DDP see it)."""
        if target is not None:
            return self.losses(x, target)
        feats = self.backbone(x)
        return self._resize(self.decode_head(feats), x.shape[-2:], self._padded(x, feats))

    def losses(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy of the decode head (+ ``aux_weight`` x the auxiliary head's); ``loss`` is their sum."""
        if target.shape[-2:] != x.shape[-2:] or target.ndim != 3:
            raise ValueError(f"target must be (B, H, W) matching the images, got {tuple(target.shape)} for "
                             f"images {tuple(x.shape)}")
        feats = self.backbone(x)
        size, padded = x.shape[-2:], self._padded(x, feats)
        target = target.long()
        out = {"loss_decode": F.cross_entropy(self._resize(self.decode_head(feats), size, padded), target,
                                              ignore_index=self.ignore_index)}
        if self.auxiliary_head is not None:
            aux = self._resize(self.auxiliary_head(feats), size, padded)
            out["loss_aux"] = self.aux_weight * F.cross_entropy(aux, target, ignore_index=self.ignore_index)
        out["loss"] = sum(out.values())
        if not torch.isfinite(out["loss"]):  # every pixel ignored gives 0/0
            raise ValueError("loss is not finite: does the batch have any labelled (non-ignored) pixel?")
        return out

    def param_groups(self, weight_decay: float, norm_decay_mult: float = 0.0) -> list[dict]:
        """AdamW groups as the original's ``paramwise_cfg``: backbone parameters whose name contains ``norm``
        get ``weight_decay * norm_decay_mult`` (the heads' BatchNorms are named ``bn`` in mmseg, so they decay)."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if name.startswith("backbone.") and "norm" in name else decay).append(p)
        groups = [{"params": decay, "weight_decay": weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": weight_decay * norm_decay_mult})
        return groups


def resolve_pretrained(source: str) -> str:
    """A file, a directory or a URL as given; otherwise a released weights name (``focalnet_tiny_srf``, as the
    original configs' ``pretrained='focalnet_tiny_srf.pth'``) resolved to its download URL."""
    if "://" in source or Path(source).exists():
        return source
    from focalnet.weights import get_weights

    try:
        rec = get_weights(Path(source).stem if source.endswith((".pth", ".pt")) else source)
    except KeyError:
        raise FileNotFoundError(
            f"model.pretrained {source!r} is neither an existing file, a URL, nor a released weights name "
            "(see `focalnet models` / focalnet.list_weights())"
        ) from None
    urls = list(rec.urls) + [m[0] for m in rec.mirrors]
    if not urls:
        raise FileNotFoundError(f"no download is known for {source!r}: {rec.notes}")
    return urls[0]


def build_segmentor(cfg, load_pretrained: bool = True) -> UperNetSegmentor:
    """Build the segmentor of a :class:`~focalnet.seg.config.ModelConfig` (the backbone via the registry)."""
    from focalnet.models.registry import create_model

    body = create_model(cfg.backbone, num_classes=0, **dict(cfg.backbone_kwargs))
    backbone = FocalNetBackbone(body, out_indices=(0, 1, 2, 3), out_norm=True, frozen_stages=cfg.frozen_stages)
    if isinstance(getattr(body, "norm", None), nn.Module):  # the classifier's final norm: unused by dense heads,
        body.norm.requires_grad_(False)  # so no gradient (and DDP does not wait for one)
    if cfg.pretrained and load_pretrained:
        from focalnet.backbones import load_backbone_weights

        left = load_backbone_weights(backbone, resolve_pretrained(cfg.pretrained))
        _logger.info("loaded backbone weights from %s (%d keys left at init)", cfg.pretrained, len(left))
    return UperNetSegmentor(
        backbone,
        num_classes=cfg.num_classes,
        channels=cfg.channels,
        pool_scales=cfg.pool_scales,
        dropout=cfg.dropout,
        aux_channels=cfg.aux_channels,
        aux_in_index=cfg.aux_in_index,
        aux_weight=cfg.aux_weight,
        ignore_index=cfg.ignore_index,
    )
