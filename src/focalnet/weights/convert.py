"""Pure functions between FocalNet state-dict layouts.

Our canonical layout is the authors' original checkpoint layout (``patch_embed.proj``, ``layers.i.blocks.j.
modulation.{f,h,proj,focal_layers.l.0,ln}``, ``gamma_1/2``, ``layers.i.downsample``, ``norm``, ``head``), so an
original ``.pth`` loads without renaming. Two other layouts are in circulation (spec §4.3):

* **timm** (``timm/focalnet_*``): ``stem``; the downsample of stage *i* moved to the *start* of stage *i+1*;
  ``lsN.gamma``; ``normN_post`` instead of ``normN`` in post-norm blocks; ``modulation.norm``; ``head.fc``; and
  the channels-first linears (``f``, ``proj``, ``mlp.fc1/fc2``) stored as 1x1 convolutions ``(o, i, 1, 1)``.
* **Hugging Face transformers** (``microsoft/focalnet-*``): ``focalnet.embeddings.patch_embeddings.projection``,
  ``focalnet.encoder.stages.i.layers.j``, ``modulation.projection_{in,context,out}``, ``modulation.layernorm``,
  ``downsample.projection``, ``focalnet.layernorm``, ``classifier``.

Every function here takes and returns plain ``{name: tensor}`` dicts and never touches the tensors' values, only
their names and (for timm's 1x1 convs) their shapes, so conversions are exact and round-trip bit for bit.

``to_canonical(model, sd)`` is what :func:`focalnet.weights.load_weights` calls. It dispatches on the model's
class: FocalNet gets the conversions above; any other family (e.g. the Focal Transformer) gets its state dict
back unchanged unless it registered its own converter with :func:`register_converter`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from .loading import CheckpointError, unwrap_state_dict

__all__ = [
    "LAYOUTS",
    "detect_layout",
    "register_converter",
    "to_canonical",
    "to_original",
    "to_timm",
    "to_hf",
    "from_timm",
    "from_hf",
    "hf_config",
    "timm_kwargs",
    "model_kwargs_from_hf_config",
]

_logger = logging.getLogger(__name__)

LAYOUTS = ("original", "timm", "hf")

Converter = Callable[[nn.Module, dict[str, torch.Tensor]], dict[str, torch.Tensor]]
_CONVERTERS: dict[str, Converter] = {}


def register_converter(model_cls_name: str, fn: Converter, *, replace: bool = False) -> None:
    """Let another model family convert foreign layouts into its own before a strict load.

    ``fn(model, state_dict) -> state_dict`` is called by :func:`to_canonical` for models whose class (or a base
    class) is named ``model_cls_name``. Registering a name twice is an error unless ``replace=True``.
    """
    if model_cls_name in _CONVERTERS and not replace:
        raise ValueError(f"a converter for {model_cls_name!r} is already registered")
    _CONVERTERS[model_cls_name] = fn


def _plain(sd: Mapping) -> dict[str, torch.Tensor]:
    """Accept ``{'model': sd}`` / ``{'state_dict': sd}`` wrappers and ``module.`` prefixes."""
    return unwrap_state_dict(sd)


# ---------------------------------------------------------------------------------------------------- detection
def detect_layout(sd: Mapping) -> str:
    """Name the layout of a FocalNet state dict: ``"original"`` (== ours), ``"timm"`` or ``"hf"``.

    Raises :class:`CheckpointError` when the keys fit none of them (e.g. another architecture's checkpoint).
    """
    keys = list(_plain(sd))
    if any(k.startswith(("focalnet.", "embeddings.patch_embeddings.", "encoder.stages.")) for k in keys):
        return "hf"
    if any(k.startswith("stem.") or ".ls1.gamma" in k or k.startswith("head.fc.") for k in keys):
        return "timm"
    if any(k.startswith("patch_embed.") for k in keys) or any(re.match(r"layers\.\d+\.blocks\.\d+\.", k) for k in keys):
        return "original"
    shown = ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")
    raise CheckpointError(
        f"unrecognised state-dict layout (first keys: {shown}); expected a FocalNet checkpoint in the original "
        "(patch_embed.*, layers.i.blocks.j.*), timm (stem.*, layers.i.blocks.j.ls1.gamma, head.fc.*) or Hugging Face "
        "(focalnet.embeddings.*, focalnet.encoder.stages.*) layout"
    )


# ---------------------------------------------------------------------------------------------------- timm
# Linear layers that timm stores as 1x1 convolutions (channels-first network). ``h`` is a 1x1 conv in both.
_TIMM_CONV1X1 = re.compile(r"(modulation\.(f|proj)|mlp\.fc[12])\.weight$")


def to_timm(sd: Mapping, *, use_postln: bool = False) -> dict[str, torch.Tensor]:
    """Original layout -> timm's ``FocalNet``.

    ``use_postln`` must say whether the blocks are post-norm (the L/XL/H models): the original layout has no key
    that tells, but timm names the post-norm LayerNorms ``normN_post``.
    """
    out = {}
    for k, v in to_original(sd).items():
        k = re.sub(r"gamma_([12])$", r"ls\1.gamma", k)
        k = re.sub(r"^patch_embed\.", "stem.", k)
        k = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", k)
        if use_postln:
            k = re.sub(r"(blocks\.\d+\.)norm([12])\.", r"\1norm\2_post.", k)
        k = k.replace("modulation.ln.", "modulation.norm.")
        k = re.sub(r"^head\.", "head.fc.", k)
        if _TIMM_CONV1X1.search(k) and v.ndim == 2:
            v = v.reshape(*v.shape, 1, 1)
        out[k] = v
    return out


def from_timm(sd: Mapping) -> dict[str, torch.Tensor]:
    """timm layout -> original (the exact inverse of timm's ``checkpoint_filter_fn``)."""
    out = {}
    for k, v in _plain(sd).items():
        if k.startswith("head.") and not k.startswith("head.fc."):
            raise CheckpointError(
                f"timm checkpoint has a head layer {k!r} that FocalNet does not have (head_hidden_size models are "
                "not FocalNet checkpoints)"
            )
        k = re.sub(r"ls([12])\.gamma$", r"gamma_\1", k)
        k = re.sub(r"^stem\.", "patch_embed.", k)
        k = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", k)
        k = re.sub(r"(blocks\.\d+\.)norm([12])_post\.", r"\1norm\2.", k)
        k = k.replace("modulation.norm.", "modulation.ln.")
        k = re.sub(r"^head\.fc\.", "head.", k)
        if _TIMM_CONV1X1.search(k) and v.ndim == 4:
            v = v.reshape(v.shape[0], v.shape[1])
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------- HF
# (original, HF) name pieces, applied in order inside a block / stem; see transformers' convert script.
_HF_BLOCK = (
    ("modulation.f.", "modulation.projection_in."),
    ("modulation.h.", "modulation.projection_context."),
    ("modulation.proj.", "modulation.projection_out."),
    ("modulation.ln.", "modulation.layernorm."),
)


def to_hf(sd: Mapping, *, prefix: str = "focalnet.", with_head: bool = True) -> dict[str, torch.Tensor]:
    """Original layout -> transformers' ``FocalNetForImageClassification`` (``prefix=""`` for ``FocalNetModel``).

    ``with_head=False`` drops the classifier (the HF backbone/model classes have none).
    """
    out = {}
    for k, v in to_original(sd).items():
        if k.startswith("head."):
            if with_head:
                out["classifier." + k[len("head.") :]] = v
            continue
        if k.startswith("patch_embed.proj."):
            k = "embeddings.patch_embeddings.projection." + k[len("patch_embed.proj.") :]
        elif k.startswith("patch_embed.norm."):
            k = "embeddings.norm." + k[len("patch_embed.norm.") :]
        elif k.startswith("norm."):
            k = "layernorm." + k[len("norm.") :]
        elif k.startswith("layers."):
            k = re.sub(r"^layers\.(\d+)\.blocks\.(\d+)\.", r"encoder.stages.\1.layers.\2.", k)
            k = re.sub(r"^layers\.(\d+)\.downsample\.proj\.", r"encoder.stages.\1.downsample.projection.", k)
            k = re.sub(r"^layers\.(\d+)\.downsample\.norm\.", r"encoder.stages.\1.downsample.norm.", k)
            for a, b in _HF_BLOCK:
                k = k.replace(a, b)
        else:
            raise CheckpointError(f"cannot express {k!r} in the Hugging Face FocalNet layout")
        out[prefix + k] = v
    return out


def from_hf(sd: Mapping) -> dict[str, torch.Tensor]:
    """Hugging Face layout (with or without the ``focalnet.`` prefix) -> original."""
    out = {}
    for k, v in _plain(sd).items():
        if k.startswith("classifier."):
            out["head." + k[len("classifier.") :]] = v
            continue
        if k.startswith("focalnet."):
            k = k[len("focalnet.") :]
        if k.startswith("embeddings.mask_token") or k.startswith("decoder.") or k.startswith("pooler"):
            continue  # masked-image-modelling extras: not part of the classifier
        if k.startswith("embeddings.patch_embeddings.projection."):
            k = "patch_embed.proj." + k[len("embeddings.patch_embeddings.projection.") :]
        elif k.startswith("embeddings.norm."):
            k = "patch_embed.norm." + k[len("embeddings.norm.") :]
        elif k.startswith("layernorm."):
            k = "norm." + k[len("layernorm.") :]
        elif k.startswith("encoder.stages."):
            k = re.sub(r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.", r"layers.\1.blocks.\2.", k)
            k = re.sub(r"^encoder\.stages\.(\d+)\.downsample\.projection\.", r"layers.\1.downsample.proj.", k)
            k = re.sub(r"^encoder\.stages\.(\d+)\.downsample\.norm\.", r"layers.\1.downsample.norm.", k)
            for a, b in _HF_BLOCK:
                k = k.replace(b, a)
        else:
            raise CheckpointError(f"unexpected key {k!r} in a Hugging Face FocalNet checkpoint")
        out[k] = v
    return out


def to_original(sd: Mapping) -> dict[str, torch.Tensor]:
    """Any supported layout -> original (== ours). Wrappers and ``module.`` prefixes are removed."""
    sd = _plain(sd)
    layout = detect_layout(sd)
    if layout == "timm":
        return from_timm(sd)
    if layout == "hf":
        return from_hf(sd)
    return dict(sd)


# ---------------------------------------------------------------------------------------------------- dispatch
def _focalnet_to_canonical(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    layout = detect_layout(sd)
    if layout != "original":
        _logger.info("converting a %s-layout FocalNet checkpoint to the original layout", layout)
    out = to_original(sd)
    # A 1x1-conv vs linear difference left over (e.g. a hand-made export): reshape only where the element count
    # agrees and the shapes differ by trailing singleton dimensions.
    own = model.state_dict()
    for k, v in out.items():
        ref = own.get(k)
        if ref is not None and ref.shape != v.shape and ref.numel() == v.numel():
            if [d for d in ref.shape if d != 1] == [d for d in v.shape if d != 1]:
                out[k] = v.reshape(ref.shape)
    # The model's key order (timm's moved downsamples reorder keys), unknown keys last for the error message.
    return {**{k: out[k] for k in own if k in out}, **{k: v for k, v in out.items() if k not in own}}


register_converter("FocalNet", _focalnet_to_canonical)


def to_canonical(model: nn.Module, sd: Mapping) -> dict[str, torch.Tensor]:
    """Convert ``sd`` into ``model``'s own layout (for FocalNet: original/timm/HF -> original).

    Other model families get ``sd`` back unchanged (wrappers removed) unless they registered a converter.
    """
    sd = _plain(sd)
    for cls in type(model).__mro__:
        fn = _CONVERTERS.get(cls.__name__)
        if fn is not None:
            return fn(model, sd)
    return sd


# ---------------------------------------------------------------------------------------------------- configs
def _per_stage(value: Any, n: int) -> list[int]:
    return [int(value)] * n if isinstance(value, int) else [int(v) for v in value]


def _full_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Our FocalNet constructor kwargs with every default filled in (so exporters see every flag)."""
    import inspect

    from focalnet.models.focalnet import FocalNet

    full = {
        name: p.default
        for name, p in inspect.signature(FocalNet.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    unknown = set(kwargs) - set(full)
    if unknown:
        raise ValueError(f"unknown FocalNet keyword arguments: {sorted(unknown)}")
    full.update(kwargs)
    full["depths"] = [int(d) for d in full["depths"]]
    n = len(full["depths"])
    full["focal_levels"] = _per_stage(full["focal_levels"], n)
    full["focal_windows"] = _per_stage(full["focal_windows"], n)
    return full


def hf_config(kwargs: Mapping[str, Any], *, id2label: Mapping[int, str] | None = None) -> dict[str, Any]:
    """A transformers ``FocalNetConfig`` dict equivalent to our FocalNet constructor ``kwargs``.

    Raises ``ValueError`` for what HF's FocalNet cannot express: per-stage embedding widths other than doubling,
    ``patch_norm=False`` or a MLP ratio HF rounds differently. ``normalize_modulator`` *is* supported by
    transformers' FocalNet (``FocalNetConfig.normalize_modulator``), although its checkpoint converter never sets it.
    """
    kw = _full_kwargs(kwargs)
    n = len(kw["depths"])
    embed = kw["embed_dim"]
    if not isinstance(embed, int):
        dims = [int(d) for d in embed]
        if dims != [dims[0] * 2**i for i in range(n)]:
            raise ValueError(f"Hugging Face FocalNet needs widths doubling per stage, got {dims}")
        embed = dims[0]
    if not kw["patch_norm"]:
        raise ValueError("Hugging Face FocalNet always has a stem LayerNorm; patch_norm=False cannot be exported")
    num_classes = int(kw["num_classes"])
    if id2label is None:
        id2label = {i: f"LABEL_{i}" for i in range(num_classes)}
    return {
        "model_type": "focalnet",
        "architectures": ["FocalNetForImageClassification"],
        "image_size": int(kw["img_size"]),
        "patch_size": int(kw["patch_size"]),
        "num_channels": int(kw["in_chans"]),
        "embed_dim": int(embed),
        "hidden_sizes": [int(embed) * 2 ** (i + 1) for i in range(n - 1)] + [int(embed) * 2 ** (n - 1)],
        "depths": kw["depths"],
        "focal_levels": kw["focal_levels"],
        "focal_windows": kw["focal_windows"],
        "use_conv_embed": bool(kw["use_conv_embed"]),
        "use_layerscale": bool(kw["use_layerscale"]),
        "layerscale_value": float(kw["layerscale_value"]),
        "use_post_layernorm": bool(kw["use_postln"]),
        "use_post_layernorm_in_modulation": bool(kw["use_postln_in_modulation"]),
        "normalize_modulator": bool(kw["normalize_modulator"]),
        "mlp_ratio": float(kw["mlp_ratio"]),
        "hidden_act": "gelu",
        "hidden_dropout_prob": float(kw["drop_rate"]),
        "drop_path_rate": float(kw["drop_path_rate"]),
        "layer_norm_eps": 1e-5,
        "initializer_range": 0.02,
        "encoder_stride": int(kw["patch_size"]) * 2 ** (n - 1),
        "id2label": {str(i): str(v) for i, v in dict(id2label).items()},
        "label2id": {str(v): int(i) for i, v in dict(id2label).items()},
    }


def model_kwargs_from_hf_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Our FocalNet constructor kwargs from a transformers ``config.json`` dict (the inverse of :func:`hf_config`)."""
    n = len(cfg.get("depths", (2, 2, 6, 2)))
    num_labels = len(cfg["id2label"]) if cfg.get("id2label") else int(cfg.get("num_labels", 1000))
    img = cfg.get("image_size", 224)
    patch = cfg.get("patch_size", 4)
    return {
        "img_size": int(img[0] if isinstance(img, (list, tuple)) else img),
        "patch_size": int(patch[0] if isinstance(patch, (list, tuple)) else patch),
        "in_chans": int(cfg.get("num_channels", 3)),
        "num_classes": num_labels,
        "embed_dim": int(cfg.get("embed_dim", 96)),
        "depths": list(cfg.get("depths", (2, 2, 6, 2))),
        "mlp_ratio": float(cfg.get("mlp_ratio", 4.0)),
        "drop_path_rate": float(cfg.get("drop_path_rate", 0.1)),
        "focal_levels": _per_stage(cfg.get("focal_levels", 2), n),
        "focal_windows": _per_stage(cfg.get("focal_windows", 3), n),
        "use_conv_embed": bool(cfg.get("use_conv_embed", False)),
        "use_layerscale": bool(cfg.get("use_layerscale", False)),
        "layerscale_value": float(cfg.get("layerscale_value", 1e-4)),
        "use_postln": bool(cfg.get("use_post_layernorm", False)),
        "use_postln_in_modulation": bool(cfg.get("use_post_layernorm_in_modulation", False)),
        "normalize_modulator": bool(cfg.get("normalize_modulator", False)),
    }


def timm_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``timm.models.focalnet.FocalNet`` equivalent to our FocalNet ``kwargs``.

    timm's FocalNet is hierarchical only (stride-4 stem), so the isotropic variants cannot be expressed.
    """
    kw = _full_kwargs(kwargs)
    if kw["patch_size"] != 4 or not isinstance(kw["embed_dim"], int) or not kw["patch_norm"]:
        raise ValueError("timm's FocalNet supports only the hierarchical, patch-4, doubling-width models")
    return {
        "in_chans": int(kw["in_chans"]),
        "num_classes": int(kw["num_classes"]),
        "embed_dim": int(kw["embed_dim"]),
        "depths": tuple(kw["depths"]),
        "mlp_ratio": float(kw["mlp_ratio"]),
        "focal_levels": tuple(kw["focal_levels"]),
        "focal_windows": tuple(kw["focal_windows"]),
        "use_overlap_down": bool(kw["use_conv_embed"]),
        "use_post_norm": bool(kw["use_postln"]),
        "use_post_norm_in_modulation": bool(kw["use_postln_in_modulation"]),
        "normalize_modulator": bool(kw["normalize_modulator"]),
        "layerscale_value": float(kw["layerscale_value"]) if kw["use_layerscale"] else None,
        "drop_path_rate": float(kw["drop_path_rate"]),
    }
