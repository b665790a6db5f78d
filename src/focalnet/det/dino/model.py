"""DINO (Zhang et al., arXiv:2203.03605) with a FocalNet / Focal Transformer backbone, in pure PyTorch.

Computes what the authors' FocalNet-DINO code computes (``models/dino/dino.py``, ``deformable_transformer.py``),
checked against outputs of that code (``tests/test_dino.py``). Module names are ours; the original state-dict
layout converts both ways (:mod:`focalnet.det.dino.convert`). Batch-first tensors throughout.

Details that change outputs and are kept as the original has them: the decoder's box refinement uses the
un-normalised layer output while the returned boxes use the normalised one ("look forward twice" on the
undetached boxes), proposals outside 0.01..0.99 or on padding get +inf logits-space boxes, ``inverse_sigmoid``
clamps at 1e-3, and ``two_stage_keep_all_tokens`` returns un-sigmoided proposal boxes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import DinoConfig
from .denoising import prepare_denoising_queries, split_denoising_outputs
from .ops import MLP, MSDeformAttn, SinePositionEncoding, box_cxcywh_to_xyxy, inverse_sigmoid, sine_embed_boxes

__all__ = ["DINO", "batch_images"]

_logger = logging.getLogger(__name__)


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "gelu": nn.GELU(), "selu": nn.SELU(), "prelu": nn.PReLU()}[name]


def batch_images(images: Sequence[torch.Tensor] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (3, H, W) images bottom/right into one batch; mask is True on padding (``nested_tensor``)."""
    if isinstance(images, torch.Tensor):
        if images.ndim == 3:
            images = [images]
        elif images.ndim == 4:
            return images, torch.zeros(images.shape[0], *images.shape[2:], dtype=torch.bool, device=images.device)
        else:
            raise ValueError(f"images must be a list of (C, H, W) tensors or one (B, C, H, W) batch, "
                             f"got shape {tuple(images.shape)}")
    images = list(images)
    if not images:
        raise ValueError("no images given")
    for i, im in enumerate(images):
        if not isinstance(im, torch.Tensor) or im.ndim != 3:
            raise ValueError(f"image {i} must be a (C, H, W) tensor, got "
                             f"{tuple(im.shape) if isinstance(im, torch.Tensor) else type(im).__name__}")
        if im.shape[0] != images[0].shape[0]:
            raise ValueError(f"image {i} has {im.shape[0]} channels, image 0 has {images[0].shape[0]}")
    H = max(im.shape[1] for im in images)
    W = max(im.shape[2] for im in images)
    batch = images[0].new_zeros(len(images), images[0].shape[0], H, W)
    mask = torch.ones(len(images), H, W, dtype=torch.bool, device=images[0].device)
    for im, b, m in zip(images, batch, mask):
        b[:, : im.shape[1], : im.shape[2]].copy_(im)
        m[: im.shape[1], : im.shape[2]] = False
    return batch, mask


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, d_ffn: int, dropout: float, activation: str, n_levels: int, n_heads: int,
                 n_points: int) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = _activation(activation)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src, pos, reference_points, spatial_shapes, padding_mask):
        src = self.norm1(src + self.dropout1(self.self_attn(src + pos, reference_points, src, spatial_shapes,
                                                               padding_mask)))
        ffn = self.linear2(self.dropout2(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, d_ffn: int, dropout: float, activation: str, n_levels: int, n_heads: int,
                 n_points: int, module_seq: Sequence[str]) -> None:
        super().__init__()
        self.module_seq = list(module_seq)
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = _activation(activation)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt, query_pos, reference_points, memory, memory_mask, spatial_shapes, self_attn_mask):
        for step in self.module_seq:
            if step == "sa":
                q = tgt + query_pos
                tgt = self.norm2(tgt + self.dropout2(self.self_attn(q, q, tgt, attn_mask=self_attn_mask,
                                                                    need_weights=False)[0]))
            elif step == "ca":
                out = self.cross_attn(tgt + query_pos, reference_points, memory, spatial_shapes, memory_mask)
                tgt = self.norm1(tgt + self.dropout1(out))
            else:
                ffn = self.linear2(self.dropout3(self.activation(self.linear1(tgt))))
                tgt = self.norm3(tgt + self.dropout4(ffn))
        return tgt


class Encoder(nn.Module):
    def __init__(self, layers: list[EncoderLayer], norm: nn.Module | None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm

    @staticmethod
    def reference_points(spatial_shapes, valid_ratios: torch.Tensor) -> torch.Tensor:
        device = valid_ratios.device
        refs = []
        for lvl, (h, w) in enumerate(spatial_shapes):
            ry, rx = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                                    torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
                                    indexing="ij")
            ry = ry.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
            rx = rx.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
            refs.append(torch.stack((rx, ry), -1))
        return torch.cat(refs, 1)[:, :, None] * valid_ratios[:, None]

    def forward(self, src, pos, spatial_shapes, valid_ratios, padding_mask):
        out = src
        if len(self.layers):
            ref = self.reference_points(spatial_shapes, valid_ratios)
            for layer in self.layers:
                out = layer(out, pos, ref, spatial_shapes, padding_mask)
        if self.norm is not None:
            out = self.norm(out)
        return out


class _BoxPerturber:
    """Training-only anchor noise between decoder layers (``decoder_layer_noise``)."""

    def __init__(self, xy: float, hw: float) -> None:
        self.scale = torch.tensor([xy, xy, hw, hw])

    def __call__(self, ref: torch.Tensor) -> torch.Tensor:
        noise = torch.rand_like(ref)
        return (ref * (1 + (noise - 0.5) * self.scale.to(ref.device)[: ref.shape[-1]])).clamp_(0, 1)


class Decoder(nn.Module):
    def __init__(self, layers: list[DecoderLayer], d_model: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(d_model)
        self.ref_point_head = MLP(2 * d_model, d_model, d_model, 2)


class DINO(nn.Module):
    """DINO detector. ``backbone`` is a :class:`~focalnet.backbones.FocalNetBackbone` (or Focal Transformer's).

    ``model(images)`` takes a list of normalised (3, H, W) tensors (padded bottom/right with a mask, no resizing)
    or a (B, 3, H, W) batch and returns ``pred_logits`` (B, Q, K), ``pred_boxes`` (B, Q, 4) cxcywh in [0, 1],
    ``aux_outputs``, ``interm_outputs`` (two-stage proposals) and ``dn_meta``. In training mode
    ``model(images, targets)`` adds the contrastive denoising queries; :meth:`loss` gives the original losses and
    :meth:`postprocess` the top-``num_select`` detections.
    """

    def __init__(self, backbone: nn.Module, config: DinoConfig) -> None:
        super().__init__()
        cfg = config
        cfg.validate()
        self.config = cfg
        d = cfg.hidden_dim
        L = cfg.num_feature_levels
        self.num_queries = cfg.num_queries
        self.num_classes = cfg.num_classes
        self.hidden_dim = d
        self.backbone = backbone
        chans = list(backbone.out_channels)
        if len(chans) != len(cfg.return_interm_indices):
            raise ValueError(f"the backbone gives {len(chans)} outputs, return_interm_indices "
                             f"{cfg.return_interm_indices} asks for {len(cfg.return_interm_indices)}")
        self.position_encoding = SinePositionEncoding(d // 2, cfg.pe_temperatureH, cfg.pe_temperatureW)

        projs = []
        if L > 1:
            for c in chans:
                projs.append(nn.Sequential(nn.Conv2d(c, d, kernel_size=1), nn.GroupNorm(32, d)))
            c = chans[-1]
            for _ in range(L - len(chans)):
                projs.append(nn.Sequential(nn.Conv2d(c, d, kernel_size=3, stride=2, padding=1), nn.GroupNorm(32, d)))
                c = d
        else:
            projs.append(nn.Sequential(nn.Conv2d(chans[-1], d, kernel_size=1), nn.GroupNorm(32, d)))
        self.input_proj = nn.ModuleList(projs)

        self.level_embed = nn.Parameter(torch.empty(L, d)) if L > 1 and cfg.enc_layers > 0 else None
        self.encoder = Encoder(
            [EncoderLayer(d, cfg.dim_feedforward, cfg.dropout, cfg.transformer_activation, L, cfg.nheads,
                          cfg.enc_n_points) for _ in range(cfg.enc_layers)],
            nn.LayerNorm(d) if cfg.pre_norm else None,
        )
        self.decoder = Decoder(
            [DecoderLayer(d, cfg.dim_feedforward, cfg.dropout, cfg.transformer_activation, L, cfg.nheads,
                          cfg.dec_n_points, cfg.decoder_module_seq) for _ in range(cfg.dec_layers)],
            d,
        )
        two_stage = cfg.two_stage_type == "standard"
        self.tgt_embed = nn.Embedding(cfg.num_queries, d) if (not two_stage or cfg.embed_init_tgt) else None
        self.refpoint_embed = nn.Embedding(cfg.num_queries, 4) if not two_stage else None
        if two_stage:
            self.enc_output = nn.Linear(d, d)
            self.enc_output_norm = nn.LayerNorm(d)
            self.pat_embed_for_2stage = (nn.Parameter(torch.empty(cfg.two_stage_pat_embed, d))
                                         if cfg.two_stage_pat_embed > 0 else None)
            self.two_stage_wh_embedding = nn.Embedding(1, 2) if cfg.two_stage_learn_wh else None
        self.label_enc = nn.Embedding(cfg.labelbook_size + 1, d)

        n_cls = 1 if cfg.dec_pred_class_embed_share else cfg.dec_layers
        n_box = 1 if cfg.dec_pred_bbox_embed_share else cfg.dec_layers
        self.class_heads = nn.ModuleList(nn.Linear(d, cfg.num_classes) for _ in range(n_cls))
        self.box_heads = nn.ModuleList(MLP(d, d, 4, 3) for _ in range(n_box))
        self.enc_class_head = (nn.Linear(d, cfg.num_classes)
                               if two_stage and not cfg.two_stage_class_embed_share else None)
        self.enc_box_head = MLP(d, d, 4, 3) if two_stage and not cfg.two_stage_bbox_embed_share else None
        self._perturber = (_BoxPerturber(cfg.dln_xy_noise, cfg.dln_hw_noise) if cfg.decoder_layer_noise else None)
        self._criterion = None
        self.reset_parameters()

    # the original DINO's attribute names for the denoising knobs (read and set through the config)
    @property
    def dn_number(self) -> int:
        return self.config.effective_dn_number

    @dn_number.setter
    def dn_number(self, value: int) -> None:
        self.config.dn_number, self.config.use_dn = int(value), int(value) > 0

    @property
    def dn_box_noise_scale(self) -> float:
        return self.config.dn_box_noise_scale

    @dn_box_noise_scale.setter
    def dn_box_noise_scale(self, value: float) -> None:
        self.config.dn_box_noise_scale = float(value)

    @property
    def dn_label_noise_ratio(self) -> float:
        return self.config.dn_label_noise_ratio

    @dn_label_noise_ratio.setter
    def dn_label_noise_ratio(self, value: float) -> None:
        self.config.dn_label_noise_ratio = float(value)

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The original's initialisation (xavier transformer, deformable-attention grid, focal prior bias)."""
        for mod in (self.encoder, self.decoder):
            for p in mod.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        if self.level_embed is not None:
            nn.init.normal_(self.level_embed)
        if self.tgt_embed is not None:
            nn.init.xavier_uniform_(self.tgt_embed.weight)
        if getattr(self, "enc_output", None) is not None:
            nn.init.xavier_uniform_(self.enc_output.weight)
        if getattr(self, "pat_embed_for_2stage", None) is not None:
            nn.init.normal_(self.pat_embed_for_2stage)
        if getattr(self, "two_stage_wh_embedding", None) is not None:
            nn.init.constant_(self.two_stage_wh_embedding.weight, math.log(0.05 / (1 - 0.05)))
        if self.refpoint_embed is not None and self.config.random_refpoints_xy:
            self.refpoint_embed.weight[:, :2].uniform_(0, 1)
            self.refpoint_embed.weight[:, :2] = inverse_sigmoid(self.refpoint_embed.weight[:, :2])
        bias = -math.log((1 - 0.01) / 0.01)
        for head in [*self.class_heads, self.enc_class_head]:
            if head is not None:
                nn.init.constant_(head.bias, bias)
        for head in [*self.box_heads, self.enc_box_head]:
            if head is not None:
                nn.init.zeros_(head.layers[-1].weight)
                nn.init.zeros_(head.layers[-1].bias)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)

    # ------------------------------------------------------------------ heads
    def class_head(self, layer: int) -> nn.Module:
        return self.class_heads[layer if len(self.class_heads) > 1 else 0]

    def box_head(self, layer: int) -> nn.Module:
        return self.box_heads[layer if len(self.box_heads) > 1 else 0]

    def _enc_class(self) -> nn.Module:
        return self.enc_class_head if self.enc_class_head is not None else self.class_heads[0]

    def _enc_box(self) -> nn.Module:
        return self.enc_box_head if self.enc_box_head is not None else self.box_heads[0]

    # ------------------------------------------------------------------ forward
    def _multiscale(self, tensors: torch.Tensor, mask: torch.Tensor):
        feats = self.backbone(tensors)
        srcs, masks, poss = [], [], []
        for lvl, f in enumerate(feats):
            m = F.interpolate(mask[None].float(), size=f.shape[-2:]).to(torch.bool)[0]
            poss.append(self.position_encoding(m).to(f.dtype))
            srcs.append(self.input_proj[lvl](f))
            masks.append(m)
        for lvl in range(len(feats), self.config.num_feature_levels):
            src = self.input_proj[lvl](feats[-1] if lvl == len(feats) else srcs[-1])
            m = F.interpolate(mask[None].float(), size=src.shape[-2:]).to(torch.bool)[0]
            srcs.append(src)
            masks.append(m)
            poss.append(self.position_encoding(m).to(src.dtype))
        return srcs, masks, poss

    @staticmethod
    def _valid_ratio(mask: torch.Tensor) -> torch.Tensor:
        _, H, W = mask.shape
        vh = torch.sum(~mask[:, :, 0], 1).float() / H
        vw = torch.sum(~mask[:, 0, :], 1).float() / W
        return torch.stack([vw, vh], -1)

    def _proposals(self, memory, mask_flatten, spatial_shapes):
        N = memory.shape[0]
        learned = self.two_stage_wh_embedding.weight[0] if self.two_stage_wh_embedding is not None else None
        proposals, cur = [], 0
        for lvl, (h, w) in enumerate(spatial_shapes):
            m = mask_flatten[:, cur : cur + h * w].view(N, h, w, 1)
            valid_h = torch.sum(~m[:, :, 0, 0], 1)
            valid_w = torch.sum(~m[:, 0, :, 0], 1)
            gy, gx = torch.meshgrid(torch.linspace(0, h - 1, h, dtype=torch.float32, device=memory.device),
                                    torch.linspace(0, w - 1, w, dtype=torch.float32, device=memory.device),
                                    indexing="ij")
            grid = torch.cat([gx.unsqueeze(-1), gy.unsqueeze(-1)], -1)
            scale = torch.cat([valid_w.unsqueeze(-1), valid_h.unsqueeze(-1)], 1).view(N, 1, 1, 2)
            grid = (grid.unsqueeze(0).expand(N, -1, -1, -1) + 0.5) / scale
            if learned is not None:
                wh = torch.ones_like(grid) * learned.sigmoid() * (2.0**lvl)
            else:
                wh = torch.ones_like(grid) * 0.05 * (2.0**lvl)
            proposals.append(torch.cat((grid, wh), -1).view(N, -1, 4))
            cur += h * w
        props = torch.cat(proposals, 1)
        valid = ((props > 0.01) & (props < 0.99)).all(-1, keepdim=True)
        props = torch.log(props / (1 - props))
        props = props.masked_fill(mask_flatten.unsqueeze(-1), float("inf")).masked_fill(~valid, float("inf"))
        out_mem = memory.masked_fill(mask_flatten.unsqueeze(-1), 0.0).masked_fill(~valid, 0.0)
        return out_mem, props

    def forward(self, images, targets: list[dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
        cfg = self.config
        tensors, mask = batch_images(images)
        srcs, masks, poss = self._multiscale(tensors, mask)
        bs = tensors.shape[0]

        dn_label = dn_bbox = attn_mask = dn_meta = None
        if self.training and cfg.effective_dn_number > 0:
            if targets is None:
                raise ValueError("training with denoising needs targets: model(images, targets)")
            if len(targets) != bs:
                raise ValueError(f"{len(targets)} targets for {bs} images")
            dn_label, dn_bbox, attn_mask, dn_meta = prepare_denoising_queries(
                targets, cfg.effective_dn_number, cfg.dn_label_noise_ratio, cfg.dn_box_noise_scale,
                cfg.num_queries, cfg.num_classes, self.hidden_dim, self.label_enc)

        # ---- flatten the levels
        spatial_shapes = [tuple(s.shape[-2:]) for s in srcs]
        src_flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        mask_flat = torch.cat([m.flatten(1) for m in masks], 1)
        pos_flat = []
        for lvl, p in enumerate(poss):
            p = p.flatten(2).transpose(1, 2)
            if self.level_embed is not None:
                p = p + self.level_embed[lvl].view(1, 1, -1)
            pos_flat.append(p)
        pos_flat = torch.cat(pos_flat, 1)
        valid_ratios = torch.stack([self._valid_ratio(m) for m in masks], 1)

        memory = self.encoder(src_flat, pos_flat, spatial_shapes, valid_ratios, mask_flat)

        # ---- queries
        hs_enc = ref_enc = None
        if cfg.two_stage_type == "standard":
            out_mem, props = self._proposals(memory, mask_flat, spatial_shapes)
            out_mem = self.enc_output_norm(self.enc_output(out_mem))
            if self.pat_embed_for_2stage is not None:
                nhw = out_mem.shape[1]
                out_mem = out_mem.repeat(1, cfg.two_stage_pat_embed, 1)
                out_mem = out_mem + self.pat_embed_for_2stage.repeat_interleave(nhw, 0)
                props = props.repeat(1, cfg.two_stage_pat_embed, 1)
            enc_class = self._enc_class()(out_mem)
            enc_coord = self._enc_box()(out_mem) + props
            topk = torch.topk(enc_class.max(-1)[0], cfg.num_queries, dim=1)[1]
            ref_undetach = torch.gather(enc_coord, 1, topk.unsqueeze(-1).repeat(1, 1, 4))
            ref_q = ref_undetach.detach()
            tgt_undetach = torch.gather(out_mem, 1, topk.unsqueeze(-1).repeat(1, 1, self.hidden_dim))
            if self.tgt_embed is not None:
                tgt_q = self.tgt_embed.weight[None].repeat(bs, 1, 1)
            else:
                tgt_q = tgt_undetach.detach()
            if cfg.two_stage_keep_all_tokens:
                hs_enc, ref_enc = out_mem.unsqueeze(0), enc_coord.unsqueeze(0)
            else:
                hs_enc, ref_enc = tgt_undetach.unsqueeze(0), ref_undetach.sigmoid().unsqueeze(0)
        else:
            tgt_q = self.tgt_embed.weight[None].repeat(bs, 1, 1)
            ref_q = self.refpoint_embed.weight[None].repeat(bs, 1, 1)
        if dn_bbox is not None:
            ref_q = torch.cat([dn_bbox, ref_q], 1)
            tgt_q = torch.cat([dn_label, tgt_q], 1)

        hs, refs = self._decode(tgt_q, memory, mask_flat, ref_q, spatial_shapes, valid_ratios, attn_mask)
        hs[0] = hs[0] + self.label_enc.weight[0, 0] * 0.0  # keeps label_enc in the graph without targets

        coords, classes = [], []
        for i, (ref, h) in enumerate(zip(refs[:-1], hs)):
            coords.append((self.box_head(i)(h) + inverse_sigmoid(ref)).sigmoid())
            classes.append(self.class_head(i)(h))
        if dn_meta is not None:
            classes, coords = split_denoising_outputs(classes, coords, dn_meta, aux_loss=True)
        # The original build_dino always passes aux_loss=True: args.aux_loss only shapes the weight_dict.
        out: dict[str, Any] = {"pred_logits": classes[-1], "pred_boxes": coords[-1],
                               "aux_outputs": [{"pred_logits": a, "pred_boxes": b}
                                               for a, b in zip(classes[:-1], coords[:-1])]}
        if hs_enc is not None:
            out["interm_outputs"] = {"pred_logits": self._enc_class()(hs_enc[-1]), "pred_boxes": ref_enc[-1]}
        out["dn_meta"] = dn_meta
        return out

    def _decode(self, tgt, memory, memory_mask, refpoints_unsigmoid, spatial_shapes, valid_ratios, attn_mask):
        cfg = self.config
        dec = self.decoder
        output = tgt
        intermediate = []
        reference_points = refpoints_unsigmoid.sigmoid()
        ref_points = [reference_points]
        vr = torch.cat([valid_ratios, valid_ratios], -1)[:, None]  # (B, 1, L, 4)
        n = len(dec.layers)
        for lid, layer in enumerate(dec.layers):
            if self.training and self._perturber is not None and lid != 0:
                reference_points = self._perturber(reference_points)
            ref_input = reference_points[:, :, None] * vr
            query_pos = dec.ref_point_head(sine_embed_boxes(ref_input[:, :, 0, :]))
            output = layer(output, query_pos, ref_input, memory, memory_mask, spatial_shapes, attn_mask)
            new_ref = (self.box_head(lid)(output) + inverse_sigmoid(reference_points)).sigmoid()
            select = None
            if cfg.dec_layer_number is not None and lid != n - 1:
                select_number = cfg.dec_layer_number[lid + 1]
                if new_ref.shape[1] != select_number:
                    logits = self.class_head(lid)(output)
                    select = torch.topk(logits.max(-1)[0], select_number, dim=1)[1]
                    new_ref = torch.gather(new_ref, 1, select.unsqueeze(-1).repeat(1, 1, 4))
            reference_points = new_ref.detach()
            ref_points.append(reference_points if cfg.use_detached_boxes_dec_out else new_ref)
            intermediate.append(dec.norm(output))
            if select is not None:
                output = torch.gather(output, 1, select.unsqueeze(-1).repeat(1, 1, self.hidden_dim))
        return intermediate, ref_points

    # ------------------------------------------------------------------ losses and results
    @property
    def criterion(self):
        if self._criterion is None:
            from .criterion import SetCriterion

            self._criterion = SetCriterion(self.config)
        return self._criterion

    @property
    def weight_dict(self) -> dict[str, float]:
        return self.config.weight_dict()

    def loss(self, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The original ``SetCriterion`` losses (``loss_ce``, ``loss_bbox``, ``loss_giou``, ``*_{i}``, ``*_interm``,
        ``*_dn``, plus the logged ``class_error``/``cardinality_error``/``loss_xy``/``loss_hw``)."""
        return self.criterion(outputs, targets)

    def total_loss(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """sum(losses[k] * weight_dict[k]) over the weighted keys, as the original training loop sums them."""
        w = self.weight_dict
        return sum(losses[k] * w[k] for k in losses if k in w)

    @torch.no_grad()
    def postprocess(self, outputs: dict[str, Any], target_sizes, num_select: int | None = None,
                    nms_iou_threshold: float | None = None) -> list[dict[str, torch.Tensor]]:
        """Top ``num_select`` (query, class) pairs by sigmoid score; boxes to absolute xyxy of ``target_sizes``
        (B, 2) as (height, width)."""
        num_select = self.config.num_select if num_select is None else num_select
        thr = self.config.nms_iou_threshold if nms_iou_threshold is None else nms_iou_threshold
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        target_sizes = torch.as_tensor(target_sizes, device=logits.device)
        if target_sizes.ndim != 2 or target_sizes.shape != (logits.shape[0], 2):
            raise ValueError(f"target_sizes must be ({logits.shape[0]}, 2) (height, width), "
                             f"got {tuple(target_sizes.shape)}")
        prob = logits.sigmoid()
        k = min(num_select, prob.shape[1] * prob.shape[2])
        scores, idx = torch.topk(prob.view(logits.shape[0], -1), k, dim=1)
        box_idx = idx // logits.shape[2]
        labels = idx % logits.shape[2]
        xyxy = torch.gather(box_cxcywh_to_xyxy(boxes), 1, box_idx.unsqueeze(-1).repeat(1, 1, 4))
        img_h, img_w = target_sizes.unbind(1)
        xyxy = xyxy * torch.stack([img_w, img_h, img_w, img_h], dim=1)[:, None, :]
        if thr > 0:
            from torchvision.ops import nms

            keep = [nms(b, s, iou_threshold=thr) for b, s in zip(xyxy, scores)]
            return [{"scores": s[i], "labels": lb[i], "boxes": b[i]} for s, lb, b, i in zip(scores, labels, xyxy, keep)]
        return [{"scores": s, "labels": lb, "boxes": b} for s, lb, b in zip(scores, labels, xyxy)]
