"""Training, evaluation and prediction loops for UPerNet-FocalNet segmentation (plain functions).

The recipe is the authors' (mmseg 0.x) one: AdamW, poly decay to ``min_lr`` with a linear warm-up computed as
mmcv's ``PolyLrUpdaterHook`` does (the warm-up multiplies the poly value), iteration-based training on random
crops, mIoU evaluation every ``eval_interval`` iterations, checkpoints written atomically with the resolved
config inside, so ``focalnet segment eval`` needs nothing but the checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from .config import SegConfig
from .data import SegDataError, SegFolderDataset
from .inference import inference_aug
from .metrics import ConfusionMatrix
from .model import UperNetSegmentor, build_segmentor
from .transforms import SegTestTransform, SegTrainTransform

__all__ = [
    "poly_warmup_factor",
    "build_optimizer",
    "make_dataset",
    "train",
    "evaluate",
    "predict",
    "save_checkpoint",
    "load_checkpoint",
]

_logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def poly_warmup_factor(it: int, max_iters: int, power: float = 1.0, min_ratio: float = 0.0, warmup_iters: int = 0,
                       warmup_ratio: float = 1e-6) -> float:
    """LR multiplier at iteration ``it`` (0-based): mmcv's poly schedule with linear warm-up.

    ``min_ratio`` is ``min_lr / lr``. During warm-up the poly value is scaled by
    ``1 - (1 - it / warmup_iters) * (1 - warmup_ratio)``, so it starts at ``warmup_ratio`` x the poly value.
    """
    poly = (1 - min_ratio) * (1 - min(it, max_iters) / max_iters) ** power + min_ratio
    if it < warmup_iters:
        poly *= 1 - (1 - it / warmup_iters) * (1 - warmup_ratio)
    return poly


def build_optimizer(model: UperNetSegmentor, tc) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    groups = model.param_groups(tc.weight_decay, tc.norm_decay_mult)
    opt = torch.optim.AdamW(groups, lr=tc.lr, betas=tuple(tc.betas))
    min_ratio = tc.min_lr / tc.lr if tc.lr > 0 else 0.0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda it: poly_warmup_factor(it, tc.max_iters, tc.power, min_ratio, tc.warmup_iters, tc.warmup_ratio)
    )
    return opt, sched


def make_dataset(cfg: SegConfig, split: str, transform=None) -> SegFolderDataset:
    """The ``train`` or ``val`` split of ``cfg.data`` (raises :class:`SegDataError` with the files at fault)."""
    d = cfg.data
    root = Path(d.root)
    if not root.is_dir():
        raise SegDataError(f"data root not found: {root} (set data.root, or write the synthetic set with "
                           "`focalnet segment synth --out DIR`)")
    img_dir, ann_dir = (d.train_img_dir, d.train_ann_dir) if split == "train" else (d.val_img_dir, d.val_ann_dir)
    return SegFolderDataset(root / img_dir, root / ann_dir, cfg.model.num_classes, d.reduce_zero_label,
                            cfg.model.ignore_index, transform, d.img_suffix, d.ann_suffix)


def train_transform(cfg: SegConfig) -> SegTrainTransform:
    d = cfg.data
    return SegTrainTransform(d.img_scale, d.ratio_range, d.crop_size, d.cat_max_ratio, d.flip_prob, d.photometric,
                             d.mean, d.std, cfg.model.ignore_index)


def test_transform(cfg: SegConfig) -> SegTestTransform:
    return SegTestTransform(cfg.data.img_scale, cfg.data.mean, cfg.data.std)


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, cfg: SegConfig, it: int,
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                    metrics: dict | None = None) -> None:
    """Write atomically (temp file + ``os.replace``): a crash never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj: dict[str, Any] = {"state_dict": model.state_dict(), "config": cfg.to_dict(), "iter": it,
                           "metrics": metrics or {}}
    if optimizer is not None:
        obj["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        obj["scheduler"] = scheduler.state_dict()
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[UperNetSegmentor, SegConfig, dict]:
    """Rebuild the segmentor from a checkpoint's own config and load its weights (strict, ``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable segmentation checkpoint ({e.__class__.__name__}: {e})") from e
    if not isinstance(obj, dict) or "state_dict" not in obj or "config" not in obj:
        raise ValueError(f"{path}: not a `focalnet segment` checkpoint (needs 'state_dict' and 'config')")
    cfg = SegConfig.from_dict(obj["config"]).validate()
    model = build_segmentor(cfg.model, load_pretrained=False)
    model.load_state_dict(obj["state_dict"], strict=True)
    return model, cfg, obj


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _infinite(loader: DataLoader):
    while True:
        yield from loader


def train(cfg: SegConfig, out_dir: str | os.PathLike, progress: bool = False, resume: str | None = None,
          on_log: Callable[[dict], None] | None = None) -> dict:
    """Train ``cfg`` and write checkpoints/logs to ``out_dir``. Returns ``{"history", "evals", "checkpoint"}``.

    ``history`` holds one record per iteration (loss terms, lr); ``evals`` the mIoU evaluations.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _seed_all(cfg.train.seed)
    tc, device = cfg.train, resolve_device(cfg.train.device)
    train_ds = make_dataset(cfg, "train", train_transform(cfg))
    val_ds = make_dataset(cfg, "val") if tc.eval_interval > 0 else None
    if cfg.data.check:
        for ds in (train_ds, val_ds):
            if ds is not None:
                ds.check(progress)
    if len(train_ds) < tc.batch_size:
        raise SegDataError(f"{len(train_ds)} training images are fewer than one batch of {tc.batch_size}")
    model = build_segmentor(cfg.model).to(device)
    opt, sched = build_optimizer(model, tc)
    start = 0
    if resume:
        _, _, obj = load_checkpoint(resume)
        model.load_state_dict(obj["state_dict"])
        if "optimizer" in obj:
            opt.load_state_dict(obj["optimizer"])
        if "scheduler" in obj:
            sched.load_state_dict(obj["scheduler"])
        start = int(obj["iter"])
        _logger.info("resumed from %s at iteration %d", resume, start)
    (out / "config.yaml").write_text(_yaml(cfg.to_dict()))
    g = torch.Generator().manual_seed(tc.seed)
    loader = DataLoader(train_ds, batch_size=tc.batch_size, shuffle=True, drop_last=True, generator=g,
                        num_workers=cfg.data.workers, persistent_workers=cfg.data.workers > 0,
                        worker_init_fn=_worker_init, pin_memory=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=tc.amp and device.type == "cuda")
    history: list[dict] = []
    evals: list[dict] = []
    bar = _bar(range(start, tc.max_iters), progress, "train")
    batches = _infinite(loader)
    model.train()
    t0, seen = time.perf_counter(), 0
    ckpt = out / "latest.pt"
    for it in bar:
        img, target = next(batches)
        img, target = img.to(device, non_blocking=True), target.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=tc.amp and device.type == "cuda"):
            losses = model.losses(img, target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"]).backward()
        if tc.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        scaler.step(opt)
        scaler.update()
        rec = {"iter": it + 1, "lr": opt.param_groups[0]["lr"]}
        rec.update({k: float(v.detach()) for k, v in losses.items()})
        sched.step()
        seen += img.shape[0]
        history.append(rec)
        if (it + 1) % tc.log_interval == 0 or it + 1 == tc.max_iters:
            rec["img_per_s"] = seen / (time.perf_counter() - t0)
            t0, seen = time.perf_counter(), 0
            _logger.info("iter %d/%d loss %.4f lr %.3g (%.1f img/s)", it + 1, tc.max_iters, rec["loss"], rec["lr"],
                         rec["img_per_s"])
            if on_log:
                on_log(rec)
        if progress:
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
        last = it + 1 == tc.max_iters
        if val_ds is not None and ((it + 1) % tc.eval_interval == 0 or last):
            m = evaluate(model, val_ds, cfg, device=device, progress=progress)
            m["iter"] = it + 1
            evals.append(m)
            _logger.info("iter %d: mIoU %.2f aAcc %.2f mAcc %.2f", it + 1, m["mIoU"], m["aAcc"], m["mAcc"])
            model.train()
        if (it + 1) % tc.checkpoint_interval == 0 or last:
            save_checkpoint(ckpt, model, cfg, it + 1, opt, sched, evals[-1] if evals else None)
    (out / "log.json").write_text(json.dumps({"history": history, "evals": evals}, indent=1))
    return {"history": history, "evals": evals, "checkpoint": str(ckpt)}


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _bar(it, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, dynamic_ncols=True)


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)


@torch.no_grad()
def predict(model: UperNetSegmentor, image: np.ndarray | torch.Tensor, cfg: SegConfig, aug: bool = False,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """Class probabilities (K,H,W) of one (H,W,3) uint8 image, at its own size (single- or multi-scale)."""
    img = torch.from_numpy(np.array(image)) if isinstance(image, np.ndarray) else image  # writable copy
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {tuple(img.shape)}")
    img = img.permute(2, 0, 1)
    tt, s = test_transform(cfg), cfg.test
    ratios, flip = (s.aug_ratios, s.flip) if aug else ((1.0,), False)
    was_training = model.training
    model.eval()
    try:
        probs = inference_aug(model, lambda r: tt(img, r)[None].to(device), img.shape[-2:], cfg.model.num_classes,
                              ratios, flip, s.mode, s.crop_size, s.stride)
    finally:
        model.train(was_training)
    return probs[0].cpu()


def evaluate(model: UperNetSegmentor, dataset: SegFolderDataset, cfg: SegConfig, aug: bool = False,
             device: torch.device | str | None = None, progress: bool = False) -> dict:
    """mIoU / mAcc / pixel accuracy (aAcc) over ``dataset`` at each image's original size."""
    if len(dataset) == 0:
        raise SegDataError("the evaluation set is empty")
    device = device or next(model.parameters()).device
    cm = ConfusionMatrix(cfg.model.num_classes, cfg.model.ignore_index)
    for i in _bar(range(len(dataset)), progress, "eval"):
        img, labels = dataset.load(i)
        pred = predict(model, img, cfg, aug, device).argmax(0)
        cm.update(pred, torch.from_numpy(labels))
    res = cm.compute(cfg.data.class_names)
    res["images"] = len(dataset)
    res["aug"] = aug
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in res.items()}
