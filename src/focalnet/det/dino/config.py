"""The DINO configuration, under the original's argument names (``config/DINO/*.py`` of FocalNet-DINO).

:class:`DinoConfig` holds the options that shape the model, the denoising, the matcher, the losses and the
post-processing. :meth:`DinoConfig.from_args` reads an original ``args`` (dict or ``argparse.Namespace``, e.g. a
released checkpoint's); unknown keys (training schedule, data augmentation, paths) are ignored, and options the
original code path cannot run either are refused with a message naming them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from focalnet.utils.config import ConfigError

__all__ = ["DinoConfig"]


@dataclass
class DinoConfig:
    # backbone (names as in the original)
    backbone: str = "focalnet_L_384_22k_fl4"
    focal_levels: int | None = None
    focal_windows: int | None = None
    use_checkpoint: bool = False
    return_interm_indices: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    position_embedding: str = "sine"
    pe_temperatureH: float = 20
    pe_temperatureW: float = 20
    # transformer
    num_classes: int = 91
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.0
    pre_norm: bool = False
    transformer_activation: str = "relu"
    num_queries: int = 900
    num_feature_levels: int = 5
    enc_n_points: int = 4
    dec_n_points: int = 4
    decoder_module_seq: list[str] = field(default_factory=lambda: ["sa", "ca", "ffn"])
    decoder_sa_type: str = "sa"
    dec_layer_number: list[int] | None = None
    decoder_layer_noise: bool = False
    dln_xy_noise: float = 0.2
    dln_hw_noise: float = 0.2
    use_detached_boxes_dec_out: bool = False
    random_refpoints_xy: bool = False
    fix_refpoints_hw: int = -1
    num_patterns: int = 0
    # two stage
    two_stage_type: str = "standard"
    two_stage_pat_embed: int = 0
    two_stage_add_query_num: int = 0
    two_stage_bbox_embed_share: bool = False
    two_stage_class_embed_share: bool = False
    two_stage_learn_wh: bool = False
    two_stage_keep_all_tokens: bool = False
    embed_init_tgt: bool = True
    dec_pred_bbox_embed_share: bool = True
    dec_pred_class_embed_share: bool = True
    # denoising
    use_dn: bool = True
    dn_number: int = 100
    dn_box_noise_scale: float = 0.4
    dn_label_noise_ratio: float = 0.5
    dn_labelbook_size: int | None = 91
    # matcher and losses
    matcher_type: str = "HungarianMatcher"
    set_cost_class: float = 2.0
    set_cost_bbox: float = 5.0
    set_cost_giou: float = 2.0
    cls_loss_coef: float = 1.0
    bbox_loss_coef: float = 5.0
    giou_loss_coef: float = 2.0
    interm_loss_coef: float = 1.0
    no_interm_box_loss: bool = False
    focal_alpha: float = 0.25
    aux_loss: bool = True
    # post-processing
    num_select: int = 300
    nms_iou_threshold: float = -1

    # options whose non-default value the original code path cannot run (or that we do not build)
    _REFUSED = {
        "masks": (False, "DINO segmentation heads (masks=True) are not part of the released detector"),
        "use_deformable_box_attn": (False, "use_deformable_box_attn: the original never defines that module"),
        "add_channel_attention": (False, "add_channel_attention: the original's 'dyrelu' is not defined"),
        "query_dim": (4, "query_dim must be 4 (the original asserts it)"),
    }

    @classmethod
    def from_args(cls, args: Mapping[str, Any] | argparse.Namespace) -> DinoConfig:
        if isinstance(args, argparse.Namespace):
            args = vars(args)
        if not isinstance(args, Mapping):
            raise ConfigError(f"args must be a dict or argparse.Namespace, got {type(args).__name__}")
        names = {f.name for f in fields(cls)}
        kw = {k: args[k] for k in names if k in args}
        for key, (ok, why) in cls._REFUSED.items():
            if key in args and args[key] not in (ok, None):
                raise ConfigError(f"unsupported DINO option {key}={args[key]!r}: {why}")
        if "return_interm_indices" in kw:
            kw["return_interm_indices"] = list(kw["return_interm_indices"])
        if "decoder_module_seq" in kw:
            kw["decoder_module_seq"] = list(kw["decoder_module_seq"])
        if "dn_labelbook_size" not in kw:
            kw["dn_labelbook_size"] = None  # the original falls back to num_classes
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise ConfigError(f"invalid DINO config: {msg}")

        if self.hidden_dim != 256:
            bad(f"hidden_dim={self.hidden_dim}; the anchor-box sine embedding hard-codes 256 (128 per coordinate)")
        if self.two_stage_type not in ("standard", "no"):
            bad(f"two_stage_type={self.two_stage_type!r} (the original knows 'standard' and 'no')")
        if self.num_feature_levels == 1 and self.two_stage_type != "no":
            bad("num_feature_levels=1 needs two_stage_type='no' (as the original asserts)")
        if self.num_feature_levels < len(self.return_interm_indices) and self.num_feature_levels > 1:
            bad(f"num_feature_levels={self.num_feature_levels} < {len(self.return_interm_indices)} backbone outputs "
                f"(return_interm_indices={self.return_interm_indices})")
        if sorted(self.decoder_module_seq) != ["ca", "ffn", "sa"]:
            bad(f"decoder_module_seq={self.decoder_module_seq} must order exactly 'sa', 'ca', 'ffn'")
        if self.decoder_sa_type != "sa":
            bad(f"decoder_sa_type={self.decoder_sa_type!r}: only 'sa' (the released configs') is built here")
        if self.two_stage_add_query_num:
            bad("two_stage_add_query_num > 0 cannot run in the original either (no reference points at inference)")
        if self.num_patterns:
            bad("num_patterns > 0 cannot run in the original either (its pattern embedding is never created)")
        if self.position_embedding not in ("sine", "v2"):
            bad(f"position_embedding={self.position_embedding!r}: the released models use 'sine'")
        if self.transformer_activation not in ("relu", "gelu", "selu", "prelu"):
            bad(f"transformer_activation={self.transformer_activation!r} (relu, gelu, selu or prelu; the "
                "original's glu halves the FFN width and cannot run)")
        if self.num_feature_levels == 1 and len(self.return_interm_indices) != 1:
            bad("num_feature_levels=1 takes one backbone output (return_interm_indices=[3])")
        if self.two_stage_type != "no" and (self.two_stage_bbox_embed_share or self.two_stage_class_embed_share):
            if not (self.dec_pred_class_embed_share and self.dec_pred_bbox_embed_share):
                bad("two_stage_*_embed_share needs dec_pred_class_embed_share and dec_pred_bbox_embed_share")
        if self.matcher_type not in ("HungarianMatcher", "SimpleMinsumMatcher"):
            bad(f"matcher_type={self.matcher_type!r}")
        if self.dec_layer_number is not None and len(self.dec_layer_number) != self.dec_layers:
            bad(f"dec_layer_number needs {self.dec_layers} entries")

    @property
    def labelbook_size(self) -> int:
        return self.num_classes if self.dn_labelbook_size is None else self.dn_labelbook_size

    @property
    def effective_dn_number(self) -> int:
        return self.dn_number if self.use_dn else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def weight_dict(self) -> dict[str, float]:
        """Loss weights exactly as the original ``build_dino`` assembles them."""
        base = {"loss_ce": self.cls_loss_coef, "loss_bbox": self.bbox_loss_coef, "loss_giou": self.giou_loss_coef}
        w = dict(base)
        if self.use_dn:
            w.update({"loss_ce_dn": self.cls_loss_coef, "loss_bbox_dn": self.bbox_loss_coef,
                      "loss_giou_dn": self.giou_loss_coef})
        clean = dict(w)
        if self.aux_loss:
            for i in range(self.dec_layers - 1):
                w.update({f"{k}_{i}": v for k, v in clean.items()})
        if self.two_stage_type != "no":
            coef = {"loss_ce": 1.0, "loss_bbox": 0.0 if self.no_interm_box_loss else 1.0,
                    "loss_giou": 0.0 if self.no_interm_box_loss else 1.0}
            w.update({f"{k}_interm": v * self.interm_loss_coef * coef[k] for k, v in base.items()})
        return w
