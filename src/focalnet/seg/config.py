"""Typed configuration of a segmentation run: dataclasses that reject unknown keys, loadable from YAML.

A recipe is one YAML file with the sections ``model``, ``data``, ``train`` and ``test``; every key must be a field
below (a typo is an error, never a silently ignored setting). Dotted overrides such as ``train.max_iters=100`` are
applied on top, with the value parsed as YAML so numbers, lists and booleans keep their types. The resolved config
is saved next to every checkpoint, so a checkpoint alone says how it was trained and how to evaluate it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "TestConfig",
    "SegConfig",
    "ConfigError",
    "load_config",
    "apply_overrides",
]


class ConfigError(ValueError):
    """A config file or override that does not match the schema."""


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
class TrainConfig:
    """AdamW + poly schedule with linear warm-up, iteration based (the original 160k recipe by default)."""

    max_iters: int = 160_000
    batch_size: int = 16  # total; the original runs 2 per GPU on 8 GPUs
    lr: float = 6e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.01
    norm_decay_mult: float = 0.0  # backbone parameters whose name contains "norm" (mmcv custom_keys)
    power: float = 1.0
    min_lr: float = 0.0
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6
    eval_interval: int = 16_000
    checkpoint_interval: int = 16_000
    log_interval: int = 50
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False  # the original trains in fp32


@dataclass
class TestConfig:
    """How images are evaluated: whole image, or sliding windows; optional multi-scale + flip."""

    mode: str = "whole"  # "whole" | "slide"
    crop_size: list[int] = field(default_factory=lambda: [512, 512])  # slide window (h, w)
    stride: list[int] = field(default_factory=lambda: [341, 341])  # slide stride (h, w)
    aug_ratios: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75])  # --aug-test
    flip: bool = True  # with --aug-test


@dataclass
class SegConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SegConfig:
        return _build(cls, d or {}, "")

    def validate(self) -> SegConfig:
        m, d, t, s = self.model, self.data, self.train, self.test
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
            raise ConfigError("train.batch_size must be >= 2: the heads' BatchNorm needs more than one sample")
        if t.max_iters < 1 or t.warmup_iters < 0:
            raise ConfigError("train.max_iters must be >= 1 and train.warmup_iters >= 0")
        return self


def _build(cls, d: Any, where: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) in {where or 'config'}: {', '.join(unknown)}; known: {', '.join(fields)}")
    kwargs = {}
    for k, v in d.items():
        f = fields[k]
        sub = f.default_factory if dataclasses.is_dataclass(f.default_factory) else None  # type: ignore[arg-type]
        kwargs[k] = _build(sub, v, f"{where}{k}.") if sub is not None else _coerce(v, str(f.type), where + k)
    return cls(**kwargs)


def _coerce(v: Any, typ: str, key: str) -> Any:
    """Check a scalar against its annotation; YAML 1.1 reads ``1e-3`` as a string, so numbers are converted."""
    optional = typ.endswith("| None")
    base = typ.removesuffix("| None").strip()
    if v is None:
        if optional:
            return None
        raise ConfigError(f"{key} must not be null")
    try:
        if base == "float" and not isinstance(v, bool):
            return float(v)
        if base == "int" and not isinstance(v, bool) and float(v) == int(float(v)):
            return int(float(v))
    except (TypeError, ValueError):
        pass
    else:
        if base not in {"float", "int"}:
            if base == "bool" and not isinstance(v, bool):
                raise ConfigError(f"{key} must be true or false, got {v!r}")
            if base == "str" and not isinstance(v, str):
                raise ConfigError(f"{key} must be a string, got {v!r}")
            if base.startswith("list") and not isinstance(v, list):
                raise ConfigError(f"{key} must be a list, got {v!r}")
            if base.startswith("dict") and not isinstance(v, dict):
                raise ConfigError(f"{key} must be a mapping, got {v!r}")
            return v
    raise ConfigError(f"{key} must be a{'n' if base == 'int' else ''} {base}, got {v!r}")


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a config dict (values parsed as YAML)."""
    import yaml

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        path, value = item.split("=", 1)
        keys = path.strip().split(".")
        node = d
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {k!r} is not a section")
        node[keys[-1]] = yaml.safe_load(value)
    return d


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> SegConfig:
    """Read a YAML recipe (or start from the defaults), apply dotted overrides, validate."""
    import yaml

    d: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        d = yaml.safe_load(p.read_text()) or {}
    d = apply_overrides(d, overrides or [])
    return SegConfig.from_dict(d).validate()
