"""The original FocalNet-DINO configuration and state-dict layout, converted into our DINO (and back).

* :func:`backbone_kwargs_from_args` - the original ``build_focalnet`` table: ``args['backbone']`` (e.g.
  ``focalnet_L_384_22k_fl4``) plus ``focal_levels``/``focal_windows``/``return_interm_indices`` from ``args``;
* :func:`build_backbone` - our :class:`~focalnet.backbones.FocalNetBackbone` from those (original) keyword
  arguments, a registered model name, or a ready backbone module (FocalNet or Focal Transformer);
* :func:`from_original_state_dict` / :func:`to_original_state_dict` - key conversion. The original stores the
  shared prediction heads under several names (``class_embed.{i}``, ``transformer.decoder.class_embed.{i}``,
  ``transformer.enc_out_class_embed`` when shared); every alias must hold the same tensor;
* :func:`from_original` - ``focalnet.det.dino.from_original(args, state_dict, backbone=None)``.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from focalnet.weights.loading import CheckpointError, state_dict_mismatch

from .config import DinoConfig
from .model import DINO

_logger = logging.getLogger(__name__)

__all__ = [
    "ORIGINAL_BACKBONES",
    "backbone_kwargs_from_args",
    "build_backbone",
    "describe_state_dict",
    "from_original",
    "from_original_state_dict",
    "load_original_state_dict",
    "to_original_state_dict",
]

_L = dict(embed_dim=192, depths=[2, 2, 18, 2], use_conv_embed=True, use_postln=True, use_layerscale=True)
_XL = dict(_L, embed_dim=256)
_H = dict(_L, embed_dim=352)
# The original DINO build_focalnet table (models/dino/focal.py), values as written there.
ORIGINAL_BACKBONES: dict[str, dict[str, Any]] = {
    "focalnet_L_384_22k": dict(_L, focal_levels=[3] * 4, focal_windows=[5] * 4, use_postln_in_modulation=False,
                               normalize_modulator=False),
    "focalnet_L_384_22k_fl4": dict(_L, focal_levels=[4] * 4, focal_windows=[3] * 4, use_postln_in_modulation=False,
                                   normalize_modulator=True),
    "focalnet_XL_384_22k": dict(_XL, focal_levels=[3] * 4, focal_windows=[5] * 4, use_postln_in_modulation=False,
                                normalize_modulator=False),
    "focalnet_XL_384_22k_fl4": dict(_XL, focal_levels=[4] * 4, focal_windows=[3] * 4,
                                    use_postln_in_modulation=False, normalize_modulator=True),
    "focalnet_H_224_22k": dict(_H, focal_levels=[3] * 4, focal_windows=[3] * 4, use_postln_in_modulation=True,
                               normalize_modulator=False),
    "focalnet_H_224_22k_fl4": dict(_H, focal_levels=[4] * 4, focal_windows=[3] * 4, use_postln_in_modulation=True,
                                   normalize_modulator=False),
}
# Defaults of the original DINO FocalNet constructor (focal.py), used for keys a kwargs dict leaves out.
_ORIGINAL_DEFAULTS: dict[str, Any] = dict(
    patch_size=4, in_chans=3, embed_dim=96, depths=[2, 2, 6, 2], mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=0.3,
    patch_norm=True, out_indices=(0, 1, 2, 3), frozen_stages=-1, focal_levels=[3, 3, 3, 3],
    focal_windows=[3, 3, 3, 3], use_conv_embed=False, use_postln=False, use_postln_in_modulation=False,
    use_layerscale=False, normalize_modulator=False, use_checkpoint=False,
)
_IGNORED_KWARGS = {"pretrain_img_size", "norm_layer"}


def _as_dict(args) -> dict[str, Any]:
    if isinstance(args, argparse.Namespace):
        return vars(args)
    if isinstance(args, DinoConfig):
        return args.to_dict()
    if not isinstance(args, Mapping):
        raise TypeError(f"args must be a dict or argparse.Namespace, got {type(args).__name__}")
    return dict(args)


def backbone_kwargs_from_args(args) -> dict[str, Any]:
    """The original DINO ``FocalNet`` keyword arguments that ``build_backbone(args)`` would use.

    Known names: the original table (``focalnet_{L,XL}_384_22k[_fl4]``, ``focalnet_H_224_22k[_fl4]``) and, as an
    extension, every FocalNet registered here (``focalnet_tiny_srf`` ... ``focalnet_huge_fl4``). As in the
    original, ``args['focal_levels']``/``args['focal_windows']`` (when given) override the table for all stages.
    """
    a = _as_dict(args)
    name = a.get("backbone", "focalnet_L_384_22k_fl4")
    if name in ORIGINAL_BACKBONES:
        kw = {k: (list(v) if isinstance(v, list) else v) for k, v in ORIGINAL_BACKBONES[name].items()}
    else:
        from focalnet.models.registry import get_spec, list_models

        try:
            spec = get_spec(name)
        except KeyError:
            known = sorted(ORIGINAL_BACKBONES) + list_models("focalnet_*")
            raise ValueError(f"unknown DINO backbone {name!r}; known: {', '.join(known)}") from None
        if spec.family != "focalnet":
            raise ValueError(f"{name!r} is a {spec.family} model: pass backbone={{'name': {name!r}}} or a backbone "
                             "module instead of original FocalNet kwargs")
        kw = {k: v for k, v in spec.kwargs.items() if k not in ("img_size",)}
        n = len(kw.get("depths", [2, 2, 6, 2]))
        for k in ("focal_levels", "focal_windows"):
            if isinstance(kw.get(k), int):
                kw[k] = [kw[k]] * n
    if a.get("focal_levels") is not None:
        kw["focal_levels"] = [int(a["focal_levels"])] * 4
    if a.get("focal_windows") is not None:
        kw["focal_windows"] = [int(a["focal_windows"])] * 4
    kw["out_indices"] = tuple(a.get("return_interm_indices", (0, 1, 2, 3)))
    kw["use_checkpoint"] = bool(a.get("use_checkpoint", False))
    return kw


def build_backbone(spec, out_indices=None) -> nn.Module:
    """Our dense backbone from original FocalNet kwargs (dict), ``{'name': registry_name, ...}`` or a module."""
    from focalnet.backbones import FocalNetBackbone
    from focalnet.models.focalnet import FocalNet

    if isinstance(spec, nn.Module):
        if not hasattr(spec, "out_channels"):
            raise TypeError("a backbone module must expose out_channels (use focalnet.backbones.FocalNetBackbone)")
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"backbone must be a dict of FocalNet kwargs, a registered name dict or a module, "
                        f"got {type(spec).__name__}")
    spec = dict(spec)
    if "name" in spec:  # a registered model (FocalNet or Focal Transformer) through the shared adapter
        name = spec.pop("name")
        idx = tuple(spec.pop("out_indices", out_indices if out_indices is not None else (0, 1, 2, 3)))
        spec.setdefault("focal_windows", None)
        from focalnet.models.registry import get_spec

        if get_spec(name).family != "focalnet":
            spec.pop("focal_windows")
        return FocalNetBackbone.from_name(name, out_indices=idx, **spec)
    unknown = set(spec) - set(_ORIGINAL_DEFAULTS) - _IGNORED_KWARGS
    if unknown:
        raise ValueError(f"unknown FocalNet backbone arguments: {', '.join(sorted(unknown))}")
    if spec.get("norm_layer", nn.LayerNorm) is not nn.LayerNorm:
        raise ValueError("only nn.LayerNorm is supported as the backbone norm_layer")
    kw = {**_ORIGINAL_DEFAULTS, **{k: v for k, v in spec.items() if k not in _IGNORED_KWARGS}}
    idx = tuple(kw.pop("out_indices"))
    frozen = kw.pop("frozen_stages")
    kw["depths"] = list(kw["depths"])
    body = FocalNet(num_classes=0, stem_padding=2, **kw)
    body.norm = nn.Identity()  # the DINO backbone has one norm per output and no final norm
    return FocalNetBackbone(body, out_indices=idx, out_norm=True, frozen_stages=frozen)


# ------------------------------------------------------------------------------------------------ keys
_PLAIN = [  # (original prefix, ours)
    ("transformer.level_embed", "level_embed"),
    ("transformer.encoder.", "encoder."),
    ("transformer.decoder.layers.", "decoder.layers."),
    ("transformer.decoder.norm.", "decoder.norm."),
    ("transformer.decoder.ref_point_head.", "decoder.ref_point_head."),
    ("transformer.tgt_embed.", "tgt_embed."),
    ("transformer.refpoint_embed.", "refpoint_embed."),
    ("transformer.enc_output.", "enc_output."),
    ("transformer.enc_output_norm.", "enc_output_norm."),
    ("transformer.pat_embed_for_2stage", "pat_embed_for_2stage"),
    ("transformer.two_stage_wh_embedding.", "two_stage_wh_embedding."),
    ("label_enc.", "label_enc."),
    ("input_proj.", "input_proj."),
]
_HEAD = re.compile(r"^(?:transformer\.decoder\.)?(class_embed|bbox_embed)\.(\d+)\.(.*)$")
_ENC_HEAD = re.compile(r"^transformer\.enc_out_(class_embed|bbox_embed)\.(.*)$")
_BB_NORM = re.compile(r"^backbone\.0\.norm(\d+)\.(.*)$")


def _our_key(key: str, cfg: DinoConfig) -> str | None:
    m = _BB_NORM.match(key)
    if m:
        return f"backbone.norms.{m.group(1)}.{m.group(2)}"
    if key.startswith("backbone.0."):
        return "backbone.body." + key[len("backbone.0."):]
    m = _HEAD.match(key)
    if m:
        kind, i, rest = m.groups()
        share = cfg.dec_pred_class_embed_share if kind == "class_embed" else cfg.dec_pred_bbox_embed_share
        heads = "class_heads" if kind == "class_embed" else "box_heads"
        return f"{heads}.{0 if share else int(i)}.{rest}"
    m = _ENC_HEAD.match(key)
    if m:
        kind, rest = m.groups()
        if kind == "class_embed":
            return f"class_heads.0.{rest}" if cfg.two_stage_class_embed_share else f"enc_class_head.{rest}"
        return f"box_heads.0.{rest}" if cfg.two_stage_bbox_embed_share else f"enc_box_head.{rest}"
    for old, new in _PLAIN:
        if key.startswith(old):
            return new + key[len(old):]
    return None


def unwrap_original(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A bare state dict from a checkpoint dict (``{'model': sd, ...}``), without a DDP ``module.`` prefix."""
    sd = state_dict
    if "model" in sd and isinstance(sd["model"], Mapping):
        sd = sd["model"]
    sd = dict(sd)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def from_original_state_dict(state_dict: Mapping[str, Any], config: DinoConfig) -> dict[str, torch.Tensor]:
    """Original key names -> ours. Aliases of a shared head must be equal; unknown keys raise."""
    out: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    unknown = []
    for k, v in unwrap_original(state_dict).items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"state dict entry {k!r} is a {type(v).__name__}, not a tensor")
        ours = _our_key(k, config)
        if ours is None:
            unknown.append(k)
            continue
        if ours in out:
            if out[ours].shape != v.shape or not torch.equal(out[ours], v):
                raise CheckpointError(f"{k!r} and {source[ours]!r} are the same shared head in this configuration "
                                      "(dec_pred_*_embed_share / two_stage_*_embed_share) but hold different values")
            continue
        out[ours], source[ours] = v, k
    if unknown:
        raise CheckpointError(f"{len(unknown)} keys are not part of a DINO state dict: {', '.join(unknown[:8])}")
    return out


def to_original_state_dict(model: DINO) -> dict[str, torch.Tensor]:
    """Our DINO's state dict under the original key names, every shared-head alias included."""
    cfg = model.config
    ours = model.state_dict()
    inv = {new: old for old, new in _PLAIN}
    out: dict[str, torch.Tensor] = {}
    for k, v in ours.items():
        if k.startswith("backbone.norms."):
            i, rest = k[len("backbone.norms."):].split(".", 1)
            out[f"backbone.0.norm{i}.{rest}"] = v
        elif k.startswith("backbone.body."):
            out["backbone.0." + k[len("backbone.body."):]] = v
        elif k.startswith(("class_heads.", "box_heads.", "enc_class_head.", "enc_box_head.")):
            continue
        else:
            for new, old in inv.items():
                if k.startswith(new):
                    out[old + k[len(new):]] = v
                    break
            else:
                raise AssertionError(f"no original name for {k}")
    for i in range(cfg.dec_layers):
        for kind, head in (("class_embed", model.class_head(i)), ("bbox_embed", model.box_head(i))):
            for pk, pv in head.state_dict().items():
                out[f"transformer.decoder.{kind}.{i}.{pk}"] = pv
                out[f"{kind}.{i}.{pk}"] = pv
    if cfg.two_stage_type == "standard":
        for kind, head in (("class_embed", model._enc_class()), ("bbox_embed", model._enc_box())):
            for pk, pv in head.state_dict().items():
                out[f"transformer.enc_out_{kind}.{pk}"] = pv
    return out


def describe_state_dict(sd: Mapping[str, torch.Tensor]) -> str:
    """A one-line structure summary of an original DINO state dict (scales, backbone width, focal levels)."""
    sd = unwrap_original(sd)
    levels = sd.get("transformer.level_embed")
    n_levels = int(levels.shape[0]) if isinstance(levels, torch.Tensor) else None
    outs = sorted(int(m.group(1)) for k in sd if (m := re.match(r"^backbone\.0\.norm(\d+)\.weight$", k)))
    f = sd.get("backbone.0.layers.0.blocks.0.modulation.f.weight")
    dims = f" embed {f.shape[1]}, focal levels {f.shape[0] - 2 * f.shape[1] - 1}" if f is not None else ""
    k = sd.get("backbone.0.layers.0.blocks.0.modulation.focal_layers.0.0.weight")
    win = f", window {k.shape[-1]}" if k is not None else ""
    return f"{n_levels}-scale DINO (backbone outputs {outs}){';' if dims else ''}{dims}{win}"


def describe_model(model: DINO) -> str:
    return describe_state_dict(to_original_state_dict(model))


def load_original_state_dict(model: DINO, state_dict: Mapping[str, Any]) -> DINO:
    """Strictly load an original-layout state dict; a mismatch names both structures and the differing keys."""
    try:
        ours = from_original_state_dict(state_dict, model.config)
    except CheckpointError as e:
        raise CheckpointError(f"{e}\n  checkpoint: {describe_state_dict(state_dict)}\n  model:      "
                              f"{describe_model(model)}") from None
    mismatch = state_dict_mismatch(model.state_dict(), ours)
    if mismatch:
        raise CheckpointError(f"the checkpoint does not fit this DINO:\n  checkpoint: {describe_state_dict(state_dict)}"
                              f"\n  model:      {describe_model(model)}{mismatch}")
    model.load_state_dict(ours, strict=True)
    return model


def from_original(args, state_dict: Mapping[str, Any], backbone: dict | nn.Module | None = None) -> DINO:
    """Build our DINO from an original config (``args``: dict or Namespace, original names) and load an original
    state dict strictly; returns it in eval mode.

    ``backbone``: the original ``FocalNet`` keyword arguments (``None`` = derive them from ``args['backbone']``
    as the original ``build_backbone`` does), ``{'name': <registered model>, ...}``, or a backbone module.
    """
    cfg = DinoConfig.from_args(_as_dict(args))
    if backbone is None:
        backbone = backbone_kwargs_from_args(args)
    elif isinstance(backbone, Mapping) and "name" not in backbone:
        # The original build_backbone always builds FocalNet with out_indices=return_interm_indices, whatever the
        # kwargs say; follow it (a differing value is reported, not trusted).
        wanted = tuple(cfg.return_interm_indices)
        given = backbone.get("out_indices")
        if given is not None and tuple(given) != wanted:
            _logger.warning("backbone out_indices %s differ from return_interm_indices %s; using the latter, as the "
                            "original build_backbone does", tuple(given), wanted)
        backbone = {**backbone, "out_indices": wanted}
    bb = build_backbone(backbone, out_indices=cfg.return_interm_indices)
    model = DINO(bb, cfg)
    load_original_state_dict(model, state_dict)
    return model.eval()
