"""What Cascade Mask R-CNN, ATSS and Sparse R-CNN share: the image transform, target checks, a detector shell.

torchvision's ``GeneralizedRCNNTransform`` normalises, resizes (a random shorter side per batch in training)
and pads; its ``postprocess`` maps boxes (and pastes masks) back to the input images. :class:`ImageDetector` is
the torchvision calling convention around it (``model(images, targets)`` -> loss dict in training, a list of
``{"boxes", "scores", "labels"[, "masks"]}`` in evaluation, labels ``1..num_classes``), so the detectors plug
into the same training and evaluation code as torchvision's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from focalnet.weights.records import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ImageDetector", "check_targets", "make_transform", "box_cxcywh_to_xyxy", "DEFAULT_MEAN_STD"]

DEFAULT_MEAN_STD = (list(IMAGENET_MEAN), list(IMAGENET_STD))


def make_transform(min_size: int | Sequence[int], max_size: int) -> GeneralizedRCNNTransform:
    sizes = tuple(int(s) for s in min_size) if isinstance(min_size, Sequence) else (int(min_size),)
    return GeneralizedRCNNTransform(sizes, max_size, *DEFAULT_MEAN_STD)


def box_cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def check_targets(targets: Sequence[dict[str, torch.Tensor]], num_classes: int, masks: bool = False) -> None:
    """One clear ``ValueError`` for a target a detector cannot learn from (the data set reader drops most)."""
    for i, t in enumerate(targets):
        boxes, labels = t.get("boxes"), t.get("labels")
        if not isinstance(boxes, torch.Tensor) or boxes.ndim != 2 or boxes.shape[-1] != 4:
            got = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
            raise ValueError(f"target {i}: 'boxes' must be a float tensor of shape (N, 4) in x0,y0,x1,y1; got {got}")
        if not isinstance(labels, torch.Tensor) or labels.shape != boxes.shape[:1]:
            raise ValueError(f"target {i}: 'labels' must be an int64 tensor with one label per box")
        bad = (boxes[:, 2:] <= boxes[:, :2]).any(1)
        if bad.any():
            j = int(bad.nonzero()[0])
            raise ValueError(f"target {i}: box {j} {boxes[j].tolist()} has no area (x1 <= x0 or y1 <= y0); "
                             "drop degenerate boxes first")
        if len(labels) and (labels.min() < 1 or labels.max() > num_classes):
            raise ValueError(f"target {i}: labels must be 1..{num_classes} (0 is background), got "
                             f"{sorted(set(labels.tolist()))}")
        if masks and len(boxes) and ("masks" not in t or len(t["masks"]) != len(boxes)):
            raise ValueError(f"target {i}: Cascade Mask R-CNN needs one 'masks' entry per box (use a box "
                             "detector, or add masks)")


class ImageDetector(nn.Module):
    """``transform -> backbone -> detect``; subclasses implement :meth:`detect` on the padded batch."""

    def __init__(self, backbone: nn.Module, transform: GeneralizedRCNNTransform, num_classes: int,
                 with_masks: bool = False) -> None:
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.num_classes = num_classes
        self.with_masks = with_masks

    def detect(self, images: ImageList, features: dict[str, torch.Tensor],
               targets: list[dict[str, torch.Tensor]] | None) -> tuple[list[dict], dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None):
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            check_targets(targets, self.num_classes, self.with_masks)
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        image_list, targets = self.transform(images, targets)
        features = self.backbone(image_list.tensors)
        detections, losses = self.detect(image_list, features, targets if self.training else None)
        if self.training:
            return losses
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)
