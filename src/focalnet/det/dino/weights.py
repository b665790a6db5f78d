"""The released FocalNet-DINO checkpoints: records, safe loading, structure checks, backbone extraction.

A released file is ``{'model': state_dict, 'optimizer', 'lr_scheduler', 'epoch', 'args'}`` with ``args`` an
``argparse.Namespace`` (the whole training config). It is read with ``torch.load(weights_only=True)`` allowing
exactly ``argparse.Namespace`` and nothing else, memory-mapped where the format allows so the optimizer state
(most of the 2.7 GB) is never read into memory, and that state is dropped at once. The structure (4/5 scales,
fl3/fl4 backbone) comes from the file's own ``args``; asking for another structure is an error naming both.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focalnet.weights.loading import CheckpointError, state_dict_mismatch

from .config import DinoConfig
from .convert import backbone_kwargs_from_args, from_original, unwrap_original
from .model import DINO

__all__ = [
    "COCO_CATEGORY_NAMES",
    "coco_label_names",
    "read_dino_checkpoint",
    "load_released_dino",
    "dino_backbone_state_dict",
    "load_dino_backbone",
    "structure_of",
]

_logger = logging.getLogger(__name__)

# COCO category id -> name: the 80 classes of the 91-slot head (DINO predicts the category id itself).
COCO_CATEGORY_NAMES: dict[int, str] = dict(enumerate((
    None, "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", None, "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", None, "backpack", "umbrella", None, None, "handbag", "tie", "suitcase",
    "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
    "surfboard", "tennis racket", "bottle", None, "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana",
    "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", None, "dining table", None, None, "toilet", None, "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", None, "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)))
COCO_CATEGORY_NAMES = {k: v for k, v in COCO_CATEGORY_NAMES.items() if v is not None}


def coco_label_names(num_slots: int = 91) -> list[str]:
    """One name per logit of a ``num_slots``-slot COCO head; unused ids are ``"N/A"``."""
    return [COCO_CATEGORY_NAMES.get(i, "N/A") for i in range(num_slots)]


def structure_of(args: Mapping[str, Any] | argparse.Namespace | DinoConfig) -> str:
    """E.g. ``5-scale (backbone stages [0, 1, 2, 3] + 1 extra), focalnet_L_384_22k_fl4 (focal levels 4, windows 3)``."""
    a = args.to_dict() if isinstance(args, DinoConfig) else dict(vars(args) if isinstance(args,
                                                                                          argparse.Namespace) else args)
    idx = list(a.get("return_interm_indices", [0, 1, 2, 3]))
    n = a.get("num_feature_levels", 4)
    bb = backbone_kwargs_from_args(a)
    return (f"{n}-scale (backbone stages {idx} + {max(0, n - len(idx))} extra), {a.get('backbone')} "
            f"(focal levels {bb['focal_levels'][0]}, windows {bb['focal_windows'][0]})")


def read_dino_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a released (or our training's original-layout) DINO file -> ``(args as dict, model state dict)``.

    Only ``argparse.Namespace`` may appear in the pickle besides tensors and containers; anything else is refused
    without running it. The optimizer/scheduler state is dropped before returning.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"DINO checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"DINO checkpoint {path} is empty (0 bytes); the download was interrupted")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:  # memory-map: the optimizer state (most of the file) is never read
                ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e) and "zip" not in str(e).lower():
                    raise
                ckpt = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as e:
        first = str(e).splitlines()[0][:300]
        raise CheckpointError(f"refusing to load {path}: its pickle holds objects other than tensors, containers and "
                              f"argparse.Namespace ({first}); it is not a FocalNet-DINO checkpoint, or it was "
                              "tampered with") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path} is truncated or corrupt and cannot be read ({str(e).splitlines()[0][:200]}); "
                              "download it again") from None
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model", ckpt), Mapping):
        raise CheckpointError(f"{path} does not hold a DINO checkpoint dict (got {type(ckpt).__name__})")
    ckpt = dict(ckpt)
    for key in ("optimizer", "lr_scheduler", "ema_model"):
        ckpt.pop(key, None)  # drop the training state at once
    args = ckpt.get("args")
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    sd = unwrap_original(ckpt)
    del ckpt
    return (dict(args) if isinstance(args, Mapping) else {}), sd


def load_released_dino(
    path: str | os.PathLike,
    expect: Mapping[str, Any] | argparse.Namespace | DinoConfig | None = None,
    backbone: dict | nn.Module | None = None,
    args: Mapping[str, Any] | None = None,
) -> DINO:
    """Our DINO (eval mode) from a released FocalNet-DINO file, its structure taken from the file's ``args``.

    ``expect``: the structure the caller meant (a recipe's config); if the file is another structure (4- vs
    5-scale, fl3 vs fl4) the error names both. ``args`` overrides/supplies the config for files saved without it.
    """
    file_args, sd = read_dino_checkpoint(path)
    cfg_args = dict(file_args)
    if args is not None:
        cfg_args.update(args)
    if not cfg_args:
        raise CheckpointError(f"{path} carries no 'args' (the training config); pass args= with the original "
                              "config names (e.g. the values of config/DINO/DINO_5scale_focalnet_large_fl4.py)")
    if expect is not None:
        want, have = structure_of(expect), structure_of(cfg_args)
        if want != have:
            raise CheckpointError(f"{path} is a {have} DINO, but a {want} DINO was asked for; use the recipe "
                                  "of the file's structure (its args say which)")
    model = from_original(cfg_args, sd, backbone)
    _logger.info("loaded %s: %s", path, structure_of(cfg_args))
    return model


def dino_backbone_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``backbone.0.*`` part of a DINO state dict, in :class:`~focalnet.backbones.FocalNetBackbone` names."""
    out = {}
    for k, v in unwrap_original(sd).items():
        if not k.startswith("backbone.0."):
            continue
        rest = k[len("backbone.0."):]
        head, _, tail = rest.partition(".")
        if head.startswith("norm") and head[4:].isdigit():
            out[f"norms.{head[4:]}.{tail}"] = v
        else:
            out["body." + rest] = v
    if not out:
        raise CheckpointError("the state dict has no backbone.0.* keys: it is not a FocalNet-DINO checkpoint")
    return out


def load_dino_backbone(backbone: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a DINO checkpoint's backbone (``backbone.0.*`` with its ``norm{i}``) strictly into a FocalNetBackbone."""
    sd = read_dino_checkpoint(source)[1] if not isinstance(source, Mapping) else source
    ours = dino_backbone_state_dict(sd)
    mismatch = state_dict_mismatch(backbone.state_dict(), ours)
    if mismatch:
        raise CheckpointError("the DINO backbone does not fit this FocalNetBackbone (check out_indices and the "
                              f"variant):{mismatch}")
    backbone.load_state_dict(ours, strict=True)
    return backbone
