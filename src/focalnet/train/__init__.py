"""Classification training: the typed config of the classification task, its model / optimizer factories and
inference helpers. The loop itself is the shared engine (:mod:`focalnet.engine`); ``train`` is its ``fit``.

    from focalnet.train import load_config, train
    result = train(load_config(overrides=["sched.epochs=5"]))   # the built-in digits job, shortened
"""

from focalnet.engine.checkpoint import CheckpointSaveError, find_latest, load_checkpoint, save_checkpoint
from focalnet.engine.loop import NonFiniteLossError, TrainResult
from focalnet.engine.loop import fit as train

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
    "find_latest",
    "load_checkpoint",
    "load_config",
    "save_checkpoint",
    "save_config",
    "train",
]
