"""The engine's part of every run config, and loading any task's config (defaults -> YAML -> overrides).

A run config is one dataclass per task that *subclasses* :class:`RunConfig`: the top-level keys below belong to the
engine (where the run goes, device, precision, distribution, checkpoints, logging), the sections (``model``,
``data``, ``optim``, ...) to the task. The top-level ``task`` key says which task a YAML file describes; without
it a file is a classification recipe, and with no file at all the run is the built-in digits job.

The typed-config machinery is ours (:mod:`focalnet.utils.config`; see docs/engine.md for why not OmegaConf).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focalnet.utils.config import ConfigError, from_dict, read_yaml, to_dict
from focalnet.utils.config import apply_overrides as _apply

__all__ = ["RunConfig", "ConfigError", "validate_run", "task_of", "load_run_config", "config_from_dict",
           "save_config", "run_only_keys", "structural_changes"]


@dataclass
class RunConfig:
    """Engine settings shared by every task (top-level keys of every config file)."""

    task: str = "classification"  # a registered task: classification | detection | segmentation | ...
    name: str = "digits"  # the run folder is output_dir/name (no path separators)
    output_dir: str = "runs"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps
    # Intra-op CPU threads per process (0: PyTorch's default). Small models on a shared CPU run fastest with 1:
    # on the 2-core build machine under load, a digits step took 0.56 s with 1 thread and 4.5 s with 2.
    threads: int = 1
    amp: str = "none"  # none | bf16 | fp16 (fp16 uses a gradient scaler)
    channels_last: bool = False
    compile: bool = False  # torch.compile the training model
    distributed: str = "ddp"  # ddp | fsdp (FSDP2 fully_shard, sharded checkpoints) -- used under torchrun only
    # distributed=fsdp checkpoints: sharded (a torch.distributed.checkpoint folder, every rank writes its shards)
    # | full (the full state gathered to rank 0, one .pt file)
    fsdp_checkpoint: str = "sharded"
    ema: bool = False
    ema_decay: float = 0.9998
    eval_every: int = 1  # epochs
    eval_every_steps: int = 0  # also evaluate every N optimizer steps (0: off); iteration-based recipes use it
    save_every_steps: int = 0  # 0: at the end of every epoch only
    keep_checkpoints: int = 2  # the newest N checkpoint-*.pt are kept, plus best.pt
    log_every: int = 10  # optimizer steps
    max_steps: int | None = None  # stop (and checkpoint) after this many optimizer steps; resume to continue
    resume: str | None = None  # auto | a checkpoint path
    deterministic: bool = False
    progress: bool = True
    tensorboard: bool = True  # when installed

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


_AMP = ("none", "bf16", "fp16")
_DIST = ("ddp", "fsdp")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

# Settings that may change on resume without changing what is being trained.
_RUN_ONLY = {"resume", "max_steps", "progress", "tensorboard", "log_every", "save_every_steps", "keep_checkpoints",
             "device", "threads", "output_dir", "name", "eval_every", "eval_every_steps", "compile",
             "fsdp_checkpoint"}


def run_only_keys() -> set[str]:
    return set(_RUN_ONLY)


def validate_run(cfg: RunConfig) -> None:
    """Checks of the engine keys; each error names the key and a valid value."""
    if not cfg.name or "/" in cfg.name or "\\" in cfg.name or cfg.name in (".", "..") or os.sep in cfg.name:
        raise ConfigError(f"name={cfg.name!r}: a run name is a single folder name, without path separators "
                          "(use output_dir=DIR to choose where runs go)")
    if cfg.amp not in _AMP:
        raise ConfigError(f"amp={cfg.amp!r} is not one of {', '.join(_AMP)}")
    if cfg.distributed not in _DIST:
        raise ConfigError(f"distributed={cfg.distributed!r} is not one of {', '.join(_DIST)}")
    if cfg.fsdp_checkpoint not in ("sharded", "full"):
        raise ConfigError(f"fsdp_checkpoint={cfg.fsdp_checkpoint!r} is not one of sharded, full")
    if not _DEVICE.match(cfg.device):
        raise ConfigError(f"device={cfg.device!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    for key in ("eval_every", "log_every"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    for key in ("eval_every_steps", "save_every_steps", "threads"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(cfg, key)}")
    if cfg.keep_checkpoints < 0:
        raise ConfigError(f"keep_checkpoints must be >= 0 (0 keeps all), got {cfg.keep_checkpoints}")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise ConfigError(f"max_steps must be >= 1, got {cfg.max_steps}")
    if not 0 <= cfg.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1), got {cfg.ema_decay}")


def task_of(data: dict[str, Any]) -> str:
    t = data.get("task", "classification")
    if not isinstance(t, str):
        raise ConfigError(f"task: expected a task name, got {t!r}")
    return t


def config_from_dict(data: dict[str, Any], validate: bool = True) -> RunConfig:
    """The typed config of the task that ``data['task']`` names (classification without one), validated by the
    engine and by the task before any work starts."""
    from .registry import get_task

    task_cls = get_task(task_of(data))
    cfg = from_dict(task_cls.config_class, data)
    if validate:
        validate_run(cfg)
        task_cls.validate_config(cfg)
    return cfg


def load_run_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults of the task, then the YAML file (if any), then ``key.sub=value`` overrides (``task=`` may be one)."""
    from .registry import get_task

    data = read_yaml(path) if path is not None else {}
    overrides = list(overrides or [])
    for o in overrides:  # the task decides the schema, so a `task=...` override applies first
        if o.split("=", 1)[0].strip() == "task":
            data["task"] = o.split("=", 1)[1].strip()
    cls = get_task(task_of(data)).config_class
    try:
        data = _apply(data, overrides, cls)
        return config_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path and not str(e).startswith(str(path)) else str(e)) from None


def save_config(cfg: RunConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (atomically)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)
    return path


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and not k.endswith("kwargs"):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def structural_changes(saved: dict[str, Any], now: dict[str, Any], structural: set[str]) -> tuple[list[str], list[str]]:
    """``(structural, other)``: the dotted keys that differ between two config dicts, split into those that change
    what the checkpoint's tensors mean (matching a prefix in ``structural``) and the rest (engine run-only keys are
    ignored)."""
    a, b = _flatten(saved), _flatten(now)
    changed = sorted(k for k in set(a) | set(b) if k not in _RUN_ONLY and a.get(k) != b.get(k))
    hard = [k for k in changed if any(k == s or k.startswith(s + ".") for s in structural)]
    return hard, [k for k in changed if k not in hard]
