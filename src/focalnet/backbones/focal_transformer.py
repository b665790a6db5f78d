"""A thin dense-prediction adapter over :class:`focalnet.FocalTransformer` (no copy of the network).

Focal Transformer's detection/segmentation backbone was never released (spec §0). This adapter follows the
Swin/FocalNet convention the authors' other backbones use: each stage's output after its blocks and before its
downsampling, one LayerNorm per output, input padded right/bottom to the stride. It is
:class:`~focalnet.backbones.FocalNetBackbone` applied to the Focal Transformer's ``forward_intermediates``: both
models expose the same ``patch_embed`` / ``layers`` / ``embed_dims`` / ``feature_info`` interface.
"""

from __future__ import annotations

from collections.abc import Sequence

from focalnet.models.focal_transformer import FocalTransformer

from .focalnet import FocalNetBackbone


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
    ) -> None:
        if not isinstance(body, FocalTransformer):
            raise TypeError(f"FocalTransformerBackbone wraps a FocalTransformer, got {type(body).__name__}")
        super().__init__(body, out_indices=out_indices, out_norm=out_norm, frozen_stages=frozen_stages)
