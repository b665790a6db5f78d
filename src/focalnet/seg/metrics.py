"""mIoU, per-class IoU/accuracy and pixel accuracy from a confusion matrix (mmseg's definitions).

* pixel accuracy (``aAcc``): correct pixels / labelled pixels (ignored pixels excluded);
* ``IoU_c = TP / (TP + FP + FN)``, ``Acc_c = TP / (TP + FN)``;
* ``mIoU`` / ``mAcc``: means over the classes with a defined value (a class absent from both the ground truth
  and the predictions has IoU 0/0 = NaN and is left out, as mmseg's ``nanmean``).
"""

from __future__ import annotations

import math

import torch

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix:
    """Accumulates a (num_classes x num_classes) matrix, rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a prediction (class indices) and its ground truth of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(target.shape)} differ in shape")
        pred, target = pred.reshape(-1).long().cpu(), target.reshape(-1).long().cpu()
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        n = self.num_classes
        if target.numel() and (target.min() < 0 or target.max() >= n):
            raise ValueError(f"ground-truth labels {sorted(set(target[(target < 0) | (target >= n)].tolist()))[:10]} "
                             f"are outside [0, {n}) and are not the ignore index {self.ignore_index}")
        if pred.numel() and (pred.min() < 0 or pred.max() >= n):
            raise ValueError(f"predicted labels are outside [0, {n})")
        self.mat += torch.bincount(target * n + pred, minlength=n * n).view(n, n)

    def compute(self, class_names: list[str] | None = None) -> dict:
        """``{"aAcc", "mIoU", "mAcc", "IoU": {name: value}, "Acc": {...}}``, in percent (NaN for absent classes).

        Raises ``ValueError`` when no labelled pixel was seen (every value would be undefined)."""
        m = self.mat.double()
        total = m.sum()
        if total == 0:
            raise ValueError("no labelled pixels were evaluated (empty data set, or every pixel is ignored)")
        tp = m.diag()
        gt, pr = m.sum(1), m.sum(0)
        iou = tp / (gt + pr - tp)  # 0/0 -> nan for classes in neither
        acc = tp / gt
        names = class_names or [str(i) for i in range(self.num_classes)]

        def nanmean(v: torch.Tensor) -> float:
            v = v[~torch.isnan(v)]
            return float(v.mean() * 100) if v.numel() else math.nan

        return {
            "aAcc": float(tp.sum() / total * 100),
            "mIoU": nanmean(iou),
            "mAcc": nanmean(acc),
            "IoU": {n: float(v * 100) for n, v in zip(names, iou)},
            "Acc": {n: float(v * 100) for n, v in zip(names, acc)},
        }
