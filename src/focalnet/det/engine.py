"""Train, evaluate (pycocotools bbox + segm mAP), predict and draw, and checkpoint torchvision detectors.

Plain functions over :class:`~focalnet.det.config.DetConfig`; the ``focalnet detect`` command is a thin layer on
top. The schedule is the authors' mmdet one: linear warmup over ``warmup_iters`` steps from ``warmup_ratio * lr``,
then the learning rate drops by ``gamma`` after each epoch in ``steps`` (9/11 of 12, or 27/33 of 36).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import DetConfig, ModelConfig
from .dataset import CocoDetection, DatasetError, collate
from .models import build_detector, detector_param_groups

_logger = logging.getLogger(__name__)

__all__ = [
    "resolve_device", "build_model", "resolve_data", "lr_lambda", "train", "evaluate", "save_checkpoint",
    "load_checkpoint", "predict", "draw_predictions",
]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device=cpu")
    return dev


def build_model(cfg: ModelConfig, num_classes: int, load_pretrained: bool = True) -> nn.Module:
    """The detector a :class:`ModelConfig` describes, for ``num_classes`` object categories."""
    return build_detector(
        cfg.arch,
        cfg.backbone,
        num_classes,
        focal_windows=cfg.focal_windows,
        focal_levels=cfg.focal_levels,
        drop_path_rate=cfg.drop_path_rate,
        pretrained=cfg.pretrained if load_pretrained else None,
        frozen_stages=cfg.frozen_stages,
        stem_padding=cfg.stem_padding,
        use_checkpoint=cfg.use_checkpoint,
        backbone_overrides=cfg.backbone_overrides,
        fpn_channels=cfg.fpn_channels,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        anchor_sizes=cfg.anchor_sizes,
        box_head_dim=cfg.box_head_dim,
        mask_head_dims=cfg.mask_head_dims,
        **cfg.detector,
    )


def resolve_data(cfg: DetConfig) -> dict[str, str]:
    """The four data paths, generating the synthetic set first when the config asks for it."""
    d = cfg.data
    if d.synthetic is not None:
        from focalnet.data.coco import make_synthetic_coco

        s = d.synthetic
        return {k: str(v) for k, v in make_synthetic_coco(s.root, s.n_train, s.n_val, s.size, s.seed).items()}
    paths = {"train_images": d.train_images, "train_ann": d.train_ann, "val_images": d.val_images,
             "val_ann": d.val_ann}
    return paths


def lr_lambda(warmup_iters: int, warmup_ratio: float, steps: Sequence[int], gamma: float,
              iters_per_epoch: int) -> Callable[[int], float]:
    """Learning-rate factor after ``it`` optimizer steps: linear warmup, then step decay at epoch boundaries."""

    def f(it: int) -> float:
        warm = 1.0 if it >= warmup_iters else warmup_ratio + (1 - warmup_ratio) * it / warmup_iters
        epoch = it // max(1, iters_per_epoch)
        return warm * gamma ** sum(epoch >= s for s in steps)

    return f


def _to(targets: list[dict], device: torch.device) -> list[dict]:
    return [{k: v.to(device) for k, v in t.items()} for t in targets]


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(cfg: DetConfig, progress: bool = False) -> dict[str, Any]:
    """Train the configured detector; evaluates on the validation split and writes ``last.pt`` + ``metrics.json``.

    Returns ``{"history": [per-step losses], "metrics": last evaluation, "checkpoint": path, "images_per_s"}``.
    """
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = resolve_device(cfg.device)
    paths = resolve_data(cfg)
    if not paths["train_ann"]:
        raise DatasetError("no training data: set data.train_images/train_ann or data.synthetic")
    needs_masks = cfg.model.arch in ("mask_rcnn", "cascade_mask_rcnn")
    train_set = CocoDetection(paths["train_images"], paths["train_ann"], train=True, hflip=cfg.data.hflip,
                              masks=needs_masks, keep_empty=cfg.data.keep_empty)
    val_set = (CocoDetection(paths["val_images"], paths["val_ann"], masks=False, cat_ids=train_set.cat_ids)
               if paths.get("val_ann") else None)
    model = build_model(cfg.model, train_set.num_classes).to(device)
    o = cfg.optim
    optimizer = torch.optim.AdamW(detector_param_groups(model, o.weight_decay), lr=o.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=o.batch_size, shuffle=True, collate_fn=collate,
                                         num_workers=cfg.data.num_workers, generator=g, drop_last=True,
                                         persistent_workers=cfg.data.num_workers > 0)
    if len(loader) == 0:
        raise DatasetError(f"{len(train_set)} training images are fewer than one batch of {o.batch_size}")
    per_epoch = max(1, len(loader) // o.accumulate)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(o.warmup_iters, o.warmup_ratio, o.steps, o.gamma, per_epoch))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    total = o.epochs * per_epoch if o.max_iters is None else min(o.max_iters, o.epochs * per_epoch)
    _logger.info("training %s/%s on %s: %d images, %d steps of %d x %d images", cfg.model.arch,
                 cfg.model.backbone, device, len(train_set), total, o.batch_size, o.accumulate)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="train", unit="step")
    history: list[dict[str, float]] = []
    metrics: dict[str, Any] = {}
    step, n_images, t0 = 0, 0, time.perf_counter()
    ckpt = out / "last.pt"
    for epoch in range(o.epochs):
        model.train()
        for k, (images, targets) in enumerate(loader):
            images = [im.to(device, non_blocking=True) for im in images]
            with _autocast(device, cfg.amp):
                losses = model(images, _to(targets, device))
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step} (epoch {epoch}): "
                                         f"{ {n: float(v) for n, v in losses.items()} }; lower optim.lr")
            (loss / o.accumulate).backward()
            n_images += len(images)
            if (k + 1) % o.accumulate:
                continue
            if o.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), o.clip_grad)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sched.step()
            step += 1
            rec = {"step": step, "epoch": epoch, "loss": loss.item(), "lr": optimizer.param_groups[0]["lr"],
                   **{n: v.item() for n, v in losses.items()}}
            history.append(rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{rec['lr']:.2e}")
            elif step % cfg.log_every == 0:
                _logger.info("step %d/%d loss %.4f lr %.2e", step, total, rec["loss"], rec["lr"])
            if step >= total:
                break
        last = step >= total or epoch == o.epochs - 1
        if val_set is not None and (last or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)):
            metrics = evaluate(model, val_set, device, batch_size=o.batch_size, amp=cfg.amp, progress=progress)
            metrics["epoch"] = epoch + 1
        save_checkpoint(ckpt, model, cfg, train_set.categories, {"epoch": epoch + 1, "step": step,
                                                                 "metrics": metrics})
        if last:
            break
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t0
    result = {"history": history, "metrics": metrics, "checkpoint": str(ckpt), "steps": step,
              "images_per_s": n_images / elapsed if elapsed > 0 else float("nan"), "seconds": elapsed,
              "device": str(device)}
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
    os.replace(tmp, out / "metrics.json")
    return result


# ---------------------------------------------------------------------------------------------- evaluation
def _coco_results(outputs: list[dict], image_ids: list[int], cat_ids: list[int], with_masks: bool) -> tuple[list, list]:
    from pycocotools import mask as mask_utils

    boxes_res, segm_res = [], []
    for out, img_id in zip(outputs, image_ids):
        b = out["boxes"].float().cpu().numpy()
        scores = out["scores"].float().cpu().numpy()
        labels = out["labels"].cpu().numpy()
        masks = (out["masks"][:, 0] > 0.5).cpu().numpy() if with_masks and "masks" in out else None
        for i in range(len(b)):
            cat = cat_ids[int(labels[i]) - 1]
            x0, y0, x1, y1 = (float(v) for v in b[i])
            boxes_res.append({"image_id": img_id, "category_id": cat, "bbox": [x0, y0, x1 - x0, y1 - y0],
                              "score": float(scores[i])})
            if masks is not None:
                rle = mask_utils.encode(np.asfortranarray(masks[i].astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                segm_res.append({"image_id": img_id, "category_id": cat, "segmentation": rle,
                                 "score": float(scores[i])})
    return boxes_res, segm_res


_STAT_NAMES = ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large", "AR1", "AR10", "AR100")


def _cocoeval(gt, results: list[dict], iou_type: str, image_ids: list[int]) -> dict[str, float]:
    from pycocotools.cocoeval import COCOeval

    if not results:
        _logger.warning("%s evaluation: the model made no predictions on %d images; every metric is 0",
                        iou_type, len(image_ids))
        return dict.fromkeys(_STAT_NAMES, 0.0)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    summary = "\n".join(line for line in buf.getvalue().splitlines() if line.lstrip().startswith("Average"))
    _logger.info("%s evaluation:\n%s", iou_type, summary)
    # pycocotools reports -1 where a size range has no ground truth; report those as nan, not as a score.
    return {n: (float(v) if v >= 0 else float("nan")) for n, v in zip(_STAT_NAMES, ev.stats)}


@torch.no_grad()
def evaluate(model: nn.Module, dataset: CocoDetection, device: torch.device | str = "cpu", batch_size: int = 2,
             amp: bool = False, progress: bool = False) -> dict[str, Any]:
    """COCO mAP of ``model`` on ``dataset`` with pycocotools: ``{"bbox": {...}, "segm": {...}}`` (segm for
    Mask R-CNN). Predictions are in the original image coordinates (torchvision undoes its resize)."""
    device = torch.device(device)
    gt = dataset.coco
    if not any(a for a in gt.dataset.get("annotations", []) if a.get("image_id") in set(dataset.ids)):
        raise DatasetError(f"{dataset.ann_file} has no annotations on its images: mAP is undefined")
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    it = loader
    if progress:
        from tqdm import tqdm

        it = tqdm(loader, desc="eval", unit="batch")
    with_masks = hasattr(model, "roi_heads") and getattr(model.roi_heads, "mask_head", None) is not None
    boxes_res, segm_res, ids = [], [], []
    for images, targets in it:
        with _autocast(device, amp):
            outputs = model([im.to(device) for im in images])
        img_ids = [int(t["image_id"]) for t in targets]
        b, s = _coco_results(outputs, img_ids, dataset.cat_ids, with_masks)
        boxes_res += b
        segm_res += s
        ids += img_ids
    model.train(was_training)
    metrics: dict[str, Any] = {"bbox": _cocoeval(gt, boxes_res, "bbox", ids), "images": len(ids),
                               "detections": len(boxes_res)}
    if with_masks:
        metrics["segm"] = _cocoeval(gt, segm_res, "segm", ids)
    return metrics


# ---------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | os.PathLike, model: nn.Module, cfg: DetConfig, categories: list[dict],
                    extra: dict[str, Any] | None = None) -> None:
    """Weights + the config that built them + category names, written atomically (temp file, then rename)."""
    path = Path(path)
    blob = {"model": model.state_dict(), "config": cfg.to_dict(), "categories": categories,
            "format": "focalnet.detect/1", **(extra or {})}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, DetConfig,
                                                                                         list[dict]]:
    """Rebuild the detector a ``focalnet detect train`` checkpoint describes (``weights_only`` loading)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(f"{path} is not a readable checkpoint: {e}") from e
    if not isinstance(blob, dict) or blob.get("format") != "focalnet.detect/1":
        raise ValueError(f"{path} is not a `focalnet detect train` checkpoint (no detector config inside)")
    cfg = DetConfig.from_dict(blob["config"])
    model = build_model(cfg.model, len(blob["categories"]), load_pretrained=False)
    model.load_state_dict(blob["model"])
    return model.to(device).eval(), cfg, blob["categories"]


# ---------------------------------------------------------------------------------------------- prediction
@torch.no_grad()
def predict(model: nn.Module, image: np.ndarray, device: torch.device | str = "cpu",
            score_thresh: float = 0.5) -> dict[str, torch.Tensor]:
    """Detections on one RGB uint8 (H, W, 3) image, kept above ``score_thresh`` (masks as bool (N, H, W))."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255).to(device)
    out = {k: v.cpu() for k, v in model([x])[0].items()}
    keep = out["scores"] >= score_thresh
    out = {k: v[keep] for k, v in out.items()}
    if "masks" in out:
        out["masks"] = out["masks"][:, 0] > 0.5
    return out


def draw_predictions(image: np.ndarray, pred: dict[str, torch.Tensor], categories: list[dict]) -> np.ndarray:
    """Masks (translucent), class-coloured boxes, non-overlapping score labels and a legend of the classes
    (:func:`focalnet.viz.detections.draw_detections`); small images are enlarged so the text is legible."""
    from focalnet.viz.detections import draw_detections

    if len(pred["boxes"]) == 0:
        return image.copy()  # nothing to mark: the picture as it was
    labels = [int(lab) - 1 for lab in pred["labels"]]  # torchvision's 0 is background
    masks = pred["masks"].bool().numpy() if "masks" in pred else None
    return draw_detections(image, pred["boxes"].numpy(), labels, pred["scores"].tolist(),
                           [c["name"] for c in categories], masks=masks)
