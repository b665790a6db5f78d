"""DINO detection on the engine: FocalNet-DINO recipes (original config names), DETR augmentation, COCO mAP.

The config's ``model.args`` are the original DINO config names (``config/DINO/*.py``), applied over the released
5-scale FocalNet-L fl4 recipe; the backbone comes from ``args.backbone`` through the original ``build_focalnet``
table (or ``model.backbone_kwargs``: original FocalNet keyword arguments). ``model.pretrained`` loads classification
weights into the backbone with the original loader rules; ``model.weights`` starts from a FocalNet-DINO file in the
original layout (e.g. a released one; its structure must match the recipe's). Optimizer as the original: AdamW, the
backbone at ``lr_backbone``, step decay after ``lr_drop`` epochs (or at every epoch of ``lr_drop_list``).
Evaluation: pycocotools bbox AP on the original image sizes (predictions use the categories' own ids, DINO's
``num_classes = max id + 1`` head).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from focalnet.det.config import SyntheticData
from focalnet.engine.config import RunConfig
from focalnet.engine.task import Context, Task, TrainSettings
from focalnet.utils.config import ConfigError

_logger = logging.getLogger(__name__)

__all__ = ["DinoTask", "DinoRunConfig"]

# The original DINO backbone names -> our registered variants (for model.pretrained=true).
_REGISTRY_NAME = {
    "focalnet_L_384_22k": "focalnet_large_fl3", "focalnet_L_384_22k_fl4": "focalnet_large_fl4",
    "focalnet_XL_384_22k": "focalnet_xlarge_fl3", "focalnet_XL_384_22k_fl4": "focalnet_xlarge_fl4",
    "focalnet_H_224_22k": "focalnet_huge_fl3", "focalnet_H_224_22k_fl4": "focalnet_huge_fl4",
}


@dataclass
class DinoModel:
    args: dict[str, Any] = field(default_factory=dict)  # original DINO config names over the released recipe
    backbone_kwargs: dict[str, Any] | None = None  # original FocalNet kwargs; None: from args.backbone
    pretrained: bool | str | None = None  # classification weights for the backbone: true / path / URL
    weights: str | None = None  # a FocalNet-DINO checkpoint (original layout) to start from


@dataclass
class DinoData:
    train_images: str = ""
    train_ann: str = ""
    val_images: str = ""
    val_ann: str = ""
    synthetic: SyntheticData | None = None  # when set, generates and uses the offline synthetic set
    scales: list[int] = field(default_factory=lambda: list(range(480, 801, 32)))
    max_size: int = 1333
    scales2_resize: list[int] = field(default_factory=lambda: [400, 500, 600])
    scales2_crop: list[int] = field(default_factory=lambda: [384, 600])
    eval_size: int | None = None  # short side at evaluation; None: max(scales)
    eval_max_size: int | None = None  # None: max_size
    num_workers: int = 2
    eval_batch_size: int = 2


@dataclass
class DinoOptim:
    lr: float = 1e-4
    lr_backbone: float = 1e-5
    weight_decay: float = 1e-4
    clip_max_norm: float = 0.1
    batch_size: int = 2  # per process
    accum_steps: int = 1
    epochs: int = 12
    lr_drop: int = 11  # epochs; lr x 0.1 after it
    lr_drop_list: list[int] | None = None  # multi-step drops (epochs) instead of lr_drop


@dataclass
class DinoRunConfig(RunConfig):
    task: str = "dino"
    name: str = "dino"
    model: DinoModel = field(default_factory=DinoModel)
    data: DinoData = field(default_factory=DinoData)
    optim: DinoOptim = field(default_factory=DinoOptim)


def _data_paths(d: DinoData) -> dict[str, str]:
    if d.synthetic is not None:
        from focalnet.data.coco import make_synthetic_coco

        s = d.synthetic
        return {k: str(v) for k, v in make_synthetic_coco(s.root, s.n_train, s.n_val, s.size, s.seed).items()}
    return {"train_images": d.train_images, "train_ann": d.train_ann, "val_images": d.val_images,
            "val_ann": d.val_ann}


class DinoTask(Task):
    """FocalNet-DINO training, COCO evaluation and drawn predictions."""

    name = "dino"
    config_class = DinoRunConfig
    best_metric = "bbox.mAP"
    metric_fields = ("bbox.mAP", "bbox.mAP50")
    structural_keys = ("task", "model")
    resume_safe_keys = ("model.pretrained", "model.weights")

    cfg: DinoRunConfig

    def __init__(self, cfg: DinoRunConfig) -> None:
        super().__init__(cfg)
        self._meta: dict[str, Any] = {}
        self.categories: list[dict] = []

    # ---- config
    @classmethod
    def validate_config(cls, cfg: DinoRunConfig) -> None:
        from focalnet.det.dino import DinoConfig

        DinoConfig.from_args(cfg.model.args)  # raises ConfigError naming the option
        o, d = cfg.optim, cfg.data
        for key, v in (("optim.lr", o.lr), ("optim.batch_size", o.batch_size), ("optim.epochs", o.epochs),
                       ("data.max_size", d.max_size)):
            if v <= 0:
                raise ConfigError(f"{key} must be > 0, got {v}")
        if o.lr_backbone < 0 or o.weight_decay < 0:
            raise ConfigError("optim.lr_backbone and optim.weight_decay must be >= 0")
        if not d.scales or min(d.scales) <= 0 or len(d.scales2_crop) != 2 or d.scales2_crop[0] > d.scales2_crop[1]:
            raise ConfigError("data.scales must be positive sizes and data.scales2_crop a [min, max] pair")

    # ---- data
    def _dino_config(self):
        from focalnet.det.dino import DinoConfig

        if self._meta:
            return DinoConfig.from_args(self._meta["dino_args"])
        args = dict(self.cfg.model.args)
        if "num_classes" not in args and self.categories:
            args["num_classes"] = max(c["id"] for c in self.categories) + 1  # the original's max id + 1
            args.setdefault("dn_labelbook_size", args["num_classes"])
        return DinoConfig.from_args(args)

    def _eval_transform(self):
        from focalnet.det.dino.data import detr_eval_transform

        d = self.cfg.data
        pre = self._meta.get("preprocess") or {}
        size = pre.get("eval_size") or d.eval_size or max(d.scales)
        max_size = pre.get("eval_max_size") or d.eval_max_size or d.max_size
        return detr_eval_transform(size, max_size)

    def train_settings(self) -> TrainSettings:
        o, d = self.cfg.optim, self.cfg.data
        return TrainSettings(o.batch_size, o.accum_steps, o.clip_max_norm or None, d.num_workers, d.eval_batch_size)

    def build_datasets(self):
        from focalnet.det.dataset import CocoDetection
        from focalnet.det.dino.data import DinoDataset, detr_train_transform
        from focalnet.engine.data import DataError

        d = self.cfg.data
        p = _data_paths(d)
        if not p["train_ann"]:
            raise DataError("no training data: set data.train_images/train_ann (COCO format) or data.synthetic")
        train_c = CocoDetection(p["train_images"], p["train_ann"], train=True, hflip=0.0, masks=False)
        self.categories = train_c.categories
        train = DinoDataset(train_c, detr_train_transform(d.scales, d.max_size, d.scales2_resize, d.scales2_crop))
        val = None
        if p["val_ann"]:
            val_c = CocoDetection(p["val_images"], p["val_ann"], masks=False, cat_ids=train_c.cat_ids)
            val = DinoDataset(val_c, self._eval_transform())
        return train, val

    def build_eval_dataset(self):
        from focalnet.det.dataset import CocoDetection
        from focalnet.det.dino.data import DinoDataset
        from focalnet.engine.data import DataError

        p = _data_paths(self.cfg.data)
        if not p["val_ann"]:
            raise DataError("no evaluation data: set data.val_images/val_ann (COCO format) or data.synthetic")
        return DinoDataset(CocoDetection(p["val_images"], p["val_ann"], masks=False), self._eval_transform())

    def collate(self, samples):
        from focalnet.det.dino.data import collate

        return collate(samples)

    # ---- model
    def _backbone_spec(self, cfg) -> dict[str, Any]:
        from focalnet.det.dino import backbone_kwargs_from_args

        if self._meta:
            return dict(self._meta["backbone_kwargs"])
        if self.cfg.model.backbone_kwargs is not None:
            return {**self.cfg.model.backbone_kwargs, "out_indices": tuple(cfg.return_interm_indices)}
        return backbone_kwargs_from_args(cfg.to_dict())

    def build_model(self) -> nn.Module:
        from focalnet.det.dino import DINO, build_backbone, load_original_state_dict

        cfg = self._dino_config()
        spec = self._backbone_spec(cfg)
        spec["out_indices"] = tuple(spec.get("out_indices", cfg.return_interm_indices))
        self._resolved = {"dino_args": cfg.to_dict(), "backbone_kwargs": spec}
        model = DINO(build_backbone(spec), cfg)
        if self._meta:
            return model  # eval / predict: the checkpoint's weights follow
        m = self.cfg.model
        if m.pretrained:
            from focalnet.backbones import load_backbone_weights
            from focalnet.backbones.focalnet import _resolve_pretrained

            name = _REGISTRY_NAME.get(cfg.backbone, cfg.backbone)
            left = load_backbone_weights(model.backbone, _resolve_pretrained(name, m.pretrained))
            _logger.info("backbone initialised from %s classification weights (%d tensors left at init)", name,
                         len(left))
        if m.weights:
            from focalnet.det.dino.weights import read_dino_checkpoint, structure_of
            from focalnet.weights.loading import CheckpointError

            file_args, sd = read_dino_checkpoint(_local(m.weights))
            if file_args and structure_of(file_args) != structure_of(cfg):
                raise CheckpointError(f"{m.weights} is a {structure_of(file_args)} DINO, the recipe builds a "
                                      f"{structure_of(cfg)} one; use the recipe of the file's structure")
            load_original_state_dict(model, sd)
        return model

    def build_optimizer(self, model: nn.Module, global_batch: int, steps_per_epoch: int):
        o = self.cfg.optim
        backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
        rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
        groups = [{"params": rest, "lr": o.lr}]
        if backbone and o.lr_backbone > 0:
            groups.append({"params": backbone, "lr": o.lr_backbone})
        elif backbone:
            for p in backbone:
                p.requires_grad_(False)
        optimizer = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
        drops = [e * steps_per_epoch for e in (o.lr_drop_list if o.lr_drop_list else [o.lr_drop])]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=drops, gamma=0.1)
        return optimizer, scheduler

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.cfg.optim.epochs * steps_per_epoch

    def losses(self, model: nn.Module, batch, ctx: Context) -> dict[str, torch.Tensor]:
        images, targets = batch
        targets = [{"labels": t["labels"], "boxes": t["boxes"]} for t in targets]
        core = model.module if hasattr(model, "module") else model
        out = model(images, targets)
        terms = core.loss(out, targets)
        total = core.total_loss(terms)
        keep = ("loss_ce", "loss_bbox", "loss_giou", "loss_ce_dn", "loss_bbox_dn", "loss_giou_dn", "loss_ce_interm",
                "class_error")
        return {"loss": total, **{k: terms[k].detach() for k in keep if k in terms}}

    # ---- evaluation
    def evaluate(self, model: nn.Module, dataset, ctx: Context) -> dict[str, Any]:
        from torch.utils.data import DataLoader, Subset
        from tqdm.auto import tqdm

        from focalnet.det.evaluation import _cocoeval

        s = self.train_settings()
        loader = DataLoader(Subset(dataset, ctx.shard(len(dataset))), batch_size=s.eval_batch_size or s.batch_size,
                            shuffle=False, num_workers=s.num_workers, collate_fn=self.collate)
        results, ids = [], []
        for images, targets in tqdm(loader, desc="eval", disable=not ctx.progress, leave=False, dynamic_ncols=True):
            images = [im.to(ctx.device) for im in images]
            with ctx.autocast():
                out = model(images)
            sizes = torch.stack([t["orig_size"] for t in targets]).to(ctx.device)
            for t, r in zip(targets, model.postprocess({k: out[k].float() for k in ("pred_logits", "pred_boxes")},
                                                       sizes)):
                img_id = int(t["image_id"])
                ids.append(img_id)
                for sc, lab, b in zip(r["scores"].tolist(), r["labels"].tolist(), r["boxes"].tolist()):
                    results.append({"image_id": img_id, "category_id": int(lab), "score": float(sc),
                                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
        all_results = [r for part in ctx.gather(results) for r in part]
        all_ids = sorted({i for part in ctx.gather(ids) for i in part})
        gt = dataset.coco.coco
        known = set(gt.getCatIds())
        all_results = [r for r in all_results if r["category_id"] in known]  # unused head slots
        metrics = _cocoeval(gt, all_results, "bbox", all_ids) if ctx.is_main else None
        return {"bbox": ctx.broadcast(metrics), "images": len(all_ids)}

    def summary(self, metrics: dict[str, Any]) -> str:
        b = metrics["bbox"]
        return f"bbox mAP {b['mAP']:.4f}  mAP50 {b['mAP50']:.4f}  mAP75 {b['mAP75']:.4f}"

    # ---- checkpoint metadata
    def meta(self) -> dict[str, Any]:
        d = self.cfg.data
        resolved = getattr(self, "_resolved", None) or {k: self._meta.get(k) for k in ("dino_args", "backbone_kwargs")}
        bb = dict(resolved["backbone_kwargs"])
        bb["out_indices"] = list(bb.get("out_indices", ()))
        return {"dino_args": resolved["dino_args"], "backbone_kwargs": bb,
                "categories": self.categories or self._meta.get("categories", []),
                "preprocess": {"eval_size": d.eval_size or max(d.scales),
                               "eval_max_size": d.eval_max_size or d.max_size}}

    def load_meta(self, meta: dict[str, Any]) -> None:
        if "dino_args" not in meta:
            from focalnet.weights.loading import CheckpointError

            raise CheckpointError("the checkpoint has no DINO metadata (dino_args): it was not written by the "
                                  "dino task")
        self._meta = dict(meta)
        self.categories = list(meta.get("categories") or [])

    # ---- prediction
    def predict(self, model: nn.Module, inputs: list[str], ctx: Context, out_dir: Path | None,
                options: dict[str, Any]) -> list[dict[str, Any]]:
        import numpy as np
        from torchvision import tv_tensors

        from focalnet.data.images import load_rgb
        from focalnet.det.evaluation import draw_predictions

        thr = float(options.get("score") if options.get("score") is not None else 0.3)
        names = {c["id"]: c["name"] for c in self.categories}
        transform = self._eval_transform()
        results = []
        for path in inputs:
            try:
                img = np.array(load_rgb(path))
            except Exception as e:  # noqa: BLE001 - reported per input, the others still run
                results.append({"path": str(path), "error": str(e)})
                continue
            H, W = img.shape[:2]
            x = transform(tv_tensors.Image(torch.from_numpy(img).permute(2, 0, 1).float().div(255)))
            out = model([x.as_subclass(torch.Tensor).to(ctx.device)])
            r = model.postprocess(out, torch.tensor([[H, W]], device=ctx.device))[0]
            keep = r["scores"] >= thr
            r = {k: v[keep].cpu() for k, v in r.items()}
            dets = [{"label": names.get(int(lab), str(int(lab))), "category_id": int(lab), "score": float(s),
                     "box": [round(float(v), 1) for v in b]} for s, lab, b in zip(r["scores"], r["labels"], r["boxes"])]
            res = {"path": str(path), "detections": dets}
            if out_dir is not None:
                from PIL import Image

                top = max([int(lab) for lab in r["labels"]] + [0])
                cats = [{"name": names.get(i + 1, str(i + 1))} for i in range(max(top, 1))]
                pic = draw_predictions(img, r, cats)
                target = out_dir / (Path(path).stem + "_dino.png")
                Image.fromarray(pic).save(target)
                res["picture"] = str(target)
            results.append(res)
        return results

    def format_prediction(self, r: dict[str, Any]) -> str:
        if "error" in r:
            return f"{r['path']}: ERROR {r['error']}"
        lines = [f"{r['path']}: {len(r['detections'])} detections" + (f" -> {r['picture']}" if "picture" in r else "")]
        lines += [f"  {d['score']:.2f}  {d['label']:<16} {d['box']}" for d in r["detections"][:20]]
        return "\n".join(lines)


def _local(source: str) -> str:
    """A local path for ``source`` (``hf://`` and URLs are downloaded into the cache)."""
    if "://" in source:
        from focalnet.weights.hub import download

        return str(download(source, verify=False))  # read safely by read_dino_checkpoint (Namespace allowed)
    return source


def evaluate_released(source: str = "dino_focalnet_large_fl4_5scale", val_images: str = "data/coco/val2017",
                      val_ann: str = "data/coco/annotations/instances_val2017.json", device: str = "auto",
                      eval_size: int | None = None, eval_max_size: int | None = None,
                      batch_size: int = 1) -> dict[str, Any]:
    """COCO bbox AP of a released FocalNet-DINO detector (a weights record name, or a local file).

    The evaluation size defaults to the record's (short side 1200, max 2000 for the released COCO model).
    """
    from focalnet.det.dino.weights import load_released_dino
    from focalnet.engine.distributed import resolve_device
    from focalnet.weights import get_weights

    extra: dict[str, Any] = {}
    if Path(source).is_file():
        path = source
    else:
        rec = get_weights(source)
        extra = rec.extra
        path = _local(rec.urls[0])
    cfg = DinoRunConfig(data=DinoData(val_images=val_images, val_ann=val_ann, num_workers=0,
                                      eval_size=eval_size or extra.get("eval_short_side", 800),
                                      eval_max_size=eval_max_size or extra.get("eval_max_size", 1333),
                                      eval_batch_size=batch_size))
    task = DinoTask(cfg)
    dev = resolve_device(device)
    model = load_released_dino(path).to(dev)
    with torch.no_grad():
        return task.evaluate(model, task.build_eval_dataset(), Context(dev, progress=True))
