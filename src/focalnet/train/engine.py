"""The training engine: one plain function, :func:`train`, that runs a :class:`TrainConfig` to the end.

What it guarantees, and how:

* **Resumable to the bit.** A checkpoint holds model, optimizer, scheduler, grad scaler, EMA, the position
  (epoch, optimizer step, micro-batch within the epoch) and every RNG state. Sample order depends only on
  ``(seed, epoch)`` and augmentation only on ``(seed, epoch, index)``, and the data loader gets its own seeded
  generator, so a run killed anywhere and resumed with ``resume=auto`` from a checkpoint ends with the same
  weights as an uninterrupted run (tested on CPU).
* **Distributed = single process with the same global batch.** Under ``torchrun`` the rank comes from the
  environment; each optimizer step sees the same global batch as one process with ``world_size`` times the
  per-process batch (tested with two Gloo processes).
* **Faults stop cleanly.** A non-finite loss raises :class:`NonFiniteLossError` before the optimizer step, so the
  last checkpoint on disk is the last good one; a failed save raises ``CheckpointSaveError`` and the previous
  checkpoint survives (atomic writes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from focalnet.errors import FocalnetError

from .checkpoint import (
    FORMAT_VERSION,
    capture_rng,
    checkpoint_path,
    clean_stale_temp_files,
    find_latest,
    load_checkpoint,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
)
from .config import TrainConfig, config_to_dict, save_config
from .distributed import DistInfo, all_reduce_sum, barrier, cleanup_distributed, init_distributed, resolve_device
from .logger import MetricLogger, plot_curves

_logger = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "TrainResult", "train", "evaluate", "amp_context", "unwrap_model"]

Callback = Callable[[str, dict[str, Any]], None]


class NonFiniteLossError(FocalnetError, FloatingPointError):
    """The training loss became NaN or infinite; the run stopped without stepping or saving."""


@dataclass
class TrainResult:
    """Where a run put its outputs and how it ended."""

    run_dir: Path
    checkpoint: Path | None
    config_path: Path
    metrics_jsonl: Path
    metrics_csv: Path
    curve_png: Path | None
    eval_json: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)  # the last validation metrics
    epochs: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    stopped_early: bool = False


# ---------------------------------------------------------------------------------------------- helpers
def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile / DDP wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def amp_context(amp: str, device: torch.device):
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _seed_all(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _accuracy_counts(logits: torch.Tensor, target: torch.Tensor, k: int) -> tuple[float, float]:
    topk = logits.topk(min(k, logits.shape[1]), dim=1).indices
    hit = topk.eq(target[:, None])
    return float(hit[:, :1].sum()), float(hit.any(dim=1).sum())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "eval",
) -> dict[str, float]:
    """Top-1 / top-5 (%), mean cross-entropy and images/s over ``loader``; sums are all-reduced across ranks,
    so with a sharded loader every rank returns the metrics of the whole set."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, n
    t0 = time.perf_counter()
    for images, target in tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with amp_context(amp, device):
            logits = model(images)
        logits = logits.float()
        loss = F.cross_entropy(logits, target, reduction="sum")
        t1, t5 = _accuracy_counts(logits, target, 5)
        sums += torch.tensor([float(loss), t1, t5, float(target.numel())], dtype=torch.float64)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    local_n = float(sums[3])
    all_reduce_sum(sums)
    model.train(was_training)
    n = max(float(sums[3]), 1.0)
    return {
        "loss": float(sums[0]) / n,
        "top1": 100.0 * float(sums[1]) / n,
        "top5": 100.0 * float(sums[2]) / n,
        "images": int(sums[3]),
        "images_per_s": local_n / elapsed if elapsed > 0 else 0.0,
        "time_s": elapsed,
    }


_RUN_ONLY = {"resume", "max_steps", "progress", "tensorboard", "log_every", "save_every_steps", "keep_checkpoints",
             "device", "threads", "data.num_workers"}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "kwargs":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _warn_config_changes(saved: dict[str, Any], now: dict[str, Any], path: Path) -> None:
    """Resuming with different settings is allowed (e.g. more epochs) but is no longer an exact continuation."""
    a, b = _flatten(saved), _flatten(now)
    changed = sorted(k for k in set(a) | set(b) if k not in _RUN_ONLY and a.get(k) != b.get(k))
    if changed:
        _logger.warning("resuming %s with changed settings (%s): the run will not reproduce an uninterrupted one",
                        path, ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in changed[:6]))


def _model_desc(cfg: TrainConfig) -> str:
    kw = ", ".join(f"{k}={v}" for k, v in cfg.model.kwargs.items())
    return f"{cfg.model.name}({kw})" if kw else cfg.model.name


def _label_set_of(classes: list[str]) -> str | None:
    """``"imagenet-1k"`` when the class folders are the 1K WordNet ids in order, so predictions get readable names."""
    if len(classes) != 1000:
        return None
    from timm.data import ImageNetInfo

    return "imagenet-1k" if list(classes) == list(ImageNetInfo("imagenet-1k").label_names()) else None


def _build_loss(cfg: TrainConfig, num_classes: int):
    """Mixup/cutmix (timm) with soft-target CE, else label-smoothed CE, else CE; as in the original."""
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    a = cfg.aug
    if a.mixup > 0 or a.cutmix > 0:
        mixup = Mixup(
            mixup_alpha=a.mixup,
            cutmix_alpha=a.cutmix,
            prob=a.mixup_prob,
            switch_prob=a.mixup_switch_prob,
            mode=a.mixup_mode,
            label_smoothing=a.label_smoothing,
            num_classes=num_classes,
        )
        return mixup, SoftTargetCrossEntropy()
    if a.label_smoothing > 0:
        return None, LabelSmoothingCrossEntropy(smoothing=a.label_smoothing)
    return None, nn.CrossEntropyLoss()


def _val_loader(dataset, cfg: TrainConfig, dist_info: DistInfo, pin: bool) -> DataLoader:
    shard = Subset(dataset, list(range(dist_info.rank, len(dataset), dist_info.world_size)))
    return DataLoader(
        shard,
        batch_size=cfg.data.eval_batch_size or cfg.data.batch_size,
        shuffle=False,
        num_workers=cfg.data.num_workers,
        pin_memory=pin,
    )


# ---------------------------------------------------------------------------------------------- train
def train(cfg: TrainConfig, callbacks: Iterable[Callback] = ()) -> TrainResult:
    """Run ``cfg`` to completion (or to ``max_steps``); returns where the outputs went.

    ``callbacks`` are called as ``cb(event, state)`` with events ``"step_end"`` (after each optimizer step;
    ``state`` has ``step``, ``epoch``, ``loss``, ``model``) and ``"epoch_end"`` (``state`` adds ``metrics``).
    """
    from tqdm.auto import tqdm

    from focalnet import __version__
    from focalnet.data import (
        GlobalBatchSampler,
        SeededTransformDataset,
        build_datasets,
        build_transform,
        preprocess_from_data_config,
    )

    from .model import build_model, model_kwargs
    from .optim import build_optimizer, build_scheduler, scaled_lrs

    t_start = time.perf_counter()
    callbacks = list(callbacks)
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist_info = init_distributed(device)
    main = dist_info.is_main
    run_dir = cfg.run_dir
    ckpt_dir = run_dir / "checkpoints"
    if main:  # temp files of runs killed mid-save would otherwise stay forever
        clean_stale_temp_files(ckpt_dir)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    _seed_all(cfg.seed)  # identical initial weights on every rank

    # ---- data
    train_base, val_base, classes = build_datasets(cfg.data, seed=cfg.seed)
    num_classes = cfg.model.num_classes or len(classes)
    preprocess = preprocess_from_data_config(cfg.data)
    train_ds = SeededTransformDataset(train_base, build_transform(preprocess, cfg.aug, is_training=True), cfg.seed)
    val_ds = SeededTransformDataset(val_base, build_transform(preprocess), cfg.seed)
    accum = cfg.optim.accum_steps
    sampler = GlobalBatchSampler(
        len(train_ds), cfg.data.batch_size, dist_info.world_size, dist_info.rank, accum, seed=cfg.seed
    )
    pin = device.type == "cuda"
    loader_gen = torch.Generator()
    train_loader = DataLoader(
        train_ds, batch_sampler=sampler, num_workers=cfg.data.num_workers, pin_memory=pin, generator=loader_gen
    )
    val_loader = _val_loader(val_ds, cfg, dist_info, pin)
    steps_per_epoch = sampler.steps_per_epoch

    # ---- model, optimizer, schedule
    model = build_model(cfg.model, num_classes).to(device)
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    lr, warmup_lr, min_lr = scaled_lrs(cfg.optim, cfg.sched, sampler.global_batch)
    optimizer = build_optimizer(model, cfg.optim, lr)
    scheduler = build_scheduler(optimizer, cfg.sched, warmup_lr, min_lr, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema_decay)
    mixup, criterion = _build_loss(cfg, num_classes)
    meta = {
        "model_name": cfg.model.name,
        "model_kwargs": model_kwargs(cfg.model, num_classes),
        "class_names": list(classes),
        "preprocess": preprocess,
        "label_set": _label_set_of(classes),
        "focalnet_version": __version__,
    }

    # ---- resume
    epoch0, micro0, step = 0, 0, 0
    resume_path = None
    if cfg.resume:
        resume_path = find_latest(ckpt_dir) if cfg.resume == "auto" else Path(cfg.resume)
        if resume_path is None:
            _logger.info("resume=auto: no checkpoint in %s yet, starting from scratch", ckpt_dir)
    rng_to_restore = None
    if resume_path is not None:
        ck = load_checkpoint(resume_path, map_location="cpu")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        if ema is not None and ck.get("ema") is not None:
            ema.module.load_state_dict(ck["ema"])
        _warn_config_changes(ck.get("config") or {}, config_to_dict(cfg), resume_path)
        epoch0, micro0, step = int(ck["next_epoch"]), int(ck["next_micro"]), int(ck["step"])
        rng = ck["rng"]
        if isinstance(rng, list):  # one state per rank; a different world size cannot continue them exactly
            rng_to_restore = rng[dist_info.rank] if len(rng) == dist_info.world_size else None
            if rng_to_restore is None:
                _logger.warning("checkpoint has RNG states for %d processes, this run has %d: reseeding", len(rng),
                                dist_info.world_size)
        else:
            rng_to_restore = rng if dist_info.world_size == 1 else None
        _logger.info("resumed from %s: epoch %d, step %d", resume_path, epoch0, step)
        del ck
    if dist_info.rank and rng_to_restore is None:
        torch.manual_seed(cfg.seed + dist_info.rank + 1000 * step)  # independent drop path per rank

    # ---- wrappers
    train_model: nn.Module = model
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.model.compile:
        train_model = torch.compile(train_model)

    mlog = MetricLogger(run_dir, enabled=main, tensorboard=cfg.tensorboard)
    if main:
        save_config(cfg, run_dir / "config.yaml")
        _logger.info(
            "training %s (%s classes) on %s: %d images, %d steps/epoch, global batch %d, lr %.3g, %d process(es)",
            _model_desc(cfg), num_classes, cfg.data.dataset, len(train_ds), steps_per_epoch, sampler.global_batch,
            lr, dist_info.world_size,
        )

    def make_state(next_epoch: int, next_micro: int, metrics: dict | None) -> dict[str, Any]:
        rng = capture_rng()
        if dist_info.enabled:  # every rank's RNG (drop path differs per rank)
            gathered: list[Any] = [None] * dist_info.world_size
            torch.distributed.all_gather_object(gathered, rng)
            rng = gathered
        return {
            "format_version": FORMAT_VERSION,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "ema": ema.module.state_dict() if ema is not None else None,
            "epoch": next_epoch if next_micro else next_epoch - 1,
            "next_epoch": next_epoch,
            "next_micro": next_micro,
            "step": step,
            "rng": rng,
            "config": config_to_dict(cfg),
            "meta": meta,
            "metrics": metrics or {},
        }

    def save(next_epoch: int, next_micro: int, metrics: dict | None = None) -> Path | None:
        state = make_state(next_epoch, next_micro, metrics)  # collective under DDP: all ranks build it
        path = None
        if main:
            path = save_checkpoint(state, checkpoint_path(ckpt_dir, step))
            save_config(cfg, ckpt_dir / "config.yaml")
            prune_checkpoints(ckpt_dir, cfg.keep_checkpoints)
            _logger.debug("saved %s", path)
        barrier()
        return path

    last_metrics: dict[str, Any] = {}
    stopped_early = False
    last_ckpt = resume_path
    epoch = epoch0
    outer = tqdm(total=cfg.sched.epochs, initial=epoch0, desc="epochs", disable=not (main and cfg.progress),
                 dynamic_ncols=True)
    try:
        if rng_to_restore is not None:
            restore_rng(rng_to_restore)
        train_model.train()
        optimizer.zero_grad(set_to_none=True)
        for epoch in range(epoch0, cfg.sched.epochs):
            start = micro0 if epoch == epoch0 else 0
            sampler.set_epoch(epoch, start)
            train_ds.set_epoch(epoch)
            loader_gen.manual_seed(cfg.seed * 7919 + epoch)
            inner = tqdm(total=steps_per_epoch * accum, initial=start, desc=f"epoch {epoch + 1}/{cfg.sched.epochs}",
                         disable=not (main and cfg.progress), leave=False, dynamic_ncols=True)
            t_log, n_log, loss_log = time.perf_counter(), 0, []
            micro = start
            for images, target in train_loader:
                images = images.to(device, non_blocking=True)
                target = target.to(device, non_blocking=True)
                if mixup is not None:
                    images, target = mixup(images, target)
                if cfg.model.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                micro += 1
                boundary = micro % accum == 0
                sync = contextlib.nullcontext() if boundary or not dist_info.enabled else train_model.no_sync()
                with sync:
                    with amp_context(cfg.amp, device):
                        output = train_model(images)
                    loss = criterion(output.float(), target)
                    bad = torch.tensor([0.0 if torch.isfinite(loss.detach()) else 1.0])
                    if dist_info.enabled:  # every rank must stop together, or the others hang
                        bad = all_reduce_sum(bad.to(device)).cpu()
                    if float(bad) > 0:
                        latest = find_latest(ckpt_dir)
                        raise NonFiniteLossError(
                            f"the training loss is {float(loss.detach())} at epoch {epoch + 1}, step {step + 1} "
                            f"(lr {optimizer.param_groups[0]['lr']:.3g}); stopped before updating the weights. "
                            + (f"The last good checkpoint is {latest}. " if latest else "No checkpoint was saved. ")
                            + "Try a lower optim.lr, optim.clip_grad, or amp=bf16 instead of fp16."
                        )
                    scaler.scale(loss / accum).backward()
                step_loss = float(loss.detach())
                loss_log.append(step_loss)
                n_log += images.shape[0]
                inner.update(1)
                if not boundary:
                    continue
                if cfg.optim.clip_grad:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                scheduler.step_update(num_updates=step)
                if ema is not None:
                    ema.update(model, step=step)
                if step % cfg.log_every == 0 or micro == steps_per_epoch * accum:
                    dt = time.perf_counter() - t_log
                    rec = {
                        "split": "train", "epoch": epoch, "step": step,
                        "loss": sum(loss_log) / len(loss_log), "lr": optimizer.param_groups[0]["lr"],
                        "images_per_s": n_log * dist_info.world_size / dt if dt > 0 else 0.0,
                        "time_s": time.perf_counter() - t_start,
                    }
                    mlog.log(rec)
                    inner.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{rec['lr']:.2e}")
                    t_log, n_log, loss_log = time.perf_counter(), 0, []
                for cb in callbacks:
                    cb("step_end", {"step": step, "epoch": epoch, "loss": step_loss, "model": model})
                if cfg.max_steps is not None and step >= cfg.max_steps:
                    stopped_early = True
                    break
                if cfg.save_every_steps and step % cfg.save_every_steps == 0:
                    last_ckpt = save(epoch, micro) or last_ckpt
            inner.close()
            if stopped_early:
                last_ckpt = save(epoch, micro) or last_ckpt
                break
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.sched.epochs:
                last_metrics = evaluate(train_model, val_loader, device, cfg.amp, cfg.model.channels_last)
                rec = {"split": "val", "epoch": epoch, "step": step, **last_metrics,
                       "time_s": time.perf_counter() - t_start}
                mlog.log(rec)
                if ema is not None:
                    ema_metrics = evaluate(ema.module, val_loader, device, cfg.amp, cfg.model.channels_last)
                    mlog.log({"split": "val_ema", "epoch": epoch, "step": step, **ema_metrics})
                    last_metrics = {**last_metrics, "ema": ema_metrics}
                if main:
                    outer.set_postfix(top1=f"{last_metrics['top1']:.2f}", loss=f"{last_metrics['loss']:.3f}")
                    _logger.info("epoch %d/%d: val top-1 %.2f%%, top-5 %.2f%%, loss %.4f", epoch + 1,
                                 cfg.sched.epochs, last_metrics["top1"], last_metrics["top5"], last_metrics["loss"])
            last_ckpt = save(epoch + 1, 0, last_metrics) or last_ckpt
            outer.update(1)
            for cb in callbacks:
                cb("epoch_end", {"step": step, "epoch": epoch, "metrics": last_metrics, "model": model})
    finally:
        outer.close()
        mlog.close()

    curve = eval_json = None
    if main:
        curve = plot_curves(mlog.read(), run_dir / "curve.png", title=f"{cfg.name}: {_model_desc(cfg)}")
        if last_metrics:
            eval_json = run_dir / "eval.json"
            eval_json.write_text(json.dumps({"checkpoint": str(last_ckpt), "split": cfg.data.val_split,
                                             "epoch": epoch + 1, "step": step, **last_metrics}, indent=2))
    cleanup_distributed()
    return TrainResult(
        run_dir=run_dir,
        checkpoint=last_ckpt,
        config_path=run_dir / "config.yaml",
        metrics_jsonl=mlog.jsonl,
        metrics_csv=mlog.csv,
        curve_png=curve,
        eval_json=eval_json,
        metrics=last_metrics,
        epochs=epoch + 1,
        steps=step,
        elapsed_s=time.perf_counter() - t_start,
        stopped_early=stopped_early,
    )

