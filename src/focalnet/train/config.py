"""Typed training configuration: dataclasses that reject unknown keys, load from YAML, take dotted overrides.

One :class:`TrainConfig` describes a whole run. It is built from (in order) the dataclass defaults, an optional
YAML file, and ``section.key=value`` overrides from the command line, and is saved as ``config.yaml`` next to the
checkpoints and inside every checkpoint. A typo anywhere (file or override) is an error that names the closest
valid key, never a silently ignored setting.

The defaults are the built-in digits job (``focalnet train`` with no arguments). The paper's ImageNet recipes
live in ``configs/*.yaml`` and override what differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from focalnet.engine.config import RunConfig, validate_run
from focalnet.engine.config import save_config as _save_config
from focalnet.utils.config import ConfigError, from_dict, read_yaml
from focalnet.utils.config import apply_overrides as _apply
from focalnet.utils.config import to_dict as config_to_dict

__all__ = [
    "ConfigError",
    "ModelConfig",
    "DataConfig",
    "AugConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "ClassificationConfig",
    "load_config",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "save_config",
]


@dataclass
class ModelConfig:
    """Which network to build. ``kwargs`` override any constructor argument of the registered variant."""

    name: str = "focalnet_tiny_srf"
    kwargs: dict[str, Any] = field(
        default_factory=lambda: {"embed_dim": 48, "depths": [1, 1, 2, 1], "patch_size": 4}
    )
    drop_path_rate: float | None = 0.1  # None: the variant's published value (spec §3.1)
    pretrained: str | None = None  # "true"/a weights tag/a local file or URL to fine-tune from
    head: str = "auto"  # auto | reset | keep | in22k_to_in1k: what happens to the pretrained classifier
    num_classes: int | None = None  # None: the number of classes of the data set
    grad_checkpointing: bool = False


@dataclass
class DataConfig:
    """Where images come from and how they are shaped. ``batch_size`` is per process and per micro-step."""

    dataset: str = "digits"  # digits | folder | hf:<name on the Hugging Face hub or a local path>
    root: str | None = None  # for folder: a directory holding train/ and val/
    train_split: str = "train"
    val_split: str = "val"
    img_size: int = 32
    batch_size: int = 64
    eval_batch_size: int | None = None
    num_workers: int = 0
    interpolation: str = "bicubic"
    crop_pct: float = 1.0  # eval: resize to img_size / crop_pct, centre-crop img_size
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    bad_images: str = "skip"  # skip: warn and use the next readable image | error: stop with the file's path
    val_fraction: float = 0.2  # built-in digits: held-out fraction (stratified, fixed seed)
    limit_train: int | None = None  # use only the first N images of each split (smoke tests, debugging)
    limit_val: int | None = None
    image_column: str = "image"  # hf: column names
    label_column: str = "label"


@dataclass
class AugConfig:
    """Training augmentation, all through timm (``create_transform`` and ``Mixup``)."""

    scale: list[float] = field(default_factory=lambda: [0.5, 1.0])  # random-resized-crop area range
    ratio: list[float] = field(default_factory=lambda: [0.8, 1.25])
    hflip: float = 0.0  # digits must not be mirrored; ImageNet recipes use 0.5
    color_jitter: float | None = None
    auto_augment: str | None = None  # e.g. rand-m9-mstd0.5-inc1
    reprob: float = 0.0
    remode: str = "pixel"
    recount: int = 1
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    label_smoothing: float = 0.1


@dataclass
class OptimConfig:
    """AdamW by default. The learning rates scale linearly with the global batch (``lr * global / base_batch``).

    ``weight_decay`` applies to weight matrices and kernels only (norms, biases and layer-scale gammas are
    excluded via the model's ``no_weight_decay``). ``original_zero_decay=true`` reproduces the original code,
    whose no-decay keyword ``''`` matched every parameter, so no parameter was decayed (spec §5.3).
    """

    name: str = "adamw"
    lr: float = 2e-3  # at base_batch_size
    base_batch_size: int = 64
    weight_decay: float = 0.05
    original_zero_decay: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.9  # only for SGD-type optimizers
    clip_grad: float | None = 5.0
    layer_decay: float | None = None  # layer-wise lr decay for fine-tuning, e.g. 0.75
    accum_steps: int = 1


@dataclass
class ScheduleConfig:
    """timm scheduler, stepped every optimizer update. ``warmup_lr``/``min_lr`` scale like ``lr``."""

    name: str = "cosine"
    epochs: int = 30  # 15 reached 98.3 % before the modulation speed-ups and 97.2 % after: keep a margin
    warmup_epochs: float = 1
    warmup_lr: float = 1e-5
    min_lr: float = 1e-5
    decay_rate: float = 0.1  # step schedules


@dataclass
class TrainConfig(RunConfig):
    """A whole classification run: the engine's top-level keys (:class:`~focalnet.engine.config.RunConfig`) plus
    the task's sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: ScheduleConfig = field(default_factory=ScheduleConfig)


ClassificationConfig = TrainConfig


# ---------------------------------------------------------------------------------------------- conversions
def config_from_dict(data: dict[str, Any] | None) -> TrainConfig:
    """Build a :class:`TrainConfig` from a (possibly partial, nested) dict; unknown keys raise ConfigError."""
    cfg = from_dict(TrainConfig, data or {})
    validate_run(cfg)
    validate(cfg)
    return cfg


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``section.key=value`` strings (values parsed as YAML: ``1e-3``, ``[1,2]``, ``true``, ``null``)."""
    return config_from_dict(_apply(config_to_dict(cfg), overrides, TrainConfig))


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file (if any), then the overrides."""
    data = read_yaml(path) if path is not None else {}
    try:
        cfg = config_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
    return apply_overrides(cfg, overrides or [])


def save_config(cfg: TrainConfig, path: str | os.PathLike):
    return _save_config(cfg, path)


_CHOICES = {
    "data.bad_images": ("skip", "error"),
    "model.head": ("auto", "reset", "keep", "in22k_to_in1k"),
}


def validate(cfg: TrainConfig) -> None:
    """Cross-field checks that typing cannot express; each error says which key to change."""
    for dotted, choices in _CHOICES.items():
        obj = cfg
        for p in dotted.split("."):
            obj = getattr(obj, p)
        if obj not in choices:
            raise ConfigError(f"{dotted}={obj!r} is not one of {', '.join(choices)}")
    if cfg.data.batch_size < 1:
        raise ConfigError("data.batch_size must be >= 1")
    if cfg.optim.accum_steps < 1:
        raise ConfigError("optim.accum_steps must be >= 1")
    if cfg.sched.epochs < 1:
        raise ConfigError("sched.epochs must be >= 1")
    if (cfg.aug.mixup > 0 or cfg.aug.cutmix > 0) and cfg.data.batch_size % 2:
        raise ConfigError("mixup/cutmix need an even data.batch_size")
    if not (0 < cfg.data.crop_pct <= 1):
        raise ConfigError("data.crop_pct must be in (0, 1]")
    ds = cfg.data.dataset
    if not (ds in ("digits", "folder") or ds.startswith("hf:")):
        raise ConfigError(f"data.dataset={ds!r}: use digits, folder or hf:<name>")
    _check_numbers(cfg)
    _check_model(cfg)


def _check_numbers(cfg: TrainConfig) -> None:
    o, s, d = cfg.optim, cfg.sched, cfg.data
    if not o.lr > 0:
        raise ConfigError(f"optim.lr must be > 0, got {o.lr}")
    if o.base_batch_size < 1:
        raise ConfigError("optim.base_batch_size must be >= 1")
    if o.weight_decay < 0 or s.warmup_lr < 0 or s.min_lr < 0 or s.warmup_epochs < 0:
        raise ConfigError("optim.weight_decay, sched.warmup_lr, sched.min_lr and sched.warmup_epochs must be >= 0")
    if o.clip_grad is not None and o.clip_grad < 0:
        raise ConfigError(f"optim.clip_grad must be >= 0 (or null), got {o.clip_grad}")
    if len(d.mean) != 3 or len(d.std) != 3:
        raise ConfigError("data.mean and data.std need three values (R, G, B)")
    if any(v == 0 for v in d.std):
        raise ConfigError(f"data.std={d.std}: a standard deviation of 0 divides by zero; use e.g. [0.5, 0.5, 0.5]")
    if d.eval_batch_size is not None and d.eval_batch_size < 1:
        raise ConfigError("data.eval_batch_size must be >= 1")
    if d.num_workers < 0:
        raise ConfigError("data.num_workers must be >= 0")
    if not 0 < d.val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {d.val_fraction}")
    if cfg.model.drop_path_rate is not None and not 0 <= cfg.model.drop_path_rate < 1:
        raise ConfigError(f"model.drop_path_rate must be in [0, 1), got {cfg.model.drop_path_rate}")
    a = cfg.aug
    for key in ("mixup", "cutmix"):
        if getattr(a, key) < 0:
            raise ConfigError(f"aug.{key} must be >= 0 (0 turns it off), got {getattr(a, key)}")
    for key in ("hflip", "reprob", "mixup_prob", "mixup_switch_prob"):
        if not 0 <= getattr(a, key) <= 1:
            raise ConfigError(f"aug.{key} is a probability in [0, 1], got {getattr(a, key)}")
    if not 0 <= a.label_smoothing < 1:
        raise ConfigError(f"aug.label_smoothing must be in [0, 1), got {a.label_smoothing}")
    if cfg.model.num_classes is not None and cfg.model.num_classes < 1:
        raise ConfigError(f"model.num_classes must be >= 1, got {cfg.model.num_classes}")
    from timm.optim import list_optimizers
    from timm.scheduler.scheduler_factory import create_scheduler_v2  # noqa: F401  (timm is there)

    if o.name.lower() not in set(list_optimizers()):
        import difflib

        close = difflib.get_close_matches(o.name.lower(), list_optimizers(), n=1)
        raise ConfigError(f"optim.name={o.name!r} is not a known optimizer"
                          + (f"; did you mean {close[0]!r}?" if close else "; e.g. adamw, sgd, lamb"))
    if s.name not in _SCHEDULERS:
        raise ConfigError(f"sched.name={s.name!r} is not one of {', '.join(_SCHEDULERS)}")


_SCHEDULERS = ("cosine", "tanh", "step", "multistep", "plateau", "poly", "none")


def _check_model(cfg: TrainConfig) -> None:
    """The model name, its constructor kwargs and the input size, checked against the registry (no weights built)."""
    from focalnet.models.registry import check_model_kwargs

    check_model_kwargs(cfg.model.name, dict(cfg.model.kwargs), cfg.data.img_size)
