"""Inference modes of the original evaluation: whole image, sliding window, multi-scale + flip.

All functions take a model mapping a normalised (B,3,h,w) batch to logits (B,K,h,w) at its input size. As in
mmseg, sliding windows average *logits* where they overlap; each view's logits are resized to the original image
size, turned into probabilities (softmax), and scales/flips average those probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["slide_grid", "inference_whole", "inference_slide", "inference", "inference_aug"]

Model = Callable[[torch.Tensor], torch.Tensor]


def slide_grid(h: int, w: int, crop: Sequence[int], stride: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """Window boxes ``(y1, y2, x1, x2)`` covering an h x w image (mmseg's grid: the last window is pushed back
    inside the image; windows are clipped to images smaller than the crop)."""
    (ch, cw), (sh, sw) = crop, stride
    if min(ch, cw, sh, sw) <= 0:
        raise ValueError(f"crop {tuple(crop)} and stride {tuple(stride)} must be positive")
    if sh > ch or sw > cw:
        raise ValueError(f"stride {tuple(stride)} larger than the crop {tuple(crop)} would leave gaps")
    ny = max(h - ch + sh - 1, 0) // sh + 1
    nx = max(w - cw + sw - 1, 0) // sw + 1
    boxes = []
    for iy in range(ny):
        for ix in range(nx):
            y1, x1 = iy * sh, ix * sw
            y2, x2 = min(y1 + ch, h), min(x1 + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            boxes.append((y1, y2, x1, x2))
    return boxes


@torch.no_grad()
def inference_whole(model: Model, img: torch.Tensor) -> torch.Tensor:
    return model(img)


@torch.no_grad()
def inference_slide(model: Model, img: torch.Tensor, num_classes: int, crop: Sequence[int],
                    stride: Sequence[int]) -> torch.Tensor:
    """Logits of overlapping windows, averaged where they overlap (mmseg's ``slide_inference``)."""
    b, _, h, w = img.shape
    logits = img.new_zeros((b, num_classes, h, w))
    count = img.new_zeros((1, 1, h, w))
    for y1, y2, x1, x2 in slide_grid(h, w, crop, stride):
        logits[:, :, y1:y2, x1:x2] += model(img[:, :, y1:y2, x1:x2])
        count[:, :, y1:y2, x1:x2] += 1
    return logits / count


def inference(model: Model, img: torch.Tensor, num_classes: int, mode: str = "whole",
              crop: Sequence[int] = (512, 512), stride: Sequence[int] = (341, 341)) -> torch.Tensor:
    """Logits (B,K,H,W) of a normalised batch by ``mode`` ``"whole"`` or ``"slide"``."""
    if mode == "whole":
        return inference_whole(model, img)
    if mode == "slide":
        return inference_slide(model, img, num_classes, crop, stride)
    raise ValueError(f"unknown inference mode {mode!r}; use 'whole' or 'slide'")


@torch.no_grad()
def inference_aug(model: Model, img_at: Callable[[float], torch.Tensor], out_size: Sequence[int], num_classes: int,
                  ratios: Sequence[float] = (1.0,), flip: bool = False, mode: str = "whole",
                  crop: Sequence[int] = (512, 512), stride: Sequence[int] = (341, 341)) -> torch.Tensor:
    """Probabilities (B,K,*out_size): the mean over every scale ratio (and its flip) of softmax(logits resized
    to ``out_size``); one ratio without flip is the single-scale test. ``img_at(ratio)`` returns the
    normalised batch for a scale ratio."""
    total, n = None, 0
    for r in ratios:
        x = img_at(r)
        views = [(x, False)] + ([(x.flip(-1), True)] if flip else [])
        for v, flipped in views:
            logits = inference(model, v, num_classes, mode, crop, stride)
            if flipped:
                logits = logits.flip(-1)
            p = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False).softmax(1)
            total = p if total is None else total + p
            n += 1
    if total is None:
        raise ValueError("inference_aug needs at least one scale ratio")
    return total / n
