"""Data: safe image reading, data sets (built-in digits, ImageFolder, Hugging Face, synthetic dense-prediction
scenes in ``synthetic``), timm transforms, label names."""

from .datasets import (
    DataError,
    DigitsDataset,
    GlobalBatchSampler,
    HFImageDataset,
    ImageFolderDataset,
    SeededTransformDataset,
    build_datasets,
    build_eval_dataset,
)
from .images import ImageLoadError, load_rgb, to_rgb
from .labels import class_names
from .transforms import build_transform, preprocess_from_data_config, preprocess_from_weights

__all__ = [
    "DataError",
    "DigitsDataset",
    "GlobalBatchSampler",
    "HFImageDataset",
    "ImageFolderDataset",
    "ImageLoadError",
    "SeededTransformDataset",
    "build_datasets",
    "build_eval_dataset",
    "build_transform",
    "class_names",
    "load_rgb",
    "preprocess_from_data_config",
    "preprocess_from_weights",
    "to_rgb",
]
