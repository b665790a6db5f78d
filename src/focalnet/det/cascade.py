"""Cascade Mask R-CNN (Cai & Vasconcelos, 2018) on a FocalNet + FPN, from torchvision parts.

torchvision provides every layer and most of the logic: the FPN, ``AnchorGenerator`` + ``RegionProposalNetwork``
(the RPN, its sampling and losses), ``MultiScaleRoIAlign``, ``Matcher``, ``BalancedPositiveNegativeSampler``,
``BoxCoder``, ``FastRCNNConvFCHead`` (the 4conv1fc box head), ``MaskRCNNHeads``/``MaskRCNNPredictor``,
``maskrcnn_loss``/``maskrcnn_inference``, ``generalized_box_iou_loss`` and ``batched_nms``. Ours is the cascade
itself (:class:`CascadeRoIHeads`): three stages trained at IoU 0.5/0.6/0.7, each on the previous stage's
refined boxes, with loss weights 1/0.5/0.25, and the test-time averaging of the stages' class scores.

Hyper-parameters are the authors' FocalNet-T config
(``detection/configs/focalnet/cascade_mask_rcnn_focalnet_tiny_patch4_mstrain_480-800_adamw_3x_coco_lrf.py`` over
``_base_/models/cascade_mask_rcnn_focalnet_fpn.py``, mmdetection's ``CascadeRoIHead``):

* box heads ``ConvFCBBoxHead`` with 4 shared 3x3 convs (256, norm + ReLU, no bias) and one fc (1024); the
  authors used SyncBN (``box_norm="bn"``), ``"gn"`` gives GroupNorm(32) as mmdetection's GN+WS variants;
* per-stage delta stds (0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067);
* that config regresses per class (``reg_class_agnostic=False``) on decoded boxes with GIoU loss (weight 10).
  ``class_agnostic=True, box_loss="smooth_l1"`` is the base Cascade R-CNN design instead;
* one FCN mask head per stage (mmdetection replicates a single ``mask_head`` dict over the stages), trained with
  the stage weights on each stage's positives; at test time the final boxes go through every mask head and the
  sigmoid masks are averaged (``merge_aug_masks``). ``mask_per_stage=False`` keeps one head, on the last stage;
* in evaluation the class logits of the three stages are averaged on the last stage's boxes, then softmax,
  score threshold 0.05, per-class NMS 0.5, 100 detections; intermediate stages refine with the arg-max class.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import maskrcnn_inference, maskrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import (
    MultiScaleRoIAlign,
    batched_nms,
    box_iou,
    clip_boxes_to_image,
    generalized_box_iou_loss,
    remove_small_boxes,
)

from .common import ImageDetector, make_transform

__all__ = ["CascadeRoIHeads", "CascadeMaskRCNN", "cascade_mask_rcnn_focalnet", "STAGE_STDS"]

STAGE_STDS = ((0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067))


class CascadePredictor(nn.Module):
    """Class logits (``K + 1``, background first) and box deltas (4 per class, or 4 class-agnostic)."""

    def __init__(self, in_channels: int, num_classes: int, class_agnostic: bool) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes + 1)
        self.bbox_pred = nn.Linear(in_channels, 4 if class_agnostic else 4 * num_classes)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)


class CascadeRoIHeads(nn.Module):
    """The three-stage cascade of box heads (and mask heads) over shared RoI features."""

    def __init__(
        self,
        box_roi_pool: MultiScaleRoIAlign,
        box_heads: Sequence[nn.Module],
        box_predictors: Sequence[CascadePredictor],
        mask_roi_pool: MultiScaleRoIAlign | None,
        mask_heads: Sequence[nn.Module] | None,
        mask_predictors: Sequence[nn.Module] | None,
        num_classes: int,
        *,
        iou_thresholds: Sequence[float] = (0.5, 0.6, 0.7),
        stage_loss_weights: Sequence[float] = (1.0, 0.5, 0.25),
        stage_stds: Sequence[Sequence[float]] = STAGE_STDS,
        class_agnostic: bool = False,
        box_loss: str = "giou",
        box_loss_weight: float = 10.0,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
    ) -> None:
        super().__init__()
        n = len(box_heads)
        if not (len(box_predictors) == len(iou_thresholds) == len(stage_loss_weights) == len(stage_stds) == n):
            raise ValueError("one box head, predictor, IoU threshold, loss weight and std per cascade stage")
        if box_loss not in ("giou", "smooth_l1"):
            raise ValueError(f"box_loss must be 'giou' or 'smooth_l1', got {box_loss!r}")
        self.box_roi_pool = box_roi_pool
        self.box_heads = nn.ModuleList(box_heads)
        self.box_predictors = nn.ModuleList(box_predictors)
        self.mask_roi_pool = mask_roi_pool
        self.mask_heads = nn.ModuleList(mask_heads) if mask_heads else None
        self.mask_predictors = nn.ModuleList(mask_predictors) if mask_predictors else None
        self.num_classes = num_classes
        self.iou_thresholds = tuple(iou_thresholds)
        self.stage_loss_weights = tuple(stage_loss_weights)
        self.box_coders = [det_utils.BoxCoder(tuple(1.0 / s for s in std)) for std in stage_stds]
        self.matchers = [det_utils.Matcher(t, t, allow_low_quality_matches=False) for t in iou_thresholds]
        self.sampler = det_utils.BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.class_agnostic = class_agnostic
        self.box_loss = box_loss
        self.box_loss_weight = box_loss_weight
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img

    @property
    def mask_head(self) -> nn.Module | None:  # what generic code checks to know masks are predicted
        return self.mask_heads

    @property
    def num_stages(self) -> int:
        return len(self.box_heads)

    # ------------------------------------------------------------------ training helpers
    def _sample(self, stage: int, proposals: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]):
        """Add the ground truth as proposals, match at this stage's IoU, sample; per image."""
        proposals = [torch.cat([p, t["boxes"].to(p.dtype)]) for p, t in zip(proposals, targets)]
        is_gt = [torch.cat([torch.zeros(len(p) - len(t["boxes"]), dtype=torch.bool, device=p.device),
                            torch.ones(len(t["boxes"]), dtype=torch.bool, device=p.device)])
                 for p, t in zip(proposals, targets)]
        matched, labels = [], []
        for p, t in zip(proposals, targets):
            if len(t["boxes"]) == 0:
                matched.append(torch.zeros(len(p), dtype=torch.int64, device=p.device))
                labels.append(torch.zeros(len(p), dtype=torch.int64, device=p.device))
                continue
            idx = self.matchers[stage](box_iou(t["boxes"], p))
            lab = t["labels"][idx.clamp(min=0)].to(torch.int64)
            lab[idx < 0] = 0  # below the stage's IoU threshold: background
            matched.append(idx.clamp(min=0))
            labels.append(lab)
        pos, neg = self.sampler(labels)
        keep = [torch.where(p | n)[0] for p, n in zip(pos, neg)]
        return ([p[k] for p, k in zip(proposals, keep)], [m[k] for m, k in zip(matched, keep)],
                [lab[k] for lab, k in zip(labels, keep)], [g[k] for g, k in zip(is_gt, keep)])

    def _select_deltas(self, deltas: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.class_agnostic:
            return deltas
        deltas = deltas.reshape(len(deltas), -1, 4)
        return deltas[torch.arange(len(deltas), device=deltas.device), (labels - 1).clamp(min=0)]

    def _box_loss(self, stage: int, deltas: torch.Tensor, proposals: torch.Tensor, gt: torch.Tensor,
                  n_total: int) -> torch.Tensor:
        if len(proposals) == 0:
            return deltas.sum() * 0.0
        if self.box_loss == "giou":  # mmdet reg_decoded_bbox=True + GIoULoss, averaged over all sampled RoIs
            boxes = self.box_coders[stage].decode_single(deltas, proposals)
            loss = generalized_box_iou_loss(boxes, gt, reduction="sum")
        else:  # SmoothL1Loss(beta=1) on the encoded deltas
            target = self.box_coders[stage].encode_single(gt, proposals)
            loss = F.smooth_l1_loss(deltas, target, beta=1.0, reduction="sum")
        return self.box_loss_weight * loss / max(1, n_total)

    def _refine(self, stage: int, logits: torch.Tensor, deltas: torch.Tensor, proposals: torch.Tensor,
                labels: torch.Tensor | None, image_size: tuple[int, int]) -> torch.Tensor:
        """Boxes for the next stage: regress with the target class (training) or the arg-max class (test)."""
        if not self.class_agnostic:
            lab = logits[:, 1:].argmax(1) + 1
            if labels is not None:  # background RoIs regress with their arg-max class, as mmdet refine_bboxes
                lab = torch.where(labels > 0, labels, lab)
            deltas = self._select_deltas(deltas, lab)
        boxes = self.box_coders[stage].decode_single(deltas.detach(), proposals)
        return clip_boxes_to_image(boxes, image_size).detach()

    # ------------------------------------------------------------------ forward
    def forward(self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor],
                image_shapes: list[tuple[int, int]], targets: list[dict[str, torch.Tensor]] | None = None):
        if self.training:
            return [], self._losses(features, proposals, image_shapes, targets)
        return self._inference(features, proposals, image_shapes), {}

    def _losses(self, features, proposals, image_shapes, targets) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        for s in range(self.num_stages):
            w = self.stage_loss_weights[s]
            props, matched, labels, is_gt = self._sample(s, [p.detach() for p in proposals], targets)
            x = self.box_heads[s](self.box_roi_pool(features, props, image_shapes))
            logits, deltas = self.box_predictors[s](x)
            all_labels = torch.cat(labels)
            losses[f"s{s}.loss_cls"] = w * F.cross_entropy(logits, all_labels)
            pos = all_labels > 0
            gt = torch.cat([t["boxes"][m] if len(t["boxes"]) else torch.zeros(len(m), 4, device=m.device)
                            for t, m in zip(targets, matched)])
            sel = self._select_deltas(deltas, all_labels)
            losses[f"s{s}.loss_box"] = w * self._box_loss(s, sel[pos], torch.cat(props)[pos], gt[pos],
                                                          len(all_labels))
            if self.mask_heads is not None and (len(self.mask_heads) > 1 or s == self.num_stages - 1):
                k = s if len(self.mask_heads) > 1 else 0
                pos_props = [p[lab > 0] for p, lab in zip(props, labels)]
                pos_matched = [m[lab > 0] for m, lab in zip(matched, labels)]
                mask_logits = self.mask_predictors[k](self.mask_heads[k](
                    self.mask_roi_pool(features, pos_props, image_shapes)))
                if sum(len(p) for p in pos_props) == 0:
                    losses[f"s{s}.loss_mask"] = mask_logits.sum() * 0.0
                else:
                    losses[f"s{s}.loss_mask"] = w * maskrcnn_loss(
                        mask_logits, pos_props, [t["masks"] for t in targets],
                        [lab[lab > 0] for lab in labels], pos_matched)
            if s < self.num_stages - 1:  # refined boxes feed the next stage (the added ground truth does not)
                counts = [len(p) for p in props]
                refined = [self._refine(s, lg, d, p, lab, size)[~g] for lg, d, p, lab, size, g in zip(
                    logits.split(counts), deltas.split(counts), props, labels, image_shapes, is_gt)]
                proposals = refined
        return losses

    @torch.no_grad()
    def _inference(self, features, proposals, image_shapes) -> list[dict[str, torch.Tensor]]:
        counts = [len(p) for p in proposals]
        stage_logits = []
        deltas = None
        for s in range(self.num_stages):
            x = self.box_heads[s](self.box_roi_pool(features, proposals, image_shapes))
            logits, deltas = self.box_predictors[s](x)
            stage_logits.append(logits)
            if s < self.num_stages - 1:
                proposals = [self._refine(s, lg, d, p, None, size) for lg, d, p, size in zip(
                    logits.split(counts), deltas.split(counts), proposals, image_shapes)]
        scores = F.softmax(torch.stack(stage_logits).mean(0), -1)  # mmdet: mean of the stages' logits
        results = []
        K = self.num_classes
        for sc, d, p, size in zip(scores.split(counts), deltas.split(counts), proposals, image_shapes):
            n = len(p)
            if self.class_agnostic:
                boxes = self.box_coders[-1].decode_single(d, p)[:, None].expand(n, K, 4)
            else:
                boxes = self.box_coders[-1].decode_single(d.reshape(n * K, 4), p.repeat_interleave(K, 0))
                boxes = boxes.reshape(n, K, 4)
            boxes = clip_boxes_to_image(boxes.reshape(-1, 4), size)
            sc = sc[:, 1:].reshape(-1)
            labels = torch.arange(1, K + 1, device=sc.device).repeat(n)
            keep = torch.where(sc > self.score_thresh)[0]
            boxes, sc, labels = boxes[keep], sc[keep], labels[keep]
            keep = remove_small_boxes(boxes, 1e-2)
            boxes, sc, labels = boxes[keep], sc[keep], labels[keep]
            keep = batched_nms(boxes, sc, labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": boxes[keep], "scores": sc[keep], "labels": labels[keep]})
        if self.mask_heads is not None:
            boxes = [r["boxes"] for r in results]
            probs = None
            for k in range(len(self.mask_heads)):  # average the sigmoid masks of every stage's head
                logits = self.mask_predictors[k](self.mask_heads[k](self.mask_roi_pool(features, boxes, image_shapes)))
                p = torch.cat(maskrcnn_inference(logits, [r["labels"] for r in results])) if len(logits) else logits
                probs = p if probs is None else probs + p
            probs = probs / len(self.mask_heads)
            for r, m in zip(results, probs.split([len(b) for b in boxes])):
                r["masks"] = m if len(m) else torch.zeros(0, 1, *probs.shape[-2:], device=probs.device)
        return results

    def forward_dummy(self, features: dict[str, torch.Tensor], n_box: int = 1000, n_mask: int = 100) -> None:
        """mmdetection's ``forward_dummy`` for FLOP counts: every box stage on ``n_box`` RoIs and every mask head
        on ``n_mask``. RoI features are zeros of the pooled shape (RoIAlign has no multiply-adds to count, and its
        level assignment depends on values, which a ``meta`` tensor does not have)."""
        ref = next(iter(features.values()))
        box_in = ref.new_zeros(n_box, ref.shape[1], 7, 7)
        for s in range(self.num_stages):
            self.box_predictors[s](self.box_heads[s](box_in))
        if self.mask_heads is not None:
            mask_in = ref.new_zeros(n_mask, ref.shape[1], 14, 14)
            for k in range(len(self.mask_heads)):
                self.mask_predictors[k](self.mask_heads[k](mask_in))


class CascadeMaskRCNN(ImageDetector):
    """FocalNet + FPN -> torchvision RPN -> :class:`CascadeRoIHeads`."""

    def __init__(self, backbone: nn.Module, rpn: RegionProposalNetwork, roi_heads: CascadeRoIHeads,
                 transform, num_classes: int) -> None:
        super().__init__(backbone, transform, num_classes, with_masks=roi_heads.mask_heads is not None)
        self.rpn = rpn
        self.roi_heads = roi_heads

    def detect(self, images: ImageList, features, targets):
        proposals, rpn_losses = self.rpn(images, features, targets)
        detections, roi_losses = self.roi_heads(features, proposals, images.image_sizes, targets)
        return detections, {**rpn_losses, **roi_losses}

    @torch.no_grad()
    def forward_dummy(self, x: torch.Tensor, n_proposals: int = 1000) -> None:
        """Backbone, FPN, RPN head, and the RoI heads on ``n_proposals`` RoIs (FLOP counts, as mmdet's)."""
        feats = self.backbone(x)
        self.rpn.head(list(feats.values()))
        self.roi_heads.forward_dummy(feats, n_proposals)


def cascade_mask_rcnn_focalnet(
    backbone: nn.Module,
    num_classes: int = 80,
    *,
    min_size: int | Sequence[int] = 800,
    max_size: int = 1333,
    anchor_sizes: Sequence[int] | None = None,
    box_head_dim: int = 1024,
    box_convs: int = 4,
    box_norm: str | None = "bn",
    mask_head_dims: Sequence[int] = (256, 256, 256, 256),
    masks: bool = True,
    mask_per_stage: bool = True,
    class_agnostic: bool = False,
    box_loss: str = "giou",
    box_loss_weight: float | None = None,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_test: int = 1000,
    rpn_batch_size_per_image: int = 256,
    box_batch_size_per_image: int = 512,
    box_detections_per_img: int = 100,
    **roi_kwargs: Any,
) -> CascadeMaskRCNN:
    """Cascade (Mask) R-CNN on a :class:`~focalnet.det.models.FocalNetFPN` with five levels (P2-P5 + pool).

    ``box_norm``: ``"bn"`` (the FocalNet config's SyncBN), ``"gn"`` (GroupNorm 32) or ``None`` (no norm, conv
    biases). ``box_convs=0`` gives the base design's ``Shared2FCBBoxHead`` (two fcs, no convs).
    ``masks=False`` is Cascade R-CNN (boxes only).
    """
    ch = backbone.out_channels
    names = ["0", "1", "2", "3"]
    anchors = tuple((int(s),) for s in (anchor_sizes or (32, 64, 128, 256, 512)))
    rpn = RegionProposalNetwork(
        AnchorGenerator(anchors, ((0.5, 1.0, 2.0),) * len(anchors)), RPNHead(ch, 3),
        0.7, 0.3, rpn_batch_size_per_image, 0.5,
        dict(training=rpn_pre_nms_top_n_train, testing=rpn_pre_nms_top_n_test),
        dict(training=rpn_post_nms_top_n_train, testing=rpn_post_nms_top_n_test), 0.7)
    norm = {"bn": nn.BatchNorm2d, "gn": partial(nn.GroupNorm, 32), None: None}.get(box_norm, "bad")
    if norm == "bad":
        raise ValueError(f"box_norm must be 'bn', 'gn' or null, got {box_norm!r}")
    fcs = [box_head_dim] if box_convs else [box_head_dim, box_head_dim]
    box_heads = [FastRCNNConvFCHead((ch, 7, 7), [ch] * box_convs, fcs, norm_layer=norm) for _ in range(3)]
    predictors = [CascadePredictor(box_head_dim, num_classes, class_agnostic) for _ in range(3)]
    mask_pool = mask_heads = mask_preds = None
    if masks:
        n = 3 if mask_per_stage else 1
        mask_pool = MultiScaleRoIAlign(names, 14, 0)
        mask_heads = [MaskRCNNHeads(ch, list(mask_head_dims), 1) for _ in range(n)]
        mask_preds = [MaskRCNNPredictor(mask_head_dims[-1], mask_head_dims[-1], num_classes + 1) for _ in range(n)]
    if box_loss_weight is None:
        box_loss_weight = 10.0 if box_loss == "giou" else 1.0
    roi_heads = CascadeRoIHeads(
        MultiScaleRoIAlign(names, 7, 0), box_heads, predictors, mask_pool, mask_heads, mask_preds, num_classes,
        class_agnostic=class_agnostic, box_loss=box_loss, box_loss_weight=box_loss_weight,
        batch_size_per_image=box_batch_size_per_image, detections_per_img=box_detections_per_img, **roi_kwargs)
    return CascadeMaskRCNN(backbone, rpn, roi_heads, make_transform(min_size, max_size), num_classes)
