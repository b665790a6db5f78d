"""Human-readable class names for ImageNet-1K and the FocalNet ImageNet-22K head.

The 22K checkpoints have 21,842 logits ordered so that the first 1,000 are the 1K classes in the standard order
(spec §4.4); timm ships exactly that list as ``imagenet-22k-ms``. If ``focalnet.weights.labels`` exists (the weights
area), it is preferred, so there is one source of truth once it lands.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["class_names"]

_TIMM_SUBSET = {"imagenet-1k": "imagenet-1k", "imagenet-22k": "imagenet-22k-ms", "imagenet-21k": "imagenet-22k-ms"}


@lru_cache(maxsize=4)
def class_names(label_set: str) -> list[str]:
    """Short names (``"tabby, tabby cat"``) for ``"imagenet-1k"`` or ``"imagenet-22k"``, index-aligned to logits."""
    try:
        from focalnet.weights import labels as _labels  # the weights area's single source, when present

        return list(_labels(label_set))
    except (ImportError, AttributeError):
        pass
    if label_set not in _TIMM_SUBSET:
        raise KeyError(f"unknown label set {label_set!r}; known: {', '.join(_TIMM_SUBSET)}")
    from timm.data import ImageNetInfo

    info = ImageNetInfo(_TIMM_SUBSET[label_set])
    return [info.index_to_description(i) for i in range(info.num_classes())]
