"""DINO with FocalNet / Focal Transformer backbones, in pure PyTorch, exact to the authors' FocalNet-DINO code.

``from_original(args, state_dict, backbone=None)`` builds it from the original config names and loads the
original state-dict layout; see :mod:`focalnet.det.dino.model` for the model and ``docs/detection.md``.
"""

from .config import DinoConfig
from .convert import (
    backbone_kwargs_from_args,
    build_backbone,
    from_original,
    from_original_state_dict,
    load_original_state_dict,
    to_original_state_dict,
)
from .model import DINO, batch_images
from .ops import MSDeformAttn, ms_deform_attn, set_deform_attn_backend

__all__ = [
    "DINO",
    "DinoConfig",
    "MSDeformAttn",
    "backbone_kwargs_from_args",
    "batch_images",
    "build_backbone",
    "from_original",
    "from_original_state_dict",
    "load_original_state_dict",
    "ms_deform_attn",
    "set_deform_attn_backend",
    "to_original_state_dict",
]
