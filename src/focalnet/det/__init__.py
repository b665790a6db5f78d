"""Object detection with FocalNet backbones on torchvision (Mask R-CNN, RetinaNet, FCOS) and COCO data.

Importing this package needs the ``det`` extra (torchvision, pycocotools). Training, evaluation and prediction run
through the engine as the ``detection`` task (:mod:`focalnet.tasks.detection`): ``focalnet train|eval|predict``.
"""

from .config import DetConfig, load_config
from .dataset import CocoDetection, DatasetError
from .evaluation import draw_predictions, evaluate, predict
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
    "load_config",
    "maskrcnn_focalnet",
    "predict",
    "retinanet_focalnet",
]
