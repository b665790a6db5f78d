"""Task registry: task name -> ``"module:Class"``, imported only when a run asks for that task.

Keeping the table as strings keeps ``focalnet --help`` (and everything that only needs the names) free of torch and
of every task's dependencies. A new task adds one line here (or calls :func:`register_task` from a plugin).
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from focalnet.utils.config import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .task import Task

__all__ = ["TASKS", "register_task", "get_task", "task_names"]

TASKS: dict[str, str] = {
    "classification": "focalnet.tasks.classification:ClassificationTask",
    "detection": "focalnet.tasks.detection:DetectionTask",
    "segmentation": "focalnet.tasks.segmentation:SegmentationTask",
    "dino": "focalnet.tasks.dino:DinoTask",
    "mask2former": "focalnet.tasks.mask2former:Mask2FormerTask",
}


def register_task(name: str, target: str) -> None:
    """Register ``name`` -> ``"package.module:TaskClass"`` (imported lazily by :func:`get_task`)."""
    if ":" not in target:
        raise ValueError(f"task target {target!r} must look like 'package.module:ClassName'")
    TASKS[name] = target


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> type[Task]:
    """The Task class registered as ``name``; an unknown name is a ConfigError naming the known ones."""
    if name not in TASKS:
        close = difflib.get_close_matches(name, TASKS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"task={name!r} is not a known task ({', '.join(TASKS)}){hint}")
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
