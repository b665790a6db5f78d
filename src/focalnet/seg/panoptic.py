"""COCO panoptic and COCO instance data for Mask2Former: validated readers, a synthetic writer, training targets.

COCO panoptic layout (``panopticapi``'s format, as COCO 2017 ships it)::

    <root>/train2017/*.jpg                              <root>/val2017/*.jpg
    <root>/annotations/panoptic_train2017.json          <root>/annotations/panoptic_val2017.json
    <root>/annotations/panoptic_train2017/*.png         <root>/annotations/panoptic_val2017/*.png

Each PNG is an RGB image whose pixels encode a segment id as ``R + 256 * G + 256**2 * B`` (0 = unlabelled); the
JSON's ``annotations[i].segments_info`` gives each id its ``category_id`` and ``iscrowd``, and ``categories`` say
which classes are things (``isthing: 1``, countable objects) and which are stuff. COCO instances
(``annotations/instances_{split}2017.json``, polygons or RLE) are read through pycocotools.

Every sample is returned in one form for all three tasks: the image, a stack of binary masks and their
contiguous class indices (``0..K-1`` in the order of the JSON's ``categories``). Crowd segments are left out of
the targets, as Mask2Former's dataset mappers do. Problems are reported with the file and the ids involved.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .data import SegDataError, read_image

__all__ = [
    "rgb2id",
    "id2rgb",
    "Category",
    "Sample",
    "CocoPanopticDataset",
    "CocoInstanceDataset",
    "SemanticDataset",
    "write_synthetic_panoptic",
    "sample_to_tensors",
    "MaskTrainTransform",
    "collate_masks",
]

_logger = logging.getLogger(__name__)


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 panoptic PNG colours -> (H, W) int64 segment ids (``R + 256 G + 256^2 B``)."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) segment ids -> (H, W, 3) uint8 colours (inverse of :func:`rgb2id`)."""
    ids = np.asarray(ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], -1).astype(np.uint8)


@dataclass(frozen=True)
class Category:
    id: int  # the data set's category id
    name: str
    isthing: bool


@dataclass
class Sample:
    """One image and its targets: ``masks`` (N, H, W) bool and ``labels`` (N,) contiguous class indices.

    ``panoptic`` (H, W, 2) int64 holds ``(category_id, instance)`` per pixel (``category_id`` -1 = void) when
    the source has it (panoptic and semantic data), for PQ; ``semantic`` (H, W) the class index per pixel (255 =
    ignored), for mIoU. ``image_id`` is the data set's id (for COCO evaluation)."""

    image: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    image_id: int = 0
    file_name: str = ""
    panoptic: np.ndarray | None = None
    semantic: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _load_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise SegDataError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SegDataError(f"{path}: not valid JSON ({e})") from None


def _categories(raw: list, where: Path, need_isthing: bool) -> list[Category]:
    if not isinstance(raw, list) or not raw:
        raise SegDataError(f"{where}: 'categories' must be a non-empty list")
    cats, seen = [], set()
    for c in raw:
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise SegDataError(f"{where}: every category needs 'id' and 'name', got {c!r}"[:300])
        if c["id"] in seen:
            raise SegDataError(f"{where}: category id {c['id']} appears twice")
        if need_isthing and c.get("isthing") not in (0, 1, True, False):
            raise SegDataError(f"{where}: category {c['id']} ({c['name']}) needs 'isthing' 0 or 1")
        seen.add(c["id"])
        cats.append(Category(int(c["id"]), str(c["name"]), bool(c.get("isthing", 1))))
    return cats


class _Base(Dataset):
    categories: list[Category]

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.categories]

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def thing_classes(self) -> list[int]:
        """Contiguous indices of the thing classes."""
        return [i for i, c in enumerate(self.categories) if c.isthing]

    @property
    def stuff_classes(self) -> list[int]:
        return [i for i, c in enumerate(self.categories) if not c.isthing]


class CocoPanopticDataset(_Base):
    """One split of a COCO-panoptic folder (see the module doc), validated when opened.

    ``image_dir``/``json_file``/``png_dir`` default to COCO's names for ``split`` (``train2017``/``val2017``).
    Opening checks the JSON (categories with ``isthing``, unique ids, known category ids in ``segments_info``)
    and that every annotation has its image and PNG; :meth:`check` (or reading an item) also decodes each PNG and
    checks its size against the image and its ids against ``segments_info``.
    """

    def __init__(self, root: str | Path, split: str = "val2017", image_dir: str | None = None,
                 json_file: str | None = None, png_dir: str | None = None, transform=None) -> None:
        root = Path(root)
        self.image_dir = root / (image_dir or split)
        self.json_file = root / (json_file or f"annotations/panoptic_{split}.json")
        self.png_dir = root / (png_dir or f"annotations/panoptic_{split}")
        for d, what in ((self.image_dir, "image folder"), (self.png_dir, "panoptic PNG folder")):
            if not d.is_dir():
                raise SegDataError(f"{what} not found: {d}")
        js = _load_json(self.json_file, "panoptic annotation file")
        for key in ("images", "annotations", "categories"):
            if not isinstance(js.get(key), list):
                raise SegDataError(f"{self.json_file}: missing the '{key}' list of the COCO panoptic format")
        self.categories = _categories(js["categories"], self.json_file, need_isthing=True)
        self.cat_index = {c.id: i for i, c in enumerate(self.categories)}
        images = {}
        for im in js["images"]:
            try:
                images[int(im["id"])] = im
            except (KeyError, TypeError, ValueError):
                raise SegDataError(f"{self.json_file}: an image entry has no valid 'id': {im!r}"[:300]) from None
        self.items = []
        missing_img, missing_png = [], []
        for ann in js["annotations"]:
            try:
                iid, png, segs = int(ann["image_id"]), ann["file_name"], ann["segments_info"]
            except (KeyError, TypeError, ValueError):
                raise SegDataError(f"{self.json_file}: an annotation lacks image_id/file_name/segments_info: "
                                   f"{str(ann)[:200]}") from None
            if iid not in images:
                raise SegDataError(f"{self.json_file}: annotation {png} refers to image id {iid}, not in 'images'")
            seen = set()
            for s in segs:
                if s.get("category_id") not in self.cat_index:
                    raise SegDataError(f"{self.json_file}: segment {s.get('id')} of {png} has category id "
                                       f"{s.get('category_id')}, not among the categories")
                if s.get("id") in seen or not isinstance(s.get("id"), int) or s["id"] <= 0:
                    raise SegDataError(f"{self.json_file}: segment id {s.get('id')!r} of {png} is duplicated or "
                                       "not a positive integer")
                seen.add(s["id"])
            img_path = self.image_dir / images[iid]["file_name"]
            png_path = self.png_dir / png
            if not img_path.is_file():
                missing_img.append(img_path.name)
            if not png_path.is_file():
                missing_png.append(png)
            self.items.append((iid, img_path, png_path, segs, images[iid]))
        if missing_img or missing_png:
            what = (f"{len(missing_img)} image(s) missing from {self.image_dir}: {', '.join(missing_img[:5])}"
                    if missing_img else f"{len(missing_png)} PNG(s) missing from {self.png_dir}: "
                    f"{', '.join(missing_png[:5])}")
            raise SegDataError(f"{self.json_file}: {what}")
        if not self.items:
            raise SegDataError(f"{self.json_file}: no annotations")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def _read_png(self, i: int) -> np.ndarray:
        import warnings

        from PIL import Image

        from focalnet.data.images import ImageLoadError, check_regular_file

        iid, img_path, png_path, segs, meta = self.items[i]
        try:
            check_regular_file(png_path)
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(png_path) as im:
                    if im.mode != "RGB":
                        raise SegDataError(f"{png_path}: a panoptic PNG must be RGB (id = R + 256 G + 256^2 B), got "
                                           f"mode {im.mode}")
                    ids = rgb2id(np.asarray(im))
        except (SegDataError, ImageLoadError):
            raise
        except Exception as e:  # damaged, not a PNG, a decompression bomb
            raise SegDataError(f"cannot read panoptic PNG {png_path}: {type(e).__name__}: {e}") from e
        h, w = meta.get("height"), meta.get("width")
        if (h, w) != (None, None) and ids.shape != (h, w):
            raise SegDataError(f"{png_path.name} is {ids.shape[1]}x{ids.shape[0]} but the JSON says image "
                               f"{iid} is {w}x{h} (width x height)")
        present = set(np.unique(ids).tolist()) - {0}
        listed = {s["id"] for s in segs}
        if present - listed:
            raise SegDataError(f"{png_path.name}: segment id(s) {sorted(present - listed)[:10]} in the PNG are not "
                               "in its segments_info")
        if listed - present:
            raise SegDataError(f"{png_path.name}: segment id(s) {sorted(listed - present)[:10]} of segments_info "
                               "do not occur in the PNG")
        return ids

    def check(self, progress: bool = False) -> None:
        """Decode every PNG and read every image header now (sizes, ids), before any training."""
        from focalnet.data.images import image_size

        items = range(len(self))
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(items, desc="check data", leave=False)
        for i in items:
            ids = self._read_png(i)
            w, h = image_size(self.items[i][1])  # upright (EXIF), header only; bad files: ImageLoadError
            if ids.shape != (h, w):
                raise SegDataError(f"{self.items[i][2].name} is {ids.shape[1]}x{ids.shape[0]} but image "
                                   f"{self.items[i][1].name} is {w}x{h} (width x height)")

    def load(self, i: int) -> Sample:
        iid, img_path, png_path, segs, _ = self.items[i]
        img, ids = read_image(img_path), self._read_png(i)
        if ids.shape != img.shape[:2]:
            raise SegDataError(f"{png_path.name} is {ids.shape[1]}x{ids.shape[0]} but image {img_path.name} is "
                               f"{img.shape[1]}x{img.shape[0]} (width x height)")
        masks, labels = [], []
        pan = np.full((*ids.shape, 2), -1, np.int64)
        pan[..., 1] = 0
        semantic = np.full(ids.shape, 255, np.uint8)
        for s in segs:
            m = ids == s["id"]
            cls = self.cat_index[s["category_id"]]
            if s.get("iscrowd", 0):
                continue  # crowd regions: neither a target nor scored (void), as panopticapi
            pan[m, 0], pan[m, 1] = s["category_id"], s["id"]
            semantic[m] = cls
            masks.append(m)
            labels.append(cls)
        masks_a = np.stack(masks) if masks else np.zeros((0, *ids.shape), bool)
        return Sample(img, masks_a, np.asarray(labels, np.int64), iid, img_path.name, pan, semantic)

    def __getitem__(self, i: int) -> Sample:
        s = self.load(i)
        return self.transform(s) if self.transform is not None else s


class CocoInstanceDataset(_Base):
    """COCO instance segmentation (``instances_{split}.json`` + images) through pycocotools, validated.

    Only non-crowd instances become targets. Images without any annotation are kept for evaluation (they can
    hold false positives) and skipped for training when ``skip_empty`` is set (Mask2Former's
    ``FILTER_EMPTY_ANNOTATIONS``)."""

    def __init__(self, root: str | Path, split: str = "val2017", image_dir: str | None = None,
                 json_file: str | None = None, transform=None, skip_empty: bool = False) -> None:
        root = Path(root)
        self.image_dir = root / (image_dir or split)
        self.json_file = root / (json_file or f"annotations/instances_{split}.json")
        if not self.image_dir.is_dir():
            raise SegDataError(f"image folder not found: {self.image_dir}")
        js = _load_json(self.json_file, "instance annotation file")
        for key in ("images", "annotations", "categories"):
            if not isinstance(js.get(key), list):
                raise SegDataError(f"{self.json_file}: missing the '{key}' list of the COCO format")
        self.categories = _categories(js["categories"], self.json_file, need_isthing=False)
        self.categories = [Category(c.id, c.name, True) for c in self.categories]
        self.cat_index = {c.id: i for i, c in enumerate(self.categories)}
        from pycocotools.coco import COCO

        self.coco = COCO()
        self.coco.dataset = js
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints; a library logs
                self.coco.createIndex()
        except (KeyError, TypeError) as e:
            raise SegDataError(f"{self.json_file}: malformed COCO annotations ({e!r})") from None
        for a in js["annotations"]:
            if a.get("category_id") not in self.cat_index:
                raise SegDataError(f"{self.json_file}: annotation {a.get('id')} has category id "
                                   f"{a.get('category_id')}, not among the categories")
            if a.get("image_id") not in self.coco.imgs:
                raise SegDataError(f"{self.json_file}: annotation {a.get('id')} refers to image id "
                                   f"{a.get('image_id')}, not in 'images'")
        ids = sorted(self.coco.imgs)
        if skip_empty:
            ids = [i for i in ids if any(not a.get("iscrowd", 0) for a in self.coco.imgToAnns[i])]
        names = [self.coco.imgs[i]["file_name"] for i in ids]
        missing = [n for n in names if not (self.image_dir / n).is_file()]
        if missing:
            raise SegDataError(f"{self.json_file}: {len(missing)} image(s) missing from {self.image_dir}: "
                               f"{', '.join(missing[:5])}")
        if not ids:
            raise SegDataError(f"{self.json_file}: no images")
        self.ids = ids
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, i: int) -> Sample:
        iid = self.ids[i]
        meta = self.coco.imgs[iid]
        img = read_image(self.image_dir / meta["file_name"])
        h, w = img.shape[:2]
        if (meta.get("height"), meta.get("width")) not in {(h, w), (None, None)}:
            raise SegDataError(f"image {meta['file_name']} is {w}x{h} but the JSON says {meta.get('width')}x"
                               f"{meta.get('height')} (width x height)")
        masks, labels = [], []
        for a in self.coco.imgToAnns[iid]:
            if a.get("iscrowd", 0):
                continue
            try:
                m = self.coco.annToMask(a).astype(bool)
            except Exception as e:  # pycocotools raises several types for broken polygons/RLE
                raise SegDataError(f"{self.json_file}: annotation {a.get('id')} has an unreadable segmentation "
                                   f"({e!r})") from None
            if m.shape != (h, w):
                raise SegDataError(f"{self.json_file}: annotation {a.get('id')} decodes to {m.shape[1]}x"
                                   f"{m.shape[0]}, image {meta['file_name']} is {w}x{h}")
            if m.any():
                masks.append(m)
                labels.append(self.cat_index[a["category_id"]])
        masks_a = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        return Sample(img, masks_a, np.asarray(labels, np.int64), iid, meta["file_name"])

    def check(self, progress: bool = False) -> None:
        for i in range(len(self)):
            self.load(i)

    def __getitem__(self, i: int) -> Sample:
        s = self.load(i)
        return self.transform(s) if self.transform is not None else s


class SemanticDataset(_Base):
    """An ADE20K-layout split (:class:`focalnet.seg.data.SegFolderDataset`) as Mask2Former samples: one mask per
    class present (ignored pixels in none), as Mask2Former's semantic dataset mapper. All classes are stuff."""

    def __init__(self, folder, class_names: list[str] | None = None, ignore_index: int = 255, transform=None):
        self.folder = folder
        names = class_names or [str(i) for i in range(folder.num_classes)]
        self.categories = [Category(i, n, False) for i, n in enumerate(names)]
        self.ignore_index = ignore_index
        self.transform = transform

    def __len__(self) -> int:
        return len(self.folder)

    def check(self, progress: bool = False) -> None:
        self.folder.check(progress)

    def load(self, i: int) -> Sample:
        img, lab = self.folder.load(i)
        classes = [int(c) for c in np.unique(lab) if c != self.ignore_index]
        masks = np.stack([lab == c for c in classes]) if classes else np.zeros((0, *lab.shape), bool)
        pan = np.stack([np.where(lab == self.ignore_index, -1, lab), np.zeros_like(lab, np.int64)], -1)
        return Sample(img, masks, np.asarray(classes, np.int64), i, self.folder.samples[i].image.name,
                      pan.astype(np.int64), lab.astype(np.uint8))

    def __getitem__(self, i: int) -> Sample:
        s = self.load(i)
        return self.transform(s) if self.transform is not None else s


def write_synthetic_panoptic(root: str | Path, n_train: int = 12, n_val: int = 6, size: tuple[int, int] = (96, 96),
                             seed: int = 0) -> Path:
    """Write a small, SYNTHETIC data set in the real COCO formats (panoptic + instances), from
    :func:`focalnet.data.synthetic.make_panoptic_scenes`: the horse/coin/logo objects are things, the
    brick/grass/gravel/moon textures are stuff. Validation scenes come from another seed (held out).

    Writes ``{train,val}2017/*.jpg``, ``annotations/panoptic_{split}2017.json`` + PNG folders, and
    ``annotations/instances_{split}2017.json`` (things only, RLE masks)."""
    from PIL import Image
    from pycocotools import mask as mask_util

    from focalnet.data.synthetic import CATEGORIES, STUFF_CATEGORIES, check_writer_args, make_panoptic_scenes

    check_writer_args(root, n_train, n_val, size)
    root = Path(root)
    cats = ([{**c, "isthing": 1, "supercategory": "object"} for c in CATEGORIES]
            + [{**c, "isthing": 0, "supercategory": "texture"} for c in STUFF_CATEGORIES])
    for split, n, s in (("train2017", n_train, seed), ("val2017", n_val, seed + 1_000_003)):
        img_dir, png_dir = root / split, root / "annotations" / f"panoptic_{split}"
        img_dir.mkdir(parents=True, exist_ok=True)
        png_dir.mkdir(parents=True, exist_ok=True)
        images, pan_anns, inst_anns = [], [], []
        for k, scene in enumerate(make_panoptic_scenes(n, seed=s, size=size)):
            iid, stem = k + 1, f"{k + 1:012d}"
            H, W = scene.image.shape[:2]
            Image.fromarray(scene.image).save(img_dir / f"{stem}.jpg", quality=95)
            images.append({"id": iid, "file_name": f"{stem}.jpg", "height": H, "width": W})
            ids = np.zeros((H, W), np.int64)
            segs = []
            for j, (m, cid, isthing) in enumerate(scene.segments()):
                sid = cid * 1000 + j + 1  # > 255: exercises the G channel of the id encoding
                ids[m] = sid
                ys, xs = np.nonzero(m)
                bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
                segs.append({"id": sid, "category_id": cid, "iscrowd": 0, "bbox": bbox, "area": int(m.sum())})
                if isthing:
                    rle = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
                    rle["counts"] = rle["counts"].decode("ascii")
                    inst_anns.append({"id": len(inst_anns) + 1, "image_id": iid, "category_id": cid, "iscrowd": 0,
                                      "segmentation": rle, "bbox": bbox, "area": int(m.sum())})
            Image.fromarray(id2rgb(ids)).save(png_dir / f"{stem}.png")
            pan_anns.append({"image_id": iid, "file_name": f"{stem}.png", "segments_info": segs})
        info = {"description": "SYNTHETIC panoptic set written by focalnet (not COCO)", "seed": s}
        (root / "annotations" / f"panoptic_{split}.json").write_text(
            json.dumps({"info": info, "images": images, "annotations": pan_anns, "categories": cats}))
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"info": info, "images": images, "annotations": inst_anns,
                        "categories": [{k: c[k] for k in ("id", "name", "supercategory")} for c in cats[:3]]}))
    (root / "README.txt").write_text(
        "SYNTHETIC data in the COCO panoptic/instance formats, written by focalnet (not COCO).\n"
        f"things: {', '.join(c['name'] for c in CATEGORIES)}; stuff: {', '.join(c['name'] for c in STUFF_CATEGORIES)}\n"
        f"seed {seed}, size {size[0]}x{size[1]}, {n_train} training + {n_val} validation images\n")
    return root


def sample_to_tensors(s: Sample) -> dict:
    """A :class:`Sample` as tensors: ``image`` uint8 (3,H,W), ``masks`` bool (N,H,W), ``labels`` int64 (N,)."""
    out = {"image": torch.from_numpy(np.array(s.image)).permute(2, 0, 1).contiguous(),
           "masks": torch.from_numpy(np.ascontiguousarray(s.masks)), "labels": torch.from_numpy(s.labels),
           "image_id": s.image_id, "file_name": s.file_name}
    if s.panoptic is not None:
        out["panoptic"] = torch.from_numpy(s.panoptic)
    if s.semantic is not None:
        out["semantic"] = torch.from_numpy(s.semantic)
    return out


class MaskTrainTransform:
    """Training augmentation of a :class:`Sample` (image + mask stack), drawing from torch's global RNG.

    ``mode="lsj"``: large-scale jitter as the original COCO mappers (``coco_{panoptic,instance}_lsj``): resize so
    the image fits ``crop_size`` x U(``min_scale``, ``max_scale``), random crop to ``crop_size``, pad to it.
    ``mode="short_side"``: the original semantic mapper: shortest edge drawn from ``short_sides`` (longest edge at
    most ``max_size``), random crop to ``crop_size`` (no padding). Both flip horizontally with ``flip_prob``.
    Masks follow the image (nearest); masks left empty by the crop are dropped. The padded area is in no mask.
    The original's semantic crop also re-draws crops where one class covers more than
    ``SINGLE_CATEGORY_MAX_AREA`` (1.0 in the recipes, i.e. never), so that rule is not implemented.
    """

    def __init__(self, crop_size: Sequence[int] = (1024, 1024), mode: str = "lsj", min_scale: float = 0.1,
                 max_scale: float = 2.0, short_sides: Sequence[int] = (), max_size: int = 2048,
                 flip_prob: float = 0.5) -> None:
        if mode not in ("lsj", "short_side", "none"):
            raise ValueError(f"augmentation mode must be lsj, short_side or none, got {mode!r}")
        if mode == "short_side" and not short_sides:
            raise ValueError("mode short_side needs short_sides")
        self.crop = (int(crop_size[0]), int(crop_size[1]))
        self.mode, self.min_scale, self.max_scale = mode, min_scale, max_scale
        self.short_sides, self.max_size, self.flip_prob = list(short_sides), max_size, flip_prob

    def __call__(self, s: Sample) -> dict:
        t = sample_to_tensors(s)
        img, masks = t["image"], t["masks"]
        if torch.rand(()) < self.flip_prob:
            img, masks = img.flip(-1), masks.flip(-1)
        h, w = img.shape[-2:]
        ch, cw = self.crop
        if self.mode == "lsj":
            scale = float(torch.empty(()).uniform_(self.min_scale, self.max_scale))
            f = scale * min(ch / h, cw / w)
        elif self.mode == "short_side":
            short = self.short_sides[int(torch.randint(len(self.short_sides), ()))]
            f = min(short / min(h, w), self.max_size / max(h, w))
        else:
            f = 1.0
        if f != 1.0:
            nh, nw = max(1, round(h * f)), max(1, round(w * f))
            img = F.interpolate(img[None].float(), size=(nh, nw), mode="bilinear", align_corners=False,
                                antialias=f < 1)[0].round().clamp(0, 255).to(torch.uint8)
            if masks.shape[0]:
                masks = F.interpolate(masks[None].to(torch.uint8), size=(nh, nw), mode="nearest")[0].bool()
            else:
                masks = masks.new_zeros((0, nh, nw))
            h, w = nh, nw
        if self.mode != "none" and (h > ch or w > cw):
            y0 = int(torch.randint(max(h - ch, 0) + 1, ()))
            x0 = int(torch.randint(max(w - cw, 0) + 1, ()))
            img, masks = img[:, y0 : y0 + ch, x0 : x0 + cw], masks[:, y0 : y0 + ch, x0 : x0 + cw]
        if self.mode == "lsj":
            ph, pw = ch - img.shape[-2], cw - img.shape[-1]
            img = F.pad(img, (0, pw, 0, ph), value=128)  # the original pads images with 128 and ignores the pad
            masks = F.pad(masks, (0, pw, 0, ph), value=False)
        keep = masks.flatten(1).any(1) if masks.shape[0] else torch.zeros(0, dtype=torch.bool)
        return {"image": img.contiguous(), "masks": masks[keep].contiguous(), "labels": t["labels"][keep]}


def collate_masks(samples: list[dict]) -> dict:
    """Images padded right/bottom to the largest in the batch (0) into (B, 3, H, W) uint8, ``valid`` (B, H, W)
    bool; masks padded alike and kept as a list (their count differs per image), labels a list."""
    H = max(s["image"].shape[-2] for s in samples)
    W = max(s["image"].shape[-1] for s in samples)
    imgs = torch.zeros(len(samples), 3, H, W, dtype=torch.uint8)
    valid = torch.zeros(len(samples), H, W, dtype=torch.bool)
    masks = []
    for i, s in enumerate(samples):
        h, w = s["image"].shape[-2:]
        imgs[i, :, :h, :w] = s["image"]
        valid[i, :h, :w] = True
        masks.append(F.pad(s["masks"], (0, W - w, 0, H - h)))
    return {"image": imgs, "valid": valid, "masks": masks, "labels": [s["labels"] for s in samples]}
