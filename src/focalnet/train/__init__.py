"""Training, evaluation and prediction: typed configs, a resumable distributed engine, atomic checkpoints.

    from focalnet.train import load_config, train
    result = train(load_config(overrides=["sched.epochs=5"]))   # the built-in digits job, shortened
"""

from .checkpoint import CheckpointSaveError, find_latest, load_checkpoint, save_checkpoint
from .config import (
    AugConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from .engine import NonFiniteLossError, TrainResult, evaluate, train

__all__ = [
    "AugConfig",
    "CheckpointSaveError",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "evaluate",
    "find_latest",
    "load_checkpoint",
    "load_config",
    "save_checkpoint",
    "save_config",
    "train",
]
