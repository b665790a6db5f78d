"""The training loop, once for every task: :func:`fit` runs a config to the end (or to ``max_steps``).

What it guarantees, and how:

* **Resumable to the bit.** A checkpoint holds model, optimizer, scheduler, grad scaler, EMA, the position
  (epoch, optimizer step, micro-batch within the epoch) and every RNG state. Sample order depends only on
  ``(seed, epoch)`` and per-sample randomness only on ``(seed, epoch, index)`` (:mod:`focalnet.engine.data`), and the
  data loader gets its own seeded generator, so a run killed anywhere and resumed with ``resume=auto`` ends with the
  same weights as an uninterrupted one (tested on CPU for every task). Logs are cut back to the checkpoint's step.
* **Distributed = single process with the same global batch.** Under ``torchrun`` the rank comes from the
  environment; each optimizer step sees the same global batch as one process with ``world_size`` times the
  per-process batch (DDP; tested with two Gloo processes per task).
* **Faults stop cleanly.** A non-finite loss raises :class:`NonFiniteLossError` before the optimizer step, so the
  last checkpoint on disk is the last good one; checkpoints are written atomically.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focalnet.errors import FocalnetError
from focalnet.utils.config import ConfigError, to_dict

from .checkpoint import (
    FORMAT_VERSION,
    best_path,
    capture_rng,
    checkpoint_path,
    clean_stale_temp_files,
    find_latest,
    is_sharded,
    link_sharded,
    load_checkpoint,
    load_sharded_into,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
    save_sharded_checkpoint,
)
from .config import RunConfig, save_config, structural_changes
from .data import GlobalBatchSampler, SeededDataset
from .distributed import DistInfo, all_reduce_sum, barrier, cleanup_distributed, init_distributed, resolve_device
from .logger import MetricLogger, flatten_metrics, plot_curves, write_json
from .registry import get_task
from .task import Context, Task

_logger = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "TrainResult", "fit", "unwrap_model", "check_resume_config", "resolve_resume"]

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
    task: str = "classification"
    metrics: dict[str, Any] = field(default_factory=dict)  # the last validation metrics
    best_checkpoint: Path | None = None
    epochs: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # the train records logged by this process


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile / DDP wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def _seed_all(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_resume(cfg: RunConfig) -> Path | None:
    """The checkpoint ``cfg.resume`` points at (``auto``: the newest of the run; a run folder: its newest)."""
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        return find_latest(cfg.run_dir / "checkpoints")
    p = Path(cfg.resume)
    if is_sharded(p):
        return p
    if p.is_dir():
        found = find_latest(p / "checkpoints") or find_latest(p)
        if found is None:
            raise FileNotFoundError(f"resume={cfg.resume}: no checkpoint in that folder")
        return found
    if not p.is_file():
        raise FileNotFoundError(f"resume={cfg.resume}: no such checkpoint")
    return p


def check_resume_config(task_cls: type[Task], saved: dict[str, Any], now: dict[str, Any], source: Path) -> None:
    """Refuse structural changes against the checkpoint's config (naming the keys); warn about the others."""
    structural = {k for k in task_cls.structural_keys}
    hard, soft = structural_changes(saved, now, structural)
    hard = [k for k in hard if not any(k == s or k.startswith(s + ".") for s in task_cls.resume_safe_keys)]
    if hard:
        from .config import _flatten

        a, b = _flatten(saved), _flatten(now)
        raise ConfigError(
            f"cannot resume {source} with a different model: "
            + ", ".join(f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in hard[:6])
            + "; drop those overrides, or start a new run (another name=)"
        )
    soft = [k for k in soft if k not in hard]
    if soft:
        _logger.warning("resuming %s with changed settings (%s): the run will not reproduce an uninterrupted one",
                        source, ", ".join(soft[:8]))


class _Checkpointer:
    """Builds the state of a run and writes it: keep-last-N ``checkpoint-<step>.pt`` + ``best.pt``."""

    def __init__(self, cfg, task, model, optimizer, scheduler, scaler, ema, dist_info: DistInfo,
                 sharded: bool = False) -> None:
        self.cfg, self.task, self.model, self.optimizer, self.sharded = cfg, task, model, optimizer, sharded
        self.scheduler, self.scaler, self.ema, self.dist = scheduler, scaler, ema, dist_info
        self.dir = cfg.run_dir / "checkpoints"
        self.best_value: float | None = None
        self.dcp = sharded and cfg.fsdp_checkpoint == "sharded"

    def state(self, step: int, next_epoch: int, next_micro: int, metrics: dict | None) -> dict[str, Any]:
        rng = capture_rng()
        if self.dist.enabled:  # every rank's RNG (drop path differs per rank)
            gathered: list[Any] = [None] * self.dist.world_size
            torch.distributed.all_gather_object(gathered, rng)
            rng = gathered
        if self.dcp:  # FSDP2, sharded checkpoint: each rank keeps its own shards (written by every rank)
            from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

            model_sd = get_model_state_dict(self.model)
            optim_sd = get_optimizer_state_dict(self.model, self.optimizer)
        elif self.sharded:  # FSDP2, fsdp_checkpoint=full: gather the full state dicts to rank 0 (one plain file)
            from .fsdp import full_state

            model_sd, optim_sd = full_state(self.model, self.optimizer)
        else:
            model_sd, optim_sd = self.model.state_dict(), self.optimizer.state_dict()
        return {
            "format_version": FORMAT_VERSION,
            "task": self.cfg.task,
            "model": model_sd,
            "optimizer": optim_sd,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "epoch": next_epoch if next_micro else next_epoch - 1,
            "next_epoch": next_epoch,
            "next_micro": next_micro,
            "step": step,
            "rng": rng,
            "config": to_dict(self.cfg),
            "meta": self.task.meta(),
            "metrics": metrics or {},
            "best_value": self.best_value,
        }

    def save(self, step: int, next_epoch: int, next_micro: int, metrics: dict | None = None) -> Path | None:
        best = self._is_best(metrics)
        state = self.state(step, next_epoch, next_micro, metrics)  # collective under DDP: all ranks build it
        path = None
        if self.dcp:  # every rank writes its shards; rank 0 the rest (engine.pt) and the rename
            tensors = {"model": state.pop("model"), "optimizer": state.pop("optimizer")}
            path = save_sharded_checkpoint(tensors, state, checkpoint_path(self.dir, step, sharded=True),
                                           self.dist.is_main)
            if self.dist.is_main:
                save_config(self.cfg, self.dir / "config.yaml")
                if best:
                    link_sharded(path, best_path(self.dir, sharded=True))
                prune_checkpoints(self.dir, self.cfg.keep_checkpoints)
            barrier()
            return path if self.dist.is_main else None
        if self.dist.is_main:
            path = save_checkpoint(state, checkpoint_path(self.dir, step))
            save_config(self.cfg, self.dir / "config.yaml")
            if best:
                _link_or_save(path, state, best_path(self.dir))
            prune_checkpoints(self.dir, self.cfg.keep_checkpoints)
            _logger.debug("saved %s%s", path, " (best)" if best else "")
        barrier()
        return path

    def _is_best(self, metrics: dict | None) -> bool:
        key = self.task.best_metric
        if not key or not metrics:
            return False
        v = flatten_metrics(metrics).get(key)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        if self.best_value is None or v > self.best_value:
            self.best_value = float(v)
            return True
        return False


def _link_or_save(src: Path, state: dict[str, Any], dst: Path) -> None:
    """``dst`` becomes the same file as the checkpoint just written (a hard link, swapped in atomically), so the
    best checkpoint costs no second write; where links are not possible it is written again."""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        tmp.unlink(missing_ok=True)
        save_checkpoint(state, dst)


def _wrap(model: nn.Module, cfg: RunConfig, dist_info: DistInfo, device: torch.device) -> nn.Module:
    train_model = model
    if dist_info.enabled and cfg.distributed == "ddp":  # (fsdp shards the model in place before the optimizer)
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                          find_unused_parameters=getattr(model, "find_unused_parameters", False))
    if cfg.compile:
        train_model = torch.compile(train_model)
    return train_model


# ---------------------------------------------------------------------------------------------- fit
def fit(cfg: RunConfig, callbacks: Iterable[Callback] = ()) -> TrainResult:
    """Train ``cfg`` (any registered task) to completion or to ``max_steps``; returns where the outputs went.

    ``callbacks`` are called as ``cb(event, state)`` with events ``"step_end"`` (after each optimizer step;
    ``state`` has ``step``, ``epoch``, ``loss``, ``losses``, ``model``) and ``"epoch_end"`` (``state`` adds
    ``metrics``).
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    callbacks = list(callbacks)
    task_cls = get_task(cfg.task)
    task = task_cls(cfg)
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
    if cfg.amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("amp=bf16 but this GPU does not support bfloat16; use amp=fp16")
    resume_path = resolve_resume(cfg)
    if cfg.resume == "auto" and resume_path is None:
        _logger.info("resume=auto: no checkpoint in %s yet, starting from scratch", ckpt_dir)
    # (a sharded checkpoint: its engine state now, model and optimizer once the model is built and sharded)
    ck = load_checkpoint(resume_path, map_location="cpu", tensors=False) if resume_path is not None else None
    if ck is not None:
        if ck.get("task", "classification") != cfg.task:
            raise ConfigError(f"cannot resume {resume_path}: it is a {ck.get('task', 'classification')} run, "
                              f"this config is task={cfg.task}")
        check_resume_config(task_cls, ck.get("config") or {}, to_dict(cfg), resume_path)
    _seed_all(cfg.seed)  # identical initial weights on every rank

    # ---- data
    settings = task.train_settings()
    train_base, val_ds = task.build_datasets()
    train_ds = SeededDataset(train_base, cfg.seed)
    accum = settings.accum_steps
    sampler = GlobalBatchSampler(len(train_ds), settings.batch_size, dist_info.world_size, dist_info.rank, accum,
                                 seed=cfg.seed)
    loader_gen = torch.Generator()
    train_loader = torch.utils.data.DataLoader(
        train_ds, batch_sampler=sampler, num_workers=settings.num_workers, pin_memory=device.type == "cuda",
        generator=loader_gen, collate_fn=task.collate,
    )
    steps_per_epoch = sampler.steps_per_epoch
    total_steps = max(1, int(task.total_steps(steps_per_epoch)))
    epochs = math.ceil(total_steps / steps_per_epoch)

    # ---- model, optimizer, schedule
    model = task.build_model().to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    sharded = dist_info.enabled and cfg.distributed == "fsdp"
    if sharded:
        if cfg.ema:
            raise ConfigError("ema=true is not supported with distributed=fsdp (the EMA copy would not be sharded)")
        from .fsdp import shard_model

        shard_model(model)  # before the optimizer: it must hold the sharded parameters
    optimizer, scheduler = task.build_optimizer(model, sampler.global_batch, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema_decay)
    ckpt = _Checkpointer(cfg, task, model, optimizer, scheduler, scaler, ema, dist_info, sharded)

    # ---- resume
    epoch0, micro0, step = 0, 0, 0
    rng_to_restore = None
    if ck is not None:
        if ck.get("sharded"):  # DCP reshards: saved by any number of processes, loaded by this many
            load_sharded_into(resume_path, model, optimizer)
        elif sharded:
            from .fsdp import load_full_state

            load_full_state(model, optimizer, ck["model"], ck["optimizer"])
        else:
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        if ema is not None and ck.get("ema") is not None:
            ema.module.load_state_dict(ck["ema"])
        epoch0, micro0, step = int(ck["next_epoch"]), int(ck["next_micro"]), int(ck["step"])
        ckpt.best_value = ck.get("best_value")
        rng = ck["rng"]
        if isinstance(rng, list):  # one state per rank; a different world size cannot continue them exactly
            rng_to_restore = rng[dist_info.rank] if len(rng) == dist_info.world_size else None
            if rng_to_restore is None:
                _logger.warning("checkpoint has RNG states for %d processes, this run has %d: reseeding", len(rng),
                                dist_info.world_size)
        else:
            rng_to_restore = rng if dist_info.world_size == 1 else None
        _logger.info("resumed from %s: epoch %d, step %d", resume_path, epoch0, step)
        ck = None
    if dist_info.rank and rng_to_restore is None:
        torch.manual_seed(cfg.seed + dist_info.rank + 1000 * step)  # independent drop path per rank

    train_model = _wrap(model, cfg, dist_info, device)
    ctx = Context(device, cfg.amp, cfg.channels_last, dist_info.rank, dist_info.world_size,
                  progress=main and cfg.progress)
    # FSDP: a sharded forward needs every rank, so every rank evaluates the whole set in lockstep (as one process)
    eval_ctx = Context(device, cfg.amp, cfg.channels_last, progress=main and cfg.progress) if sharded else ctx
    mlog = MetricLogger(run_dir, enabled=main, tensorboard=cfg.tensorboard, metric_fields=task.metric_fields,
                        resume_step=step if resume_path is not None else None)
    if main:
        save_config(cfg, run_dir / "config.yaml")
        _logger.info("training %s on %s: %d samples, %d steps/epoch, %d steps, global batch %d, %d process(es)",
                     cfg.task, device, len(train_ds), steps_per_epoch, total_steps, sampler.global_batch,
                     dist_info.world_size)

    def evaluate(epoch: int) -> dict[str, Any]:
        if val_ds is None:
            return {}
        model.eval()
        try:
            with torch.no_grad():
                metrics = task.evaluate(model, val_ds, eval_ctx)
            rec = {"split": "val", "epoch": epoch, "step": step, **metrics, "time_s": time.perf_counter() - t_start}
            mlog.log(rec)
            if ema is not None:
                with torch.no_grad():
                    ema_metrics = task.evaluate(ema.module, val_ds, eval_ctx)
                mlog.log({"split": "val_ema", "epoch": epoch, "step": step, **ema_metrics})
                metrics = {**metrics, "ema": ema_metrics}
        finally:
            train_model.train()
        if main:
            _logger.info("step %d (epoch %d): %s", step, epoch + 1, task.summary(metrics))
        return metrics

    history: list[dict[str, Any]] = []
    last_metrics: dict[str, Any] = {}
    stopped_early = False
    last_ckpt = resume_path
    evaluated_at = -1
    epoch = epoch0
    done = step >= total_steps
    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not (main and cfg.progress),
               dynamic_ncols=True)
    try:
        if rng_to_restore is not None:
            restore_rng(rng_to_restore)
        train_model.train()
        optimizer.zero_grad(set_to_none=True)
        for epoch in range(epoch0, epochs):
            if done:
                break
            start = micro0 if epoch == epoch0 else 0
            sampler.set_epoch(epoch, start)
            train_ds.set_epoch(epoch)
            loader_gen.manual_seed(cfg.seed * 7919 + epoch)
            t_log, n_log, log_terms = time.perf_counter(), 0, {}
            micro = start
            for batch in train_loader:
                batch = ctx.to_device(batch)
                micro += 1
                boundary = micro % accum == 0
                sync = (contextlib.nullcontext() if boundary or not dist_info.enabled or not hasattr(train_model,
                        "no_sync") else train_model.no_sync())
                with sync:
                    with ctx.autocast():
                        losses = task.losses(train_model, batch, ctx)
                    loss = losses["loss"].float()
                    bad = torch.tensor([0.0 if torch.isfinite(loss.detach()) else 1.0])
                    if dist_info.enabled:  # every rank must stop together, or the others hang
                        bad = all_reduce_sum(bad.to(device)).cpu()
                    if float(bad) > 0:
                        latest = find_latest(ckpt_dir)
                        terms = {k: round(float(v.detach()), 4) for k, v in losses.items()}
                        raise NonFiniteLossError(
                            f"the training loss is {float(loss.detach())} at epoch {epoch + 1}, step {step + 1} "
                            f"(lr {optimizer.param_groups[0]['lr']:.3g}; terms {terms}); stopped before updating "
                            "the weights. "
                            + (f"The last good checkpoint is {latest}. " if latest else "No checkpoint was saved. ")
                            + "Try a lower learning rate, gradient clipping, or amp=bf16 instead of fp16."
                        )
                    scaler.scale(loss / accum).backward()
                for k, v in losses.items():
                    log_terms.setdefault(k, []).append(float(v.detach()))
                n_log += _batch_len(batch)
                if not boundary:
                    continue
                if settings.clip_grad:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if hasattr(scheduler, "step_update"):
                    scheduler.step_update(num_updates=step)
                else:
                    scheduler.step()
                if ema is not None:
                    ema.update(model, step=step)
                bar.update(1)
                end_of_epoch = micro == steps_per_epoch * accum
                step_loss = log_terms["loss"][-1]
                if step % cfg.log_every == 0 or end_of_epoch or step >= total_steps:
                    dt = time.perf_counter() - t_log
                    rec = {"split": "train", "epoch": epoch, "step": step,
                           **{k: sum(v) / len(v) for k, v in log_terms.items()},
                           "lr": optimizer.param_groups[0]["lr"],
                           "images_per_s": n_log * dist_info.world_size / dt if dt > 0 else 0.0,
                           "time_s": time.perf_counter() - t_start}
                    mlog.log(rec)
                    history.append(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{rec['lr']:.2e}")
                    if not (main and cfg.progress) and main:
                        _logger.info("step %d/%d loss %.4f lr %.2e", step, total_steps, rec["loss"], rec["lr"])
                    t_log, n_log, log_terms = time.perf_counter(), 0, {}
                for cb in callbacks:
                    cb("step_end", {"step": step, "epoch": epoch, "loss": step_loss, "model": model})
                if step >= total_steps:
                    done = True
                    break
                if cfg.max_steps is not None and step >= cfg.max_steps:
                    stopped_early = True
                    break
                if end_of_epoch:
                    continue
                if cfg.eval_every_steps and step % cfg.eval_every_steps == 0:
                    last_metrics, evaluated_at = evaluate(epoch), step
                    last_ckpt = ckpt.save(step, epoch, micro, last_metrics) or last_ckpt
                elif cfg.save_every_steps and step % cfg.save_every_steps == 0:
                    last_ckpt = ckpt.save(step, epoch, micro) or last_ckpt
            if stopped_early:  # max_steps: evaluate what there is, checkpoint the position, stop
                if evaluated_at != step:
                    last_metrics, evaluated_at = evaluate(epoch), step
                last_ckpt = ckpt.save(step, epoch, micro, last_metrics) or last_ckpt
                break
            finished_epoch = micro == steps_per_epoch * accum
            # eval_every_steps > 0 replaces the per-epoch evaluation (iteration-based recipes); the end always counts
            by_epoch = not cfg.eval_every_steps and (epoch + 1) % cfg.eval_every == 0
            by_step = cfg.eval_every_steps and step % cfg.eval_every_steps == 0
            if evaluated_at != step and (done or by_epoch or by_step):
                last_metrics, evaluated_at = evaluate(epoch), step
            if finished_epoch:
                last_ckpt = ckpt.save(step, epoch + 1, 0, last_metrics) or last_ckpt
            else:  # the schedule ended mid-epoch (iteration-based recipes)
                last_ckpt = ckpt.save(step, epoch, micro, last_metrics) or last_ckpt
            for cb in callbacks:
                cb("epoch_end", {"step": step, "epoch": epoch, "metrics": last_metrics, "model": model})
    finally:
        bar.close()
        mlog.close()

    curve = eval_json = None
    if main:
        curve = plot_curves(mlog.read(), run_dir / "curves.png", metric=task.best_metric,
                            title=f"{cfg.name} ({cfg.task})")
        if last_metrics:
            eval_json = write_json({"task": cfg.task, "checkpoint": str(last_ckpt), "epoch": epoch + 1, "step": step,
                                    **last_metrics}, run_dir / "eval.json")
    cleanup_distributed()
    best = best_path(ckpt_dir)
    return TrainResult(
        run_dir=run_dir,
        checkpoint=last_ckpt,
        config_path=run_dir / "config.yaml",
        metrics_jsonl=mlog.jsonl,
        metrics_csv=mlog.csv,
        curve_png=curve,
        eval_json=eval_json,
        task=cfg.task,
        metrics=last_metrics,
        best_checkpoint=best if best.is_file() else (best_dcp if is_sharded(best_dcp := best_path(ckpt_dir, True))
                                                     else None),
        epochs=epoch + 1,
        steps=step,
        elapsed_s=time.perf_counter() - t_start,
        stopped_early=stopped_early,
        history=history,
    )


def _batch_len(batch: Any) -> int:
    """Samples in a micro-batch: the length of its first tensor / list."""
    first = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    if isinstance(first, torch.Tensor):
        return int(first.shape[0]) if first.ndim else 1
    if isinstance(first, (list, tuple)):
        return len(first)
    if isinstance(first, dict) and first:
        return _batch_len(next(iter(first.values())))
    return 1
