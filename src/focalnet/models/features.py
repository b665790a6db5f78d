"""timm's ``features_only`` model: the classifier's stage maps as a list, with timm's ``feature_info``.

``create_model(name, features_only=True, out_indices=(1, 2, 3))`` returns a :class:`FeatureNet`: the one
classification network (pretrained weights loaded first), pruned after the last wanted stage, whose ``forward``
returns NCHW maps through :meth:`~focalnet.models.base.HierarchicalClassifier.forward_intermediates`.
:class:`focalnet.backbones.FocalNetBackbone` builds on it (per-output norms, freezing, torchvision / Hugging Face
output conventions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .base import FeatureInfo, HierarchicalClassifier, feature_take_indices

__all__ = ["FeatureNet"]


class FeatureNet(nn.Module):
    """NCHW maps of ``body``'s stages ``out_indices`` (timm semantics: an int ``n`` = the last ``n`` stages,
    negatives count from the end, out of range raises ``IndexError`` naming the valid range).

    ``prune=True`` removes what the outputs never use (later stages, final norm, classifier); ``feature_info``
    names modules relative to this wrapper (``body.layers.2.blocks.5``).
    """

    def __init__(self, body: HierarchicalClassifier, out_indices: int | Sequence[int] = (0, 1, 2, 3),
                 prune: bool = False) -> None:
        super().__init__()
        n = len(body.layers)
        try:
            take, _ = feature_take_indices(n, out_indices)
        except IndexError as e:
            raise IndexError(f"out_indices={out_indices!r}: {e}") from None
        self.body = body
        self.out_indices = tuple(take)
        if prune:
            body.prune_intermediate_layers(self.out_indices, prune_norm=True, prune_head=True)
        self.feature_info = FeatureInfo(
            {**body.feature_info[i], "module": f"body.{body.feature_info[i]['module']}"} for i in self.out_indices
        )

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        return self.body.pretrained_cfg

    default_cfg = pretrained_cfg

    def forward_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body.forward_intermediates(x, self.out_indices, intermediates_only=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_maps(x)
