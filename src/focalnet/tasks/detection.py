"""Object detection (and instance segmentation) on the engine: torchvision Mask R-CNN / RetinaNet / FCOS on FocalNet
backbones, COCO-format data, pycocotools bbox/segm mAP, boxes and masks drawn on predictions.

The config is :class:`focalnet.det.config.DetConfig` (``task: detection``). Building blocks live in
:mod:`focalnet.det` (models, data set, evaluation); this module only connects them to the engine.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focalnet.det.config import DetConfig, validate
from focalnet.engine.task import Context, Task, TrainSettings

_logger = logging.getLogger(__name__)

__all__ = ["DetectionTask"]


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


class DetectionTask(Task):
    """Detect objects in images (boxes; masks for Mask R-CNN)."""

    name = "detection"
    config_class = DetConfig
    best_metric = "bbox.mAP"
    metric_fields = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "loss_mask",
                     "bbox.mAP", "bbox.mAP50", "segm.mAP")
    structural_keys = ("task", "model")
    resume_safe_keys = ("model.pretrained", "model.drop_path_rate", "model.use_checkpoint", "model.frozen_stages")

    cfg: DetConfig

    def __init__(self, cfg: DetConfig) -> None:
        super().__init__(cfg)
        self.categories: list[dict] = []

    @classmethod
    def validate_config(cls, cfg: DetConfig) -> None:
        validate(cfg)

    # ---- training
    def train_settings(self) -> TrainSettings:
        o = self.cfg.optim
        return TrainSettings(o.batch_size, o.accumulate, o.clip_grad, self.cfg.data.num_workers, o.batch_size)

    def _paths(self) -> dict[str, str]:
        from focalnet.det.evaluation import resolve_data
        from focalnet.engine.distributed import barrier

        if self.cfg.data.synthetic is None:
            return resolve_data(self.cfg)
        if _rank() == 0:  # one writer; the other processes reuse what it wrote
            paths = resolve_data(self.cfg)
            barrier()
            return paths
        barrier()
        return resolve_data(self.cfg)

    def build_datasets(self):
        from focalnet.det.dataset import CocoDetection, DatasetError
        from focalnet.det.evaluation import has_masks

        paths = self._paths()
        if not paths["train_ann"]:
            raise DatasetError("no training data: set data.train_images/train_ann or data.synthetic")
        train = CocoDetection(paths["train_images"], paths["train_ann"], train=True, hflip=self.cfg.data.hflip,
                              masks=has_masks(self.cfg.model.arch), keep_empty=self.cfg.data.keep_empty)
        self.categories = [{"id": c, "name": train.cat_names[c]} for c in train.cat_ids]
        val = (CocoDetection(paths["val_images"], paths["val_ann"], masks=False, cat_ids=train.cat_ids)
               if paths.get("val_ann") else None)
        return train, val

    def collate(self, samples):
        from focalnet.det.dataset import collate

        return collate(samples)

    def build_model(self) -> nn.Module:
        from focalnet.det.evaluation import build_model

        return build_model(self.cfg.model, len(self.categories), load_pretrained=not self._from_checkpoint)

    _from_checkpoint = False

    def build_optimizer(self, model: nn.Module, global_batch: int, steps_per_epoch: int):
        from focalnet.det.evaluation import lr_lambda
        from focalnet.det.models import detector_param_groups

        o = self.cfg.optim
        optimizer = torch.optim.AdamW(detector_param_groups(model, o.weight_decay), lr=o.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(o.warmup_iters, o.warmup_ratio, o.steps, o.gamma, steps_per_epoch))
        return optimizer, sched

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.cfg.optim.epochs * steps_per_epoch

    def losses(self, model: nn.Module, batch, ctx: Context) -> dict[str, torch.Tensor]:
        images, targets = batch
        terms = model(images, targets)
        return {"loss": sum(terms.values()), **terms}

    def evaluate(self, model: nn.Module, dataset, ctx: Context) -> dict[str, Any]:
        from focalnet.det.evaluation import evaluate

        metrics = None
        if ctx.is_main:  # pycocotools on one process; the others wait for its numbers
            metrics = evaluate(model, dataset, ctx.device, self.train_settings().eval_batch_size or 2,
                               autocast=ctx.autocast, progress=ctx.progress)
        return ctx.broadcast(metrics)

    def summary(self, metrics: dict[str, Any]) -> str:
        parts = [f"{k} mAP {metrics[k]['mAP']:.4f} mAP50 {metrics[k]['mAP50']:.4f}" for k in ("bbox", "segm")
                 if k in metrics]
        n, d = metrics.get("images", "?"), metrics.get("detections", "?")
        return "  ".join(parts) + f"  ({n} images, {d} detections)"

    def meta(self) -> dict[str, Any]:
        return {"categories": list(self.categories)}

    def load_meta(self, meta: dict[str, Any]) -> None:
        from focalnet.weights.loading import CheckpointError

        if not meta.get("categories"):
            raise CheckpointError("the checkpoint has no detection categories (not a detection run)")
        self.categories = list(meta["categories"])
        self._from_checkpoint = True

    def build_eval_dataset(self):
        from focalnet.det.dataset import CocoDetection, DatasetError
        from focalnet.det.evaluation import resolve_data

        paths = resolve_data(self.cfg)
        if not paths.get("val_ann"):
            raise DatasetError("no validation data: set data.val_images and data.val_ann")
        return CocoDetection(paths["val_images"], paths["val_ann"], masks=False,
                             cat_ids=[c["id"] for c in self.categories])

    # ---- prediction
    def predict(self, model: nn.Module, inputs: list[str], ctx: Context, out_dir: Path | None,
                options: dict[str, Any]) -> list[dict[str, Any]]:
        import numpy as np
        from PIL import Image

        from focalnet.data.images import ImageLoadError, load_rgb
        from focalnet.det.evaluation import draw_predictions, predict

        score = float(options.get("score", 0.5))
        results = []
        for path in inputs:
            try:
                img = np.array(load_rgb(path))
            except ImageLoadError as e:
                results.append({"path": str(path), "error": str(e)})
                continue
            pred = predict(model, img, ctx.device, score_thresh=score)
            r: dict[str, Any] = {"path": str(path), "score_thresh": score, "detections": [
                {"label": self.categories[int(lab) - 1]["name"], "score": float(s),
                 "box": [round(float(v), 2) for v in b]}
                for lab, s, b in zip(pred["labels"], pred["scores"], pred["boxes"])]}
            if out_dir is not None:
                dest = out_dir / (Path(path).stem + "_det.png")
                Image.fromarray(draw_predictions(img, pred, self.categories)).save(dest)
                r["image"] = str(dest)
            results.append(r)
        return results

    def format_prediction(self, r: dict[str, Any]) -> str:
        if "error" in r:
            return f"{r['path']}: ERROR {r['error']}"
        where = f" -> {r['image']}" if "image" in r else ""
        if not r["detections"]:
            return f"{r['path']}: no detections with score >= {r['score_thresh']}{where}"
        found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in r["detections"])
        return f"{r['path']}: {len(r['detections'])} detections ({found}){where}"
