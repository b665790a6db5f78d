"""Contrastive denoising queries (DINO's CDN), computed as the original ``prepare_for_cdn`` does.

Each ground-truth box gives ``num_groups`` positive and ``num_groups`` negative queries (label noise flips a
fraction of labels; box noise moves corners by up to ``box_noise_scale`` * half size, negatives by more). The
queries are prepended to the matching queries; an attention mask keeps the groups apart and hides them from the
matching queries. With zero noise the queries are the ground truth itself (deterministic), which is how the
golden fixture checks this path.
"""

from __future__ import annotations

import torch
from torch import nn

from .ops import inverse_sigmoid

__all__ = ["prepare_denoising_queries", "split_denoising_outputs"]


def prepare_denoising_queries(
    targets: list[dict[str, torch.Tensor]],
    dn_number: int,
    label_noise_ratio: float,
    box_noise_scale: float,
    num_queries: int,
    num_classes: int,
    hidden_dim: int,
    label_enc: nn.Embedding,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Returns (query content (B, pad, C), query boxes before sigmoid (B, pad, 4), self-attention mask, meta)."""
    device = label_enc.weight.device
    dn_number = dn_number * 2  # positive and negative
    known_num = [int(t["labels"].numel()) for t in targets]
    batch_size = len(targets)
    max_known = max(known_num) if known_num else 0
    if max_known == 0:
        dn_number = 1
    elif dn_number >= 100:
        dn_number = dn_number // (max_known * 2)
    elif dn_number < 1:
        dn_number = 1
    if dn_number == 0:
        dn_number = 1

    labels = torch.cat([t["labels"] for t in targets]).to(device)
    boxes = torch.cat([t["boxes"] for t in targets]).to(device=device, dtype=torch.float32).reshape(-1, 4)
    batch_idx = torch.cat([torch.full_like(t["labels"].long(), i) for i, t in enumerate(targets)]).to(device)

    known_labels = labels.repeat(2 * dn_number, 1).view(-1)
    known_bid = batch_idx.repeat(2 * dn_number, 1).view(-1)
    known_bboxs = boxes.repeat(2 * dn_number, 1)
    known_labels_expanded = known_labels.clone()
    known_bbox_expand = known_bboxs.clone()

    if label_noise_ratio > 0:
        p = torch.rand_like(known_labels_expanded.float())
        chosen = torch.nonzero(p < (label_noise_ratio * 0.5)).view(-1)
        new_label = torch.randint_like(chosen, 0, num_classes)
        known_labels_expanded.scatter_(0, chosen, new_label)
    single_pad = max_known
    pad_size = int(single_pad * 2 * dn_number)
    n = len(boxes)
    positive_idx = torch.arange(n, device=device).long().unsqueeze(0).repeat(dn_number, 1)
    positive_idx += (torch.arange(dn_number, device=device) * n * 2).long().unsqueeze(1)
    positive_idx = positive_idx.flatten()
    negative_idx = positive_idx + n
    if box_noise_scale > 0:
        corners = torch.zeros_like(known_bboxs)
        corners[:, :2] = known_bboxs[:, :2] - known_bboxs[:, 2:] / 2
        corners[:, 2:] = known_bboxs[:, :2] + known_bboxs[:, 2:] / 2
        diff = torch.zeros_like(known_bboxs)
        diff[:, :2] = known_bboxs[:, 2:] / 2
        diff[:, 2:] = known_bboxs[:, 2:] / 2
        rand_sign = torch.randint_like(known_bboxs, low=0, high=2, dtype=torch.float32) * 2.0 - 1.0
        rand_part = torch.rand_like(known_bboxs)
        rand_part[negative_idx] += 1.0
        rand_part *= rand_sign
        corners = (corners + torch.mul(rand_part, diff) * box_noise_scale).clamp(min=0.0, max=1.0)
        known_bbox_expand[:, :2] = (corners[:, :2] + corners[:, 2:]) / 2
        known_bbox_expand[:, 2:] = corners[:, 2:] - corners[:, :2]

    input_label_embed = label_enc(known_labels_expanded.long())
    input_bbox_embed = inverse_sigmoid(known_bbox_expand)
    query_label = torch.zeros(batch_size, pad_size, hidden_dim, device=device)
    query_bbox = torch.zeros(batch_size, pad_size, 4, device=device)
    if n:
        map_idx = torch.cat([torch.arange(k, device=device) for k in known_num])
        map_idx = torch.cat([map_idx + single_pad * i for i in range(2 * dn_number)]).long()
        query_label[(known_bid.long(), map_idx)] = input_label_embed
        query_bbox[(known_bid.long(), map_idx)] = input_bbox_embed

    tgt_size = pad_size + num_queries
    attn_mask = torch.zeros(tgt_size, tgt_size, dtype=torch.bool, device=device)
    attn_mask[pad_size:, :pad_size] = True  # matching queries cannot see the denoising ones
    s = single_pad * 2
    for i in range(dn_number):  # groups cannot see each other (the original's branches, kept as they are)
        if i == 0:
            attn_mask[s * i : s * (i + 1), s * (i + 1) : pad_size] = True
        if i == dn_number - 1:
            attn_mask[s * i : s * (i + 1), : s * i] = True
        else:
            attn_mask[s * i : s * (i + 1), s * (i + 1) : pad_size] = True
            attn_mask[s * i : s * (i + 1), : s * i] = True
    return query_label, query_bbox, attn_mask, {"pad_size": pad_size, "num_dn_group": dn_number}


def split_denoising_outputs(
    classes: list[torch.Tensor], coords: list[torch.Tensor], dn_meta: dict, aux_loss: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Split the denoising queries off every layer's outputs; store them in ``dn_meta['output_known_lbs_bboxes']``."""
    pad = dn_meta["pad_size"]
    if pad <= 0:
        return classes, coords
    known_c = [c[:, :pad] for c in classes]
    known_b = [b[:, :pad] for b in coords]
    out = {"pred_logits": known_c[-1], "pred_boxes": known_b[-1]}
    if aux_loss:
        out["aux_outputs"] = [{"pred_logits": a, "pred_boxes": b} for a, b in zip(known_c[:-1], known_b[:-1])]
    dn_meta["output_known_lbs_bboxes"] = out
    return [c[:, pad:] for c in classes], [b[:, pad:] for b in coords]
