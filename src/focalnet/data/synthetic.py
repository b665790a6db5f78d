"""Small, offline detection/segmentation scenes made from images that ship with scikit-image.

No COCO or ADE20K exists on our machines, so the dense-prediction tools are proven on scenes built here: real
photographed objects with *known* masks pasted onto real textures. They are synthetic: numbers measured on them
show that a pipeline learns and evaluates correctly, not how it would do on COCO or ADE20K.

Categories (id: name, where the object and its mask come from):

1. ``horse``: the horse silhouette of ``skimage.data.horse()``, filled with the fur of ``chelsea`` (the cat photo);
2. ``coin``: a disc cut from the ``coins`` photograph, tinted gold;
3. ``logo``: the coloured shapes of the scikit-image logo (opaque, non-white pixels).

Backgrounds are the ``brick``, ``grass``, ``gravel`` and ``moon`` textures, randomly tinted, cropped and flipped.
Objects are pasted at random scales and positions; later objects occlude earlier ones and the earlier masks are
cut accordingly (an object left with less than ``min_visible`` of its area is dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CATEGORIES: list[dict] = [
    {"id": 1, "name": "horse"},
    {"id": 2, "name": "coin"},
    {"id": 3, "name": "logo"},
]


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    masks: np.ndarray  # (N, H, W) bool, visible part of each object
    labels: np.ndarray  # (N,) int64, category ids (1-based, see CATEGORIES)
    boxes: np.ndarray  # (N, 4) float32, xyxy in pixels (x2/y2 exclusive), from the visible masks

    def semantic_mask(self) -> np.ndarray:
        """(H, W) uint8 index mask: 0 background, else the category id (later objects on top)."""
        sem = np.zeros(self.image.shape[:2], np.uint8)
        for m, lab in zip(self.masks, self.labels):
            sem[m] = lab
        return sem


@lru_cache(maxsize=1)
def _sources() -> tuple[list[tuple[np.ndarray, np.ndarray, int]], list[np.ndarray]]:
    from skimage import data

    objects = []
    horse = ~data.horse()  # the silhouette is False on a True background
    ys, xs = np.nonzero(horse)
    horse = horse[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    fur = data.chelsea()[40:280, 60:400]
    fur = _fit(fur, horse.shape)
    objects.append((fur, horse, 1))

    coins = data.coins().astype(np.float32) / 255.0
    disc_src = coins[10:110, 20:120]
    yy, xx = np.mgrid[:100, :100]
    disc = (yy - 49.5) ** 2 + (xx - 49.5) ** 2 <= 48**2
    gold = np.stack([disc_src * 1.0, disc_src * 0.8, disc_src * 0.3], -1)
    objects.append(((gold * 255).clip(0, 255).astype(np.uint8), disc, 2))

    logo = data.logo()
    # The alpha channel also covers the logo's white tile; the object is its coloured shapes.
    alpha = (logo[..., 3] > 127) & (logo[..., :3].min(-1) < 200)
    ys, xs = np.nonzero(alpha)
    sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    objects.append((logo[..., :3][sl], alpha[sl], 3))

    textures = [data.brick(), data.grass(), data.gravel(), data.moon()]
    return objects, textures


def _fit(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    out = resize(img, shape, order=1, preserve_range=True, anti_aliasing=True)
    return out.astype(img.dtype)


def _texture(rng: np.random.Generator, H: int, W: int, index: int | None = None,
             tint: tuple[float, float, float] | None = None) -> np.ndarray:
    """A randomly tinted, cropped and flipped texture as (H, W, 3) float32 in 0..255 (``index`` picks it; ``tint``
    gives a base colour that is varied by +-20 % instead of a random one)."""
    from skimage.transform import resize

    _, textures = _sources()
    tex = textures[rng.integers(len(textures)) if index is None else index].astype(np.float32) / 255.0
    th, tw = tex.shape
    crop = max(H, W)
    y0, x0 = rng.integers(0, th - min(th, crop) + 1), rng.integers(0, tw - min(tw, crop) + 1)
    tex = resize(tex[y0 : y0 + crop, x0 : x0 + crop], (H, W), order=1, anti_aliasing=True)
    if tint is None:
        colour = rng.uniform(0.35, 1.0, size=3).astype(np.float32)
    else:
        colour = (np.asarray(tint, np.float32) * rng.uniform(0.8, 1.2, size=3)).clip(0.2, 1.0).astype(np.float32)
    image = (tex[..., None] * colour * 255).astype(np.float32)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return image


def _paste_objects(
    rng: np.random.Generator,
    image: np.ndarray,
    n: int,
    scale: tuple[float, float],
    min_visible: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste ``n`` random objects into ``image`` (in place); visible masks, labels and xyxy boxes of those kept."""
    from skimage.transform import resize

    objects, _ = _sources()
    H, W = image.shape[:2]
    masks, labels, areas = [], [], []
    for _ in range(n):
        rgb, mask, label = objects[rng.integers(len(objects))]
        s = rng.uniform(*scale) * min(H, W)
        h0, w0 = mask.shape
        f = s / max(h0, w0)
        oh, ow = max(8, int(round(h0 * f))), max(8, int(round(w0 * f)))
        m = resize(mask.astype(np.float32), (oh, ow), order=1, anti_aliasing=True) > 0.5
        c = resize(rgb.astype(np.float32), (oh, ow, 3), order=1, anti_aliasing=True)
        if rng.random() < 0.5:
            m, c = m[:, ::-1], c[:, ::-1]
        c = c * rng.uniform(0.8, 1.2)
        top, left = int(rng.integers(0, H - oh + 1)), int(rng.integers(0, W - ow + 1))
        full = np.zeros((H, W), bool)
        full[top : top + oh, left : left + ow] = m
        if full.sum() < 16:
            continue
        region = image[top : top + oh, left : left + ow]
        region[m] = c[m]
        for prev in masks:  # the new object occludes what it covers
            prev &= ~full
        masks.append(full)
        labels.append(label)
        areas.append(full.sum())

    keep = [i for i, m in enumerate(masks) if m.sum() >= max(16, min_visible * areas[i])]
    masks = np.stack([masks[i] for i in keep]) if keep else np.zeros((0, H, W), bool)
    labels = np.asarray([labels[i] for i in keep], np.int64)
    boxes = np.zeros((len(keep), 4), np.float32)
    for k, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return masks, labels, boxes


def check_writer_args(root, n_train: int, n_val: int, size) -> None:
    """The checks every synthetic-set writer makes before it writes anything (one-line usage errors)."""
    from pathlib import Path

    from focalnet.errors import UsageError

    if n_train < 1 or n_val < 1:
        raise UsageError(f"the synthetic set needs at least 1 training and 1 validation image, got {n_train}/{n_val}")
    if min(size if isinstance(size, (tuple, list)) else (size,)) < 32:
        raise UsageError(f"synthetic images must be at least 32 pixels a side, got {size}")
    if Path(root).exists() and not Path(root).is_dir():
        raise UsageError(f"{root} is a file; give a folder for the synthetic set")


def make_scene(
    rng: np.random.Generator,
    size: tuple[int, int] = (128, 128),
    max_objects: int = 3,
    scale: tuple[float, float] = (0.25, 0.6),
    min_visible: float = 0.4,
) -> Scene:
    """One scene of ``size`` (H, W) with 1..max_objects objects (at least one is always visible)."""
    H, W = size
    image = _texture(rng, H, W)
    n = int(rng.integers(1, max_objects + 1))
    masks, labels, boxes = _paste_objects(rng, image, n, scale, min_visible)
    scene = Scene(np.ascontiguousarray(image.clip(0, 255).astype(np.uint8)), masks, labels, boxes)
    if len(labels) == 0:  # everything got occluded: draw again (rare)
        return make_scene(rng, size, max_objects, scale, min_visible)
    return scene


def make_scenes(n: int, seed: int = 0, size: tuple[int, int] = (128, 128), **kwargs) -> list[Scene]:
    """``n`` reproducible scenes: the same seed always gives the same scenes."""
    rng = np.random.default_rng(seed)
    return [make_scene(rng, size, **kwargs) for _ in range(n)]


# Panoptic scenes: the three objects are "things" (countable, one segment per object) and the four textures are
# "stuff" (amorphous regions, one segment per texture class and image). Ids continue after CATEGORIES.
STUFF_CATEGORIES: list[dict] = [
    {"id": 4, "name": "brick"},
    {"id": 5, "name": "grass"},
    {"id": 6, "name": "gravel"},
    {"id": 7, "name": "moon"},
]
# Each stuff texture keeps a typical colour (varied by +-20 %), as real stuff classes do (grass is green, sky blue):
# the texture alone, randomly tinted, is too hard for the small CPU demo models to tell apart.
_STUFF_TINTS = [(0.9, 0.45, 0.35), (0.4, 0.85, 0.35), (0.75, 0.75, 0.7), (0.45, 0.55, 0.95)]


@dataclass
class PanopticScene:
    image: np.ndarray  # (H, W, 3) uint8
    masks: np.ndarray  # (N, H, W) bool, visible part of each thing
    labels: np.ndarray  # (N,) int64, thing category ids (CATEGORIES)
    boxes: np.ndarray  # (N, 4) float32, xyxy
    stuff: np.ndarray  # (H, W) int64, the stuff category id (STUFF_CATEGORIES) under every pixel

    def segments(self) -> list[tuple[np.ndarray, int, bool]]:
        """Every non-empty visible segment as ``(mask, category_id, isthing)``: stuff regions (minus the things
        covering them) first, then one per thing. Together they tile the image exactly once."""
        covered = self.masks.any(0) if len(self.masks) else np.zeros(self.stuff.shape, bool)
        out = []
        for cid in np.unique(self.stuff):
            m = (self.stuff == cid) & ~covered
            if m.any():
                out.append((m, int(cid), False))
        out.extend((m, int(lab), True) for m, lab in zip(self.masks, self.labels))
        return out


def make_panoptic_scene(
    rng: np.random.Generator,
    size: tuple[int, int] = (128, 128),
    min_objects: int = 2,
    max_objects: int = 4,
    scale: tuple[float, float] = (0.2, 0.45),
    min_visible: float = 0.4,
) -> PanopticScene:
    """A scene of ``size`` (H, W): two different textures (stuff) split by a random straight boundary, each
    covering at least a fifth of the image, with ``min_objects..max_objects`` objects (things) pasted on top."""
    H, W = size
    a, b = rng.choice(len(STUFF_CATEGORIES), size=2, replace=False)
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    while True:  # a random line through a point near the centre
        theta = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0.3, 0.7) * H, rng.uniform(0.3, 0.7) * W
        side = (yy - cy) * np.cos(theta) - (xx - cx) * np.sin(theta) > 0
        if 0.2 <= side.mean() <= 0.8:
            break
    image = np.where(side[..., None], _texture(rng, H, W, int(b), _STUFF_TINTS[b]),
                     _texture(rng, H, W, int(a), _STUFF_TINTS[a]))
    stuff = np.where(side, STUFF_CATEGORIES[b]["id"], STUFF_CATEGORIES[a]["id"]).astype(np.int64)
    n = int(rng.integers(min_objects, max_objects + 1))
    masks, labels, boxes = _paste_objects(rng, image, n, scale, min_visible)
    if len(labels) == 0:
        return make_panoptic_scene(rng, size, min_objects, max_objects, scale, min_visible)
    return PanopticScene(np.ascontiguousarray(image.clip(0, 255).astype(np.uint8)), masks, labels, boxes, stuff)


def make_panoptic_scenes(n: int, seed: int = 0, size: tuple[int, int] = (128, 128), **kwargs) -> list[PanopticScene]:
    """``n`` reproducible panoptic scenes (same seed, same scenes)."""
    rng = np.random.default_rng(seed)
    return [make_panoptic_scene(rng, size, **kwargs) for _ in range(n)]
