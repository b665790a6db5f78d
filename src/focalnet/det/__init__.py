"""Object detection with FocalNet backbones on torchvision (Mask R-CNN, RetinaNet, FCOS) and COCO data.

Importing this package needs the ``det`` extra (torchvision, pycocotools).
"""

from .config import DetConfig, load_config
from .dataset import CocoDetection, DatasetError
from .engine import draw_predictions, evaluate, load_checkpoint, predict, train
from .models import FocalNetFPN, build_detector, fcos_focalnet, maskrcnn_focalnet, retinanet_focalnet

__all__ = [
    "CocoDetection",
    "DatasetError",
    "DetConfig",
    "FocalNetFPN",
    "build_detector",
    "draw_predictions",
    "evaluate",
    "fcos_focalnet",
    "load_checkpoint",
    "load_config",
    "maskrcnn_focalnet",
    "predict",
    "retinanet_focalnet",
    "train",
]
