"""Optimizer and scheduler factories: thin, explicit wrappers over timm's.

Weight decay goes to weight matrices and kernels only; the model's ``no_weight_decay()`` names the biases, norm
weights and layer-scale gammas that timm's ``create_optimizer_v2`` then puts in a zero-decay group (or, with
``layer_decay``, into per-depth groups built from the model's ``group_matcher``). The original code's bug (spec
§5.3: a no-decay keyword ``''`` that matches every name, so nothing was decayed) is reproduced on request with
``optim.original_zero_decay=true``.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

_logger = logging.getLogger(__name__)

__all__ = ["scaled_lrs", "build_optimizer", "build_scheduler"]


def scaled_lrs(optim_cfg, sched_cfg, global_batch: int) -> tuple[float, float, float]:
    """``(lr, warmup_lr, min_lr)`` scaled linearly from ``optim.base_batch_size`` to ``global_batch``."""
    s = global_batch / optim_cfg.base_batch_size
    return optim_cfg.lr * s, sched_cfg.warmup_lr * s, sched_cfg.min_lr * s


def build_optimizer(model: nn.Module, optim_cfg, lr: float) -> torch.optim.Optimizer:
    from timm.optim import create_optimizer_v2

    wd = 0.0 if optim_cfg.original_zero_decay else optim_cfg.weight_decay
    kwargs = {}
    if optim_cfg.name.lower() in ("adamw", "adam", "lamb", "nadamw", "adan", "lion"):
        kwargs.update(betas=tuple(optim_cfg.betas), eps=optim_cfg.eps)
    opt = create_optimizer_v2(
        model,
        opt=optim_cfg.name,
        lr=lr,
        weight_decay=wd,
        momentum=optim_cfg.momentum,
        layer_decay=optim_cfg.layer_decay,
        filter_bias_and_bn=True,
        **kwargs,
    )
    if optim_cfg.original_zero_decay:
        _logger.info("optim.original_zero_decay: no parameter is decayed, as in the original code (spec §5.3)")
    return opt


def build_scheduler(optimizer: torch.optim.Optimizer, sched_cfg, warmup_lr: float, min_lr: float,
                    steps_per_epoch: int):
    """A timm scheduler updated every optimizer step (``step_update(global_step)``), like the original."""
    from timm.scheduler import create_scheduler_v2

    sched, _ = create_scheduler_v2(
        optimizer,
        sched=sched_cfg.name,
        num_epochs=sched_cfg.epochs,
        decay_epochs=max(1, sched_cfg.epochs // 3),
        decay_rate=sched_cfg.decay_rate,
        min_lr=min_lr,
        warmup_lr=warmup_lr,
        warmup_epochs=sched_cfg.warmup_epochs,
        step_on_epochs=False,
        updates_per_epoch=steps_per_epoch,
    )
    return sched
