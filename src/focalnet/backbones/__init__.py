"""Dense-prediction adapters: feature maps at strides 4/8/16/32 from the one classification model."""

from .focal_transformer import FocalTransformerBackbone
from .focalnet import FocalNetBackbone
from .mmdet import load_mmdet_backbone, mmdet_backbone_state_dict
from .remap import load_backbone_weights, remap_classification_state_dict

__all__ = ["FocalNetBackbone", "FocalTransformerBackbone", "load_backbone_weights", "load_mmdet_backbone",
           "mmdet_backbone_state_dict", "remap_classification_state_dict"]
