"""Typed detection recipes: dataclasses that reject unknown keys, loaded from YAML with dotted overrides.

Type checks, overrides and YAML come from :mod:`focalnet.utils.config`; the engine's top-level keys (run folder,
device, precision, ``max_steps``, ...) from :class:`focalnet.engine.config.RunConfig`. The resolved config is saved
inside every checkpoint so ``eval``/``predict`` rebuild exactly the trained model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from focalnet.engine.config import RunConfig, validate_run
from focalnet.utils.config import ConfigError, apply_overrides, from_dict, read_yaml, to_dict

__all__ = ["ModelConfig", "DataConfig", "SyntheticData", "OptimConfig", "DetConfig", "ConfigError", "load_config",
           "validate"]

_UNKNOWN = "unknown config key(s) {key!r}"  # this module's wording before the shared machinery


@dataclass
class ModelConfig:
    arch: str = "mask_rcnn"  # mask_rcnn | retinanet | fcos | cascade_mask_rcnn | atss | sparse_rcnn
    backbone: str = "focalnet_tiny_srf"  # a registered FocalNet variant
    focal_windows: int | list[int] | None = 9  # every published detection config uses 9
    focal_levels: int | list[int] | None = None  # None: the variant's (2 srf, 3 lrf)
    drop_path_rate: float | None = None
    # Classification weights loaded with the original rules: a path / URL, or true for the variant's released ones.
    pretrained: bool | str | None = None
    frozen_stages: int = -1
    stem_padding: int | None = None
    use_checkpoint: bool = False  # per-block activation checkpointing in the backbone
    backbone_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. embed_dim/depths for tiny demos
    fpn_channels: int = 256
    # Shorter side: training picks one at random per batch (multi-scale 480-800), evaluation uses the last.
    min_size: list[int] = field(default_factory=lambda: list(range(480, 801, 32)))
    max_size: int = 1333
    anchor_sizes: list[int] | None = None
    box_head_dim: int = 1024
    mask_head_dims: list[int] = field(default_factory=lambda: [256, 256, 256, 256])
    detector: dict[str, Any] = field(default_factory=dict)  # extra torchvision kwargs (rpn/roi sampling, ...)


@dataclass
class SyntheticData:
    """Generate the offline synthetic COCO set (see focalnet.data.coco) under ``root`` if it is not there."""

    root: str = "data/synthetic_coco"
    n_train: int = 200
    n_val: int = 50
    size: int = 128
    seed: int = 0


@dataclass
class DataConfig:
    train_images: str = ""
    train_ann: str = ""
    val_images: str = ""
    val_ann: str = ""
    synthetic: SyntheticData | None = None  # when set, overrides the four paths above
    hflip: float = 0.5
    keep_empty: bool = False  # train on images without objects too (default: skipped, as mmdet's filter_empty_gt)
    num_workers: int = 2


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.05
    epochs: int = 12
    steps: list[int] = field(default_factory=lambda: [9, 11])  # epochs after which lr *= gamma
    gamma: float = 0.1
    warmup_iters: int = 500
    warmup_ratio: float = 0.001
    batch_size: int = 2  # images per step on this device
    accumulate: int = 1  # gradient accumulation: the recipes' 16 images = 2 x 8 (GPUs or accumulation steps)
    clip_grad: float | None = None


@dataclass
class DetConfig(RunConfig):
    """A detection run: the engine's top-level keys plus ``model``, ``data`` and ``optim``."""

    task: str = "detection"
    name: str = "detect"
    log_every: int = 20
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetConfig:
        cfg = from_dict(cls, d, unknown=_UNKNOWN, mismatch="config key {key!r} expects {name}, got {value!r}")
        validate_run(cfg)
        validate(cfg)
        return cfg


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> DetConfig:
    """Read a YAML recipe (or the defaults) and apply ``key.sub=value`` overrides (values parsed as YAML)."""
    raw = read_yaml(path) if path is not None else {}
    raw.setdefault("task", "detection")
    return DetConfig.from_dict(apply_overrides(raw, overrides or [], DetConfig, unknown=_UNKNOWN))


def validate(cfg: DetConfig) -> None:
    """Checks before any work; each error names the key."""
    from focalnet.det.models import ARCHS as known

    m, o, d = cfg.model, cfg.optim, cfg.data
    if m.arch not in known:
        raise ConfigError(f"model.arch={m.arch!r} is not one of {', '.join(known)}")
    if not o.lr > 0:
        raise ConfigError(f"optim.lr must be > 0, got {o.lr}")
    if o.batch_size < 1 or o.accumulate < 1 or o.epochs < 1:
        raise ConfigError("optim.batch_size, optim.accumulate and optim.epochs must be >= 1")
    if o.weight_decay < 0 or o.warmup_iters < 0 or not 0 < o.warmup_ratio <= 1 or o.gamma <= 0:
        raise ConfigError("optim.weight_decay and optim.warmup_iters must be >= 0, optim.warmup_ratio in (0, 1], "
                          "optim.gamma > 0")
    if not 0 <= d.hflip <= 1:
        raise ConfigError(f"data.hflip must be in [0, 1], got {d.hflip}")
    if d.num_workers < 0:
        raise ConfigError("data.num_workers must be >= 0")
    if not m.min_size or min(m.min_size) < 32 or m.max_size < max(m.min_size):
        raise ConfigError(f"model.min_size {m.min_size} must be sizes >= 32 and <= model.max_size {m.max_size}")
    if m.fpn_channels < 1 or m.box_head_dim < 1:
        raise ConfigError("model.fpn_channels and model.box_head_dim must be >= 1")
    from focalnet.models.registry import check_model_kwargs

    kw = dict(m.backbone_overrides)
    for k in ("focal_windows", "focal_levels"):
        if getattr(m, k) is not None:
            kw.setdefault(k, getattr(m, k))
    check_model_kwargs(m.backbone, kw, None, "model.backbone", "model.backbone_overrides")
