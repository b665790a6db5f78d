"""Reading one image file safely into 8-bit RGB, whatever the file holds.

Real folders contain grayscale scans, RGBA screenshots, palette GIFs, 16-bit PNGs and the odd truncated or
non-image file. Every reader in the package goes through :func:`load_rgb`, so they all agree on what an image
becomes and on which error a bad file raises (:class:`ImageLoadError`, naming the file).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageLoadError", "IMAGE_EXTENSIONS", "load_rgb", "to_rgb"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageLoadError(OSError):
    """An image file cannot be decoded (missing, truncated, not an image)."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    16-bit and 32-bit integer images are rescaled by their bit depth (not clipped, which would turn most 16-bit
    photos white); float images by their range; transparency is composited onto white, as a viewer shows it.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            arr = arr / 257.0  # 65535 -> 255
        elif img.mode == "I":
            hi = arr.max() if arr.size else 0
            arr = arr / 257.0 if hi > 255 else arr  # 16-bit PNGs often open as mode "I"
        else:
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode ``path`` as RGB. Truncated or undecodable files raise :class:`ImageLoadError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now: a truncated file fails here, not later in a worker
                return to_rgb(img).copy() if img.mode == "RGB" else to_rgb(img)
    except FileNotFoundError as e:
        raise ImageLoadError(f"image not found: {path}") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(f"cannot read image {path}: {e}") from e
