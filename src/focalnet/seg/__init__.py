"""Semantic segmentation with FocalNet backbones: UPerNet + FCN auxiliary head, ADE20K-layout data,
mIoU / pixel accuracy, whole / sliding-window / multi-scale+flip inference (``focalnet segment``)."""

from .config import ConfigError, SegConfig, load_config
from .data import SYNTHETIC_CLASSES, SegDataError, SegFolderDataset, find_pairs, write_synthetic_ade
from .engine import evaluate, load_checkpoint, predict, save_checkpoint, train
from .inference import inference, inference_aug, inference_slide, slide_grid
from .metrics import ConfusionMatrix
from .model import UperNetSegmentor, build_segmentor

__all__ = [
    "ConfigError",
    "ConfusionMatrix",
    "SYNTHETIC_CLASSES",
    "SegConfig",
    "SegDataError",
    "SegFolderDataset",
    "UperNetSegmentor",
    "build_segmentor",
    "evaluate",
    "find_pairs",
    "inference",
    "inference_aug",
    "inference_slide",
    "load_checkpoint",
    "load_config",
    "predict",
    "save_checkpoint",
    "slide_grid",
    "train",
    "write_synthetic_ade",
]
