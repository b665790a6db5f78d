"""Typed detection recipes: dataclasses that reject unknown keys, loaded from YAML with dotted overrides.

Type checks, overrides and YAML come from :mod:`focalnet.utils.config`; ``DetConfig.to_dict()`` is saved inside
every checkpoint so ``eval``/``predict`` rebuild exactly the trained model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from focalnet.utils.config import ConfigError, apply_overrides, from_dict, read_yaml, to_dict

__all__ = ["ModelConfig", "DataConfig", "SyntheticData", "OptimConfig", "DetConfig", "ConfigError", "load_config"]

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
    max_iters: int | None = None  # stop early (demos, tests); None: run every epoch


@dataclass
class DetConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output_dir: str = "runs/detect"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False  # bf16 autocast on CUDA
    eval_every: int = 1  # epochs; 0 evaluates only at the end
    log_every: int = 20

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetConfig:
        return from_dict(cls, d, unknown=_UNKNOWN, mismatch="config key {key!r} expects {name}, got {value!r}")


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> DetConfig:
    """Read a YAML recipe (or the defaults) and apply ``key.sub=value`` overrides (values parsed as YAML)."""
    raw = read_yaml(path) if path is not None else {}
    return DetConfig.from_dict(apply_overrides(raw, overrides or [], DetConfig, unknown=_UNKNOWN))
