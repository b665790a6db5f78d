"""ADE20K-layout semantic-segmentation folders: pairing, validation, loading, and a synthetic writer.

Layout (ADE20K's ``ADEChallengeData2016``)::

    <root>/images/training/*.jpg        <root>/annotations/training/*.png
    <root>/images/validation/*.jpg      <root>/annotations/validation/*.png

An annotation is an 8-bit index PNG of the image's size. With ``reduce_zero_label`` (ADE20K) index 0 means
"other" and is ignored, and class ``k`` is stored as ``k + 1``; without it (our synthetic set) the PNG holds the
class index directly (0 = background is a real class). 255 is ignored in both cases.

Problems are reported with the file names involved, before anything is trained on: an image without a mask,
a mask whose size differs from its image, label values outside the class set, an empty or missing folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from focalnet.errors import FocalnetError

__all__ = [
    "SegDataError",
    "SegSample",
    "find_pairs",
    "read_image",
    "read_mask",
    "SegFolderDataset",
    "write_synthetic_ade",
    "SYNTHETIC_CLASSES",
]

_logger = logging.getLogger(__name__)

# The synthetic set's classes, index == value stored in its PNGs (background is a real class, not ignored).
SYNTHETIC_CLASSES = ["background", "horse", "coin", "logo"]


class SegDataError(FocalnetError, ValueError):
    """A segmentation data set that cannot be used as it is (the message names the files)."""


@dataclass(frozen=True)
class SegSample:
    image: Path
    mask: Path


def _listing(n: int, items: list[str]) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def find_pairs(img_dir: str | Path, ann_dir: str | Path, img_suffix: str = ".jpg",
               ann_suffix: str = ".png") -> list[SegSample]:
    """Pair ``img_dir/<stem><img_suffix>`` with ``ann_dir/<stem><ann_suffix>`` (sorted by name, recursive).

    Raises :class:`SegDataError` when a folder is missing or holds no images, or when any image has no mask
    (all such images are named). Masks without an image are logged and skipped.
    """
    img_dir, ann_dir = Path(img_dir), Path(ann_dir)
    for d, what in ((img_dir, "image"), (ann_dir, "annotation")):
        if not d.is_dir():
            raise SegDataError(f"{what} folder not found: {d}")
    images = sorted(p for p in img_dir.rglob(f"*{img_suffix}") if p.is_file())
    if not images:
        raise SegDataError(f"no '*{img_suffix}' images in {img_dir}")
    masks = {p.relative_to(ann_dir).with_suffix("").as_posix(): p for p in ann_dir.rglob(f"*{ann_suffix}")}
    pairs, missing = [], []
    for im in images:
        key = im.relative_to(img_dir).with_suffix("").as_posix()
        if key in masks:
            pairs.append(SegSample(im, masks.pop(key)))
        else:
            missing.append(im.name)
    if missing:
        raise SegDataError(
            f"{len(missing)} image(s) in {img_dir} have no '{ann_suffix}' mask in {ann_dir}: {_listing(5, missing)}"
        )
    if masks:
        _logger.warning("%d mask(s) in %s have no image and are skipped: %s", len(masks), ann_dir,
                        _listing(5, sorted(Path(p).name for p in masks.values())))
    return pairs


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, upright (EXIF), read by the package's one image reader; bad files raise
    :class:`focalnet.data.images.ImageLoadError`."""
    from focalnet.data.images import load_rgb

    return np.asarray(load_rgb(path))


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) uint8 index mask; palette PNGs give their indices, not colours."""
    import warnings

    from PIL import Image

    from focalnet.data.images import ImageLoadError, check_regular_file

    try:
        check_regular_file(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.mode not in {"L", "P", "I", "I;16"}:
                    raise SegDataError(f"{path}: an index mask must be a single-channel PNG, got mode {im.mode}")
                a = np.asarray(im)
    except (SegDataError, ImageLoadError):
        raise
    except Exception as e:  # damaged file, not an image, decompression bomb
        raise SegDataError(f"cannot read mask {path}: {type(e).__name__}: {e}") from e
    if a.max(initial=0) > 255:
        raise SegDataError(f"{path}: mask values up to {a.max()} do not fit the 8-bit index format")
    return a.astype(np.uint8)


def encode_labels(mask: np.ndarray, num_classes: int, reduce_zero_label: bool, ignore_index: int = 255,
                  where: str = "mask") -> np.ndarray:
    """Stored PNG values -> training labels in ``[0, num_classes)`` or ``ignore_index``; unknown values raise."""
    if reduce_zero_label:  # ADE20K: 0 ("other") -> ignore, k -> k-1
        out = mask.astype(np.int16) - 1
        out[mask == 0] = ignore_index
        out[mask == ignore_index] = ignore_index
        out = out.astype(np.uint8)
    else:
        out = mask
    bad = np.unique(out[(out >= num_classes) & (out != ignore_index)])
    if bad.size:
        stored = bad + 1 if reduce_zero_label else bad
        raise SegDataError(
            f"{where}: label values {stored.tolist()[:10]} are outside the {num_classes} classes "
            f"(allowed: {'1..' + str(num_classes) if reduce_zero_label else '0..' + str(num_classes - 1)}"
            f", and {ignore_index} = ignore{', 0 = other' if reduce_zero_label else ''})"
        )
    return out


class SegFolderDataset(Dataset):
    """One split of an ADE20K-layout folder, yielding ``(image, mask)`` after ``transform``.

    Without a transform an item is ``(uint8 (3,H,W) tensor, uint8 (H,W) labels tensor)``. Each item is checked:
    the mask must have the image's size and only known labels; the error names the file.
    """

    def __init__(self, img_dir: str | Path, ann_dir: str | Path, num_classes: int, reduce_zero_label: bool = False,
                 ignore_index: int = 255, transform=None, img_suffix: str = ".jpg", ann_suffix: str = ".png"):
        self.samples = find_pairs(img_dir, ann_dir, img_suffix, ann_suffix)
        self.num_classes, self.reduce_zero_label, self.ignore_index = num_classes, reduce_zero_label, ignore_index
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw image (H,W,3) and its encoded labels (H,W), validated."""
        s = self.samples[i]
        img, mask = read_image(s.image), read_mask(s.mask)
        if mask.shape != img.shape[:2]:
            raise SegDataError(
                f"mask {s.mask.name} is {mask.shape[1]}x{mask.shape[0]} but image {s.image.name} is "
                f"{img.shape[1]}x{img.shape[0]} (width x height); masks must have their image's size"
            )
        return img, encode_labels(mask, self.num_classes, self.reduce_zero_label, self.ignore_index, str(s.mask))

    def __getitem__(self, i: int):
        img, labels = self.load(i)
        img_t = torch.from_numpy(np.array(img)).permute(2, 0, 1)  # a writable copy
        lab_t = torch.from_numpy(np.array(labels))
        if self.transform is not None:
            return self.transform(img_t, lab_t)
        return img_t, lab_t

    def check(self, progress: bool = False) -> None:
        """Validate every sample now (mask size against the image header, label values), so that a bad file
        fails before training starts rather than hours into it. Images are not decoded, masks are."""
        from focalnet.data.images import image_size

        items = range(len(self))
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(items, desc="check data", leave=False)
        for i in items:
            s = self.samples[i]
            w, h = image_size(s.image)
            mask = read_mask(s.mask)
            if mask.shape != (h, w):
                raise SegDataError(
                    f"mask {s.mask.name} is {mask.shape[1]}x{mask.shape[0]} but image {s.image.name} is {w}x{h} "
                    "(width x height); masks must have their image's size"
                )
            encode_labels(mask, self.num_classes, self.reduce_zero_label, self.ignore_index, str(s.mask))


def write_synthetic_ade(root: str | Path, n_train: int = 200, n_val: int = 50, size: tuple[int, int] = (128, 128),
                        seed: int = 0, split_names: tuple[str, str] = ("training", "validation")) -> Path:
    """Write a small, SYNTHETIC ADE20K-layout set from :mod:`focalnet.data.synthetic` scenes.

    Real scikit-image objects (horse, coin, logo) with known masks pasted on real textures; PNG values are the
    indices of :data:`SYNTHETIC_CLASSES` (0 = background, a real class: use ``reduce_zero_label: false``).
    Training and validation scenes come from different seeds, so validation images are held out.
    """
    from focalnet.data.synthetic import check_writer_args

    check_writer_args(root, n_train, n_val, size)
    from PIL import Image

    from focalnet.data.synthetic import CATEGORIES, make_scenes

    assert [c["name"] for c in CATEGORIES] == SYNTHETIC_CLASSES[1:], "category ids must match SYNTHETIC_CLASSES"
    root = Path(root)
    for split, n, s in ((split_names[0], n_train, seed), (split_names[1], n_val, seed + 1_000_003)):
        img_dir, ann_dir = root / "images" / split, root / "annotations" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for k, scene in enumerate(make_scenes(n, seed=s, size=size)):
            stem = f"synth_{split}_{k:08d}"
            Image.fromarray(scene.image).save(img_dir / f"{stem}.jpg", quality=95)
            Image.fromarray(scene.semantic_mask()).save(ann_dir / f"{stem}.png")
    (root / "README.txt").write_text(
        "SYNTHETIC data written by focalnet.seg.data.write_synthetic_ade (not ADE20K).\n"
        f"classes (PNG value: name): {', '.join(f'{i}: {n}' for i, n in enumerate(SYNTHETIC_CLASSES))}\n"
        f"seed {seed}, size {size[0]}x{size[1]}, {n_train} training + {n_val} validation images\n"
    )
    return root
