"""Typed detection recipes: dataclasses that reject unknown keys, loaded from YAML with dotted overrides.

Deliberately small and self-contained (one file, no framework); ``DetConfig.to_dict()`` is saved inside every
checkpoint so ``eval``/``predict`` rebuild exactly the trained model.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

__all__ = ["ModelConfig", "DataConfig", "SyntheticData", "OptimConfig", "DetConfig", "load_config"]


@dataclass
class ModelConfig:
    arch: str = "mask_rcnn"  # mask_rcnn | retinanet | fcos
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
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetConfig:
        return _build(cls, d, "")


def _build(cls, d: Any, where: str):
    if not isinstance(d, dict):
        raise ValueError(f"config section {where or '<root>'!r} must be a mapping, got {type(d).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(repr(where + k) for k in unknown)}; "
                         f"valid keys{' in ' + where[:-1] if where else ''}: {', '.join(sorted(names))}")
    kwargs = {}
    for k, v in d.items():
        sub = _dataclass_in(hints[k])
        kwargs[k] = _build(sub, v, f"{where}{k}.") if sub is not None and v is not None else _coerce(v, hints[k],
                                                                                                      where + k)
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check a leaf value against its annotation; numbers written as '2e-4' (a string to YAML 1.1) become floats."""
    import types
    import typing

    args = typing.get_args(tp) if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union else (tp,)
    kinds = {typing.get_origin(a) or a for a in args}
    if value is None:
        if type(None) in kinds:
            return None
    elif isinstance(value, bool):
        if bool in kinds:
            return value
    elif isinstance(value, int) and int in kinds:
        return value
    elif isinstance(value, (int, float)) and float in kinds:
        return float(value)
    elif isinstance(value, str) and str in kinds:
        return value
    elif isinstance(value, str) and float in kinds:
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, list) and list in kinds:
        return value
    elif isinstance(value, dict) and dict in kinds:
        return value
    raise ValueError(f"config key {key!r} expects {getattr(tp, '__name__', tp)}, got {value!r}")


def _dataclass_in(tp) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    for a in getattr(tp, "__args__", ()) or ():
        if dataclasses.is_dataclass(a):
            return a
    return None


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        if d.get(p) is None:
            d[p] = {}
        d = d[p]
    d[parts[-1]] = value


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> DetConfig:
    """Read a YAML recipe (or the defaults) and apply ``key.sub=value`` overrides (values parsed as YAML)."""
    import yaml

    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist")
        raw = yaml.safe_load(p.read_text()) or {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        k, v = item.split("=", 1)
        _set_dotted(raw, k.strip(), yaml.safe_load(v))
    return DetConfig.from_dict(raw)
