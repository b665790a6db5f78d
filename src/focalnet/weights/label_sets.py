"""Class names for the label sets the released checkpoints predict.

* ``imagenet-1k``: 1,000 short names in the standard (sorted-synset) order, shipped with the package
  (``focalnet/data/imagenet1k_classes.txt``, the names torchvision uses; synsets in ``imagenet1k_synsets.txt``).
* ``imagenet-22k``: the 21,842 outputs of the authors' 22K models. Their order is Microsoft's reordered 22K label
  map whose first 1,000 entries are the IN-1K classes in standard order (spec §4.4); timm ships that order offline
  as ``imagenet22k_ms_synsets.txt`` (``ImageNetInfo("imagenet-22k-ms")``). Index 850 (teddy bear) is a 1K class
  that the 22K training never saw. This set needs timm installed (``pip install focalnet[train]``).
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["labels", "synsets", "LABEL_SETS"]

LABEL_SETS = ("imagenet-1k", "imagenet-22k")
_ALIASES = {
    "imagenet-1k": "imagenet-1k",
    "imagenet1k": "imagenet-1k",
    "in1k": "imagenet-1k",
    "1k": "imagenet-1k",
    "imagenet-22k": "imagenet-22k",
    "imagenet22k": "imagenet-22k",
    "in22k": "imagenet-22k",
    "22k": "imagenet-22k",
    "imagenet-22k-ms": "imagenet-22k",
}


def _canonical(label_set: str) -> str:
    try:
        return _ALIASES[label_set.lower()]
    except KeyError:
        raise ValueError(f"unknown label set {label_set!r}; choose from {', '.join(LABEL_SETS)}") from None


def _read(name: str) -> list[str]:
    text = resources.files("focalnet").joinpath("data", name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line]


def _timm_22k():
    try:
        from timm.data import ImageNetInfo
    except ImportError as e:
        raise ImportError(
            "the ImageNet-22K class names come from timm's offline label files: pip install 'focalnet[train]'"
        ) from e
    return ImageNetInfo("imagenet-22k-ms")


@functools.cache
def synsets(label_set: str = "imagenet-1k") -> tuple[str, ...]:
    """WordNet ids (``n01440764`` ...) of each output index."""
    label_set = _canonical(label_set)
    if label_set == "imagenet-1k":
        return tuple(_read("imagenet1k_synsets.txt"))
    out = tuple(_timm_22k().label_names())
    if len(out) != 21842 or out[:1000] != synsets("imagenet-1k"):
        raise RuntimeError("timm's imagenet-22k-ms label file is not the expected 21,842-entry, 1K-first order")
    return out


@functools.cache
def labels(label_set: str = "imagenet-1k") -> tuple[str, ...]:
    """Human-readable class names, one per output index of a model trained on ``label_set``.

    ``labels("imagenet-1k")`` has 1,000 short names (``"tench"``, ``"goldfish"``, ...). ``labels("imagenet-22k")``
    has 21,842 names whose first 1,000 equal ``labels("imagenet-1k")``; the rest are each synset's first WordNet
    lemma (from timm).
    """
    label_set = _canonical(label_set)
    names1k = tuple(_read("imagenet1k_classes.txt"))
    if label_set == "imagenet-1k":
        return names1k
    info = _timm_22k()
    wnids = synsets("imagenet-22k")
    descriptions = info.label_descriptions()  # one call: it rebuilds the whole list each time
    rest = tuple(d.split(",")[0].strip() for d in descriptions[1000 : len(wnids)])
    return names1k + rest
