"""Sparse R-CNN (Sun et al., 2021) on a FocalNet + FPN, from torchvision parts.

torchvision provides the FPN, ``MultiScaleRoIAlign``, ``BoxCoder``, ``sigmoid_focal_loss``,
``generalized_box_iou(_loss)``; scipy provides the Hungarian solver (``linear_sum_assignment``). Ours: the
learnable proposals, the dynamic instance interaction head (:class:`DIIHead`, with its :class:`DynamicConv`),
the set-prediction matching (:func:`hungarian_match`) and losses, and the NMS-free decoding.

Hyper-parameters are the authors' FocalNet-T config (``detection/configs/focalnet/sparse_rcnn_focalnet_tiny_fpn_300
_proposals_crop_mstrain_480-800_3x_coco_lrf.py`` over ``_base_/models/sparse_rcnn_focalnet_fpn.py``, mmdetection's
``EmbeddingRPNHead``/``SparseRoIHead``/``DIIHead``/``HungarianAssigner``):

* FPN P2-P5 (256 channels, no extra level); RoIAlign 7x7, sampling ratio 2;
* 300 (or 100) proposal boxes (initialised to the whole image) and 256-d proposal features, both learned;
* 6 stages, each: self-attention over the proposals (8 heads) + LN; dynamic conv (feature 64, two generated 1x1
  kernels, LN + ReLU, fc over the 7x7 RoI) + LN; FFN 2048 + LN; 1 cls fc and 3 reg fcs (no bias, LN, ReLU);
  sigmoid classification; box deltas with stds (0.5, 0.5, 1, 1) on the stage's boxes (no clipping); boxes are
  detached between stages, features are not;
* loss per stage (weight 1): focal (alpha 0.25, gamma 2, weight 2) / #matched, L1 on image-normalised boxes
  (weight 5) and GIoU (weight 2) over matched pairs; matching cost focal 2 + L1 5 + GIoU 2;
* test: the top ``num_proposals`` (box, class) pairs by sigmoid score; no NMS.

An image without objects still trains: every prediction is matched to nothing and the focal loss pushes its
scores down (averaged over at least one), the box losses are zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import MultiScaleRoIAlign, generalized_box_iou, generalized_box_iou_loss, sigmoid_focal_loss

from .common import ImageDetector, box_cxcywh_to_xyxy, make_transform

__all__ = ["hungarian_match", "DynamicConv", "DIIHead", "SparseRCNN", "sparse_rcnn_focalnet"]


@torch.no_grad()
def hungarian_match(logits: torch.Tensor, boxes: torch.Tensor, gt_labels: torch.Tensor, gt_boxes: torch.Tensor,
                    image_whwh: torch.Tensor, cls_weight: float = 2.0, l1_weight: float = 5.0,
                    giou_weight: float = 2.0, alpha: float = 0.25, gamma: float = 2.0,
                    eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """One-to-one matching of predictions to ground truth minimising focal + L1 + GIoU costs.

    ``logits`` (P, K) class logits, ``boxes`` (P, 4) xyxy pixels, ``gt_labels`` (G,) in ``0..K-1``, ``gt_boxes``
    (G, 4). Returns ``(pred_idx, gt_idx)``, ``min(P, G)`` pairs. Costs as mmdet's ``FocalLossCost`` (positive
    minus negative focal term of the gt class), ``BBoxL1Cost`` (L1 of boxes divided by the image size) and
    ``IoUCost`` (-GIoU).
    """
    from scipy.optimize import linear_sum_assignment

    if len(gt_boxes) == 0 or len(boxes) == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=boxes.device)
        return empty, empty
    p = logits.float().sigmoid()[:, gt_labels]
    neg = -(1 - p + eps).log() * (1 - alpha) * p.pow(gamma)
    pos = -(p + eps).log() * alpha * (1 - p).pow(gamma)
    cost = cls_weight * (pos - neg)
    cost = cost + l1_weight * torch.cdist(boxes.float() / image_whwh, gt_boxes.float() / image_whwh, p=1)
    cost = cost - giou_weight * generalized_box_iou(boxes.float(), gt_boxes.float())
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return (torch.as_tensor(rows, dtype=torch.int64, device=boxes.device),
            torch.as_tensor(cols, dtype=torch.int64, device=boxes.device))


class DynamicConv(nn.Module):
    """Two 1x1 convolutions whose kernels are generated from each proposal's feature, then an fc over the RoI."""

    def __init__(self, channels: int = 256, feat_channels: int = 64, roi_size: int = 7) -> None:
        super().__init__()
        self.channels, self.feat_channels = channels, feat_channels
        self.dynamic_layer = nn.Linear(channels, 2 * channels * feat_channels)
        self.norm_in = nn.LayerNorm(feat_channels)
        self.norm_out = nn.LayerNorm(channels)
        self.fc_layer = nn.Linear(channels * roi_size * roi_size, channels)
        self.fc_norm = nn.LayerNorm(channels)

    def forward(self, proposal_feat: torch.Tensor, roi_feat: torch.Tensor) -> torch.Tensor:
        """``proposal_feat`` (B, C), ``roi_feat`` (B, C, S, S) -> (B, C)."""
        x = roi_feat.flatten(2).transpose(1, 2)  # (B, S*S, C)
        params = self.dynamic_layer(proposal_feat)
        n = self.channels * self.feat_channels
        w_in = params[:, :n].view(-1, self.channels, self.feat_channels)
        w_out = params[:, n:].view(-1, self.feat_channels, self.channels)
        x = F.relu(self.norm_in(torch.bmm(x, w_in)))
        x = F.relu(self.norm_out(torch.bmm(x, w_out)))
        return F.relu(self.fc_norm(self.fc_layer(x.flatten(1))))


def _fcs(ch: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Linear(ch, ch, bias=False), nn.LayerNorm(ch), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class DIIHead(nn.Module):
    """One Sparse R-CNN stage: proposal self-attention, dynamic instance interaction, FFN, cls/box branches."""

    def __init__(self, num_classes: int, channels: int = 256, num_heads: int = 8, ffn_channels: int = 2048,
                 feat_channels: int = 64, roi_size: int = 7, num_cls_fcs: int = 1, num_reg_fcs: int = 3,
                 dropout: float = 0.0, prior_prob: float = 0.01) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(channels, num_heads, dropout=dropout)
        self.attention_norm = nn.LayerNorm(channels)
        self.instance_interactive_conv = DynamicConv(channels, feat_channels, roi_size)
        self.instance_interactive_conv_norm = nn.LayerNorm(channels)
        self.ffn = nn.Sequential(nn.Linear(channels, ffn_channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_channels, channels), nn.Dropout(dropout))
        self.ffn_norm = nn.LayerNorm(channels)
        self.dropout = nn.Dropout(dropout)
        self.cls_fcs = _fcs(channels, num_cls_fcs)
        self.reg_fcs = _fcs(channels, num_reg_fcs)
        self.fc_cls = nn.Linear(channels, num_classes)
        self.fc_reg = nn.Linear(channels, 4)
        for p in self.parameters():  # mmdet DIIHead.init_weights: xavier on matrices, focal prior on the cls bias
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.constant_(self.fc_cls.bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.zeros_(self.fc_reg.bias)

    def forward(self, roi_feat: torch.Tensor, proposal_feat: torch.Tensor):
        """``roi_feat`` (N*P, C, S, S), ``proposal_feat`` (N, P, C) -> logits (N, P, K), deltas (N, P, 4), new
        proposal features (N, P, C)."""
        N, P, C = proposal_feat.shape
        q = proposal_feat.transpose(0, 1)  # (P, N, C)
        q = self.attention_norm(q + self.dropout(self.attention(q, q, q, need_weights=False)[0]))
        x = q.transpose(0, 1).reshape(N * P, C)
        x = self.instance_interactive_conv_norm(x + self.dropout(self.instance_interactive_conv(x, roi_feat)))
        x = self.ffn_norm(x + self.ffn(x))
        logits = self.fc_cls(self.cls_fcs(x)).view(N, P, -1)
        deltas = self.fc_reg(self.reg_fcs(x)).view(N, P, 4)
        return logits, deltas, x.view(N, P, C)


class SparseRCNN(ImageDetector):
    """FocalNet + FPN(P2-P5) -> learnable proposals -> ``num_stages`` :class:`DIIHead` stages."""

    def __init__(self, backbone: nn.Module, transform, num_classes: int, *, num_proposals: int = 300,
                 num_stages: int = 6, roi_pool: MultiScaleRoIAlign | None = None,
                 stds: Sequence[float] = (0.5, 0.5, 1.0, 1.0), stage_loss_weights: Sequence[float] | None = None,
                 cls_weight: float = 2.0, l1_weight: float = 5.0, giou_weight: float = 2.0, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, **head_kwargs) -> None:
        super().__init__(backbone, transform, num_classes)
        ch = backbone.out_channels
        self.num_proposals = num_proposals
        self.init_proposal_bboxes = nn.Embedding(num_proposals, 4)  # (cx, cy, w, h) relative to the image
        self.init_proposal_features = nn.Embedding(num_proposals, ch)
        nn.init.constant_(self.init_proposal_bboxes.weight[:, :2], 0.5)
        nn.init.constant_(self.init_proposal_bboxes.weight[:, 2:], 1.0)
        self.roi_pool = roi_pool or MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
        self.stages = nn.ModuleList(DIIHead(num_classes, ch, **head_kwargs) for _ in range(num_stages))
        self.box_coder = det_utils.BoxCoder(tuple(1.0 / s for s in stds))
        self.stage_loss_weights = tuple(stage_loss_weights or (1.0,) * num_stages)
        self.cls_weight, self.l1_weight, self.giou_weight = cls_weight, l1_weight, giou_weight
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def _initial(self, image_sizes: list[tuple[int, int]], device) -> tuple[torch.Tensor, torch.Tensor]:
        whwh = torch.tensor([[w, h, w, h] for h, w in image_sizes], dtype=torch.float32, device=device)
        boxes = box_cxcywh_to_xyxy(self.init_proposal_bboxes.weight)[None] * whwh[:, None]  # (N, P, 4)
        feats = self.init_proposal_features.weight[None].repeat(len(image_sizes), 1, 1)
        return boxes, feats

    def _stages(self, features, image_sizes, pool=None):
        """Yields each stage's (logits (N, P, K), boxes (N, P, 4) pixels)."""
        pool = pool or self.roi_pool
        boxes, obj = self._initial(image_sizes, self.init_proposal_bboxes.weight.device)
        N, P = boxes.shape[:2]
        for stage in self.stages:
            roi = pool(features, list(boxes.detach()), image_sizes)  # boxes detached between stages
            logits, deltas, obj = stage(roi, obj)
            boxes = self.box_coder.decode_single(deltas.reshape(-1, 4), boxes.detach().reshape(-1, 4)).view(N, P, 4)
            yield logits, boxes

    def detect(self, images: ImageList, features, targets):
        if self.training:
            return [], self.loss(features, images.image_sizes, targets)
        *_, (logits, boxes) = self._stages(features, images.image_sizes)  # the last stage predicts
        return self.postprocess(logits, boxes), {}

    def loss(self, features, image_sizes, targets) -> dict[str, torch.Tensor]:
        whwh = torch.tensor([[w, h, w, h] for h, w in image_sizes], dtype=torch.float32,
                            device=self.init_proposal_bboxes.weight.device)
        losses: dict[str, torch.Tensor] = {}
        for s, (logits, boxes) in enumerate(self._stages(features, image_sizes)):
            w = self.stage_loss_weights[s]
            cls_t = torch.zeros_like(logits)
            pb, gb, norm = [], [], []
            for i, t in enumerate(targets):
                gl = t["labels"] - 1
                pi, gi = hungarian_match(logits[i], boxes[i], gl, t["boxes"], whwh[i], self.cls_weight,
                                         self.l1_weight, self.giou_weight, self.focal_alpha, self.focal_gamma)
                cls_t[i, pi, gl[gi]] = 1.0
                pb.append(boxes[i][pi])
                gb.append(t["boxes"][gi].to(boxes.dtype))
                norm.append(whwh[i].expand(len(pi), 4))
            pb, gb, norm = torch.cat(pb), torch.cat(gb), torch.cat(norm)
            avg = max(1.0, float(len(pb)))
            losses[f"s{s}.loss_cls"] = w * self.cls_weight * sigmoid_focal_loss(
                logits, cls_t, self.focal_alpha, self.focal_gamma, "sum") / avg
            if len(pb):
                losses[f"s{s}.loss_bbox"] = w * self.l1_weight * (pb / norm - gb / norm).abs().sum() / avg
                giou = generalized_box_iou_loss(pb, gb, reduction="sum")
                losses[f"s{s}.loss_iou"] = w * self.giou_weight * giou / avg
            else:  # no objects in the batch: the box branches get zero (but connected) losses
                losses[f"s{s}.loss_bbox"] = losses[f"s{s}.loss_iou"] = boxes.sum() * 0.0
        return losses

    @torch.no_grad()
    def postprocess(self, logits: torch.Tensor, boxes: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        K = logits.shape[-1]
        results = []
        for lg, b in zip(logits, boxes):
            scores, idx = lg.sigmoid().flatten().topk(min(self.num_proposals, lg.numel()))
            results.append({"boxes": b[idx // K], "scores": scores, "labels": idx % K + 1})
        return results

    @torch.no_grad()
    def forward_dummy(self, x: torch.Tensor) -> None:
        """Backbone, FPN and every stage on the learned proposals (FLOP counts, as mmdet's ``forward_dummy``).
        RoI features are zeros of the pooled shape: RoIAlign has no multiply-adds, and its level assignment
        depends on values, which a ``meta`` tensor does not have."""
        feats = self.backbone(x)
        ref = next(iter(feats.values()))
        size = self.roi_pool.output_size

        def zeros(f, boxes, sizes):
            return ref.new_zeros(sum(len(b) for b in boxes), ref.shape[1], *size)

        for _ in self._stages(feats, [tuple(x.shape[-2:])] * len(x), pool=zeros):
            pass


def sparse_rcnn_focalnet(
    backbone: nn.Module,
    num_classes: int = 80,
    *,
    min_size: int | Sequence[int] = 800,
    max_size: int = 1333,
    num_proposals: int = 300,
    num_stages: int = 6,
    **kwargs,
) -> SparseRCNN:
    """Sparse R-CNN on a :class:`~focalnet.det.models.FocalNetFPN` with four levels (P2-P5, no extra level).

    Other keywords go to :class:`SparseRCNN` (loss weights) and :class:`DIIHead` (``num_heads``, ``ffn_channels``,
    ``feat_channels``, ``num_reg_fcs``, ``dropout``).
    """
    return SparseRCNN(backbone, make_transform(min_size, max_size), num_classes, num_proposals=num_proposals,
                      num_stages=num_stages, **kwargs)
