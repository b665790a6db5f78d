"""Dense-prediction adapters: feature maps at strides 4/8/16/32 from the one classification model."""

from .focal_transformer import FocalTransformerBackbone
from .focalnet import FocalNetBackbone
from .remap import load_backbone_weights, remap_classification_state_dict

__all__ = ["FocalNetBackbone", "FocalTransformerBackbone", "load_backbone_weights", "remap_classification_state_dict"]
