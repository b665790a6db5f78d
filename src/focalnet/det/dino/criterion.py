"""Hungarian matching and the DINO losses, as the original ``HungarianMatcher`` / ``SetCriterion`` compute them.

Matching uses :func:`scipy.optimize.linear_sum_assignment` on the focal classification cost + L1 + GIoU cost.
Losses: sigmoid focal classification (``loss_ce``, scaled by the number of queries as the original does), L1
(``loss_bbox``) and GIoU (``loss_giou``) on matched pairs, normalised by the number of target boxes (averaged over
processes when ``torch.distributed`` is initialised); logged extras ``class_error``, ``cardinality_error``,
``loss_xy``, ``loss_hw``. Suffixes: ``_{i}`` decoder layer i, ``_interm`` encoder proposals, ``_dn`` denoising
queries (matched by construction, normalised by boxes x groups).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .config import DinoConfig
from .ops import box_cxcywh_to_xyxy, generalized_box_iou

__all__ = ["HungarianMatcher", "SetCriterion", "sigmoid_focal_loss", "check_targets"]

_LOSS_NAMES = ("loss_bbox", "loss_giou", "loss_ce", "loss_xy", "loss_hw", "cardinality_error")


def sigmoid_focal_loss(inputs, targets, num_boxes: float, alpha: float = 0.25, gamma: float = 2) -> torch.Tensor:
    prob = inputs.sigmoid()
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_boxes


def check_targets(targets: list[dict[str, torch.Tensor]], num_classes: int) -> None:
    """One clear error for malformed targets (labels (N,) int in [0, num_classes), boxes (N, 4) cxcywh)."""
    for i, t in enumerate(targets):
        if "labels" not in t or "boxes" not in t:
            raise ValueError(f"target {i} needs 'labels' and 'boxes', got keys {sorted(t)}")
        lab, box = t["labels"], t["boxes"]
        if box.ndim != 2 or box.shape[-1] != 4 or lab.ndim != 1 or lab.shape[0] != box.shape[0]:
            raise ValueError(f"target {i}: labels (N,) and boxes (N, 4) expected, got {tuple(lab.shape)} and "
                             f"{tuple(box.shape)}")
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= num_classes):
            raise ValueError(f"target {i}: labels must lie in [0, {num_classes}), got {lab.tolist()}")
        if box.numel() and (not torch.isfinite(box).all() or bool((box[:, 2:] < 0).any())):
            raise ValueError(f"target {i}: boxes are (cx, cy, w, h) in [0, 1] with w, h >= 0; got a negative "
                             "or non-finite size (degenerate box)")


class HungarianMatcher:
    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 focal_alpha: float = 0.25, simple: bool = False) -> None:
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("all matching costs are 0")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.focal_alpha = focal_alpha
        self.simple = simple  # the original's SimpleMinsumMatcher: each target takes its cheapest query

    @torch.no_grad()
    def __call__(self, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]):
        from scipy.optimize import linear_sum_assignment

        bs, nq = outputs["pred_logits"].shape[:2]
        out_prob = outputs["pred_logits"].flatten(0, 1).sigmoid()
        out_bbox = outputs["pred_boxes"].flatten(0, 1)
        tgt_ids = torch.cat([v["labels"] for v in targets]).long()
        tgt_bbox = torch.cat([v["boxes"] for v in targets]).reshape(-1, 4).to(out_bbox)
        alpha, gamma = self.focal_alpha, 2.0
        neg = (1 - alpha) * (out_prob**gamma) * (-(1 - out_prob + 1e-8).log())
        pos = alpha * ((1 - out_prob) ** gamma) * (-(out_prob + 1e-8).log())
        cost_class = pos[:, tgt_ids] - neg[:, tgt_ids]
        cost_bbox = torch.cdist(out_bbox, tgt_bbox, p=1)
        cost_giou = -generalized_box_iou(box_cxcywh_to_xyxy(out_bbox), box_cxcywh_to_xyxy(tgt_bbox))
        C = self.cost_bbox * cost_bbox + self.cost_class * cost_class + self.cost_giou * cost_giou
        C = C.view(bs, nq, -1).cpu()
        sizes = [len(v["boxes"]) for v in targets]
        out = []
        for i, c in enumerate(C.split(sizes, -1)):
            if self.simple:
                src, tgt = c[i].min(0)[1], torch.arange(sizes[i])
            else:
                src, tgt = linear_sum_assignment(c[i].numpy())
            out.append((torch.as_tensor(src, dtype=torch.int64), torch.as_tensor(tgt, dtype=torch.int64)))
        return out


class SetCriterion:
    def __init__(self, config: DinoConfig) -> None:
        self.config = config
        self.num_classes = config.num_classes
        self.focal_alpha = config.focal_alpha
        self.matcher = HungarianMatcher(config.set_cost_class, config.set_cost_bbox, config.set_cost_giou,
                                        config.focal_alpha, simple=config.matcher_type == "SimpleMinsumMatcher")
        self.weight_dict = config.weight_dict()

    # -- the three loss groups
    @staticmethod
    def _src_idx(indices):
        batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        return batch, torch.cat([src for src, _ in indices])

    def loss_labels(self, outputs, targets, indices, num_boxes, log=True):
        logits = outputs["pred_logits"]
        idx = self._src_idx(indices)
        idx = (idx[0].to(logits.device), idx[1].to(logits.device))
        cls_o = torch.cat([t["labels"][J.to(t["labels"].device)] for t, (_, J) in zip(targets, indices)])
        cls_o = cls_o.to(logits.device).long()
        target = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        target[idx] = cls_o
        onehot = torch.zeros(*logits.shape[:2], logits.shape[2] + 1, dtype=logits.dtype, device=logits.device)
        onehot.scatter_(2, target.unsqueeze(-1), 1)
        onehot = onehot[:, :, :-1]
        losses = {"loss_ce": sigmoid_focal_loss(logits, onehot, num_boxes, alpha=self.focal_alpha) * logits.shape[1]}
        if log:
            if cls_o.numel() == 0:
                acc = torch.zeros([], device=logits.device)
            else:
                acc = (logits[idx].argmax(-1) == cls_o).float().sum() * (100.0 / cls_o.numel())
            losses["class_error"] = 100 - acc
        return losses

    @torch.no_grad()
    def loss_cardinality(self, outputs, targets, indices, num_boxes):
        logits = outputs["pred_logits"]
        lengths = torch.as_tensor([len(v["labels"]) for v in targets], device=logits.device)
        card = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1)
        return {"cardinality_error": F.l1_loss(card.float(), lengths.float())}

    def loss_boxes(self, outputs, targets, indices, num_boxes):
        boxes = outputs["pred_boxes"]
        idx = self._src_idx(indices)
        src = boxes[(idx[0].to(boxes.device), idx[1].to(boxes.device))]
        tgt = torch.cat([t["boxes"].reshape(-1, 4)[i.to(t["boxes"].device)] for t, (_, i) in zip(targets, indices)],
                        dim=0).to(src)
        l1 = F.l1_loss(src, tgt, reduction="none")
        giou = 1 - torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt)))
        losses = {"loss_bbox": l1.sum() / num_boxes, "loss_giou": giou.sum() / num_boxes}
        with torch.no_grad():
            losses["loss_xy"] = l1[..., :2].sum() / num_boxes
            losses["loss_hw"] = l1[..., 2:].sum() / num_boxes
        return losses

    def _all(self, outputs, targets, indices, num_boxes, log):
        out = {}
        out.update(self.loss_labels(outputs, targets, indices, num_boxes, log=log))
        out.update(self.loss_boxes(outputs, targets, indices, num_boxes))
        out.update(self.loss_cardinality(outputs, targets, indices, num_boxes))
        return out

    def __call__(self, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        check_targets(targets, self.num_classes)
        device = outputs["pred_logits"].device
        num_boxes = torch.as_tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num_boxes)
            world = dist.get_world_size()
        num_boxes = torch.clamp(num_boxes / world, min=1).item()

        losses: dict[str, torch.Tensor] = {}
        dn_meta = outputs.get("dn_meta")
        dn_on = bool(dn_meta) and "output_known_lbs_bboxes" in dn_meta
        zero = torch.zeros((), device=device)
        if dn_on:
            known = dn_meta["output_known_lbs_bboxes"]
            scalar = dn_meta["num_dn_group"]
            single_pad = dn_meta["pad_size"] // scalar
            dn_idx = []
            for t in targets:
                n = len(t["labels"])
                if n > 0:
                    tt = torch.arange(n).long().unsqueeze(0).repeat(scalar, 1)
                    tgt_idx = tt.flatten()
                    out_idx = ((torch.arange(scalar) * single_pad).long().unsqueeze(1) + tt).flatten()
                else:
                    out_idx = tgt_idx = torch.tensor([], dtype=torch.long)
                dn_idx.append((out_idx, tgt_idx))
            losses.update({f"{k}_dn": v for k, v in self._all(known, targets, dn_idx, num_boxes * scalar,
                                                                 log=False).items()})
        else:
            losses.update({f"{k}_dn": zero for k in _LOSS_NAMES})

        indices = self.matcher(outputs, targets)
        losses.update(self._all(outputs, targets, indices, num_boxes, log=True))

        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            ind = self.matcher(aux, targets)
            losses.update({f"{k}_{i}": v for k, v in self._all(aux, targets, ind, num_boxes, log=False).items()})
            if dn_on:
                aux_known = known["aux_outputs"][i]
                part = self._all(aux_known, targets, dn_idx, num_boxes * scalar, log=False)
                losses.update({f"{k}_dn_{i}": v for k, v in part.items()})
            else:
                losses.update({f"{k}_dn_{i}": zero for k in _LOSS_NAMES})

        if "interm_outputs" in outputs:
            interm = outputs["interm_outputs"]
            ind = self.matcher(interm, targets)
            losses.update({f"{k}_interm": v for k, v in self._all(interm, targets, ind, num_boxes, log=False).items()})
        return losses
