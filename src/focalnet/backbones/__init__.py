"""Dense-prediction adapters: feature maps at strides 4/8/16/32 from the one classification model."""

from .focal_transformer import FocalTransformerBackbone
from .focalnet import FocalNetBackbone

__all__ = ["FocalNetBackbone", "FocalTransformerBackbone"]
