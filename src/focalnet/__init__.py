"""focalnet: Focal Modulation Networks and Focal Transformers, exact to the original and fast.

The public API::

    import focalnet
    model = focalnet.create_model("focalnet_tiny_srf", pretrained=False)
    focalnet.list_models("focalnet_*_lrf")
    focalnet.load_weights(model, "focalnet_tiny_srf.pth")
"""

import logging

from ._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())


_MODELS = {"FocalNet", "ModelSpec", "create_model", "get_spec", "list_models", "list_pretrained", "register_model"}


def __getattr__(name):  # lazy imports keep `import focalnet` (and so `focalnet --help`) free of torch
    if name in _MODELS:
        from . import models

        return getattr(models, name)
    if name == "ModulationMaps":
        from .models.focalnet import ModulationMaps

        return ModulationMaps
    if name in {"load_weights", "list_weights", "get_weights", "WeightsRecord"}:
        from . import weights

        return getattr(weights, name)
    if name == "Predictor":
        from .predictor import Predictor

        return Predictor
    if name == "FocalTransformer":
        from .models.focal_transformer import FocalTransformer

        return FocalTransformer
    raise AttributeError(f"module 'focalnet' has no attribute {name!r}")


__all__ = [
    "FocalNet",
    "FocalTransformer",
    "ModelSpec",
    "ModulationMaps",
    "Predictor",
    "create_model",
    "get_spec",
    "list_models",
    "list_pretrained",
    "load_weights",
    "list_weights",
    "register_model",
    "__version__",
]
