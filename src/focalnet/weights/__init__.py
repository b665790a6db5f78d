"""Weights: records of every released checkpoint, safe loading with format detection, conversion, download.

* :func:`load_weights` (loading.py) is the single entry point that reads a file / URL / state dict, converts its
  layout (original, timm, Hugging Face) and loads it strictly.
* :func:`load_pretrained` (hub.py) picks a :class:`WeightsRecord`, downloads it into the cache and loads it,
  fitting the classifier to the model's class count.
* :mod:`.convert` holds the pure layout converters, :mod:`.identify` names the variant a state dict belongs to,
  :mod:`.export` writes converted files, :func:`labels` gives class names (:mod:`.label_sets`).
"""

from .label_sets import LABEL_SETS, labels, synsets
from .loading import CheckpointError, load_state_dict_file, load_weights
from .records import WeightsRecord, get_weights, list_weights, register_weights, weights_status

__all__ = [
    "CheckpointError",
    "LABEL_SETS",
    "WeightsRecord",
    "get_weights",
    "labels",
    "list_weights",
    "load_pretrained",
    "load_state_dict_file",
    "load_weights",
    "register_weights",
    "synsets",
    "weights_status",
]


def load_pretrained(model, name, pretrained=True, num_classes=None, **kwargs):
    """See :func:`focalnet.weights.hub.load_pretrained` (imported lazily: it pulls in urllib and friends)."""
    from .hub import load_pretrained as _lp

    return _lp(model, name, pretrained, num_classes=num_classes, **kwargs)
