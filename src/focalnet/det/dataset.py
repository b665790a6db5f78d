"""A validated COCO instance-segmentation reader producing torchvision detection targets.

Everything that can be checked without decoding pixels is checked when the data set is opened, so a bad file
fails before hours of training, with a message that names the image and annotation:

* unknown ``category_id`` -> :class:`DatasetError` (the known ids are listed);
* a mask whose RLE ``size`` differs from its image's height/width, a malformed polygon -> :class:`DatasetError`;
* boxes partly outside the image are clipped, boxes entirely outside or with no area are dropped; both are
  counted and logged once as a warning (``dataset.report`` keeps the counts);
* images without (usable) annotations are skipped for training, as the authors' mmdet configs did
  (``filter_empty_gt``), and kept for evaluation, where they count as images with nothing to find. A
  training set left with no image at all is an error;
* image files are checked to exist; a decoded image whose size differs from the JSON is an error.

Labels are contiguous ``1..K`` in the order of the sorted category ids (``dataset.cat_ids[label - 1]`` maps back).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focalnet.errors import FocalnetError

_logger = logging.getLogger(__name__)

__all__ = ["DatasetError", "CocoDetection", "collate", "load_coco"]


class DatasetError(FocalnetError, ValueError):
    """The data set's files or annotations cannot be used as they are."""


def load_coco(ann_file: str | os.PathLike):
    """pycocotools ``COCO`` for ``ann_file`` with its stdout chatter captured and a clear error for bad files."""
    from pycocotools.coco import COCO

    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise DatasetError(f"annotation file {ann_file} does not exist")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann_file))
    except (ValueError, KeyError, TypeError, AssertionError) as e:  # JSON errors are ValueErrors
        raise DatasetError(f"{ann_file} is not a COCO instance annotation file: {e}") from e
    for key in ("images", "categories"):
        if key not in coco.dataset:
            raise DatasetError(f"{ann_file} has no {key!r} list; is it a COCO instances_*.json?")
    return coco


class CocoDetection(torch.utils.data.Dataset):
    """Images and targets (``boxes`` xyxy float, ``labels``, ``masks`` uint8 (N,H,W), ``image_id``).

    ``train=True`` drops images without annotations (unless ``keep_empty``) and flips horizontally with probability
    ``hflip``.
    ``cat_ids`` fixes the category order (e.g. the one a checkpoint was trained with); by default the file's.
    """

    def __init__(
        self,
        image_dir: str | os.PathLike,
        ann_file: str | os.PathLike,
        train: bool = False,
        hflip: float = 0.5,
        masks: bool = True,
        cat_ids: Sequence[int] | None = None,
        keep_empty: bool = False,
    ) -> None:
        self.image_dir = Path(image_dir)
        self.ann_file = Path(ann_file)
        self.coco = load_coco(ann_file)
        self.train = train
        self.keep_empty = keep_empty  # train on images without objects too (every detector learns from them)
        self.hflip = hflip if train else 0.0
        self.with_masks = masks
        file_cats = sorted(c["id"] for c in self.coco.dataset["categories"])
        self.cat_ids = list(cat_ids) if cat_ids is not None else file_cats
        if not self.cat_ids:
            raise DatasetError(f"{self.ann_file} defines no categories")
        self.cat_names = {c["id"]: c.get("name", str(c["id"])) for c in self.coco.dataset["categories"]}
        self.label_of = {c: i + 1 for i, c in enumerate(self.cat_ids)}
        self.report: dict[str, int] = {"clipped": 0, "dropped_outside": 0, "dropped_degenerate": 0, "crowd": 0,
                                       "empty_images": 0}
        self._targets: dict[int, dict[str, Any]] = {}
        self.ids = self._validate()

    # ------------------------------------------------------------------ validation (no pixel decoding)
    def _validate(self) -> list[int]:
        if not self.image_dir.is_dir():
            raise DatasetError(f"image folder {self.image_dir} does not exist")
        ids = []
        examples: dict[str, str] = {}
        for img_id in sorted(self.coco.imgs):
            info = self.coco.imgs[img_id]
            name = info.get("file_name", "?")
            if "height" not in info or "width" not in info:
                raise DatasetError(f"image {img_id} ({name!r}) in {self.ann_file} has no height/width")
            if not (self.image_dir / name).is_file():
                raise DatasetError(f"image {img_id}: file {self.image_dir / name} does not exist")
            H, W = int(info["height"]), int(info["width"])
            boxes, labels, anns = [], [], []
            for ann in self.coco.imgToAnns.get(img_id, []):
                where = f"annotation {ann.get('id')} of image {img_id} ({name!r})"
                cat = ann.get("category_id")
                if cat not in self.label_of:
                    raise DatasetError(f"{where} has category_id {cat}, which is not one of the known categories "
                                       f"{self.cat_ids}")
                self._check_segmentation(ann, H, W, where)
                if ann.get("iscrowd", 0):
                    self.report["crowd"] += 1  # crowd regions are ignored in training, handled by COCOeval
                    continue
                bbox = ann.get("bbox")
                if bbox is None or len(bbox) != 4:
                    raise DatasetError(f"{where} has no valid 'bbox' [x, y, w, h]: {bbox!r}")
                x, y, w, h = (float(v) for v in bbox)
                if not (w > 0 and h > 0):
                    self.report["dropped_degenerate"] += 1
                    examples.setdefault("degenerate", f"{where}: bbox {bbox}")
                    continue
                x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, W), min(y + h, H)
                if x1 <= x0 or y1 <= y0:
                    self.report["dropped_outside"] += 1
                    examples.setdefault("outside", f"{where}: bbox {bbox} in a {W}x{H} image")
                    continue
                if (x0, y0, x1, y1) != (x, y, x + w, y + h):
                    self.report["clipped"] += 1
                    examples.setdefault("clipped", f"{where}: bbox {bbox} in a {W}x{H} image")
                boxes.append((x0, y0, x1, y1))
                labels.append(self.label_of[cat])
                anns.append(ann)
            if not boxes:
                self.report["empty_images"] += 1
                if self.train and not self.keep_empty:
                    continue
            self._targets[img_id] = {"boxes": boxes, "labels": labels, "anns": anns}
            ids.append(img_id)
        r = self.report
        if r["clipped"]:
            _logger.warning("%s: %d boxes extend beyond their image and were clipped (e.g. %s)", self.ann_file.name,
                            r["clipped"], examples["clipped"])
        if r["dropped_outside"]:
            _logger.warning("%s: %d boxes lie entirely outside their image and were dropped (e.g. %s)",
                            self.ann_file.name, r["dropped_outside"], examples["outside"])
        if r["dropped_degenerate"]:
            _logger.warning("%s: %d boxes have zero or negative width/height and were dropped (e.g. %s)",
                            self.ann_file.name, r["dropped_degenerate"], examples["degenerate"])
        if r["empty_images"]:
            what = ("skipped for training" if self.train and not self.keep_empty
                    else "kept (nothing to detect in them)")
            _logger.info("%s: %d of %d images have no usable annotations: %s", self.ann_file.name,
                         r["empty_images"], len(self.coco.imgs), what)
        if not ids:
            raise DatasetError(f"{self.ann_file} has no images" + (" with usable annotations to train on"
                                                                    if self.train and self.coco.imgs else ""))
        return ids

    @staticmethod
    def _check_segmentation(ann: dict, H: int, W: int, where: str) -> None:
        seg = ann.get("segmentation")
        if seg is None or seg == []:
            return  # boxes only: fine for box detectors; Mask R-CNN training checks in __getitem__
        if isinstance(seg, dict):  # RLE (compressed or not)
            size = seg.get("size")
            if size is None or "counts" not in seg:
                raise DatasetError(f"{where}: RLE segmentation needs 'size' and 'counts'")
            if [int(s) for s in size] != [H, W]:
                raise DatasetError(f"{where}: mask is {size[0]}x{size[1]} (HxW) but the image is {H}x{W}; "
                                   "masks must have their image's size")
            return
        if isinstance(seg, list):
            for poly in seg:
                if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                    raise DatasetError(f"{where}: a polygon must be a flat list of at least 3 x,y pairs")
            return
        raise DatasetError(f"{where}: unsupported segmentation type {type(seg).__name__}")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return len(self.cat_ids)

    @property
    def categories(self) -> list[dict]:
        return [{"id": c, "name": self.cat_names.get(c, str(c))} for c in self.cat_ids]

    def load_image(self, img_id: int) -> np.ndarray:
        from focalnet.data.images import load_rgb

        info = self.coco.imgs[img_id]
        img = np.array(load_rgb(self.image_dir / info["file_name"]))
        if img.shape[:2] != (info["height"], info["width"]):
            raise DatasetError(f"image {img_id} ({info['file_name']!r}) is {img.shape[0]}x{img.shape[1]} but "
                               f"{self.ann_file.name} says {info['height']}x{info['width']}")
        return img

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        img_id = self.ids[idx]
        img = self.load_image(img_id)
        H, W = img.shape[:2]
        t = self._targets[img_id]
        target: dict[str, torch.Tensor] = {
            "boxes": torch.tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(t["labels"], dtype=torch.int64),
            "image_id": torch.tensor(img_id),
        }
        if self.with_masks:
            masks = np.zeros((len(t["anns"]), H, W), np.uint8)
            for k, ann in enumerate(t["anns"]):
                if not ann.get("segmentation"):
                    raise DatasetError(f"annotation {ann.get('id')} of image {img_id} has no segmentation; "
                                       "Mask R-CNN needs masks (use a box detector, or add masks)")
                masks[k] = self.coco.annToMask(ann)
            target["masks"] = torch.from_numpy(masks)
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255)
        if self.hflip and torch.rand(()) < self.hflip:
            image = image.flip(-1)
            b = target["boxes"]
            target["boxes"] = torch.stack([W - b[:, 2], b[:, 1], W - b[:, 0], b[:, 3]], 1)
            if "masks" in target:
                target["masks"] = target["masks"].flip(-1)
        return image, target


def collate(batch: list) -> tuple[list, list]:
    """Detection batches are lists: images differ in size and targets in length."""
    images, targets = zip(*batch)
    return list(images), list(targets)
