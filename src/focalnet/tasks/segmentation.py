"""Semantic segmentation on the engine: UPerNet + FCN auxiliary head on FocalNet, ADE20K-layout folders, mIoU /
pixel accuracy (whole, sliding-window, multi-scale + flip), colour masks and overlays on prediction.

The config is :class:`focalnet.seg.config.SegConfig` (``task: segmentation``); the building blocks live in
:mod:`focalnet.seg`, this module only connects them to the engine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focalnet.engine.task import Context, Task, TrainSettings
from focalnet.seg.config import SegConfig

_logger = logging.getLogger(__name__)

__all__ = ["SegmentationTask", "palette"]


def palette(n: int):
    """Distinct, stable colours for class indices (the bit-interleaving colour map of PASCAL VOC)."""
    import numpy as np

    cmap = np.zeros((max(n, 256), 3), np.uint8)
    for i in range(len(cmap)):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def _fmt(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.2f}"


class SegmentationTask(Task):
    """Label every pixel with one of ``model.num_classes`` classes."""

    name = "segmentation"
    config_class = SegConfig
    best_metric = "mIoU"
    metric_fields = ("loss_decode", "loss_aux", "mIoU", "aAcc", "mAcc")
    structural_keys = ("task", "model")
    resume_safe_keys = ("model.pretrained", "model.frozen_stages")

    cfg: SegConfig

    @classmethod
    def validate_config(cls, cfg: SegConfig) -> None:
        cfg.validate()

    # ---- training
    def train_settings(self) -> TrainSettings:
        o = self.cfg.optim
        return TrainSettings(o.batch_size, o.accum_steps, o.grad_clip, self.cfg.data.workers, o.batch_size)

    def build_datasets(self):
        from focalnet.seg.data import SegDataError
        from focalnet.seg.evaluation import make_dataset, train_transform

        train = make_dataset(self.cfg, "train", train_transform(self.cfg))
        val = make_dataset(self.cfg, "val")
        if self.cfg.data.check:
            for ds in (train, val):
                ds.check(self.cfg.progress)
        if len(train) < self.cfg.optim.batch_size:
            raise SegDataError(f"{len(train)} training images are fewer than one batch of {self.cfg.optim.batch_size}")
        return train, val

    def build_model(self) -> nn.Module:
        from focalnet.seg.model import build_segmentor

        return build_segmentor(self.cfg.model, load_pretrained=not self._from_checkpoint)

    _from_checkpoint = False

    def build_optimizer(self, model: nn.Module, global_batch: int, steps_per_epoch: int):
        from focalnet.seg.evaluation import build_optimizer

        return build_optimizer(model, self.cfg.optim)

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.cfg.optim.max_iters

    def losses(self, model: nn.Module, batch, ctx: Context) -> dict[str, torch.Tensor]:
        img, target = batch
        return model(img, target)  # UperNetSegmentor.forward with a target returns its loss dict

    def evaluate(self, model: nn.Module, dataset, ctx: Context) -> dict[str, Any]:
        from focalnet.seg.evaluation import evaluate

        metrics = None
        if ctx.is_main:  # one process scores the whole set at each image's size; the others wait
            metrics = evaluate(model, dataset, self.cfg, aug=self.cfg.test.aug, device=ctx.device,
                               progress=ctx.progress)
        return ctx.broadcast(metrics)

    def summary(self, m: dict[str, Any]) -> str:
        return f"mIoU {_fmt(m['mIoU'])}  aAcc {_fmt(m['aAcc'])}  mAcc {_fmt(m['mAcc'])}  ({m['images']} images)"

    def meta(self) -> dict[str, Any]:
        return {"num_classes": self.cfg.model.num_classes, "class_names": self.cfg.data.class_names}

    def load_meta(self, meta: dict[str, Any]) -> None:
        self._from_checkpoint = True

    def build_eval_dataset(self):
        from focalnet.seg.evaluation import make_dataset

        return make_dataset(self.cfg, "val")

    # ---- prediction
    def predict(self, model: nn.Module, inputs: list[str], ctx: Context, out_dir: Path | None,
                options: dict[str, Any]) -> list[dict[str, Any]]:
        import numpy as np
        from PIL import Image

        from focalnet.data.images import ImageLoadError
        from focalnet.seg.data import read_image
        from focalnet.seg.evaluation import predict

        cfg = self.cfg
        names = cfg.data.class_names or [str(i) for i in range(cfg.model.num_classes)]
        pal = palette(cfg.model.num_classes)
        alpha = float(options.get("alpha", 0.5))
        results = []
        for path in inputs:
            try:
                img = read_image(path)
            except (ImageLoadError, OSError, ValueError) as e:
                results.append({"path": str(path), "error": str(e)})
                continue
            pred = predict(model, img, cfg, bool(options.get("aug_test")), ctx.device).argmax(0).numpy()
            pred = pred.astype(np.uint8)
            present = np.bincount(pred.reshape(-1), minlength=len(names)) / pred.size
            r: dict[str, Any] = {"path": str(path), "classes": {names[i]: round(float(present[i]), 4)
                                                                for i in np.argsort(-present) if present[i] > 0}}
            if out_dir is not None:
                stem = Path(path).stem
                mask = Image.fromarray(pred)  # mode L; a palette makes it P with the same indices
                mask.putpalette(pal[:256].reshape(-1).tolist())
                mask.save(out_dir / f"{stem}_mask.png")
                overlay = (img * (1 - alpha) + pal[pred] * alpha).clip(0, 255).astype(np.uint8)
                Image.fromarray(overlay).save(out_dir / f"{stem}_overlay.png")
                r["mask"], r["overlay"] = str(out_dir / f"{stem}_mask.png"), str(out_dir / f"{stem}_overlay.png")
            results.append(r)
        return results

    def format_prediction(self, r: dict[str, Any]) -> str:
        if "error" in r:
            return f"{r['path']}: ERROR {r['error']}"
        found = ", ".join(f"{k} {v:.0%}" for k, v in r["classes"].items())
        where = f"  -> {r['mask']}, {r['overlay']}" if "mask" in r else ""
        return f"{r['path']}: {found}{where}"

