"""Image + index-mask transforms of the original ADE20K pipeline (mmseg 0.x), on tensors.

Train: ``Resize(img_scale, ratio_range)`` keeping the aspect ratio -> ``RandomCrop(crop, cat_max_ratio)`` ->
``RandomFlip`` -> ``PhotoMetricDistortion`` -> normalise -> pad to the crop size (image 0, mask ignore).
Test: resize to ``img_scale`` keeping the ratio -> normalise; logits are resized back to the original size.

Resizing and flipping go through ``torchvision.transforms.v2.functional`` with the mask wrapped as a
``tv_tensors.Mask``, so masks are always resized with nearest-neighbour and never blended.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

__all__ = ["rescale_size", "SegTrainTransform", "SegTestTransform", "normalize", "PhotoMetricDistortion"]


def rescale_size(h: int, w: int, scale: Sequence[float]) -> tuple[int, int]:
    """mmcv ``rescale`` with keep_ratio: the largest size whose long side <= max(scale), short side <= min(scale)."""
    long_edge, short_edge = max(scale), min(scale)
    f = min(long_edge / max(h, w), short_edge / min(h, w))
    return max(1, int(h * f + 0.5)), max(1, int(w * f + 0.5))


def normalize(img: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8/float (3,H,W) in 0..255 -> float, normalised per channel (mmseg's 0..255 mean/std)."""
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (img.float() - m) / s


class PhotoMetricDistortion:
    """mmseg's PhotoMetricDistortion: each step with probability 1/2 — additive brightness (±32), contrast
    (0.5–1.5) before or after, saturation (0.5–1.5) and hue (±18 of 180) — on a uint8 (3,H,W) image."""

    def __init__(self, brightness_delta: int = 32, contrast=(0.5, 1.5), saturation=(0.5, 1.5), hue_delta: int = 18):
        self.brightness_delta = brightness_delta
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue_delta / 180.0  # mmseg's hue is on OpenCV's 0..180 scale; torchvision's on -0.5..0.5

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        x = img.float()
        if random.random() < 0.5:
            x = (x + random.uniform(-self.brightness_delta, self.brightness_delta)).clamp(0, 255)
        contrast_first = random.random() < 0.5
        c = random.uniform(*self.contrast) if random.random() < 0.5 else None
        if contrast_first and c is not None:
            x = TF.adjust_contrast(x / 255.0, c) * 255.0
        if random.random() < 0.5:
            x = TF.adjust_saturation(x / 255.0, random.uniform(*self.saturation)) * 255.0
        if random.random() < 0.5:
            x = TF.adjust_hue(x / 255.0, random.uniform(-self.hue, self.hue)) * 255.0
        if not contrast_first and c is not None:
            x = TF.adjust_contrast(x / 255.0, c) * 255.0
        return x.clamp(0, 255).round().to(torch.uint8)


class SegTrainTransform:
    """(uint8 image (3,H,W), uint8 mask (H,W)) -> (normalised float image, long mask), both ``crop_size``."""

    def __init__(
        self,
        img_scale: Sequence[int] = (2048, 512),
        ratio_range: Sequence[float] = (0.5, 2.0),
        crop_size: Sequence[int] = (512, 512),
        cat_max_ratio: float = 0.75,
        flip_prob: float = 0.5,
        photometric: bool = True,
        mean: Sequence[float] = (123.675, 116.28, 103.53),
        std: Sequence[float] = (58.395, 57.12, 57.375),
        ignore_index: int = 255,
    ) -> None:
        self.img_scale, self.ratio_range = tuple(img_scale), tuple(ratio_range)
        self.crop_size = tuple(crop_size)
        self.cat_max_ratio = cat_max_ratio
        self.flip = v2.RandomHorizontalFlip(flip_prob)
        self.photometric = PhotoMetricDistortion() if photometric else None
        self.mean, self.std, self.ignore_index = mean, std, ignore_index

    def _crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        ch, cw = min(self.crop_size[0], h), min(self.crop_size[1], w)
        return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw

    def __call__(self, img: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = random.uniform(*self.ratio_range)
        size = rescale_size(img.shape[-2], img.shape[-1], [s * r for s in self.img_scale])
        img = TF.resize(img, list(size), antialias=True)
        mask = TF.resize(tv_tensors.Mask(mask[None]), list(size))  # nearest, as for every Mask
        # RandomCrop with cat_max_ratio: retry (up to 10 times) while one class covers > cat_max_ratio of the crop.
        top, left, ch, cw = self._crop_box(*size)
        if self.cat_max_ratio < 1.0:
            for _ in range(10):
                m = mask[0, top : top + ch, left : left + cw]
                _, counts = torch.unique(m[m != self.ignore_index], return_counts=True)
                if len(counts) > 1 and counts.max().item() / counts.sum().item() < self.cat_max_ratio:
                    break
                top, left, ch, cw = self._crop_box(*size)
        img, mask = TF.crop(img, top, left, ch, cw), TF.crop(mask, top, left, ch, cw)
        img, mask = self.flip(img, mask)
        if self.photometric is not None:
            img = self.photometric(img)
        img = normalize(img, self.mean, self.std)
        ph, pw = self.crop_size[0] - ch, self.crop_size[1] - cw
        if ph or pw:  # pad right/bottom to the crop size, as mmseg's Pad(size=crop_size)
            img = TF.pad(img, [0, 0, pw, ph], fill=0.0)
            mask = TF.pad(mask, [0, 0, pw, ph], fill=self.ignore_index)
        return img, mask.as_subclass(torch.Tensor)[0].long()


class SegTestTransform:
    """uint8 (3,H,W) image -> normalised float image resized to ``img_scale`` (keep ratio); ``None`` keeps size."""

    def __init__(self, img_scale: Sequence[int] | None = (2048, 512), mean=(123.675, 116.28, 103.53),
                 std=(58.395, 57.12, 57.375)) -> None:
        self.img_scale = tuple(img_scale) if img_scale is not None else None
        self.mean, self.std = mean, std

    def size_for(self, h: int, w: int, ratio: float = 1.0) -> tuple[int, int]:
        if self.img_scale is None:
            return max(1, math.floor(h * ratio + 0.5)), max(1, math.floor(w * ratio + 0.5))
        return rescale_size(h, w, [s * ratio for s in self.img_scale])

    def __call__(self, img: torch.Tensor, ratio: float = 1.0) -> torch.Tensor:
        size = self.size_for(img.shape[-2], img.shape[-1], ratio)
        if size != tuple(img.shape[-2:]):
            img = TF.resize(img, list(size), antialias=True)
        return normalize(img, self.mean, self.std)
