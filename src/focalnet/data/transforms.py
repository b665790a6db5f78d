"""Image transforms, all built by timm's ``create_transform`` from one small preprocessing record.

The record (``input_size``, ``interpolation``, ``crop_pct``, ``mean``, ``std``) is what a checkpoint stores as its
``meta["preprocess"]`` and what a released weights record carries, so evaluation and prediction take their
preprocessing from the weights, never from code.
"""

from __future__ import annotations

from typing import Any

__all__ = ["preprocess_from_data_config", "preprocess_from_weights", "build_transform"]


def preprocess_from_data_config(data_cfg) -> dict[str, Any]:
    """The preprocessing record of a training config (saved into its checkpoints)."""
    return {
        "input_size": int(data_cfg.img_size),
        "interpolation": data_cfg.interpolation,
        "crop_pct": float(data_cfg.crop_pct),
        "mean": [float(v) for v in data_cfg.mean],
        "std": [float(v) for v in data_cfg.std],
    }


def preprocess_from_weights(record) -> dict[str, Any]:
    """The preprocessing record of a :class:`focalnet.weights.WeightsRecord`."""
    return {
        "input_size": int(record.input_size),
        "interpolation": record.interpolation,
        "crop_pct": float(record.crop_pct),
        "mean": [float(v) for v in record.mean],
        "std": [float(v) for v in record.std],
    }


def build_transform(preprocess: dict[str, Any], aug=None, is_training: bool = False):
    """timm transform: eval = resize(size / crop_pct) + centre crop; train adds the ``aug`` settings
    (random-resized crop, flips, RandAugment, random erasing; a :class:`focalnet.train.config.AugConfig`)."""
    from timm.data import create_transform

    common = dict(
        input_size=(3, preprocess["input_size"], preprocess["input_size"]),
        interpolation=preprocess["interpolation"],
        mean=tuple(preprocess["mean"]),
        std=tuple(preprocess["std"]),
    )
    if not is_training:
        return create_transform(is_training=False, crop_pct=preprocess["crop_pct"], **common)
    return create_transform(
        is_training=True,
        scale=tuple(aug.scale),
        ratio=tuple(aug.ratio),
        hflip=aug.hflip,
        color_jitter=aug.color_jitter,
        auto_augment=aug.auto_augment,
        re_prob=aug.reprob,
        re_mode=aug.remode,
        re_count=aug.recount,
        **common,
    )
