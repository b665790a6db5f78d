"""Reading one image file safely into 8-bit RGB, whatever the file holds.

Real folders contain grayscale scans, RGBA screenshots, palette GIFs, 16-bit PNGs and the odd truncated or
non-image file. Every reader in the package goes through :func:`load_rgb`, so they all agree on what an image
becomes (upright by its EXIF orientation, 8-bit RGB) and on which error a bad file raises (:class:`ImageLoadError`,
naming the file).
"""

from __future__ import annotations

import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from focalnet.errors import FocalnetError

__all__ = ["ImageLoadError", "IMAGE_EXTENSIONS", "check_regular_file", "exif_upright", "image_size", "load_rgb",
           "to_rgb"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageLoadError(FocalnetError, OSError):
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


def check_regular_file(path: str | os.PathLike) -> None:
    """Raise :class:`ImageLoadError` unless ``path`` is an existing regular file (or a link to one).

    Opening a FIFO, a socket or a device such as ``/dev/zero`` would block or read forever; they are refused
    before anything is opened.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise ImageLoadError(f"image not found: {path}") from e
    except OSError as e:
        raise ImageLoadError(f"cannot read image {path}: {e.strerror or e}") from e
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(f"cannot read image {path}: it is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise ImageLoadError(f"cannot read image {path}: it is {kind}, not an image file")


def exif_upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (phone photos are stored sideways with a tag saying how to turn them)."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block: keep the pixels as stored
        return img
    if orientation in (None, 1):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        return img


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of the upright image (EXIF orientation applied) from its header, without decoding."""
    check_regular_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                try:
                    turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # the 90/270 degree orientations
                except Exception:
                    turned = False
    except Exception as e:
        raise ImageLoadError(f"cannot read image {path}: {type(e).__name__}: {e}") from e
    return (h, w) if turned else (w, h)


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode ``path`` as upright 8-bit RGB (EXIF orientation applied).

    Anything that is not a readable image raises :class:`ImageLoadError` naming the file: a missing file, a
    folder, a FIFO or device (refused before opening, so nothing blocks), a truncated or undecodable file, and a
    decompression bomb (a header claiming more pixels than PIL's ``MAX_IMAGE_PIXELS``).
    """
    check_regular_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now: a truncated file fails here, not later in a worker
                upright = exif_upright(img)
                rgb = to_rgb(upright)
                return rgb.copy() if rgb is img else rgb
    except FileNotFoundError as e:
        raise ImageLoadError(f"image not found: {path}") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(f"cannot read image {path}: {e}") from e
    except (UnidentifiedImageError, OSError) as e:
        raise ImageLoadError(f"cannot read image {path}: {e}") from e
    except Exception as e:  # PIL plugins raise ValueError, SyntaxError, struct.error, IndexError ... on bad files
        raise ImageLoadError(f"cannot read image {path}: {type(e).__name__}: {e}") from e
