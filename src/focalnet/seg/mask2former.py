"""Mask2Former (Cheng et al., CVPR 2022) on a FocalNet / Focal Transformer backbone.

Everything but the backbone is Hugging Face ``transformers``' maintained ``Mask2FormerForUniversalSegmentation``:
the multi-scale deformable-attention pixel decoder, the masked-attention transformer decoder, the Hungarian
matcher and the mask (sigmoid BCE on sampled points) / dice / class losses with deep supervision, and
``Mask2FormerImageProcessor``'s semantic / instance / panoptic post-processing.

What is ours (this module): putting our backbone in as HF's encoder, and the glue around the HF model.

* HF builds its encoder with ``load_backbone(config)`` and sizes the pixel decoder's input projections from the
  encoder's ``channels``, then calls ``encoder(pixel_values).feature_maps``. :func:`build_mask2former` hands it
  :class:`HFEncoder` (our backbone: stride 4..32 maps, a LayerNorm per output) during construction instead.
* ``post_init`` re-initialises every submodule, the encoder included. The backbone's state (its own init, or the
  classification weights loaded with our rules) is therefore saved before and restored after construction, and
  checked: HF's initialisation never overwrites the backbone.
* Inputs are padded right/bottom to a multiple of 32 (the original's ``SIZE_DIVISIBILITY``); mask logits are
  upsampled to the padded size and cropped to the image before HF's post-processing, which then resizes them
  to the requested output size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HFEncoder", "Mask2FormerSegmentor", "build_mask2former", "PaperSettings"]

_logger = logging.getLogger(__name__)

# The original Mask2Former settings (facebookresearch/Mask2Former, configs/*/maskformer2_R50_bs16_*.yaml, shared
# by the Swin configs): 6 deformable encoder layers, DEC_LAYERS 10 (9 decoder layers + the loss on the learnable
# queries), hidden 256, 8 heads, FFN 2048, mask/convs dim 256, weights class 2 / mask 5 / dice 5, no-object 0.1,
# 12544 sampled points, oversample 3, importance 0.75; test thresholds OBJECT_MASK 0.8 / OVERLAP 0.8.
PaperSettings: dict[str, Any] = dict(
    feature_size=256, mask_feature_size=256, hidden_dim=256, encoder_feedforward_dim=1024, encoder_layers=6,
    decoder_layers=10, num_attention_heads=8, dim_feedforward=2048, num_queries=100, no_object_weight=0.1,
    class_weight=2.0, mask_weight=5.0, dice_weight=5.0, train_num_points=12544, oversample_ratio=3.0,
    importance_sample_ratio=0.75, common_stride=4, dropout=0.0, pre_norm=False, enforce_input_projection=False,
)


class HFEncoder(nn.Module):
    """Our dense backbone with the interface HF's Mask2Former expects of an encoder: ``channels`` and
    ``forward(pixel_values).feature_maps`` (a tuple of NCHW maps, fine to coarse)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.channels = list(backbone.out_channels)

    def forward(self, pixel_values: torch.Tensor):
        from transformers.modeling_outputs import BackboneOutput

        return BackboneOutput(feature_maps=tuple(self.backbone(pixel_values)))


def _hf():
    try:
        from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation
        from transformers.models.mask2former import modeling_mask2former
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError("Mask2Former needs `transformers` (pip install 'focalnet[seg]')") from e
    return Mask2FormerConfig, Mask2FormerForUniversalSegmentation, modeling_mask2former


def build_mask2former(
    backbone: nn.Module,
    num_classes: int,
    thing_classes: Sequence[int] = (),
    size_divisibility: int = 32,
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    instance_topk: int = 100,
    **settings: Any,
) -> Mask2FormerSegmentor:
    """HF's ``Mask2FormerForUniversalSegmentation`` for ``num_classes`` classes around ``backbone``.

    ``settings`` override :data:`PaperSettings` (any ``Mask2FormerConfig`` field: ``num_queries``,
    ``decoder_layers``, ``hidden_dim``...). ``thing_classes`` are the contiguous indices of countable classes
    (the rest are stuff; panoptic output fuses each stuff class into one segment)."""
    Mask2FormerConfig, Model, modeling = _hf()
    strides = list(getattr(backbone, "strides", [4, 8, 16, 32]))
    if len(strides) != 4:
        raise ValueError(f"Mask2Former needs the four backbone stages (strides 4..32), got strides {strides}")
    fixed = {"num_labels", "feature_strides", "backbone_config"}
    unknown = set(settings) - (set(Mask2FormerConfig().to_dict()) - fixed)
    if unknown:
        raise ValueError(f"unknown Mask2Former setting(s): {sorted(unknown)}")
    kw = {**PaperSettings, **settings}
    for name in ("feature_size", "mask_feature_size"):
        if kw[name] % 32:
            raise ValueError(f"{name} must be a multiple of 32 (the pixel decoder uses GroupNorm(32)), got {kw[name]}")
    if kw["hidden_dim"] % kw["num_attention_heads"]:
        raise ValueError(f"hidden_dim {kw['hidden_dim']} is not divisible by num_attention_heads "
                         f"{kw['num_attention_heads']}")
    if kw["decoder_layers"] < 2:
        raise ValueError("decoder_layers counts the learnable-query loss as one: it must be >= 2")
    config = Mask2FormerConfig(num_labels=num_classes, feature_strides=strides, **kw)
    encoder = HFEncoder(backbone)
    saved = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    original = modeling.load_backbone
    modeling.load_backbone = lambda cfg: encoder  # HF builds its encoder through this one function
    try:
        hf = Model(config)
    finally:
        modeling.load_backbone = original
    if hf.model.pixel_level_module.encoder is not encoder:  # pragma: no cover - a transformers refactor
        raise RuntimeError("transformers did not take our backbone as Mask2Former's encoder")
    backbone.load_state_dict(saved)  # undo HF's post_init on the backbone: its own init / loaded weights stay
    if hasattr(backbone, "_freeze"):
        backbone._freeze()
    return Mask2FormerSegmentor(hf, num_classes, thing_classes, size_divisibility, object_mask_threshold,
                                overlap_threshold, instance_topk)


class Mask2FormerSegmentor(nn.Module):
    """HF Mask2Former + the glue: padding, losses from mask lists, post-processing at the image's size."""

    def __init__(self, hf: nn.Module, num_classes: int, thing_classes: Sequence[int] = (), size_divisibility: int = 32,
                 object_mask_threshold: float = 0.8, overlap_threshold: float = 0.8, instance_topk: int = 100) -> None:
        super().__init__()
        self.hf = hf
        self.num_classes = num_classes
        self.thing_classes = sorted(int(c) for c in thing_classes)
        self.size_divisibility = size_divisibility
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold
        self.instance_topk = instance_topk
        self._processor = None

    @property
    def backbone(self) -> nn.Module:
        return self.hf.model.pixel_level_module.encoder.backbone

    @property
    def stuff_classes(self) -> list[int]:
        return [c for c in range(self.num_classes) if c not in set(self.thing_classes)]

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        d = self.size_divisibility
        h, w = x.shape[-2:]
        ph, pw = (-h) % d, (-w) % d
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

    def forward(self, pixel_values: torch.Tensor, masks: Sequence[torch.Tensor] | None = None,
                labels: Sequence[torch.Tensor] | None = None):
        """HF's output for normalised images (B, 3, H, W), padded to ``size_divisibility`` (mask logits at a
        quarter of the padded size); with targets, :meth:`losses` (so that a DDP wrapper sees a forward)."""
        if masks is not None or labels is not None:
            if masks is None or labels is None:
                raise ValueError("give both masks and labels for the losses, or neither")
            return self.losses(pixel_values, masks, labels)
        return self.hf(pixel_values=self._pad(pixel_values))

    def losses(self, pixel_values: torch.Tensor, masks: Sequence[torch.Tensor],
               labels: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """HF's Hungarian-matched losses (``loss_cross_entropy``, ``loss_mask``, ``loss_dice`` and their
        ``_<i>`` deep-supervision copies, already weighted) and their sum ``loss``.

        ``masks[i]`` is (N_i, H, W) (bool or float) at the image size, ``labels[i]`` (N_i,) class indices."""
        if len(masks) != pixel_values.shape[0] or len(labels) != pixel_values.shape[0]:
            raise ValueError(f"{len(masks)} mask sets / {len(labels)} label sets for {pixel_values.shape[0]} images")
        x = self._pad(pixel_values)
        mask_labels, class_labels = [], []
        for m, lab in zip(masks, labels):
            if m.shape[-2:] != pixel_values.shape[-2:] or m.shape[0] != lab.shape[0]:
                raise ValueError(f"target masks {tuple(m.shape)} / labels {tuple(lab.shape)} do not match images "
                                 f"{tuple(pixel_values.shape)}")
            if lab.numel() and (lab.min() < 0 or lab.max() >= self.num_classes):
                raise ValueError(f"class labels must be in [0, {self.num_classes}), got {lab.tolist()[:10]}")
            m = m.to(x.dtype)
            mask_labels.append(F.pad(m, (0, x.shape[-1] - m.shape[-1], 0, x.shape[-2] - m.shape[-2])))
            class_labels.append(lab.long().to(x.device))
        hf = self.hf
        out = hf.model(pixel_values=x, output_hidden_states=True, return_dict=True)
        class_logits = [hf.class_predictor(h.transpose(0, 1)) for h in out.transformer_decoder_intermediate_states]
        mask_logits = out.masks_queries_logits
        aux = hf.get_auxiliary_logits(class_logits, mask_logits) if hf.config.use_auxiliary_loss else None
        loss_dict = hf.get_loss_dict(mask_logits[-1], class_logits[-1], mask_labels, class_labels, aux)
        loss_dict = dict(loss_dict)
        loss_dict["loss"] = sum(loss_dict.values())
        return loss_dict

    # ------------------------------------------------------------------ inference
    @property
    def processor(self):
        if self._processor is None:
            from transformers import Mask2FormerImageProcessor

            self._processor = Mask2FormerImageProcessor(ignore_index=255, num_labels=self.num_classes)
        return self._processor

    def _outputs_at(self, out, size: tuple[int, int], padded: tuple[int, int]):
        """Mask logits upsampled to the padded input and cropped to the image (what HF's processor expects)."""
        masks = F.interpolate(out.masks_queries_logits, size=padded, mode="bilinear", align_corners=False)
        return SimpleNamespace(class_queries_logits=out.class_queries_logits,
                               masks_queries_logits=masks[..., : size[0], : size[1]])

    @torch.no_grad()
    def predict(self, pixel_values: torch.Tensor, tasks: Sequence[str] = ("panoptic", "semantic", "instance"),
                target_sizes: Sequence[tuple[int, int]] | None = None) -> list[dict[str, Any]]:
        """Post-processed predictions per image, through ``Mask2FormerImageProcessor``.

        ``semantic``: (H, W) class indices; ``panoptic``: ``{"segmentation": (H, W) segment ids (0 = none),
        "segments_info": [{"id", "label_id", "score", "was_fused"}]}`` with stuff classes fused; ``instance``:
        ``{"masks": (N, H, W) bool, "labels": (N,), "scores": (N,)}`` (top ``instance_topk`` queries x classes,
        as the original's instance inference). Sizes default to the input's (before padding)."""
        h, w = pixel_values.shape[-2:]
        x = self._pad(pixel_values)
        out = self._outputs_at(self.hf(pixel_values=x), (h, w), tuple(x.shape[-2:]))
        sizes = [tuple(int(v) for v in s) for s in (target_sizes or [(h, w)] * x.shape[0])]
        proc = self.processor
        results: list[dict[str, Any]] = [{} for _ in range(x.shape[0])]
        if "semantic" in tasks:
            for r, sem in zip(results, proc.post_process_semantic_segmentation(out, target_sizes=sizes)):
                r["semantic"] = sem.cpu()
        if "panoptic" in tasks:
            pan = proc.post_process_panoptic_segmentation(
                out, threshold=self.object_mask_threshold, overlap_mask_area_threshold=self.overlap_threshold,
                label_ids_to_fuse=set(self.stuff_classes), target_sizes=sizes)
            for r, p in zip(results, pan):
                seg = p["segmentation"].to(torch.int64).cpu()
                r["panoptic"] = {"segmentation": seg.clamp(min=0), "segments_info": p["segments_info"]}
        if "instance" in tasks:
            for i, r in enumerate(results):
                r["instance"] = self._instances(out.class_queries_logits[i], out.masks_queries_logits[i], sizes[i])
        return results

    def _instances(self, cls_logits: torch.Tensor, mask_logits: torch.Tensor, size: tuple[int, int]) -> dict:
        """The original ``instance_inference``: the top ``instance_topk`` (query, class) pairs over all classes,
        of which the thing classes are kept (when the model knows its things), each scored by class probability
        x mean mask probability inside its mask. HF's ``post_process_instance_segmentation`` paints the masks
        into one map (overlaps lost) and keeps stuff classes, so this is done here."""
        probs = cls_logits.softmax(-1)[:, :-1]
        k = min(self.instance_topk, probs.numel())
        scores, idx = probs.flatten().topk(k)
        q, c = idx // self.num_classes, idx % self.num_classes
        if self.thing_classes:
            keep = torch.isin(c, torch.as_tensor(self.thing_classes, device=c.device))
            scores, q, c = scores[keep], q[keep], c[keep]
        m = F.interpolate(mask_logits[q][None], size=size, mode="bilinear", align_corners=False)[0]
        binary = m > 0
        mask_score = (m.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
        return {"masks": binary.cpu(), "labels": c.cpu(), "scores": (scores * mask_score).cpu()}

    def param_groups(self, weight_decay: float, backbone_multiplier: float = 0.1,
                     norm_decay: float = 0.0, embed_decay: float = 0.0) -> list[dict]:
        """AdamW groups as the original ``build_optimizer`` (Mask2Former's ``train_net.py``): backbone lr x
        ``backbone_multiplier``; parameters of norm layers (LayerNorm/GroupNorm/BatchNorm) get ``norm_decay``,
        of ``nn.Embedding`` (the queries) ``embed_decay``, relative position bias tables and absolute position
        embeddings no decay. Each group carries ``lr_scale`` for the scheduler."""
        norm_types = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, nn.SyncBatchNorm)
        decay_of: dict[int, float] = {}
        for mod in self.modules():
            for name, p in mod.named_parameters(recurse=False):
                wd = weight_decay
                if "relative_position_bias_table" in name or "absolute_pos_embed" in name:
                    wd = 0.0
                if isinstance(mod, norm_types):
                    wd = norm_decay
                if isinstance(mod, nn.Embedding):
                    wd = embed_decay
                decay_of.setdefault(id(p), wd)
        backbone_ids = {id(p) for p in self.backbone.parameters()}
        groups: dict[tuple[bool, float], list] = {}
        for p in self.parameters():
            if p.requires_grad:
                groups.setdefault((id(p) in backbone_ids, decay_of[id(p)]), []).append(p)
        return [{"params": ps, "weight_decay": wd, "lr_scale": backbone_multiplier if bb else 1.0}
                for (bb, wd), ps in groups.items()]
