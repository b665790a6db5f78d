"""Model families. Importing this package registers every variant."""

from focalnet.weights import focalnet_records  # noqa: F401  (registers the released weights of the variants)

from . import focalnet  # noqa: F401  (registers FocalNet variants)
from .focal_transformer import FocalTransformer  # registers the Focal Transformer variants
from .focalnet import FocalNet
from .registry import ModelSpec, create_model, get_spec, list_models, list_pretrained, register_model

__all__ = ["FocalNet", "FocalTransformer", "ModelSpec", "create_model", "get_spec", "list_models", "list_pretrained",
           "register_model"]
