"""Write :mod:`focalnet.data.synthetic` scenes as a COCO-format instance data set (images + JSON).

The files are real COCO: ``images/{split}/*.png`` and ``annotations/instances_{split}.json`` with compressed-RLE
masks made by pycocotools, so any COCO reader (and ``pycocotools.cocoeval``) takes them. The *content* is
synthetic (scikit-image objects pasted on textures); see :mod:`focalnet.data.synthetic`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .synthetic import CATEGORIES, Scene, make_scenes

_logger = logging.getLogger(__name__)

__all__ = ["write_coco", "make_synthetic_coco", "scene_to_coco_annotations"]


def scene_to_coco_annotations(scene: Scene, image_id: int, first_ann_id: int) -> list[dict]:
    """COCO ``annotations`` entries (bbox xywh, RLE segmentation, area) for one scene's objects."""
    from pycocotools import mask as mask_utils

    anns = []
    for k, (m, label) in enumerate(zip(scene.masks, scene.labels)):
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")  # bytes are not JSON
        x0, y0, x1, y1 = (float(v) for v in scene.boxes[k])
        anns.append({
            "id": first_ann_id + k,
            "image_id": image_id,
            "category_id": int(label),
            "segmentation": rle,
            "area": float(m.sum()),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "iscrowd": 0,
        })
    return anns


def write_coco(root: str | os.PathLike, scenes: Sequence[Scene], split: str,
               categories: Sequence[dict] = CATEGORIES) -> Path:
    """Write ``scenes`` under ``root`` as split ``split``; returns the annotation file's path.

    The JSON is written to a temporary file and renamed, so an interrupted run never leaves a truncated file.
    """
    from PIL import Image

    root = Path(root)
    img_dir = root / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, scene in enumerate(scenes):
        file_name = f"{i:06d}.png"
        Image.fromarray(scene.image).save(img_dir / file_name)
        h, w = scene.image.shape[:2]
        images.append({"id": i + 1, "file_name": file_name, "height": h, "width": w})
        annotations += scene_to_coco_annotations(scene, i + 1, len(annotations) + 1)
    blob = {
        "info": {"description": "focalnet synthetic scenes (scikit-image objects pasted on textures); NOT COCO"},
        "images": images,
        "annotations": annotations,
        "categories": [dict(c, supercategory="object") for c in categories],
    }
    path = root / "annotations" / f"instances_{split}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(blob))
    os.replace(tmp, path)
    _logger.info("wrote %d images, %d objects to %s", len(images), len(annotations), path)
    return path


def make_synthetic_coco(root: str | os.PathLike, n_train: int = 200, n_val: int = 50, size: int = 128,
                        seed: int = 0) -> dict[str, Path]:
    """A train/val pair of synthetic COCO splits (different seeds, so val images are held out).

    Returns ``{"train_images", "train_ann", "val_images", "val_ann"}``. Existing splits with a matching
    ``meta.json`` are reused rather than regenerated.
    """
    from focalnet.data.synthetic import check_writer_args

    check_writer_args(root, n_train, n_val, size)
    root = Path(root)
    meta = {"n_train": n_train, "n_val": n_val, "size": size, "seed": seed}
    paths = {
        "train_images": root / "images" / "train", "train_ann": root / "annotations" / "instances_train.json",
        "val_images": root / "images" / "val", "val_ann": root / "annotations" / "instances_val.json",
    }
    meta_file = root / "meta.json"
    if meta_file.is_file() and json.loads(meta_file.read_text()) == meta and all(p.exists() for p in paths.values()):
        return paths
    write_coco(root, make_scenes(n_train, seed=seed, size=(size, size)), "train")
    write_coco(root, make_scenes(n_val, seed=seed + 10_000, size=(size, size)), "val")
    meta_file.write_text(json.dumps(meta))
    return paths
