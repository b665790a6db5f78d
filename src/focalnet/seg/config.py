"""Typed configuration of a segmentation run: dataclasses that reject unknown keys, loadable from YAML.

A recipe is one YAML file (``task: segmentation``) with the engine's top-level keys
(:class:`focalnet.engine.config.RunConfig`: seed, device, amp, ``eval_every_steps``, ``save_every_steps``,
``log_every``, ``max_steps``, ...) and the sections ``model``, ``data``, ``optim`` and ``test``; every key must be a
field below (a typo is an error, never a silently ignored setting). Dotted overrides such as ``optim.max_iters=100`` are
applied on top, with the value parsed as YAML so numbers, lists and booleans keep their types. The resolved config
is saved next to every checkpoint, so a checkpoint alone says how it was trained and how to evaluate it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from focalnet.engine.config import RunConfig, validate_run
from focalnet.utils.config import ConfigError, from_dict, read_yaml, to_dict
from focalnet.utils.config import apply_overrides as _apply

__all__ = [
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "TestConfig",
    "SegConfig",
    "ConfigError",
    "load_config",
    "apply_overrides",
]


_UNKNOWN = "unknown key(s) in {section}: {name}"  # the wording of this module's errors before the shared machinery


@dataclass
class ModelConfig:
    """UPerNet + FCN auxiliary head on a FocalNet backbone (defaults: the authors' ADE20K recipe)."""

    backbone: str = "focalnet_tiny_srf"  # a registered variant name
    backbone_kwargs: dict[str, Any] = field(  # overrides of the variant, as in the original seg configs
        default_factory=lambda: {"focal_windows": 9, "drop_path_rate": 0.3}
    )
    pretrained: str | None = None  # classification checkpoint (path/URL) loaded with the original rules
    frozen_stages: int = -1
    num_classes: int = 150
    channels: int = 512  # UPerNet decode channels
    pool_scales: list[int] = field(default_factory=lambda: [1, 2, 3, 6])
    dropout: float = 0.1  # Dropout2d before each classifier, as mmseg's decode heads
    aux_channels: int = 256
    aux_in_index: int = 2  # FCN auxiliary head on backbone stage 2 (stride 16)
    aux_weight: float = 0.4  # 0 disables the auxiliary head
    ignore_index: int = 255


@dataclass
class DataConfig:
    """An ADE20K-layout folder: ``<root>/<img_dir>/*.jpg`` + ``<root>/<ann_dir>/*.png`` per split.

    The defaults are ADE20K's own folder names; the authors' configs use ``images/{train,validation}`` +
    ``annotations/{train,val}``, which are just other values of the four ``*_dir`` fields.
    """

    root: str = "data/ade/ADEChallengeData2016"
    train_img_dir: str = "images/training"
    train_ann_dir: str = "annotations/training"
    val_img_dir: str = "images/validation"
    val_ann_dir: str = "annotations/validation"
    img_suffix: str = ".jpg"
    ann_suffix: str = ".png"
    # ADE20K: index 0 is "other" and ignored; classes 1..150 become 0..149 (mmseg reduce_zero_label=True).
    reduce_zero_label: bool = True
    class_names: list[str] | None = None  # optional, for reports; length must equal model.num_classes
    img_scale: list[int] = field(default_factory=lambda: [2048, 512])  # (long, short) bound, keep ratio
    ratio_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    crop_size: list[int] = field(default_factory=lambda: [512, 512])  # (h, w)
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric: bool = True
    mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])  # RGB, 0..255 (mmseg)
    std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])
    workers: int = 2
    check: bool = True  # validate every image/mask pair before training (sizes, label values)


@dataclass
class OptimConfig:
    """AdamW + poly schedule with linear warm-up, iteration based (the original 160k recipe by default)."""

    max_iters: int = 160_000  # the schedule's length (optimizer steps)
    batch_size: int = 16  # per process and micro-step; the original runs 2 per GPU on 8 GPUs
    accum_steps: int = 1
    lr: float = 6e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.01
    norm_decay_mult: float = 0.0  # backbone parameters whose name contains "norm" (mmcv custom_keys)
    power: float = 1.0
    min_lr: float = 0.0
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6
    grad_clip: float | None = None


@dataclass
class TestConfig:
    """How images are evaluated: whole image, or sliding windows; optional multi-scale + flip."""

    mode: str = "whole"  # "whole" | "slide"
    crop_size: list[int] = field(default_factory=lambda: [512, 512])  # slide window (h, w)
    stride: list[int] = field(default_factory=lambda: [341, 341])  # slide stride (h, w)
    aug_ratios: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75])  # --aug-test
    flip: bool = True  # with --aug-test
    aug: bool = False  # evaluate multi-scale + flip (what --aug-test sets)


@dataclass
class SegConfig(RunConfig):
    """A segmentation run: the engine's top-level keys plus ``model``, ``data``, ``optim`` and ``test``."""

    task: str = "segmentation"
    name: str = "segment"
    eval_every_steps: int = 16_000  # iteration-based: evaluate (and checkpoint) every N steps and at the end
    save_every_steps: int = 16_000
    log_every: int = 50
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    test: TestConfig = field(default_factory=TestConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SegConfig:
        return from_dict(cls, d or {}, unknown=_UNKNOWN)

    def validate(self) -> SegConfig:
        validate_run(self)
        m, d, t, s = self.model, self.data, self.optim, self.test
        if m.num_classes < 2:
            raise ConfigError(f"model.num_classes must be >= 2, got {m.num_classes}")
        if d.class_names is not None and len(d.class_names) != m.num_classes:
            raise ConfigError(f"data.class_names has {len(d.class_names)} names for {m.num_classes} classes")
        if not 0 <= m.ignore_index < 256 or m.ignore_index < m.num_classes:
            raise ConfigError(f"model.ignore_index must be in [num_classes, 255], got {m.ignore_index}")
        if s.mode not in {"whole", "slide"}:
            raise ConfigError(f"test.mode must be 'whole' or 'slide', got {s.mode!r}")
        pairs = (("data.img_scale", d.img_scale), ("data.crop_size", d.crop_size), ("test.crop_size", s.crop_size),
                 ("test.stride", s.stride), ("data.ratio_range", d.ratio_range))
        for name, v in pairs:
            if len(v) != 2 or min(v) <= 0:
                raise ConfigError(f"{name} must be two positive numbers, got {v}")
        if t.batch_size < 2:
            raise ConfigError("optim.batch_size must be >= 2: the heads' BatchNorm needs more than one sample")
        if t.max_iters < 1 or t.warmup_iters < 0 or t.accum_steps < 1:
            raise ConfigError("optim.max_iters and optim.accum_steps must be >= 1 and optim.warmup_iters >= 0")
        if not t.lr > 0 or t.min_lr < 0 or t.weight_decay < 0 or not 0 < t.warmup_ratio <= 1:
            raise ConfigError(f"optim.lr must be > 0 (got {t.lr}), optim.min_lr and optim.weight_decay >= 0, "
                              "optim.warmup_ratio in (0, 1]")
        if any(v == 0 for v in d.std) or len(d.std) != 3 or len(d.mean) != 3:
            raise ConfigError(f"data.std={d.std}: three non-zero values (R, G, B) are needed")
        if d.workers < 0:
            raise ConfigError("data.workers must be >= 0")
        from focalnet.models.registry import check_model_kwargs

        check_model_kwargs(m.backbone, dict(m.backbone_kwargs), None, "model.backbone", "model.backbone_kwargs")
        return self


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a config dict (values parsed as YAML)."""
    return _apply(d, overrides, SegConfig, unknown=_UNKNOWN)


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> SegConfig:
    """Read a YAML recipe (or start from the defaults), apply dotted overrides, validate."""
    d = read_yaml(path) if path is not None else {}
    d.setdefault("task", "segmentation")
    return SegConfig.from_dict(apply_overrides(d, overrides or [])).validate()
