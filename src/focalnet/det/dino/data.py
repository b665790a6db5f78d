"""DINO's data pipeline: COCO images and boxes through the DETR augmentation, on torchvision transforms v2.

Training (the original ``make_coco_transforms('train')``): horizontal flip, then with equal probability either a
multi-scale resize (short side from ``scales``, long side at most ``max_size``) or resize to ``scales2_resize`` ->
random crop of ``scales2_crop`` size -> the multi-scale resize; boxes follow, boxes cropped away are dropped.
Evaluation: short side ``eval_size`` (the largest training scale by default), long side at most ``max_size``.
Then ImageNet normalisation; targets become ``labels`` (category ids, as DINO's ``num_classes = max id + 1`` head
predicts them) and ``boxes`` (cx, cy, w, h) relative to the augmented image, plus ``image_id`` and ``orig_size``.
All randomness draws from the global torch RNG (the engine seeds it per sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["RandomSizeCrop", "detr_train_transform", "detr_eval_transform", "DinoDataset", "collate"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _v2():
    from torchvision.transforms import v2

    return v2


class RandomSizeCrop:
    """DETR's ``RandomSizeCrop(min, max)``: a crop of random width/height in [min, min(side, max)] at a random place.

    Works on a v2 sample dict (``image`` tv_tensor, ``boxes`` BoundingBoxes, ``labels``); boxes are cut to the crop
    and those left with no width or height dropped, as DETR does.
    """

    def __init__(self, min_size: int, max_size: int) -> None:
        if min_size < 1 or max_size < min_size:
            raise ValueError(f"RandomSizeCrop needs 1 <= min_size <= max_size, got {min_size}, {max_size}")
        self.min_size, self.max_size = min_size, max_size

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        F = _v2().functional
        H, W = sample["image"].shape[-2:]
        w = int(torch.randint(min(self.min_size, W), min(W, self.max_size) + 1, ()))
        h = int(torch.randint(min(self.min_size, H), min(H, self.max_size) + 1, ()))
        top = int(torch.randint(0, H - h + 1, ()))
        left = int(torch.randint(0, W - w + 1, ()))
        out = dict(sample)
        out["image"] = F.crop(sample["image"], top, left, h, w)
        boxes = F.clamp_bounding_boxes(F.crop(sample["boxes"], top, left, h, w))
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        out["boxes"] = boxes[keep]
        out["labels"] = sample["labels"][keep]
        return out


def detr_train_transform(scales: Sequence[int], max_size: int, scales2_resize: Sequence[int],
                         scales2_crop: Sequence[int]):
    v2 = _v2()
    multi = v2.RandomShortestSize(list(scales), max_size=max_size, antialias=True)
    crop_branch = v2.Compose([v2.RandomShortestSize(list(scales2_resize), antialias=True),
                              RandomSizeCrop(int(scales2_crop[0]), int(scales2_crop[1])),
                              v2.RandomShortestSize(list(scales), max_size=max_size, antialias=True)])
    return v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomChoice([multi, crop_branch]),
                       v2.Normalize(MEAN, STD)])


def detr_eval_transform(size: int, max_size: int):
    v2 = _v2()
    return v2.Compose([v2.RandomShortestSize([int(size)], max_size=max_size, antialias=True), v2.Normalize(MEAN, STD)])


class DinoDataset(torch.utils.data.Dataset):
    """A :class:`focalnet.det.CocoDetection` (boxes xyxy, contiguous labels) as DINO samples ``(image, target)``."""

    def __init__(self, coco, transform) -> None:
        self.coco = coco
        self.transform = transform

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from torchvision import tv_tensors

        image, t = self.coco[idx]
        H, W = image.shape[-2:]
        cat_ids = torch.as_tensor(self.coco.cat_ids, dtype=torch.int64)
        labels = cat_ids[t["labels"] - 1] if t["labels"].numel() else t["labels"]
        sample = {"image": tv_tensors.Image(image),
                  "boxes": tv_tensors.BoundingBoxes(t["boxes"], format="XYXY", canvas_size=(H, W)),
                  "labels": labels}
        sample = self.transform(sample)
        img = sample["image"].as_subclass(torch.Tensor)
        h, w = img.shape[-2:]
        b = sample["boxes"].as_subclass(torch.Tensor).reshape(-1, 4)
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        cxcywh = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
                             1) / scale
        target = {"labels": sample["labels"], "boxes": cxcywh, "image_id": t["image_id"],
                  "orig_size": torch.tensor([H, W]), "size": torch.tensor([h, w])}
        return img.contiguous(), target


def collate(batch: list) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Lists: DINO pads the images itself (with a mask)."""
    images, targets = zip(*batch)
    return list(images), list(targets)
