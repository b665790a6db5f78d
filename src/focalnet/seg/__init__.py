"""Semantic segmentation with FocalNet backbones: UPerNet + FCN auxiliary head, ADE20K-layout data,
mIoU / pixel accuracy, whole / sliding-window / multi-scale+flip inference. Training, evaluation and prediction run
through the engine as the ``segmentation`` task (:mod:`focalnet.tasks.segmentation`):
``focalnet train|eval|predict``."""

from .config import ConfigError, SegConfig, load_config
from .data import SYNTHETIC_CLASSES, SegDataError, SegFolderDataset, find_pairs, write_synthetic_ade
from .evaluation import evaluate, make_dataset, predict
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
    "make_dataset",
    "load_config",
    "predict",
    "slide_grid",
    "write_synthetic_ade",
]
