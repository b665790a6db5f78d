"""A thin dense-prediction adapter over :class:`focalnet.FocalTransformer` (no copy of the network).

Focal Transformer's detection/segmentation backbone was never released (spec §0). This adapter follows the
Swin/FocalNet convention the authors' other backbones use: each stage's output after its blocks and before its
downsampling, one LayerNorm per output, input padded right/bottom to the stride. It is
:class:`~focalnet.backbones.FocalNetBackbone` applied to the Focal Transformer's ``forward_intermediates``: both
models expose the same ``patch_embed`` / ``layers`` / ``embed_dims`` / ``feature_info`` interface.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from focalnet.models.focal_transformer import FocalTransformer

from .focalnet import FocalNetBackbone, _resolve_pretrained

_logger = logging.getLogger(__name__)


class FocalTransformerBackbone(FocalNetBackbone):
    """Wraps a FocalTransformer as ``body`` and returns NCHW maps (strides 4/8/16/32) for ``out_indices``.

    ``out_norm`` adds a LayerNorm per output (``norms[str(i)]``); ``frozen_stages`` >= 0 freezes the stem,
    >= k+1 also stages 0..k-1. Any input size with sides >= 32 works: every block pads its map to a multiple of
    its window internally, as the original does.
    """

    def __init__(
        self,
        body: FocalTransformer,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        out_norm: bool = True,
        frozen_stages: int = -1,
        *,
        trainable_layers: int | None = None,
        output_format: str = "list",
    ) -> None:
        if not isinstance(body, FocalTransformer):
            raise TypeError(f"FocalTransformerBackbone wraps a FocalTransformer, got {type(body).__name__}")
        super().__init__(body, out_indices=out_indices, out_norm=out_norm, frozen_stages=frozen_stages,
                         trainable_layers=trainable_layers, output_format=output_format)

    @classmethod
    def build(
        cls,
        name: str,
        *,
        drop_path_rate: float | None = None,
        pretrained: str | bool | Mapping[str, torch.Tensor] | None = None,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        out_norm: bool = True,
        frozen_stages: int = -1,
        use_checkpoint: bool = False,
        trainable_layers: int | None = None,
        output_format: str = "list",
        **overrides: Any,
    ) -> FocalTransformerBackbone:
        """The backbone of a registered Focal Transformer variant (``FocalNetBackbone.from_name`` routes here).

        ``pretrained`` is a classification checkpoint (path, URL, state dict); its classifier (``norm``,
        ``head``) is dropped and everything else must fit exactly (the parameter set depends on the construction
        ``img_size``, see :mod:`focalnet.models.focal_transformer`).
        """
        from focalnet.models.registry import create_model
        from focalnet.weights.convert import to_canonical
        from focalnet.weights.loading import _read_source, check_state_dict, unwrap_state_dict

        kw: dict[str, Any] = dict(overrides)
        if drop_path_rate is not None:
            kw["drop_path_rate"] = drop_path_rate
        body = create_model(name, num_classes=0, use_checkpoint=use_checkpoint, **kw)
        body.norm = nn.Identity()  # unused by dense outputs
        with torch.device(body.patch_embed.proj.weight.device):
            backbone = cls(body, out_indices=out_indices, out_norm=out_norm, output_format=output_format)
        frozen = backbone._frozen_from(frozen_stages, trainable_layers)
        if pretrained:
            sd = unwrap_state_dict(_read_source(_resolve_pretrained(name, pretrained), "cpu"))
            sd = to_canonical(body, {k: v for k, v in sd.items() if not k.startswith(("head.", "norm."))})
            check_state_dict(body, sd)
            body.load_state_dict(sd, strict=True)
            _logger.info("loaded classification weights into the %s backbone", name)
        backbone.frozen_stages = frozen  # freeze after loading so frozen stages hold the pretrained values
        backbone._freeze()
        return backbone
