"""Segmentation building blocks used by the segmentation task (:mod:`focalnet.tasks.segmentation`): data sets and
transforms of a config, the optimizer and schedule, mIoU evaluation and prediction. Training itself is the shared
engine's loop.

The recipe is the authors' (mmseg 0.x) one: AdamW, poly decay to ``min_lr`` with a linear warm-up computed as
mmcv's ``PolyLrUpdaterHook`` does (the warm-up multiplies the poly value), iteration-based training on random
crops, mIoU evaluation every ``eval_every_steps`` iterations.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from .config import SegConfig
from .data import SegDataError, SegFolderDataset
from .inference import inference_aug
from .metrics import ConfusionMatrix
from .model import UperNetSegmentor
from .transforms import SegTestTransform, SegTrainTransform

__all__ = ["poly_warmup_factor", "build_optimizer", "make_dataset", "train_transform", "test_transform", "evaluate",
           "predict"]

_logger = logging.getLogger(__name__)


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
    """AdamW and the poly + warm-up schedule of ``tc`` (a :class:`~focalnet.seg.config.OptimConfig`)."""
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
                           "`focalnet data synth ade --out DIR`)")
    img_dir, ann_dir = (d.train_img_dir, d.train_ann_dir) if split == "train" else (d.val_img_dir, d.val_ann_dir)
    return SegFolderDataset(root / img_dir, root / ann_dir, cfg.model.num_classes, d.reduce_zero_label,
                            cfg.model.ignore_index, transform, d.img_suffix, d.ann_suffix)


def train_transform(cfg: SegConfig) -> SegTrainTransform:
    d = cfg.data
    return SegTrainTransform(d.img_scale, d.ratio_range, d.crop_size, d.cat_max_ratio, d.flip_prob, d.photometric,
                             d.mean, d.std, cfg.model.ignore_index)


def test_transform(cfg: SegConfig) -> SegTestTransform:
    return SegTestTransform(cfg.data.img_scale, cfg.data.mean, cfg.data.std)


def _bar(it, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, dynamic_ncols=True)


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
