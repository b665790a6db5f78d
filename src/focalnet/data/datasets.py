"""Data sets: the built-in digits, an ImageFolder layout and Hugging Face ``datasets``; plus the batch sampler.

All data sets yield ``(PIL RGB image, int label)`` before the transform, so one transform pipeline (timm's)
serves them all and ``predict`` sees images the same way training did.

Determinism is a design goal here, because resumed and distributed runs must reproduce a single uninterrupted
run: the order of samples depends only on ``(seed, epoch)`` (:class:`GlobalBatchSampler`), and the random
augmentation of a sample depends only on ``(seed, epoch, index)`` (:class:`SeededTransformDataset`), never on the
number of processes, workers, or where a run was interrupted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .images import IMAGE_EXTENSIONS, ImageLoadError, load_rgb

_logger = logging.getLogger(__name__)

__all__ = [
    "DataError",
    "DigitsDataset",
    "ImageFolderDataset",
    "HFImageDataset",
    "SeededTransformDataset",
    "GlobalBatchSampler",
    "build_datasets",
    "build_eval_dataset",
]


from focalnet.engine.data import DataError, GlobalBatchSampler, SeededDataset  # noqa: E402, F401  (re-exported)


class SeededTransformDataset(SeededDataset):
    """``transform`` applied to the image of each ``(image, label)`` sample, seeded from ``(seed, epoch, index)``
    (see :class:`focalnet.engine.data.SeededDataset`)."""

    def __init__(self, base: Dataset, transform: Callable | None, seed: int = 0) -> None:
        super().__init__(base, seed, None if transform is None else (lambda s: (transform(s[0]), s[1])))


# ------------------------------------------------------------------------------------------ built-in digits
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) pixels in 0..16 and labels, read straight from scikit-learn's bundled CSV.

    Reading the file avoids importing ``sklearn.datasets`` (seconds on a busy machine) for 100 KB of data.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the built-in digits data set ships with scikit-learn: pip install scikit-learn")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():  # an unusual layout: fall back to the public loader
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images, d.target
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


class DigitsDataset(Dataset):
    """scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, 10 classes), a fixed stratified split.

    Ships inside scikit-learn, so the default job needs no download. Pixels (0..16) become 8-bit gray RGB images;
    the transform upsamples them.
    """

    classes = [str(i) for i in range(10)]

    def __init__(self, split: str = "train", val_fraction: float = 0.2, seed: int = 0) -> None:
        if split not in ("train", "val"):
            raise DataError(f"digits has splits 'train' and 'val', not {split!r}")
        images, targets = _load_digits()
        rng = np.random.default_rng(seed)
        val_idx = []
        for c in range(10):  # stratified: the same fraction of every class is held out
            idx = np.flatnonzero(targets == c)
            val_idx.append(rng.permutation(idx)[: int(round(val_fraction * len(idx)))])
        is_val = np.zeros(len(targets), bool)
        is_val[np.concatenate(val_idx)] = True
        keep = np.flatnonzero(is_val if split == "val" else ~is_val)
        self.images = (images[keep] * (255.0 / 16.0)).round().astype(np.uint8)
        self.targets = targets[keep].astype(int).tolist()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[i], mode="L").convert("RGB"), self.targets[i]


# ------------------------------------------------------------------------------------------ image folders
def _scan_split(root: Path, classes: Sequence[str] | None) -> tuple[list[str], list[tuple[str, int]]]:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; expected ROOT/train/<class>/*.jpg and ROOT/val/...")
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    loose = [e.name for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)]
    found = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    if loose:
        raise DataError(
            f"{root} holds {len(loose)} image(s) directly (e.g. {loose[0]}) instead of in one sub-folder per "
            "class; move each image into <root>/<class name>/"
        )
    if not found:
        raise DataError(f"{root} has no class sub-folders; expected {root}/<class name>/<images>")
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(
                f"{root} has class folder(s) {unknown[:5]} that the training split does not have; the splits are "
                "mislabelled (class folders must have the same names in train/ and val/)"
            )
    index = {c: i for i, c in enumerate(classes)}
    samples: list[tuple[str, int]] = []
    empty = []
    for c in found:
        n0 = len(samples)
        for dirpath, _dirs, files in os.walk(root / c, followlinks=True):
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    samples.append((os.path.join(dirpath, f), index[c]))
        if len(samples) == n0:
            empty.append(c)
    if empty:
        _logger.warning("%s: class folder(s) with no images: %s", root, ", ".join(empty[:10]))
    if not samples:
        raise DataError(f"{root} contains no images with extensions {', '.join(IMAGE_EXTENSIONS)}")
    return list(classes), samples


class ImageFolderDataset(Dataset):
    """``root/<class>/<image>`` with safe decoding and a defined policy for unreadable files.

    ``bad_images="skip"`` logs a warning naming the file and returns the next readable image instead (so a batch
    keeps its size and a long run is not lost to one corrupt JPEG); ``"error"`` raises :class:`ImageLoadError`
    naming the file. Skipped paths are remembered in ``self.bad``.
    """

    def __init__(self, root: str | os.PathLike, classes: Sequence[str] | None = None, bad_images: str = "skip"):
        self.root = Path(root)
        self.classes, self.samples = _scan_split(self.root, classes)
        self.targets = [t for _, t in self.samples]
        self.bad_images = bad_images
        self.bad: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        for k in range(min(len(self.samples), 50)):
            path, target = self.samples[(i + k) % len(self.samples)]
            try:
                return load_rgb(path), target
            except ImageLoadError as e:
                if self.bad_images == "error":
                    raise
                if path not in self.bad:
                    self.bad.add(path)
                    _logger.warning("skipping unreadable image (data.bad_images=skip): %s", e)
        raise DataError(f"{self.root}: 50 consecutive images are unreadable; is this an image folder?")


# ------------------------------------------------------------------------------------------ Hugging Face
class HFImageDataset(Dataset):
    """A split of a Hugging Face ``datasets`` image-classification set (needs ``pip install datasets``)."""

    def __init__(self, name: str, split: str, image_column: str = "image", label_column: str = "label") -> None:
        try:
            import datasets as hfd
        except ImportError as e:
            raise DataError("data.dataset=hf:... needs the Hugging Face datasets package: pip install datasets") from e
        self.ds = hfd.load_from_disk(name)[split] if os.path.isdir(name) else hfd.load_dataset(name, split=split)
        for col in (image_column, label_column):
            if col not in self.ds.column_names:
                raise DataError(f"{name}[{split}] has no column {col!r}; columns: {self.ds.column_names}")
        feat = self.ds.features[label_column]
        self.classes = list(getattr(feat, "names", None) or sorted({str(v) for v in self.ds[label_column]}))
        self.image_column, self.label_column = image_column, label_column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        from .images import to_rgb

        row = self.ds[int(i)]
        img = row[self.image_column]
        if not isinstance(img, Image.Image):
            img = Image.fromarray(np.asarray(img))
        return to_rgb(img), int(row[self.label_column])


# ------------------------------------------------------------------------------------------ determinism
# ------------------------------------------------------------------------------------------ factory
def build_datasets(data_cfg, seed: int = 0) -> tuple[Dataset, Dataset, list[str]]:
    """``(train, val, class_names)`` for ``data_cfg`` (a :class:`focalnet.train.config.DataConfig`)."""
    from torch.utils.data import Subset

    train, val, classes = _build_datasets(data_cfg)
    if data_cfg.limit_train:
        train = Subset(train, range(min(data_cfg.limit_train, len(train))))
    if data_cfg.limit_val:
        val = Subset(val, range(min(data_cfg.limit_val, len(val))))
    return train, val, classes


def build_eval_dataset(data_cfg, known_classes: Sequence[Sequence[str]] = ()) -> tuple[Dataset, list[str]]:
    """``(val, class_names)`` for evaluation only: an image folder needs just ``ROOT/<val_split>/`` (ImageNet's
    validation set alone is enough). Without a train split the classes are the val folders, in the order of the
    first of ``known_classes`` (the model's class names, its synsets...) that names them all, else sorted."""
    from torch.utils.data import Subset

    if data_cfg.dataset != "folder" or not data_cfg.root or (Path(data_cfg.root) / data_cfg.train_split).is_dir():
        _, val, classes = build_datasets(data_cfg)
        return val, classes
    val_root = Path(data_cfg.root) / data_cfg.val_split
    if not val_root.is_dir():
        raise DataError(f"data folder {val_root} does not exist; evaluation needs ROOT/{data_cfg.val_split}/<class>/"
                        "<images>")
    found = sorted(e.name for e in os.scandir(val_root) if e.is_dir() and not e.name.startswith("."))
    classes = next((list(k) for k in known_classes if k and set(found) <= set(k)), None)
    val = ImageFolderDataset(val_root, classes=classes, bad_images=data_cfg.bad_images)
    if data_cfg.limit_val:
        val = Subset(val, range(min(data_cfg.limit_val, len(val))))
    return val, list(classes or found)


def _build_datasets(data_cfg) -> tuple[Dataset, Dataset, list[str]]:
    ds = data_cfg.dataset
    if ds == "digits":
        train = DigitsDataset("train", data_cfg.val_fraction, seed=0)
        val = DigitsDataset("val", data_cfg.val_fraction, seed=0)
        return train, val, list(DigitsDataset.classes)
    if ds == "folder":
        if not data_cfg.root:
            raise DataError("data.dataset=folder needs data.root=DIR (a directory holding train/ and val/)")
        root = Path(data_cfg.root)
        train = ImageFolderDataset(root / data_cfg.train_split, bad_images=data_cfg.bad_images)
        val = ImageFolderDataset(root / data_cfg.val_split, classes=train.classes, bad_images=data_cfg.bad_images)
        return train, val, train.classes
    if ds.startswith("hf:"):
        name = ds[3:]
        train = HFImageDataset(name, data_cfg.train_split, data_cfg.image_column, data_cfg.label_column)
        val = HFImageDataset(name, data_cfg.val_split, data_cfg.image_column, data_cfg.label_column)
        return train, val, train.classes
    raise DataError(f"unknown data set {ds!r}")
