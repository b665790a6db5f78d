"""ATSS (Zhang et al., 2020, adaptive training sample selection) on a FocalNet + FPN, from torchvision parts.

torchvision provides the FPN with P6/P7 (``LastLevelP6P7``), ``AnchorGenerator``, ``BoxCoder``,
``sigmoid_focal_loss``, ``generalized_box_iou_loss``, ``box_iou`` and ``batched_nms``. Ours: the sample
selection (:func:`atss_assign`), the head (:class:`ATSSHead`: GN towers, centerness branch, per-level scales)
and its losses and decoding.

Hyper-parameters are the authors' FocalNet-T config (``detection/configs/focalnet/atss_focalnet_tiny_patch4_fpn_3x
_coco_lrf.py`` over ``_base_/models/atss_focalnet_fpn.py``, mmdetection's ``ATSSHead``/``ATSSAssigner``):

* FPN on stages 1-3 (strides 8-32) + P6/P7 from P5 (``add_extra_convs='on_output'``), 256 channels;
* one square anchor per location, ``octave_base_scale=8``: sizes 64..1024 at strides 8..128;
* 4 stacked 3x3 convs per branch with GroupNorm(32) (no bias), then cls (sigmoid, 80), box (4) and
  centerness (1) 3x3 convs; a learnable scale per level on the box deltas;
* deltas with stds (0.1, 0.1, 0.2, 0.2); focal loss (alpha 0.25, gamma 2) / #positives; GIoU loss (weight 2) on
  decoded boxes weighted by the centerness targets / their sum; centerness BCE / #positives;
* assignment: per level the 9 anchors whose centres are nearest the box centre; IoU threshold mean + std of
  those candidates' IoUs; the anchor centre must lie inside the box (by more than 0.01); an anchor positive for
  several boxes goes to the one of highest IoU;
* test: up to 1000 anchors per level by sqrt(cls x centerness), score = cls x centerness > 0.05, per-class NMS
  0.6, 100 detections.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, generalized_box_iou_loss, sigmoid_focal_loss

from .common import ImageDetector, make_transform

__all__ = ["atss_assign", "centerness_targets", "ATSSHead", "ATSS", "atss_focalnet"]


def atss_assign(anchors: torch.Tensor, num_per_level: Sequence[int], gt_boxes: torch.Tensor,
                topk: int = 9) -> torch.Tensor:
    """For each anchor (xyxy), the index of the ground-truth box it is positive for, or -1 (background)."""
    A, G = len(anchors), len(gt_boxes)
    if G == 0 or A == 0:
        return torch.full((A,), -1, dtype=torch.int64, device=anchors.device)
    ious = box_iou(anchors, gt_boxes)  # (A, G)
    ac = (anchors[:, :2] + anchors[:, 2:]) / 2
    gc = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    dist = torch.cdist(ac, gc)  # (A, G)
    cand, start = [], 0
    for n in num_per_level:
        k = min(topk, n)
        if k:
            cand.append(dist[start:start + n].topk(k, dim=0, largest=False).indices + start)
        start += n
    cand = torch.cat(cand)  # (L*k, G) anchor indices
    gidx = torch.arange(G, device=anchors.device).expand_as(cand)
    cand_iou = ious[cand, gidx]
    thr = cand_iou.mean(0) + cand_iou.std(0)  # unbiased std, as mmdet
    cx, cy = ac[cand, 0], ac[cand, 1]
    inside = torch.stack([cx - gt_boxes[:, 0], cy - gt_boxes[:, 1], gt_boxes[:, 2] - cx, gt_boxes[:, 3] - cy],
                         -1).amin(-1) > 0.01
    pos = (cand_iou >= thr) & inside
    masked = torch.full_like(ious, -math.inf)
    masked[cand[pos], gidx[pos]] = ious[cand[pos], gidx[pos]]
    best, arg = masked.max(1)
    return torch.where(best > -math.inf, arg, torch.full_like(arg, -1))


def centerness_targets(anchors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) of each anchor centre inside its box."""
    c = (anchors[:, :2] + anchors[:, 2:]) / 2
    lr = torch.stack([c[:, 0] - gt[:, 0], gt[:, 2] - c[:, 0]], 1)
    tb = torch.stack([c[:, 1] - gt[:, 1], gt[:, 3] - c[:, 1]], 1)
    return torch.sqrt((lr.amin(1) / lr.amax(1)) * (tb.amin(1) / tb.amax(1)))


class _Scale(nn.Module):
    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _tower(ch: int, n: int, groups: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.GroupNorm(groups, ch), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class ATSSHead(nn.Module):
    """Shared over levels: cls and box towers, then class logits, box deltas x per-level scale, centerness."""

    def __init__(self, in_channels: int, num_classes: int, num_levels: int = 5, stacked_convs: int = 4,
                 gn_groups: int = 32, prior_prob: float = 0.01) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_convs = _tower(in_channels, stacked_convs, gn_groups)
        self.reg_convs = _tower(in_channels, stacked_convs, gn_groups)
        self.atss_cls = nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.atss_reg = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.atss_centerness = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.scales = nn.ModuleList(_Scale(1.0) for _ in range(num_levels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.atss_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Per level ``(N, H*W, K)`` logits, ``(N, H*W, 4)`` deltas, ``(N, H*W)`` centerness logits."""
        cls, reg, ctr = [], [], []
        for x, scale in zip(feats, self.scales):
            c, r = self.cls_convs(x), self.reg_convs(x)
            N = x.shape[0]
            cls.append(self.atss_cls(c).permute(0, 2, 3, 1).reshape(N, -1, self.num_classes))
            reg.append(scale(self.atss_reg(r)).permute(0, 2, 3, 1).reshape(N, -1, 4))
            ctr.append(self.atss_centerness(r).permute(0, 2, 3, 1).reshape(N, -1))
        return cls, reg, ctr


class ATSS(ImageDetector):
    """FocalNet + FPN(P3-P7) -> :class:`ATSSHead`, trained with ATSS assignment."""

    def __init__(self, backbone: nn.Module, head: ATSSHead, anchor_generator: AnchorGenerator, transform,
                 num_classes: int, *, topk: int = 9, stds: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, box_loss_weight: float = 2.0,
                 score_thresh: float = 0.05, nms_thresh: float = 0.6, topk_candidates: int = 1000,
                 detections_per_img: int = 100) -> None:
        super().__init__(backbone, transform, num_classes)
        self.head = head
        self.anchor_generator = anchor_generator
        self.box_coder = det_utils.BoxCoder(tuple(1.0 / s for s in stds))
        self.topk = topk
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.box_loss_weight = box_loss_weight
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.topk_candidates, self.detections_per_img = topk_candidates, detections_per_img

    def detect(self, images: ImageList, features, targets):
        feats = list(features.values())
        cls, reg, ctr = self.head(feats)
        anchors = self.anchor_generator(images, feats)
        counts = [c.shape[1] for c in cls]
        if self.training:
            return [], self.loss(torch.cat(cls, 1), torch.cat(reg, 1), torch.cat(ctr, 1), anchors, counts, targets)
        return self.postprocess(cls, reg, ctr, anchors, counts, images.image_sizes), {}

    def loss(self, cls: torch.Tensor, reg: torch.Tensor, ctr: torch.Tensor, anchors: list[torch.Tensor],
             counts: list[int], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        cls_t, pos_reg, pos_ctr, pos_anchor, pos_gt = [], [], [], [], []
        for i, (a, t) in enumerate(zip(anchors, targets)):
            idx = atss_assign(a, counts, t["boxes"], self.topk)
            pos = idx >= 0
            onehot = torch.zeros_like(cls[i])
            onehot[pos, t["labels"][idx[pos]] - 1] = 1.0
            cls_t.append(onehot)
            pos_reg.append(reg[i][pos])
            pos_ctr.append(ctr[i][pos])
            pos_anchor.append(a[pos])
            pos_gt.append(t["boxes"][idx[pos]])
        num_pos = sum(len(p) for p in pos_anchor)
        avg = max(1.0, float(num_pos))
        loss_cls = sigmoid_focal_loss(cls, torch.stack(cls_t), self.focal_alpha, self.focal_gamma, "sum") / avg
        if num_pos == 0:  # an image batch without objects: only the classifier learns (all background)
            zero = (reg.sum() + ctr.sum()) * 0.0
            return {"loss_cls": loss_cls, "loss_box": zero, "loss_centerness": zero}
        pr, pc, pa, pg = (torch.cat(x) for x in (pos_reg, pos_ctr, pos_anchor, pos_gt))
        ctr_t = centerness_targets(pa, pg)
        boxes = self.box_coder.decode_single(pr, pa)
        giou = generalized_box_iou_loss(boxes, pg, reduction="none")
        loss_box = self.box_loss_weight * (giou * ctr_t).sum() / max(float(ctr_t.sum()), 1e-6)
        loss_ctr = F.binary_cross_entropy_with_logits(pc, ctr_t, reduction="sum") / avg
        return {"loss_cls": loss_cls, "loss_box": loss_box, "loss_centerness": loss_ctr}

    @torch.no_grad()
    def postprocess(self, cls: list[torch.Tensor], reg: list[torch.Tensor], ctr: list[torch.Tensor],
                    anchors: list[torch.Tensor], counts: list[int], image_sizes) -> list[dict[str, torch.Tensor]]:
        results = []
        for i, size in enumerate(image_sizes):
            boxes_all, scores_all, labels_all = [], [], []
            for c, r, z, a in zip(cls, reg, ctr, anchors[i].split(counts)):
                s = torch.sigmoid(c[i]) * torch.sigmoid(z[i])[:, None]  # (HW, K)
                if len(s) > self.topk_candidates:  # mmdet ranks by sqrt(score x centerness), the same order
                    keep = s.amax(1).topk(self.topk_candidates).indices
                    s, r_i, a = s[keep], r[i][keep], a[keep]
                else:
                    r_i = r[i]
                loc, lab = torch.where(s > self.score_thresh)
                boxes = clip_boxes_to_image(self.box_coder.decode_single(r_i[loc], a[loc]), size)
                boxes_all.append(boxes)
                scores_all.append(s[loc, lab])
                labels_all.append(lab + 1)
            boxes, scores, labels = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(labels_all)
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return results

    @torch.no_grad()
    def forward_dummy(self, x: torch.Tensor) -> None:
        """Backbone, FPN and head (for FLOP counts, as mmdet's ``forward_dummy``)."""
        self.head(list(self.backbone(x).values()))


def atss_focalnet(
    backbone: nn.Module,
    num_classes: int = 80,
    *,
    min_size: int | Sequence[int] = 800,
    max_size: int = 1333,
    anchor_sizes: Sequence[int] | None = None,
    stacked_convs: int = 4,
    gn_groups: int = 32,
    **kwargs,
) -> ATSS:
    """ATSS on a :class:`~focalnet.det.models.FocalNetFPN` with five levels (P3-P7, strides 8-128).

    ``anchor_sizes`` are the per-level anchor sides (default ``8 * stride``: 64..1024); other keywords go to
    :class:`ATSS` (``topk``, ``score_thresh``, ``nms_thresh``, ``detections_per_img``, ...).
    """
    ch = backbone.out_channels
    sizes = tuple((int(s),) for s in (anchor_sizes or (64, 128, 256, 512, 1024)))
    anchor_gen = AnchorGenerator(sizes, ((1.0,),) * len(sizes))
    head = ATSSHead(ch, num_classes, len(sizes), stacked_convs, gn_groups)
    return ATSS(backbone, head, anchor_gen, make_transform(min_size, max_size), num_classes, **kwargs)
