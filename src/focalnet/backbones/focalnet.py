"""A thin dense-prediction adapter over :class:`focalnet.FocalNet` (no copy of the network).

The authors' detection/segmentation backbone takes each stage's output after its blocks and before its
downsampling, applies one LayerNorm per output (``norm{i}``) and pads the input right/bottom to the stride.
This adapter does the same on top of :meth:`FocalNet.forward_intermediates`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from focalnet.models.focalnet import FocalNet


class FocalNetBackbone(nn.Module):
    """Wraps a FocalNet as ``body`` and returns NCHW maps for ``out_indices``.

    ``out_norm`` adds a LayerNorm per output (the original detection backbone's ``norm{i}``), stored here as
    ``norms[str(i)]``. ``frozen_stages`` follows the original (Swin) logic: >=0 freezes the stem, >=k+1 also
    freezes stages 0..k-1 (so ``frozen_stages=1`` freezes only the stem, as in the original configs). The
    classifier head and final norm of ``body`` are not used.
    """

    def __init__(
        self,
        body: FocalNet,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        out_norm: bool = True,
        frozen_stages: int = -1,
    ) -> None:
        super().__init__()
        n = len(body.layers)
        self.body = body
        self.out_indices = tuple(sorted({i % n for i in out_indices}))
        self.norms = nn.ModuleDict(
            {str(i): nn.LayerNorm(body.embed_dims[i]) for i in self.out_indices} if out_norm else {}
        )
        self.frozen_stages = frozen_stages
        self.feature_info = [
            {"num_chs": body.embed_dims[i], "reduction": body.feature_info[i]["reduction"], "index": i}
            for i in self.out_indices
        ]
        self._freeze()

    @property
    def out_channels(self) -> list[int]:
        return [f["num_chs"] for f in self.feature_info]

    @property
    def strides(self) -> list[int]:
        return [f["reduction"] for f in self.feature_info]

    def _frozen_modules(self) -> list[nn.Module]:
        mods: list[nn.Module] = []
        if self.frozen_stages >= 0:
            mods.append(self.body.patch_embed)
        for i in range(max(0, self.frozen_stages - 1)):
            mods.append(self.body.layers[i])
        return mods

    def _freeze(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> FocalNetBackbone:
        super().train(mode)
        if mode:
            self._freeze()
        return self  # unlike the original, returns the module so `backbone.eval()(x)` works

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.body.forward_intermediates(x, self.out_indices)
        outs = []
        for i, f in zip(self.out_indices, feats):
            if str(i) in self.norms:
                f = self.norms[str(i)](f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            outs.append(f.contiguous())
        return outs
