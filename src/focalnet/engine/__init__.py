"""One training engine for every task: the loop, distribution (DDP / FSDP2), precision (bf16/fp16 + grad scaler),
accumulation, clipping, EMA, atomic keep-last-N + best checkpoints with exact resume, logging, progress bars, the
NaN guard and callbacks. It knows nothing about images or boxes: tasks plug in through :class:`Task` and the
lazy :mod:`registry <focalnet.engine.registry>` (see docs/engine.md).

    from focalnet.engine import fit, load_run_config
    result = fit(load_run_config("configs/detection/mask_rcnn_focalnet_synthetic_demo.yaml", ["max_steps=10"]))
"""

from __future__ import annotations

from typing import Any

from .config import RunConfig, load_run_config
from .registry import TASKS, get_task, register_task, task_names

__all__ = ["RunConfig", "load_run_config", "TASKS", "get_task", "register_task", "task_names", "Task", "Context",
           "TrainSettings", "fit", "TrainResult", "NonFiniteLossError", "evaluate_run", "load_run", "predict_run"]

_LAZY = {
    "Task": "task", "Context": "task", "TrainSettings": "task",
    "fit": "loop", "TrainResult": "loop", "NonFiniteLossError": "loop",
    "evaluate_run": "run", "load_run": "run", "predict_run": "run",
}


def __getattr__(name: str) -> Any:  # torch is imported only when the loop or the interface is used
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
