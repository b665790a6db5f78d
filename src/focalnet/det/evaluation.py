"""Detection building blocks used by the detection task (:mod:`focalnet.tasks.detection`): the detector a config
describes, its data paths, the learning-rate schedule, COCO evaluation (pycocotools bbox + segm mAP), prediction
and drawing. Training itself is the shared engine's loop.

The schedule is the authors' mmdet one: linear warmup over ``warmup_iters`` steps from ``warmup_ratio * lr``, then
the learning rate drops by ``gamma`` after each epoch in ``steps`` (9/11 of 12, or 27/33 of 36).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import DetConfig, ModelConfig
from .dataset import CocoDetection, DatasetError, collate
from .models import build_detector

_logger = logging.getLogger(__name__)

__all__ = ["build_model", "resolve_data", "lr_lambda", "has_masks", "evaluate", "predict", "draw_predictions"]


def has_masks(arch: str) -> bool:
    """Whether a detector architecture predicts instance masks (Mask R-CNN and its cascade)."""
    return arch.endswith("mask_rcnn")


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
             autocast: Callable[[], Any] = contextlib.nullcontext, progress: bool = False) -> dict[str, Any]:
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
        with autocast():
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
