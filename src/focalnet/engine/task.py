"""The Task interface: everything the engine needs to know about a kind of model, and nothing more.

A task (classification, detection, segmentation, ...) is a class with a typed config (a dataclass subclassing
:class:`~focalnet.engine.config.RunConfig`) and a handful of methods. The engine owns the loop, distribution,
precision, accumulation, clipping, EMA, checkpoints, logging and progress; the task owns data, model, loss,
metrics and prediction. See docs/engine.md for the order in which the engine calls these methods.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .config import RunConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn
    from torch.utils.data import Dataset

__all__ = ["Task", "TrainSettings", "Context"]


@dataclass
class TrainSettings:
    """Batching of a run, read from wherever the task's config keeps it."""

    batch_size: int  # per process and per micro-step
    accum_steps: int = 1  # micro-steps per optimizer step
    clip_grad: float | None = None  # max global gradient norm (None/0: off)
    num_workers: int = 0  # data loader processes
    eval_batch_size: int | None = None


@dataclass
class Context:
    """What a task's ``losses``/``evaluate``/``predict`` may use: where to run, precision, the process group."""

    device: torch.device
    amp: str = "none"
    channels_last: bool = False
    rank: int = 0
    world_size: int = 1
    progress: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """The run's autocast context (``amp=bf16|fp16``), a no-op for ``amp=none``."""
        import torch

        if self.amp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def shard(self, n: int) -> list[int]:
        """This rank's indices of ``range(n)`` (strided, so every rank gets nearly the same count)."""
        return list(range(self.rank, n, self.world_size))

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:  # one process, or each rank working on the whole set (FSDP evaluation)
            return t
        from .distributed import all_reduce_sum

        return all_reduce_sum(t)

    def broadcast(self, obj: Any) -> Any:
        """``obj`` of rank 0 on every rank (a no-op for one process)."""
        if self.world_size == 1:
            return obj
        from .distributed import broadcast_object

        return broadcast_object(obj)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.world_size == 1:
            return [obj]
        from .distributed import all_gather_object

        return all_gather_object(obj)

    def to_device(self, batch: Any) -> Any:
        from .data import move_to

        return move_to(batch, self.device, self.channels_last)


class Task:
    """Base class of every task. Subclasses set the class attributes and implement the methods that raise
    ``NotImplementedError``; the others have sensible defaults."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[RunConfig]] = RunConfig
    # Flattened metric key (e.g. "top1", "bbox.mAP", "mIoU") that selects best.pt; higher is better.
    best_metric: ClassVar[str | None] = None
    # Extra metrics.csv columns (flattened keys of the train/val records).
    metric_fields: ClassVar[tuple[str, ...]] = ()
    # Config keys (dotted prefixes) whose change makes a checkpoint's tensors meaningless: refused on resume ...
    structural_keys: ClassVar[tuple[str, ...]] = ("task", "model")
    # ... except these, which may change (e.g. where pretrained weights came from, regularisation strength).
    resume_safe_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    # ---- config
    @classmethod
    def validate_config(cls, cfg: RunConfig) -> None:
        """Cross-field checks of the task's sections; raise ``ConfigError`` naming the key. Called before any work
        (also for the configs of ``eval``/``predict``)."""

    # ---- training
    def train_settings(self) -> TrainSettings:
        raise NotImplementedError

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        """``(train, val)``; ``val`` may be None. Items are whatever :meth:`collate` takes. Random augmentation
        must draw from the global ``random`` / ``numpy`` / ``torch`` RNGs only: the engine seeds them per sample
        from ``(seed, epoch, index)``, which makes resumed and distributed runs exact."""
        raise NotImplementedError

    def collate(self, samples: list[Any]) -> Any:
        from torch.utils.data import default_collate

        return default_collate(samples)

    def build_model(self) -> nn.Module:
        """The network, on the CPU. In training it is called after :meth:`build_datasets`; for ``eval``/``predict``
        after :meth:`load_meta` (pretrained weights need not be loaded then: the checkpoint's are)."""
        raise NotImplementedError

    def build_optimizer(self, model: nn.Module, global_batch: int, steps_per_epoch: int) -> tuple[Any, Any]:
        """``(optimizer, scheduler)``. The scheduler has ``state_dict``/``load_state_dict`` and either
        ``step_update(num_updates=step)`` (timm) or ``step()``; the engine calls it after every optimizer step."""
        raise NotImplementedError

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole recipe (the schedule's length)."""
        raise NotImplementedError

    def losses(self, model: nn.Module, batch: Any, ctx: Context) -> dict[str, torch.Tensor]:
        """Loss terms of one micro-batch (already on ``ctx.device``), called under the run's autocast. The engine
        back-propagates ``["loss"]`` and logs every term."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, dataset: Dataset, ctx: Context) -> dict[str, Any]:
        """Metrics on ``dataset``, identical on every rank (shard with ``ctx.shard`` and reduce, or compute on
        rank 0 and ``ctx.broadcast``). Called with the plain (unwrapped) model in eval mode."""
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        """Plain data saved in every checkpoint that :meth:`load_meta` needs to rebuild the model without the
        training data (class names, categories, preprocessing). ``weights_only``-safe types only."""
        return {}

    def load_meta(self, meta: dict[str, Any]) -> None:
        """Restore what :meth:`meta` saved (before :meth:`build_model` at evaluation / prediction time)."""

    def summary(self, metrics: dict[str, Any]) -> str:
        """One line for the console."""
        from .logger import flatten_metrics

        flat = flatten_metrics(metrics)
        return "  ".join(f"{k} {v:.4g}" for k, v in flat.items() if isinstance(v, float))[:300]

    # ---- evaluation / prediction of a finished run
    def build_eval_dataset(self) -> Dataset:
        """The data ``focalnet eval`` measures (default: the validation split of :meth:`build_datasets`)."""
        val = self.build_datasets()[1]
        if val is None:
            from .data import DataError

            raise DataError("this config has no validation data to evaluate on")
        return val

    def predict(self, model: nn.Module, inputs: list[str], ctx: Context, out_dir: Path | None,
                options: dict[str, Any]) -> list[dict[str, Any]]:
        """One JSON-able result per input path (``{"path", ...}`` or ``{"path", "error"}``); pictures, if any, go
        to ``out_dir``. ``options`` are the predict command's flags (``topk``, ``score``, ``aug_test``, ...)."""
        raise NotImplementedError

    def format_prediction(self, result: dict[str, Any]) -> str:
        """Console text of one :meth:`predict` result."""
        return str(result)
