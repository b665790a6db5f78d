"""torchvision detectors on a FocalNet backbone: Mask R-CNN, RetinaNet and FCOS with an FPN.

The authors ran their detection recipes on a 2021 mmdetection fork that no longer installs. Here the same model
pieces come from torchvision, which is maintained: :class:`FocalNetFPN` puts torchvision's
``FeaturePyramidNetwork`` on :class:`~focalnet.backbones.FocalNetBackbone` (the one FocalNet, no copy), and the
builders hand it to torchvision's ``MaskRCNN`` / ``RetinaNet`` / ``FCOS``.

Conventions:

* ``num_classes`` is the number of object categories; torchvision's class index 0 is background, so the
  detectors get ``num_classes + 1`` outputs and labels are ``1..num_classes``;
* images go in as float RGB in [0, 1]; the detector's transform normalises with the ImageNet mean/std the
  classification weights were trained with, resizes (a tuple ``min_size`` picks a random shorter side per
  batch in training: the recipes' multi-scale 480-800) and pads to a multiple of 32;
* Mask R-CNN uses P2-P5 plus a max-pooled P6 (``LastLevelMaxPool``) like the authors' FPN(256, num_outs=5);
  RetinaNet/FCOS use stages 1-3 (strides 8-32) plus P6/P7 computed from P5 (mmdet ``add_extra_convs='on_output'``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool, LastLevelP6P7

from focalnet.backbones import FocalNetBackbone
from focalnet.weights.records import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ARCHS", "FocalNetFPN", "build_detector", "maskrcnn_focalnet", "retinanet_focalnet", "fcos_focalnet",
           "detector_param_groups"]

ARCHS = ("mask_rcnn", "retinanet", "fcos", "cascade_mask_rcnn", "atss", "sparse_rcnn")


class FocalNetFPN(nn.Module):
    """A FocalNet backbone followed by torchvision's FPN; returns ``{"0": P_first, ..., extra}`` maps.

    ``out_channels`` (the FPN width) is what torchvision's detectors read to size their heads. As in torchvision's
    ``BackboneWithFPN``, ``extra_blocks=None`` adds a max-pooled extra level (``LastLevelMaxPool``), the five maps
    torchvision's default anchor generators expect.
    """

    def __init__(self, backbone: FocalNetBackbone, out_channels: int = 256, extra_blocks: ExtraFPNBlock | None = None):
        super().__init__()
        self.body = backbone
        self.fpn = FeaturePyramidNetwork(backbone.out_channels, out_channels,
                                         extra_blocks=LastLevelMaxPool() if extra_blocks is None else extra_blocks)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body.forward_maps(x)  # the maps whatever the backbone's output_format (list / dict / hf)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def _focalnet_fpn(
    name: str,
    out_indices: Sequence[int],
    extra: str,
    fpn_channels: int,
    focal_windows: int | Sequence[int] | None,
    focal_levels: int | Sequence[int] | None,
    drop_path_rate: float | None,
    pretrained: str | bool | None,
    frozen_stages: int,
    stem_padding: int | None,
    use_checkpoint: bool,
    backbone_overrides: dict[str, Any] | None,
) -> FocalNetFPN:
    backbone = FocalNetBackbone.from_name(
        name,
        focal_windows=focal_windows,
        focal_levels=focal_levels,
        drop_path_rate=drop_path_rate,
        pretrained=pretrained,
        out_indices=out_indices,
        frozen_stages=frozen_stages,
        stem_padding=stem_padding,
        use_checkpoint=use_checkpoint,
        **(backbone_overrides or {}),
    )
    blocks = {"maxpool": LastLevelMaxPool, "p6p7": lambda: LastLevelP6P7(fpn_channels, fpn_channels),
              "none": lambda: None}[extra]()
    return FocalNetFPN(backbone, fpn_channels, blocks)


def build_detector(
    arch: str,
    name: str = "focalnet_tiny_srf",
    num_classes: int = 80,
    *,
    focal_windows: int | Sequence[int] | None = 9,
    focal_levels: int | Sequence[int] | None = None,
    drop_path_rate: float | None = None,
    pretrained: str | bool | None = None,
    frozen_stages: int = -1,
    stem_padding: int | None = None,
    use_checkpoint: bool = False,
    backbone_overrides: dict[str, Any] | None = None,
    fpn_channels: int = 256,
    min_size: int | Sequence[int] = 800,
    max_size: int = 1333,
    anchor_sizes: Sequence[int] | None = None,
    box_head_dim: int = 1024,
    mask_head_dims: Sequence[int] = (256, 256, 256, 256),
    **detector_kwargs: Any,
) -> nn.Module:
    """Build ``arch`` (one of :data:`ARCHS`) on the FocalNet variant ``name``.

    Backbone arguments are those of :meth:`FocalNetBackbone.from_name` (windows 9 by default, as every published
    detection config; ``pretrained`` loads classification weights with the original loader rules).
    ``anchor_sizes`` gives the base anchor size per pyramid level (default 32..512 for Mask R-CNN and RetinaNet,
    8..128 for FCOS); ``box_head_dim``/``mask_head_dims`` size the RoI heads (torchvision's defaults; tests
    shrink them). Other keywords go to the torchvision detector (e.g. ``rpn_batch_size_per_image``).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown detector {arch!r}; choose from {', '.join(ARCHS)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (object categories, background excluded), got {num_classes}")
    bb_args = (focal_windows, focal_levels, drop_path_rate, pretrained, frozen_stages, stem_padding, use_checkpoint,
               backbone_overrides)
    sizes = tuple(min_size) if isinstance(min_size, Sequence) else (int(min_size),)
    common = dict(min_size=sizes, max_size=max_size, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
    if arch == "mask_rcnn":
        backbone = _focalnet_fpn(name, (0, 1, 2, 3), "maxpool", fpn_channels, *bb_args)
        anchors = tuple((int(s),) for s in (anchor_sizes or (32, 64, 128, 256, 512)))
        anchor_gen = AnchorGenerator(anchors, ((0.5, 1.0, 2.0),) * len(anchors))
        box_head = TwoMLPHead(fpn_channels * 7 * 7, box_head_dim)
        mask_head = MaskRCNNHeads(fpn_channels, list(mask_head_dims), 1)
        return MaskRCNN(
            backbone,
            num_classes=None,
            rpn_anchor_generator=anchor_gen,
            box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2),
            box_head=box_head,
            box_predictor=FastRCNNPredictor(box_head_dim, num_classes + 1),
            mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], 14, 2),
            mask_head=mask_head,
            mask_predictor=MaskRCNNPredictor(mask_head_dims[-1], mask_head_dims[-1], num_classes + 1),
            **common,
            **detector_kwargs,
        )
    if arch in ("cascade_mask_rcnn", "atss", "sparse_rcnn"):  # ours, on torchvision parts (det/cascade.py, ...)
        return _build_ours(arch, num_classes, bb_args, fpn_channels, min_size, max_size, anchor_sizes, box_head_dim,
                           mask_head_dims, detector_kwargs, name)
    backbone = _focalnet_fpn(name, (1, 2, 3), "p6p7", fpn_channels, *bb_args)
    if arch == "retinanet":
        base = anchor_sizes or (32, 64, 128, 256, 512)
        # Three octave scales per level, as RetinaNet's paper and mmdet's `octave_base_scale=4, scales_per_octave=3`.
        anchors = tuple((int(x), int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in base)
        anchor_gen = AnchorGenerator(anchors, ((0.5, 1.0, 2.0),) * len(anchors))
        return RetinaNet(backbone, num_classes + 1, anchor_generator=anchor_gen, **common, **detector_kwargs)
    base = anchor_sizes or (8, 16, 32, 64, 128)  # FCOS: one "anchor" point per location, sized by the stride
    anchor_gen = AnchorGenerator(tuple((int(x),) for x in base), ((1.0,),) * len(base))
    return FCOS(backbone, num_classes + 1, anchor_generator=anchor_gen, **common, **detector_kwargs)


def _build_ours(arch: str, num_classes: int, bb_args: tuple, fpn_channels: int, min_size, max_size: int,
                anchor_sizes, box_head_dim: int, mask_head_dims, kwargs: dict[str, Any], name: str) -> nn.Module:
    common = dict(min_size=min_size, max_size=max_size, **kwargs)
    if arch == "cascade_mask_rcnn":
        from .cascade import cascade_mask_rcnn_focalnet

        backbone = _focalnet_fpn(name, (0, 1, 2, 3), "maxpool", fpn_channels, *bb_args)
        return cascade_mask_rcnn_focalnet(backbone, num_classes, anchor_sizes=anchor_sizes, box_head_dim=box_head_dim,
                                          mask_head_dims=mask_head_dims, **common)
    if arch == "atss":
        from .atss import atss_focalnet

        backbone = _focalnet_fpn(name, (1, 2, 3), "p6p7", fpn_channels, *bb_args)
        return atss_focalnet(backbone, num_classes, anchor_sizes=anchor_sizes, **common)
    from .sparse_rcnn import sparse_rcnn_focalnet

    backbone = _focalnet_fpn(name, (0, 1, 2, 3), "none", fpn_channels, *bb_args)
    return sparse_rcnn_focalnet(backbone, num_classes, **common)


def maskrcnn_focalnet(name: str = "focalnet_tiny_srf", num_classes: int = 80, **kwargs: Any) -> MaskRCNN:
    """Mask R-CNN + FPN(256) on a FocalNet, as the authors' ``mask_rcnn_focalnet_*`` configs."""
    return build_detector("mask_rcnn", name, num_classes, **kwargs)


def retinanet_focalnet(name: str = "focalnet_tiny_srf", num_classes: int = 80, **kwargs: Any) -> RetinaNet:
    """RetinaNet (one-stage, anchors) on FocalNet stages 1-3 + FPN with P6/P7."""
    return build_detector("retinanet", name, num_classes, **kwargs)


def fcos_focalnet(name: str = "focalnet_tiny_srf", num_classes: int = 80, **kwargs: Any) -> FCOS:
    """FCOS (one-stage, anchor-free) on FocalNet stages 1-3 + FPN with P6/P7."""
    return build_detector("fcos", name, num_classes, **kwargs)


def detector_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices and kernels only.

    The backbone's own ``no_weight_decay`` names (biases, norms, layer-scale gammas) and every other 1-D tensor
    (FPN/head biases) get none. The authors' configs excluded only keys containing ``norm``, so their gammas
    and ``modulation.ln`` were decayed; we follow the classification recipe's intent instead.
    """
    skip: set[str] = set()
    for mod_name, mod in model.named_modules():
        if hasattr(mod, "no_weight_decay") and callable(mod.no_weight_decay) and mod is not model:
            prefix = f"{mod_name}." if mod_name else ""
            skip |= {prefix + n for n in mod.no_weight_decay()}
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if n in skip or p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
