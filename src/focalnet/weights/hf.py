"""Hugging Face model folders (``save_pretrained`` / ``focalnet convert --to hf``): reading and writing the files
around the weights.

* :func:`read_hf_dir` reads ``config.json`` (our FocalNet keyword arguments: class count and every architecture
  flag, ``normalize_modulator`` included), ``preprocessor_config.json`` (resize, crop, interpolation, mean/std) and
  the weights file (``model.safetensors`` or ``pytorch_model.bin``).
* :func:`preprocessor_config` writes a ``BitImageProcessor`` config (what ``AutoImageProcessor`` and
  ``pipeline("image-classification")`` load for FocalNet) that reproduces our evaluation transform: resize the
  shorter side to ``floor(size / crop_pct)`` with the weights' interpolation, centre crop ``size``, normalise.
  Note that the hub's own ``microsoft/focalnet-*`` processors use bilinear, 256 -> 224, while the authors evaluated
  bicubic with crop 0.875; an exported folder carries the record's (the authors') setting.
* :func:`hf_id2label` gives ImageNet names in Hugging Face's style (all WordNet lemmas: ``"tench, Tinca tinca"``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focalnet.errors import InputNotFoundError

from .loading import CheckpointError

__all__ = ["HFDir", "read_hf_dir", "is_hf_dir", "preprocessor_config", "preprocess_from_processor", "hf_id2label"]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# PIL resample codes used by transformers' image processors
_RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
_RESAMPLE_NAME = {v: k for k, v in _RESAMPLE.items()}
# constructor flags that describe the trained network (not training settings such as drop_path_rate)
_ARCH_KEYS = ("img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depths", "mlp_ratio", "focal_levels",
              "focal_windows", "use_conv_embed", "use_layerscale", "layerscale_value", "use_postln",
              "use_postln_in_modulation", "normalize_modulator")


@dataclass
class HFDir:
    path: Path
    weights_file: Path
    config: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)  # our FocalNet constructor arguments from config.json
    says_normalize_modulator: bool = False  # config.json states normalize_modulator (true or false)
    preprocess: dict[str, Any] | None = None
    class_names: list[str] | None = None  # id2label, unless it is transformers' placeholder LABEL_i


def is_hf_dir(path: str | os.PathLike) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() and any((p / n).is_file() for n in WEIGHT_FILES)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable JSON file ({e})") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def read_hf_dir(path: str | os.PathLike) -> HFDir:
    """Read a Hugging Face FocalNet folder; raises :class:`CheckpointError` / ``FileNotFoundError`` saying what is
    missing or wrong."""
    from .convert import model_kwargs_from_hf_config

    p = Path(path).expanduser()
    files = [p / n for n in WEIGHT_FILES if (p / n).is_file()]
    if not files:
        raise InputNotFoundError(f"{p} is a folder without {' or '.join(WEIGHT_FILES)}")
    out = HFDir(path=p, weights_file=files[0])
    if (p / "config.json").is_file():
        cfg = _json(p / "config.json")
        if cfg.get("model_type") not in (None, "focalnet"):
            raise CheckpointError(f"{p / 'config.json'} describes a {cfg.get('model_type')!r} model, not FocalNet")
        out.config = cfg
        kw = model_kwargs_from_hf_config(cfg)
        out.says_normalize_modulator = "normalize_modulator" in cfg
        out.kwargs = {k: v for k, v in kw.items() if k in _ARCH_KEYS}
        if not out.says_normalize_modulator:
            out.kwargs.pop("normalize_modulator", None)
        labels = cfg.get("id2label") or {}
        try:
            names = [str(labels[k]) for k in sorted(labels, key=int)]
        except (TypeError, ValueError):
            names = []
        if names and not all(n == f"LABEL_{i}" for i, n in enumerate(names)):
            out.class_names = names
    if (p / "preprocessor_config.json").is_file():
        out.preprocess = preprocess_from_processor(_json(p / "preprocessor_config.json"))
    return out


def warn_unstated_normalize_modulator(model: Any, source: str) -> None:
    """The loud warning of issue #11: L/XL-fl4 weights from a timm/HF layout with nothing saying which reading."""
    flags = [getattr(m, "normalize_modulator", None) for m in model.modules() if hasattr(m, "focal_level")]
    if not any(flags):
        return
    warnings.warn(
        f"{source}: this model divides the modulator by (focal_level + 1) (normalize_modulator=True, the authors' "
        "reading for L/XL-fl4, spec and docs/weights.md), but timm and Hugging Face build these weights WITHOUT it "
        "and nothing in the file says which was meant; outputs differ (logits by ~1.5). Build with "
        "normalize_modulator=False to match timm/HF, or load a folder whose config.json states the flag.",
        UserWarning,
        stacklevel=3,
    )


def preprocessor_config(preprocess: dict[str, Any]) -> dict[str, Any]:
    """A transformers ``BitImageProcessor`` config reproducing our eval transform (``preprocess`` as in
    :func:`focalnet.data.preprocess_from_weights`: input_size, interpolation, crop_pct, mean, std)."""
    size = int(preprocess["input_size"])
    crop = float(preprocess.get("crop_pct", 1.0))
    interp = str(preprocess.get("interpolation", "bicubic"))
    if interp not in _RESAMPLE:
        raise ValueError(f"interpolation {interp!r} has no PIL resample code; use one of {sorted(_RESAMPLE)}")
    return {
        "image_processor_type": "BitImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": int(math.floor(size / crop))},  # timm's eval resize (floor(size / crop_pct))
        "resample": _RESAMPLE[interp],
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [float(v) for v in preprocess["mean"]],
        "image_std": [float(v) for v in preprocess["std"]],
    }


def preprocess_from_processor(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Our preprocess dict from a ``preprocessor_config.json`` (None if it has no centre crop to read)."""
    crop = cfg.get("crop_size") or {}
    size = crop.get("height") if isinstance(crop, dict) else crop
    short = (cfg.get("size") or {}).get("shortest_edge") if isinstance(cfg.get("size"), dict) else cfg.get("size")
    if not size or not short or not cfg.get("image_mean") or not cfg.get("image_std"):
        return None
    return {
        "input_size": int(size),
        "interpolation": _RESAMPLE_NAME.get(int(cfg.get("resample", 2)), "bilinear"),
        "crop_pct": float(size) / float(short),
        "mean": [float(v) for v in cfg["image_mean"]],
        "std": [float(v) for v in cfg["image_std"]],
    }


def hf_id2label(num_classes: int) -> dict[int, str] | None:
    """ImageNet-1K / -22K names in Hugging Face's style (comma-separated lemmas), or None for other counts."""
    sets = {1000: "imagenet-1k", 21842: "imagenet-22k-ms"}
    if num_classes not in sets:
        return None
    try:
        from timm.data import ImageNetInfo
    except ImportError:
        return None
    info = ImageNetInfo(sets[num_classes])
    return {i: info.index_to_description(i) for i in range(num_classes)}
