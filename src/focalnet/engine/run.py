"""Using a finished (or running) run folder: find its checkpoint, task and config; evaluate; predict.

``focalnet eval --checkpoint RUN_DIR_OR_FILE`` and ``focalnet predict ... --checkpoint ...`` work for every task
because a checkpoint carries its task name, resolved config and the task's ``meta``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focalnet.errors import one_line
from focalnet.utils.config import ConfigError, apply_overrides, from_dict

from .checkpoint import find_latest, is_sharded, load_checkpoint
from .distributed import resolve_device
from .logger import write_json
from .registry import get_task
from .task import Context, Task

_logger = logging.getLogger(__name__)

__all__ = ["LoadedRun", "find_checkpoint", "load_run", "evaluate_run", "predict_run", "write_json"]


@dataclass
class LoadedRun:
    task: Task
    model: nn.Module
    cfg: Any
    checkpoint: Path
    step: int
    ctx: Context


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file or sharded folder, or the newest ``checkpoint-*.pt|.dcp`` of a run folder (or its
    ``checkpoints/``)."""
    p = Path(path)
    if is_sharded(p):  # a sharded (torch.distributed.checkpoint) checkpoint folder
        return p
    if p.is_dir():
        found = find_latest(p / "checkpoints") or find_latest(p)
        if found is None and (p / "checkpoints" / "best.pt").is_file():
            found = p / "checkpoints" / "best.pt"
        if found is None and is_sharded(p / "checkpoints" / "best.dcp"):
            found = p / "checkpoints" / "best.dcp"
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {p} (train first: focalnet train --out {p})")
        return found
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if not p.is_file():
        raise FileNotFoundError(f"{p} is not a regular file")
    return p


def load_run(path: str | os.PathLike, overrides: list[str] | None = None, device: str = "auto", amp: str = "none",
             use_ema: bool = False, allowed: tuple[str, ...] | None = None) -> LoadedRun:
    """Rebuild the model of a checkpoint with its own config (+ ``overrides`` of data / evaluation keys) in eval
    mode on ``device``."""
    ckpt_path = find_checkpoint(path)
    from focalnet.weights.loading import CheckpointError

    ck = load_checkpoint(ckpt_path, map_location="cpu")
    task_name = ck.get("task", "classification")
    try:
        task_cls = get_task(task_name)
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"{ckpt_path}: {e}") from None
    data = ck.get("config") or {}
    if not isinstance(data, dict):
        raise CheckpointError(f"{ckpt_path}: its saved config is a {type(data).__name__}, not a mapping")
    try:  # the checkpoint's own config first: a broken one is a bad file (exit 1), not a bad command line
        task_cls.validate_config(from_dict(task_cls.config_class, json.loads(json.dumps(data))))
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt_path}: its saved config is not valid ({one_line(e)})") from None
    overrides = list(overrides or [])
    keys = [o.split("=", 1)[0].strip() for o in overrides]
    if allowed is not None:
        bad = [k for k in keys if not k.startswith(allowed)]
        if bad:
            raise ConfigError(f"only {', '.join(k + '*' for k in allowed)} can be changed here, not: {', '.join(bad)}")
    fixed = [k for k in keys if k == "task" or k.split(".")[0] == "model"]  # the weights decide the model
    if fixed:
        raise ConfigError(f"{', '.join(fixed)}: the model of a checkpoint cannot change at evaluation or prediction "
                          "(override data / test settings only)")
    data = apply_overrides(json.loads(json.dumps(data)), overrides, task_cls.config_class)
    cfg = from_dict(task_cls.config_class, data)
    task_cls.validate_config(cfg)
    dev = resolve_device(device)
    if cfg.threads > 0 and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(cfg.threads)
    try:
        task = task_cls(cfg)
        task.load_meta(ck.get("meta") or {})
        model = task.build_model()
    except Exception as e:  # a checkpoint whose config / metadata cannot rebuild its model
        raise CheckpointError(f"{ckpt_path}: cannot rebuild the model it describes ({type(e).__name__}: "
                              f"{one_line(e)})") from None
    state = ck["ema"] if use_ema and ck.get("ema") is not None else ck["model"]
    if use_ema and ck.get("ema") is None:
        raise ConfigError(f"{ckpt_path} has no EMA weights (the run was trained with ema=false)")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{ckpt_path}: the weights do not fit the model its config describes "
                              f"({str(e).splitlines()[0]})") from None
    from focalnet.weights.loading import check_finite

    check_finite(model, ckpt_path)
    model = model.to(dev).eval()
    ctx = Context(dev, amp, False, progress=True)
    return LoadedRun(task, model, cfg, ckpt_path, int(ck.get("step", 0)), ctx)




def _run_dir_of(ckpt: Path) -> Path:
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def evaluate_run(path: str | os.PathLike, overrides: list[str] | None = None, device: str = "auto",
                 amp: str = "none", use_ema: bool = False, json_path: str | os.PathLike | None = None,
                 fast: bool = False) -> dict[str, Any]:
    """Metrics of a checkpoint on its config's evaluation data; written to ``json_path`` (default: ``eval.json``
    in the run folder). Returns the metrics plus ``task``, ``checkpoint``, ``step`` and ``json``. ``fast``
    (classification): run the model through :class:`focalnet.Predictor`'s fast path."""
    run = load_run(path, overrides, device, amp, use_ema)
    dataset = run.task.build_eval_dataset()
    model = run.model
    if fast:
        if run.cfg.task != "classification":
            raise ValueError(f"--fast is for classification checkpoints; this one is a {run.cfg.task} run")
        from focalnet.predictor import Predictor

        model = Predictor(model, device=run.ctx.device, expected_images=len(dataset)).as_module()
    with torch.no_grad():
        metrics = run.task.evaluate(model, dataset, run.ctx)
    result = {"task": run.cfg.task, "checkpoint": str(run.checkpoint), "step": run.step, "ema": use_ema,
              "device": str(run.ctx.device), **({"predictor": model.predictor.settings.as_dict()} if fast else {}),
              **metrics}
    out = Path(json_path) if json_path else _run_dir_of(run.checkpoint) / "eval.json"
    write_json(result, out)
    result["json"] = str(out)
    result["summary"] = run.task.summary(metrics)
    return result


def predict_run(path: str | os.PathLike, inputs: list[str], overrides: list[str] | None = None,
                device: str = "auto", out_dir: str | os.PathLike | None = None, use_ema: bool = False,
                options: dict[str, Any] | None = None) -> tuple[Task, list[dict[str, Any]]]:
    """The task's predictions for ``inputs`` (one result per input); pictures go to ``out_dir``."""
    run = load_run(path, overrides, device, "none", use_ema)
    out = Path(out_dir) if out_dir else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"--out {out} is a file; give a folder for the pictures")
        out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        results = run.task.predict(run.model, list(inputs), run.ctx, out, dict(options or {}))
    return run.task, results
