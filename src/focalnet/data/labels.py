"""Class names of the ImageNet label sets, index-aligned to a model's logits (one source: ``focalnet.weights``)."""

from __future__ import annotations

__all__ = ["class_names"]


def class_names(label_set: str) -> list[str]:
    """Names for ``"imagenet-1k"`` (1,000) or ``"imagenet-22k"`` (21,842; the first 1,000 are the 1K classes)."""
    from focalnet.weights import labels

    return list(labels(label_set))
