"""Image classification on the engine: FocalNet / Focal Transformer classifiers, timm transforms and mixup,
top-1/top-5 evaluation, top-k prediction. The config is :class:`focalnet.train.config.TrainConfig` (the built-in
digits job by default)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from focalnet.engine.task import Context, Task, TrainSettings
from focalnet.train.config import TrainConfig, validate

_logger = logging.getLogger(__name__)

__all__ = ["ClassificationTask", "accuracy_counts", "evaluate_classifier"]


def accuracy_counts(logits: torch.Tensor, target: torch.Tensor, k: int) -> tuple[float, float]:
    topk = logits.topk(min(k, logits.shape[1]), dim=1).indices
    hit = topk.eq(target[:, None])
    return float(hit[:, :1].sum()), float(hit.any(dim=1).sum())


@torch.no_grad()
def evaluate_classifier(model: nn.Module, loader, ctx: Context, desc: str = "eval") -> dict[str, float]:
    """Top-1 / top-5 (%), mean cross-entropy and images/s over ``loader``; sums are all-reduced across ranks, so
    with a sharded loader every rank returns the metrics of the whole set."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, n
    t0 = time.perf_counter()
    for images, target in tqdm(loader, desc=desc, disable=not ctx.progress, leave=False, dynamic_ncols=True):
        images, target = ctx.to_device((images, target))
        with ctx.autocast():
            logits = model(images)
        logits = logits.float()
        loss = F.cross_entropy(logits, target, reduction="sum")
        t1, t5 = accuracy_counts(logits, target, 5)
        sums += torch.tensor([float(loss), t1, t5, float(target.numel())], dtype=torch.float64)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    elapsed = time.perf_counter() - t0
    local_n = float(sums[3])
    ctx.all_reduce_sum(sums)
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


def _label_set_of(classes: list[str]) -> str | None:
    """``"imagenet-1k"`` when the class folders are the 1K WordNet ids in order, so predictions get readable names."""
    if len(classes) != 1000:
        return None
    from timm.data import ImageNetInfo

    return "imagenet-1k" if list(classes) == list(ImageNetInfo("imagenet-1k").label_names()) else None


class ClassificationTask(Task):
    """Classify images into the classes of the data set (the built-in digits by default)."""

    name = "classification"
    config_class = TrainConfig
    best_metric = "top1"
    metric_fields = ("top1", "top5")
    structural_keys = ("task", "model", "data.dataset")
    resume_safe_keys = ("model.pretrained", "model.head", "model.drop_path_rate", "model.grad_checkpointing")

    cfg: TrainConfig

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.classes: list[str] = []
        self.preprocess: dict[str, Any] = {}
        self._meta: dict[str, Any] = {}
        self._mixup = self._criterion = None

    @classmethod
    def validate_config(cls, cfg: TrainConfig) -> None:
        validate(cfg)

    # ---- training
    def train_settings(self) -> TrainSettings:
        d, o = self.cfg.data, self.cfg.optim
        return TrainSettings(d.batch_size, o.accum_steps, o.clip_grad, d.num_workers, d.eval_batch_size)

    def build_datasets(self):
        from focalnet.data import SeededTransformDataset, build_datasets, build_transform, preprocess_from_data_config

        cfg = self.cfg
        train_base, val_base, classes = build_datasets(cfg.data, seed=cfg.seed)
        self.classes = list(classes)
        self.preprocess = preprocess_from_data_config(cfg.data)
        # The engine seeds each sample (SeededDataset); the transforms below draw from the global RNGs.
        train = _Transformed(train_base, build_transform(self.preprocess, cfg.aug, is_training=True))
        val = SeededTransformDataset(val_base, build_transform(self.preprocess), cfg.seed)
        return train, val

    @property
    def num_classes(self) -> int:
        return self.cfg.model.num_classes or len(self.classes)

    def build_model(self) -> nn.Module:
        from focalnet.train.model import build_model, model_kwargs

        if self._meta:  # evaluation / prediction: the checkpoint's architecture, weights come from the checkpoint
            from focalnet import create_model

            kw = dict(self._meta["model_kwargs"])
            kw["drop_path_rate"] = 0.0
            return create_model(self._meta["model_name"], **kw)
        self._build_loss()
        model = build_model(self.cfg.model, self.num_classes)
        self._model_kwargs = model_kwargs(self.cfg.model, self.num_classes)
        return model

    def build_optimizer(self, model: nn.Module, global_batch: int, steps_per_epoch: int):
        from focalnet.train.optim import build_optimizer, build_scheduler, scaled_lrs

        lr, warmup_lr, min_lr = scaled_lrs(self.cfg.optim, self.cfg.sched, global_batch)
        optimizer = build_optimizer(model, self.cfg.optim, lr)
        return optimizer, build_scheduler(optimizer, self.cfg.sched, warmup_lr, min_lr, steps_per_epoch)

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.cfg.sched.epochs * steps_per_epoch

    def _build_loss(self) -> None:
        """Mixup/cutmix (timm) with soft-target CE, else label-smoothed CE, else CE; as in the original."""
        from timm.data import Mixup
        from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

        a = self.cfg.aug
        if a.mixup > 0 or a.cutmix > 0:
            self._mixup = Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, prob=a.mixup_prob,
                                switch_prob=a.mixup_switch_prob, mode=a.mixup_mode,
                                label_smoothing=a.label_smoothing, num_classes=self.num_classes)
            self._criterion = SoftTargetCrossEntropy()
        elif a.label_smoothing > 0:
            self._criterion = LabelSmoothingCrossEntropy(smoothing=a.label_smoothing)
        else:
            self._criterion = nn.CrossEntropyLoss()

    def losses(self, model: nn.Module, batch, ctx: Context) -> dict[str, torch.Tensor]:
        images, target = batch
        if self._mixup is not None:
            images, target = self._mixup(images, target)
            if ctx.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
        return {"loss": self._criterion(model(images).float(), target)}

    def evaluate(self, model: nn.Module, dataset, ctx: Context) -> dict[str, Any]:
        from torch.utils.data import DataLoader, Subset

        s = self.train_settings()
        loader = DataLoader(Subset(dataset, ctx.shard(len(dataset))), batch_size=s.eval_batch_size or s.batch_size,
                            shuffle=False, num_workers=s.num_workers, pin_memory=ctx.device.type == "cuda")
        return evaluate_classifier(model, loader, ctx)

    def summary(self, metrics: dict[str, Any]) -> str:
        return f"top-1 {metrics['top1']:.2f}%  top-5 {metrics['top5']:.2f}%  loss {metrics['loss']:.4f}"

    def meta(self) -> dict[str, Any]:
        from focalnet import __version__

        return {
            "model_name": self.cfg.model.name,
            "model_kwargs": getattr(self, "_model_kwargs", None) or self._meta.get("model_kwargs"),
            "class_names": list(self.classes) or self._meta.get("class_names"),
            "preprocess": self.preprocess or self._meta.get("preprocess"),
            "label_set": _label_set_of(self.classes) if self.classes else self._meta.get("label_set"),
            "focalnet_version": __version__,
        }

    def load_meta(self, meta: dict[str, Any]) -> None:
        if "model_name" not in meta:
            from focalnet.weights.loading import CheckpointError

            raise CheckpointError("the checkpoint has no model metadata; use --model NAME --weights FILE")
        self._meta = dict(meta)
        self.preprocess = dict(meta["preprocess"])

    def build_eval_dataset(self):
        from focalnet.data import SeededTransformDataset, build_eval_dataset, build_transform

        known = self._meta.get("class_names")
        label_set = self._meta.get("label_set")
        candidates = [known or []]
        if label_set:
            from focalnet.weights.label_sets import synsets

            try:
                candidates.append(list(synsets(label_set)))  # ImageNet val folders are named by synset
            except (ImportError, KeyError, ValueError, RuntimeError):
                pass
        val, classes = build_eval_dataset(self.cfg.data, candidates)  # an image folder needs only val/
        if known and len(classes) > len(known):
            raise ValueError(f"the data has {len(classes)} classes but the model predicts {len(known)}")
        return SeededTransformDataset(val, build_transform(self.preprocess))

    # ---- prediction
    def predict(self, model: nn.Module, inputs: list[str], ctx: Context, out_dir: Path | None,
                options: dict[str, Any]) -> list[dict[str, Any]]:
        from focalnet.data import class_names
        from focalnet.train.inference import Loaded, predict_images

        label_set = self._meta.get("label_set")
        names = class_names(label_set) if label_set else self._meta.get("class_names")
        loaded = Loaded(model, self.preprocess, names, "", label_set)
        return predict_images(loaded, inputs, int(options.get("topk") or 5), ctx.device,
                              exact=bool(options.get("exact")))

    @property
    def label_set(self) -> str | None:
        return self._meta.get("label_set")

    def format_prediction(self, r: dict[str, Any]) -> str:
        if "error" in r:
            return f"{r['path']}: ERROR {r['error']}"
        return "\n".join([r["path"], *(f"  {100 * p['prob']:6.2f}%  {p['index']:>5}  {p['label']}" for p in r["top"])])


class _Transformed(torch.utils.data.Dataset):
    """``(transform(image), label)``; the engine's SeededDataset seeds the RNGs around it."""

    def __init__(self, base, transform) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        img, target = self.base[i]
        return self.transform(img), target
