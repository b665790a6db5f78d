"""Weights: records of every released checkpoint, safe loading with format detection, conversion, download."""

from .loading import load_state_dict_file, load_weights
from .records import WeightsRecord, get_weights, list_weights, register_weights

__all__ = [
    "WeightsRecord",
    "get_weights",
    "list_weights",
    "load_pretrained",
    "load_state_dict_file",
    "load_weights",
    "register_weights",
]


def load_pretrained(model, name, pretrained=True, num_classes=None):
    from .hub import load_pretrained as _lp

    return _lp(model, name, pretrained, num_classes=num_classes)
