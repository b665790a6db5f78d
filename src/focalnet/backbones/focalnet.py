"""A thin dense-prediction adapter over :class:`focalnet.FocalNet` (no copy of the network).

The authors' detection/segmentation backbone takes each stage's output after its blocks and before its
downsampling, applies one LayerNorm per output (``norm{i}``) and pads the input right/bottom to the stride.
This adapter does the same on top of :meth:`FocalNet.forward_intermediates`.

Deliberate differences from the authors' backbone (``detection/mmdet/models/backbones/focalnet.py``):

* every FocalNet flag is supported (post-norm, layer scale, normalised modulator, LayerNorm in the modulation),
  because the body *is* the classifier; the original backbone is always pre-norm, so it cannot host L/XL/H;
* the conv-embed stem keeps the classifier's padding 2 by default (the weights were trained with it); the
  original backbone used 3. ``from_name(..., stem_padding=3)`` reproduces it. T/S/B use no conv embed, so
  this only concerns the large models;
* ``train()`` returns the module.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from focalnet.models.features import FeatureNet
from focalnet.models.focalnet import FocalNet

from .remap import load_backbone_weights

_logger = logging.getLogger(__name__)


OUTPUT_FORMATS = ("list", "dict", "hf")


@dataclass
class BackboneOutput:
    """What a Hugging Face backbone returns (``transformers.modeling_outputs.BackboneOutput``'s fields):
    ``feature_maps`` is a tuple of NCHW maps, one per entry of ``out_features``."""

    feature_maps: tuple[torch.Tensor, ...]
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None

    def __getitem__(self, i: int):  # ModelOutput-style positional access: out[0] is feature_maps
        return tuple(v for v in (self.feature_maps, self.hidden_states, self.attentions) if v is not None)[i]


class FocalNetBackbone(FeatureNet):
    """Wraps a FocalNet as ``body`` and returns NCHW maps for ``out_indices``.

    ``out_norm`` adds a LayerNorm per output (the original detection backbone's ``norm{i}``), stored here as
    ``norms[str(i)]``. ``frozen_stages`` follows the original (Swin) logic: >=0 freezes the stem, >=k+1 also
    freezes stages 0..k-1 (so ``frozen_stages=1`` freezes only the stem, as in the original configs); valid
    range -1..num_stages+1. ``trainable_layers`` is torchvision's spelling of the same thing: how many of the
    last (stages + stem) stay trainable, 0..num_stages+1 (``num_stages + 1`` = nothing frozen); give one or the
    other. The classifier head and final norm of ``body`` are not used.

    ``output_format`` picks what ``forward`` returns, so each ecosystem's code takes the backbone as is:

    * ``"list"`` (default): a list of NCHW maps (mmdet / timm ``features_only`` style);
    * ``"dict"``: torchvision's ``OrderedDict[str, Tensor]`` keyed ``"0"``, ``"1"``, ... (what
      ``torchvision.ops.FeaturePyramidNetwork`` and ``BackboneWithFPN``-style code consume);
    * ``"hf"``: a :class:`BackboneOutput` with ``feature_maps`` (Hugging Face backbones), with ``stage_names``,
      ``out_features`` and ``channels`` as in ``transformers``' ``BackboneMixin``.
    """

    def __init__(
        self,
        body: FocalNet,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        out_norm: bool = True,
        frozen_stages: int = -1,
        *,
        trainable_layers: int | None = None,
        output_format: str = "list",
    ) -> None:
        super().__init__(body, out_indices=out_indices, prune=False)
        self.norms = nn.ModuleDict(
            {str(i): nn.LayerNorm(body.embed_dims[i]) for i in self.out_indices} if out_norm else {}
        )
        self.output_format = output_format
        self.frozen_stages = self._frozen_from(frozen_stages, trainable_layers)
        self._freeze()

    # ------------------------------------------------------------------ conventions
    @property
    def output_format(self) -> str:
        return self._output_format

    @output_format.setter
    def output_format(self, value: str) -> None:
        if value not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {value!r}")
        self._output_format = value

    @property
    def num_stages(self) -> int:
        return len(self.body.layers)

    def _frozen_from(self, frozen_stages: int, trainable_layers: int | None) -> int:
        n = self.num_stages
        if trainable_layers is not None:
            if frozen_stages != -1:
                raise ValueError("give frozen_stages or trainable_layers, not both")
            if not 0 <= trainable_layers <= n + 1:
                raise ValueError(f"trainable_layers should be in the range [0, {n + 1}] ({n} stages + the stem), "
                                 f"got {trainable_layers}")
            return -1 if trainable_layers == n + 1 else n + 1 - trainable_layers
        if not -1 <= frozen_stages <= n + 1:
            raise ValueError(f"frozen_stages should be in the range [-1, {n + 1}] (-1: nothing frozen, 0/1: the "
                             f"stem, k+1: the stem and stages 0..k-1), got {frozen_stages}")
        return frozen_stages

    @property
    def trainable_layers(self) -> int:
        """torchvision's count of trainable layers (stages from the top, then the stem): num_stages+1 = all."""
        n = self.num_stages
        return n + 1 if self.frozen_stages < 0 else max(0, n + 1 - max(self.frozen_stages, 1))

    @property
    def out_channels(self) -> list[int]:
        return [f["num_chs"] for f in self.feature_info]

    @property
    def strides(self) -> list[int]:
        return [f["reduction"] for f in self.feature_info]

    @property
    def stage_names(self) -> list[str]:
        """Hugging Face's names: ``["stem", "stage1", ..., "stageN"]``."""
        return ["stem"] + [f"stage{i + 1}" for i in range(self.num_stages)]

    @property
    def out_features(self) -> list[str]:
        """Hugging Face's names of the returned maps, e.g. ``["stage1", "stage2", "stage3", "stage4"]``."""
        return [f"stage{i + 1}" for i in self.out_indices]

    @property
    def channels(self) -> list[int]:
        """Hugging Face's name for the widths of the returned maps."""
        return self.out_channels

    # ------------------------------------------------------------------ freezing
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

    # ------------------------------------------------------------------ forward
    def forward_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The NCHW maps of ``out_indices`` (per-output norms applied), whatever ``output_format`` says."""
        feats = self.body.forward_intermediates(x, self.out_indices, intermediates_only=True)
        outs = []
        for i, f in zip(self.out_indices, feats):
            if str(i) in self.norms:
                f = self.norms[str(i)](f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            outs.append(f.contiguous())
        return outs

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> list[torch.Tensor] | OrderedDict[str, torch.Tensor] | BackboneOutput:
        """``pixel_values`` (B, C, H, W) -> maps in ``output_format``. The Hugging Face keywords are accepted
        (hidden states and attentions are not returned: ``None``)."""
        outs = self.forward_maps(pixel_values)
        if self._output_format == "dict":
            return OrderedDict((str(k), f) for k, f in enumerate(outs))
        if self._output_format == "hf":
            return BackboneOutput(feature_maps=tuple(outs))
        return outs

    @classmethod
    def from_name(
        cls,
        name: str,
        *,
        focal_windows: int | Sequence[int] | None = 9,
        focal_levels: int | Sequence[int] | None = None,
        drop_path_rate: float | None = None,
        pretrained: str | bool | Mapping[str, torch.Tensor] | None = None,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        out_norm: bool = True,
        frozen_stages: int = -1,
        stem_padding: int | None = None,
        use_checkpoint: bool = False,
        trainable_layers: int | None = None,
        output_format: str = "list",
        **overrides: Any,
    ) -> FocalNetBackbone:
        """Build the backbone of a registered variant, as the detection/segmentation recipes use it.

        ``focal_windows`` defaults to 9 (every published detection/segmentation config); ``None`` keeps the
        variant's own windows. ``focal_levels``/``drop_path_rate``/``stem_padding`` override the variant when
        given. ``pretrained`` is a classification checkpoint (path, URL, state dict, or ``True`` for the
        variant's default released weights); it is loaded with the original loader rules
        (:func:`focalnet.backbones.load_backbone_weights`: kernels padded/cropped, new levels at zero, head
        dropped). The classifier's final norm and head are removed: the dense outputs never use them.
        ``frozen_stages`` / ``trainable_layers`` / ``output_format``: see the class.
        """
        from focalnet.models.registry import create_model, get_spec

        if get_spec(name).family == "focal_transformer":
            # FocalNet-only knobs: the detection default of 9 windows does not apply to focal self-attention.
            if focal_levels is not None or stem_padding is not None or focal_windows not in (None, 9):
                raise ValueError(f"focal_windows/focal_levels/stem_padding adapt FocalNet backbones; {name!r} is a "
                                 "Focal Transformer: pass its own constructor overrides instead")
            from .focal_transformer import FocalTransformerBackbone

            return FocalTransformerBackbone.build(
                name, drop_path_rate=drop_path_rate, pretrained=pretrained, out_indices=out_indices,
                out_norm=out_norm, frozen_stages=frozen_stages, use_checkpoint=use_checkpoint,
                trainable_layers=trainable_layers, output_format=output_format, **overrides,
            )
        kw: dict[str, Any] = dict(overrides)
        if focal_windows is not None:
            kw["focal_windows"] = focal_windows
        if focal_levels is not None:
            kw["focal_levels"] = focal_levels
        if drop_path_rate is not None:
            kw["drop_path_rate"] = drop_path_rate
        if stem_padding is not None:
            kw["stem_padding"] = stem_padding
        body = create_model(name, num_classes=0, use_checkpoint=use_checkpoint, **kw)
        if len(body.layers) < 2:
            raise ValueError(f"{name!r} is isotropic (one stage at stride {body.stride}); a dense backbone needs "
                             "a hierarchical variant with stride-4..32 stages")
        body.norm = nn.Identity()  # unused by dense outputs; an unused parameter would trouble DDP and optimizers
        with torch.device(body.patch_embed.proj.weight.device):  # the per-output norms go where the body is
            backbone = cls(body, out_indices=out_indices, out_norm=out_norm, output_format=output_format)
        frozen = backbone._frozen_from(frozen_stages, trainable_layers)  # range-checked before any download
        if pretrained:
            source = _resolve_pretrained(name, pretrained)
            left = load_backbone_weights(backbone, source)
            _logger.info("loaded classification weights into %s backbone (%d tensors left at init)", name, len(left))
        backbone.frozen_stages = frozen  # freeze after loading so frozen stages hold the pretrained values
        backbone._freeze()
        return backbone


def _resolve_pretrained(name: str, pretrained: str | bool | Mapping[str, torch.Tensor]):
    """``True`` -> the variant's default released classification weights (downloaded and cached); else as given."""
    if pretrained is not True:
        return pretrained
    from focalnet.weights import get_weights

    try:
        rec = get_weights(name)
    except KeyError as e:
        raise ValueError(f"no released weights are registered for {name!r}; pass a checkpoint path instead") from e
    if not rec.available:
        raise ValueError(f"the released weights of {name!r} are not downloadable any more; pass a local file")
    from focalnet.weights.hub import fetch_record

    path, _url, _layout = fetch_record(rec)  # cached copies first, mirrors in order, HF_HUB_OFFLINE honoured
    return str(path)
