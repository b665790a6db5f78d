"""Mask2Former on the engine: panoptic (COCO panoptic layout), instance (COCO instances) and semantic (ADE20K
layout) segmentation with a FocalNet / Focal Transformer backbone. The model is Hugging Face's
``Mask2FormerForUniversalSegmentation`` with our backbone as its encoder (:mod:`focalnet.seg.mask2former`).

Defaults are the Mask2Former paper's COCO panoptic recipe for a Swin-T-sized backbone
(``configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml`` of facebookresearch/Mask2Former); the
recipes in ``configs/segmentation/mask2former_*.yaml`` cite the file each value comes from.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focalnet.engine.config import RunConfig
from focalnet.engine.task import Context, Task, TrainSettings
from focalnet.utils.config import ConfigError

_logger = logging.getLogger(__name__)

__all__ = ["Mask2FormerConfig", "Mask2FormerTask"]

_FORMATS = ("coco_panoptic", "coco_instance", "ade")
_METRICS = ("PQ", "mIoU", "AP")


@dataclass
class M2FModel:
    """Backbone + Mask2Former head (HF ``Mask2FormerConfig`` fields; defaults: the paper's settings)."""

    backbone: str = "focalnet_tiny_srf"  # a registered FocalNet / Focal Transformer variant
    backbone_kwargs: dict[str, Any] = field(default_factory=lambda: {"drop_path_rate": 0.3})
    focal_windows: int | None = 9  # FocalNet only: the segmentation recipes use 9 (None: the variant's own)
    pretrained: str | None = None  # classification weights (file, URL, released name) loaded with our rules
    frozen_stages: int = -1
    num_queries: int = 100
    hidden_dim: int = 256
    feature_size: int = 256  # pixel decoder channels (multiple of 32: GroupNorm(32))
    mask_feature_size: int = 256
    encoder_layers: int = 6  # deformable-attention pixel decoder layers
    encoder_feedforward_dim: int = 1024
    decoder_layers: int = 10  # 9 masked-attention layers + the loss on the learnable queries (DEC_LAYERS)
    num_attention_heads: int = 8
    dim_feedforward: int = 2048
    no_object_weight: float = 0.1
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    train_num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    object_mask_threshold: float = 0.8  # TEST.OBJECT_MASK_THRESHOLD (panoptic)
    overlap_threshold: float = 0.8  # TEST.OVERLAP_THRESHOLD
    instance_topk: int = 100  # TEST.DETECTIONS_PER_IMAGE


@dataclass
class M2FData:
    """Where the data is and how it is augmented. ``format``: ``coco_panoptic`` (``<root>/{split}`` images,
    ``<root>/annotations/panoptic_{split}.json`` + PNG folder), ``coco_instance``
    (``annotations/instances_{split}.json``) or ``ade`` (ADE20K-layout folders, see ``*_dir``)."""

    format: str = "coco_panoptic"
    root: str = "data/coco"
    train_split: str = "train2017"
    val_split: str = "val2017"
    # ade only
    train_img_dir: str = "images/training"
    train_ann_dir: str = "annotations/training"
    val_img_dir: str = "images/validation"
    val_ann_dir: str = "annotations/validation"
    num_classes: int = 150
    reduce_zero_label: bool = True
    class_names: list[str] | None = None
    # training augmentation: lsj (COCO mappers) | short_side (semantic mapper) | none
    augment: str = "lsj"
    crop_size: list[int] = field(default_factory=lambda: [1024, 1024])
    min_scale: float = 0.1
    max_scale: float = 2.0
    short_sides: list[int] = field(default_factory=list)
    max_size: int = 2048
    flip_prob: float = 0.5
    # evaluation: shortest side resized to this (null: as stored), longest at most test_max_size
    test_short_side: int | None = 800
    test_max_size: int = 1333
    mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])  # RGB, 0..255
    std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])
    batch_size: int = 16  # per process and micro-step (the paper: 16 in all, over 8 GPUs)
    num_workers: int = 2
    check: bool = True  # validate every file before training


@dataclass
class M2FOptim:
    """AdamW with the backbone at ``backbone_multiplier`` x lr, full-model gradient clipping, and detectron2's
    multi-step (COCO) or poly (ADE20K) schedule, iteration based."""

    lr: float = 1e-4
    weight_decay: float = 0.05
    backbone_multiplier: float = 0.1
    norm_decay: float = 0.0  # SOLVER.WEIGHT_DECAY_NORM
    embed_decay: float = 0.0  # SOLVER.WEIGHT_DECAY_EMBED
    clip_grad: float | None = 0.01  # CLIP_GRADIENTS full_model, L2 norm
    accum_steps: int = 1
    max_iters: int = 368_750
    schedule: str = "step"  # step | poly
    steps: list[int] = field(default_factory=lambda: [327_778, 355_092])
    gamma: float = 0.1
    poly_power: float = 0.9
    warmup_iters: int = 10
    warmup_factor: float = 1.0


@dataclass
class M2FEval:
    metrics: list[str] = field(default_factory=lambda: ["PQ", "mIoU", "AP"])


@dataclass
class Mask2FormerConfig(RunConfig):
    task: str = "mask2former"
    name: str = "mask2former"
    model: M2FModel = field(default_factory=M2FModel)
    data: M2FData = field(default_factory=M2FData)
    optim: M2FOptim = field(default_factory=M2FOptim)
    eval: M2FEval = field(default_factory=M2FEval)


def _hf_settings(m: M2FModel) -> dict[str, Any]:
    keys = ("num_queries", "hidden_dim", "feature_size", "mask_feature_size", "encoder_layers",
            "encoder_feedforward_dim", "decoder_layers", "num_attention_heads", "dim_feedforward",
            "no_object_weight", "class_weight", "mask_weight", "dice_weight", "train_num_points",
            "oversample_ratio", "importance_sample_ratio")
    return {k: getattr(m, k) for k in keys}


class _Schedule:
    """detectron2's WarmupMultiStepLR / WarmupPolyLR (linear warm-up from ``warmup_factor``) as one factor on
    every group's base lr; ``step()`` once per optimizer step."""

    def __init__(self, optimizer, o: M2FOptim, total: int) -> None:
        self.optimizer, self.o, self.total, self.last = optimizer, o, max(1, total), 0
        self.base = [g["lr"] for g in optimizer.param_groups]
        self._apply()

    def factor(self, it: int) -> float:
        o = self.o
        warm = 1.0
        if it < o.warmup_iters:
            a = it / o.warmup_iters
            warm = o.warmup_factor * (1 - a) + a
        if o.schedule == "poly":
            return warm * (1 - min(it, self.total) / self.total) ** o.poly_power
        return warm * o.gamma ** sum(it >= s for s in o.steps)

    def _apply(self) -> None:
        f = self.factor(self.last)
        for g, b in zip(self.optimizer.param_groups, self.base):
            g["lr"] = b * f

    def step(self) -> None:
        self.last += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"last": self.last}

    def load_state_dict(self, sd: dict) -> None:
        self.last = int(sd["last"])
        self._apply()


class Mask2FormerTask(Task):
    """Mask2Former segmentation (panoptic / instance / semantic by ``data.format``)."""

    name = "mask2former"
    config_class = Mask2FormerConfig
    best_metric = "PQ"
    metric_fields = ("PQ", "mIoU", "AP")
    structural_keys = ("task", "model", "data.format", "data.num_classes")
    resume_safe_keys = ("model.pretrained", "model.object_mask_threshold", "model.overlap_threshold",
                        "model.instance_topk", "model.backbone_kwargs.drop_path_rate")

    cfg: Mask2FormerConfig

    def __init__(self, cfg: Mask2FormerConfig) -> None:
        super().__init__(cfg)
        self.best_metric = {"coco_panoptic": "PQ", "coco_instance": "AP", "ade": "mIoU"}[cfg.data.format]
        if self.best_metric not in cfg.eval.metrics:
            self.best_metric = cfg.eval.metrics[0]
        self.categories: list = []
        self._from_meta = False

    # ---- config
    @classmethod
    def validate_config(cls, cfg: Mask2FormerConfig) -> None:
        m, d, o, e = cfg.model, cfg.data, cfg.optim, cfg.eval
        if d.format not in _FORMATS:
            raise ConfigError(f"data.format={d.format!r} is not one of {', '.join(_FORMATS)}")
        bad = [x for x in e.metrics if x not in _METRICS]
        if bad or not e.metrics:
            raise ConfigError(f"eval.metrics must be a non-empty list of {', '.join(_METRICS)}, got {e.metrics}")
        if d.format == "coco_instance" and set(e.metrics) - {"AP"}:
            raise ConfigError("data.format=coco_instance has no panoptic/semantic ground truth: eval.metrics=[AP]")
        if d.format == "ade" and "PQ" in e.metrics:
            raise ConfigError("data.format=ade has no instances: use eval.metrics=[mIoU] (or [mIoU, AP])")
        if d.augment not in ("lsj", "short_side", "none"):
            raise ConfigError(f"data.augment={d.augment!r} is not one of lsj, short_side, none")
        if len(d.crop_size) != 2 or min(d.crop_size) < 32:
            raise ConfigError(f"data.crop_size must be two sizes >= 32, got {d.crop_size}")
        if d.augment == "short_side" and (not d.short_sides or min(d.short_sides) < 1):
            raise ConfigError("data.augment=short_side needs data.short_sides (positive sizes)")
        if not 0 < d.min_scale <= d.max_scale:
            raise ConfigError(f"data.min_scale/max_scale must satisfy 0 < min <= max, got {d.min_scale}, "
                              f"{d.max_scale}")
        if len(d.mean) != 3 or len(d.std) != 3 or min(abs(s) for s in d.std) == 0:
            raise ConfigError("data.mean and data.std need three values, std without zeros")
        if d.test_short_side is not None and d.test_short_side < 32:
            raise ConfigError(f"data.test_short_side must be >= 32 (or null), got {d.test_short_side}")
        if d.batch_size < 1 or d.num_workers < 0:
            raise ConfigError("data.batch_size must be >= 1 and data.num_workers >= 0")
        if d.format == "ade" and d.num_classes < 1:
            raise ConfigError(f"data.num_classes must be >= 1, got {d.num_classes}")
        if d.class_names is not None and d.format == "ade" and len(d.class_names) != d.num_classes:
            raise ConfigError(f"data.class_names has {len(d.class_names)} names for {d.num_classes} classes")
        for k in ("feature_size", "mask_feature_size"):
            if getattr(m, k) < 32 or getattr(m, k) % 32:
                raise ConfigError(f"model.{k} must be a positive multiple of 32, got {getattr(m, k)}")
        if m.hidden_dim < 1 or m.num_attention_heads < 1 or m.hidden_dim % m.num_attention_heads:
            raise ConfigError(f"model.hidden_dim ({m.hidden_dim}) must be a multiple of model.num_attention_heads "
                              f"({m.num_attention_heads})")
        if m.decoder_layers < 2 or m.encoder_layers < 1 or m.num_queries < 1 or m.train_num_points < 1:
            raise ConfigError("model.decoder_layers >= 2, encoder_layers >= 1, num_queries >= 1 and "
                              "train_num_points >= 1 are required")
        for k in ("object_mask_threshold", "overlap_threshold"):
            if not 0 <= getattr(m, k) <= 1:
                raise ConfigError(f"model.{k} must be in [0, 1], got {getattr(m, k)}")
        if not (o.lr > 0) or math.isinf(o.lr):
            raise ConfigError(f"optim.lr must be > 0, got {o.lr}")
        if o.weight_decay < 0 or o.backbone_multiplier < 0:
            raise ConfigError("optim.weight_decay and optim.backbone_multiplier must be >= 0")
        if o.max_iters < 1 or o.accum_steps < 1 or o.warmup_iters < 0:
            raise ConfigError("optim.max_iters >= 1, optim.accum_steps >= 1 and optim.warmup_iters >= 0 are required")
        if o.schedule not in ("step", "poly"):
            raise ConfigError(f"optim.schedule={o.schedule!r} is not one of step, poly")
        from focalnet.models.registry import get_spec

        try:
            get_spec(m.backbone)
        except KeyError:
            raise ConfigError(f"model.backbone={m.backbone!r} is not a registered variant (see `focalnet models`)"
                              ) from None

    # ---- data
    def train_settings(self) -> TrainSettings:
        d, o = self.cfg.data, self.cfg.optim
        return TrainSettings(d.batch_size, o.accum_steps, o.clip_grad, d.num_workers, 1)

    def _dataset(self, train: bool, transform=None):
        from focalnet.seg.panoptic import CocoInstanceDataset, CocoPanopticDataset, SemanticDataset

        d = self.cfg.data
        split = d.train_split if train else d.val_split
        if d.format == "coco_panoptic":
            return CocoPanopticDataset(d.root, split, transform=transform)
        if d.format == "coco_instance":
            return CocoInstanceDataset(d.root, split, transform=transform, skip_empty=train)
        from focalnet.seg.data import SegFolderDataset

        img, ann = (d.train_img_dir, d.train_ann_dir) if train else (d.val_img_dir, d.val_ann_dir)
        folder = SegFolderDataset(Path(d.root) / img, Path(d.root) / ann, d.num_classes, d.reduce_zero_label)
        return SemanticDataset(folder, d.class_names, transform=transform)

    def build_datasets(self):
        from focalnet.seg.panoptic import MaskTrainTransform

        d = self.cfg.data
        tf = MaskTrainTransform(d.crop_size, d.augment, d.min_scale, d.max_scale, d.short_sides, d.max_size,
                                d.flip_prob)
        train = self._dataset(True, tf)
        val = self._dataset(False)
        if d.check:
            train.check(self.cfg.progress)
            val.check(self.cfg.progress)
        if [c.name for c in train.categories] != [c.name for c in val.categories]:
            raise ConfigError("the training and validation splits have different category lists")
        self.categories = list(train.categories)
        return train, val

    def build_eval_dataset(self):
        ds = self._dataset(False)
        if self.cfg.data.check:
            ds.check(self.cfg.progress)
        if self.categories and [c.name for c in ds.categories] != [c.name for c in self.categories]:
            raise ConfigError("the evaluation data's categories differ from those the model was trained on")
        return ds

    def collate(self, samples):
        from focalnet.seg.panoptic import collate_masks

        return collate_masks(samples)

    # ---- model
    def build_model(self) -> nn.Module:
        from focalnet.backbones import FocalNetBackbone
        from focalnet.models.registry import get_spec
        from focalnet.seg.mask2former import build_mask2former
        from focalnet.seg.model import resolve_pretrained

        m = self.cfg.model
        kw = dict(m.backbone_kwargs)
        if get_spec(m.backbone).family != "focal_transformer":
            kw["focal_windows"] = m.focal_windows
        pretrained = None
        if m.pretrained and not self._from_meta:  # eval/predict: the checkpoint's weights replace them anyway
            pretrained = resolve_pretrained(m.pretrained)
        bb = FocalNetBackbone.from_name(m.backbone, pretrained=pretrained, frozen_stages=m.frozen_stages, **kw)
        things = [i for i, c in enumerate(self.categories) if c.isthing]
        return build_mask2former(bb, len(self.categories), thing_classes=things,
                                 object_mask_threshold=m.object_mask_threshold, overlap_threshold=m.overlap_threshold,
                                 instance_topk=m.instance_topk, **_hf_settings(m))

    def build_optimizer(self, model: nn.Module, global_batch: int, steps_per_epoch: int):
        o = self.cfg.optim
        groups = model.param_groups(o.weight_decay, o.backbone_multiplier, o.norm_decay, o.embed_decay)
        for g in groups:
            g["lr"] = o.lr * g.pop("lr_scale")
        optimizer = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
        return optimizer, _Schedule(optimizer, o, o.max_iters)

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.cfg.optim.max_iters

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        d = self.cfg.data
        mean = torch.tensor(d.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(d.std, device=images.device).view(1, 3, 1, 1)
        return (images.float() - mean) / std

    def losses(self, model: nn.Module, batch: Any, ctx: Context) -> dict[str, torch.Tensor]:
        return model(self._normalize(batch["image"]), batch["masks"], batch["labels"])

    # ---- evaluation
    def evaluate(self, model: nn.Module, dataset, ctx: Context) -> dict[str, Any]:
        from focalnet.seg.panoptic_eval import evaluate_mask2former

        d = self.cfg.data
        result = None
        if ctx.is_main:
            result = evaluate_mask2former(model, dataset, ctx.device, self.cfg.eval.metrics, d.mean, d.std,
                                          d.test_short_side, d.test_max_size, progress=ctx.progress)
        return ctx.broadcast(result)

    def summary(self, metrics: dict[str, Any]) -> str:
        keys = ("PQ", "PQ_th", "PQ_st", "SQ", "RQ", "mIoU", "AP", "AP50")
        return "  ".join(f"{k} {metrics[k]:.2f}" for k in keys if isinstance(metrics.get(k), float))

    def meta(self) -> dict[str, Any]:
        return {"categories": [[c.id, c.name, bool(c.isthing)] for c in self.categories],
                "format": self.cfg.data.format}

    def load_meta(self, meta: dict[str, Any]) -> None:
        from focalnet.seg.panoptic import Category

        self.categories = [Category(int(i), str(n), bool(t)) for i, n, t in meta.get("categories", [])]
        if not self.categories:
            raise ConfigError("this checkpoint has no category list (was it written by the mask2former task?)")
        self._from_meta = True

    # ---- prediction
    def predict(self, model: nn.Module, inputs: list[str], ctx: Context, out_dir: Path | None,
                options: dict[str, Any]) -> list[dict[str, Any]]:
        """Panoptic (COCO panoptic), instance (COCO instances, drawn as panoptic things) or semantic (ADE)
        segmentation of each image, drawn over it with a legend as ``<out>/<stem>_<kind>.png``."""
        import numpy as np

        from focalnet.data.images import load_rgb
        from focalnet.seg.panoptic_eval import _resize_for_test
        from focalnet.viz.segments import draw_panoptic, draw_semantic

        d = self.cfg.data
        names = [c.name for c in self.categories]
        things = [i for i, c in enumerate(self.categories) if c.isthing]
        kind = "semantic" if d.format == "ade" else "panoptic"
        alpha = float(options.get("alpha", 0.5))
        mean = torch.tensor(d.mean, device=ctx.device).view(3, 1, 1)
        std = torch.tensor(d.std, device=ctx.device).view(3, 1, 1)
        results = []
        for path in inputs:
            try:
                img = np.asarray(load_rgb(path))
            except Exception as e:  # the shared reader raises several types for unreadable files
                results.append({"path": path, "error": f"not a readable image ({e})"})
                continue
            x = torch.from_numpy(img.copy()).permute(2, 0, 1).to(ctx.device).float()
            x = (_resize_for_test(x, d.test_short_side, d.test_max_size) - mean) / std
            r = model.predict(x[None], tasks=(kind,), target_sizes=[img.shape[:2]])[0]
            res: dict[str, Any] = {"path": path, "kind": kind}
            if kind == "semantic":
                sem = r["semantic"].numpy()
                share = np.bincount(sem.reshape(-1), minlength=len(names)) / sem.size
                res["classes"] = {names[c]: round(float(share[c]), 4) for c in np.argsort(-share) if share[c] > 0}
                pic = draw_semantic(img, sem, names, alpha=alpha)
            else:
                p = r["panoptic"]
                res["segments"] = [{"id": int(s["id"]), "class": names[s["label_id"]],
                                    "isthing": s["label_id"] in things, "score": round(float(s["score"]), 4),
                                    "area": int((p["segmentation"] == s["id"]).sum())} for s in p["segments_info"]]
                pic = draw_panoptic(img, p["segmentation"].numpy(), p["segments_info"], names, things, alpha=alpha)
            if out_dir is not None:
                target = Path(out_dir) / f"{Path(path).stem}_{kind}.png"
                pic.save(target)
                res["picture"] = str(target)
            results.append(res)
        return results

    def format_prediction(self, result: dict[str, Any]) -> str:
        if "error" in result:
            return f"{result['path']}: error: {result['error']}"
        if result["kind"] == "semantic":
            found = ", ".join(f"{k} {v:.0%}" for k, v in result["classes"].items())
        else:
            count: dict[str, int] = {}
            parts = []
            for s in result["segments"]:
                if s["isthing"]:
                    count[s["class"]] = count.get(s["class"], 0) + 1
                    parts.append(f"{s['class']} #{count[s['class']]} ({s['score']:.2f})")
                else:
                    parts.append(s["class"])
            found = ", ".join(parts) or "nothing found"
        where = f"  -> {result['picture']}" if "picture" in result else ""
        return f"{result['path']}: {found}{where}"
