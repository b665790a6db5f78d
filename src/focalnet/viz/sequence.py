"""Sequences: frames from a folder or a video in, an animated GIF or MP4 of the modulation maps out.

This is what the README animations (``focalnet_base_lrf_s{2,3,4}.gif``, ``focalnet_base_iso_l{4,8,12}.gif``)
show and what the original repository has no script for. GIFs are written with imageio's Pillow plugin; MP4 and
reading videos need ``imageio-ffmpeg`` (in the ``viz`` extra), which bundles an ffmpeg binary.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from torch import nn

from .figures import overlay
from .maps import RANDOM_WEIGHTS_NOTE, compute_maps, resolve_blocks

_logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "iter_frames", "count_frames", "render_frame", "maps_frame", "letterbox",
    "write_animation", "animate",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v"}


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def iter_frames(source: str | os.PathLike, max_frames: int | None = None, every: int = 1) -> Iterator[np.ndarray]:
    """Frames as RGB uint8 arrays from a folder of images (sorted by name) or a video/animated GIF."""

    from .maps import load_image

    source = Path(source)
    if source.is_dir():
        files = _folder_images(source)
        if not files:
            raise ValueError(f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        it: Iterable = (np.asarray(load_image(p)) for p in files)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        if not source.is_file():
            raise FileNotFoundError(f"video not found: {source}")
        it = _video_frames(source)
    else:
        raise ValueError(f"{source}: neither a folder of images nor a video ({', '.join(sorted(VIDEO_SUFFIXES))})")
    n = 0
    for i, frame in enumerate(it):
        if i % every:
            continue
        yield frame
        n += 1
        if max_frames is not None and n >= max_frames:
            return


def _video_frames(source: Path) -> Iterator[np.ndarray]:
    import imageio.v3 as iio

    from .maps import load_image

    plugin = "pillow" if source.suffix.lower() == ".gif" else None
    try:
        for f in iio.imiter(source, plugin=plugin):
            yield np.asarray(load_image(f))
    except Exception as e:  # a missing ffmpeg backend, an unreadable file, a decompression bomb ...
        raise ValueError(f"{source}: cannot read frames ({e}); video input needs `pip install imageio-ffmpeg`") from e


def count_frames(source: str | os.PathLike) -> int | None:
    """How many frames a source holds, when it can be told cheaply (for progress bars); ``None`` otherwise."""
    source = Path(source)
    if source.is_dir():
        return len(_folder_images(source))
    try:
        import imageio.v3 as iio

        props = iio.improps(source, plugin="pillow" if source.suffix.lower() == ".gif" else None)
        return int(props.n_images) if props.n_images else None
    except Exception:
        return None


def render_frame(model: nn.Module, frame, which=None, size: int | None = 224, weights: str | None = None) -> np.ndarray:
    """One animation frame: the input beside the modulator-norm overlay of each chosen block, side by side."""
    return maps_frame(compute_maps(model, frame, which=which, size=size, weights=weights))


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _band(width: int, texts: list[tuple[int, str]], height: int = 18, colour=(255, 255, 255)) -> np.ndarray:
    """A white strip ``height`` px tall with ``texts`` (x offset, text) written in black."""
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(band)
    font = _font(max(9, height - 6))
    for x, text in texts:
        draw.text((x + 3, 2), text, fill=(0, 0, 0), font=font)
    return np.asarray(band)


def _legend_bar(width: int, height: int = 18, cmap: str = "viridis") -> np.ndarray:
    """``low [viridis gradient] high``: the colour scale of the overlays (each map scaled to its own min/max)."""
    from .figures import colorize

    band = _band(width, [(0, "low"), (width - 34, "high")], height)
    left, right = 32, max(33, width - 38)
    grad = colorize(np.tile(np.linspace(0.0, 1.0, right - left), (height - 8, 1)), cmap)
    band = band.copy()
    band[4 : height - 4, left:right] = grad
    return band


def maps_frame(maps, titles: bool = True) -> np.ndarray:
    """The input and each block's modulator overlay of an :class:`~focalnet.viz.maps.ImageMaps`, side by side.

    With ``titles`` a header names each column (``input``, ``stage S, block B``) and a footer shows the colour
    scale (every overlay is scaled to its own min/max).
    """
    img = maps.image
    h, w = img.shape[:2]
    tiles = [img] + [overlay(img, b.modulator_norm_up) for b in maps.blocks]
    gap = np.full((h, 4, 3), 255, dtype=np.uint8)
    row = [tiles[0]]
    for t in tiles[1:]:
        row += [gap, t]
    out = np.concatenate(row, axis=1)
    if not titles:
        return out
    names = ["input"] + [f"stage {b.stage + 1}, block {b.block + 1}" for b in maps.blocks]
    header = _band(out.shape[1], [(i * (w + 4), name) for i, name in enumerate(names)])
    parts = [header, out, _legend_bar(out.shape[1])]
    if not maps.meaningful:
        parts.append(_band(out.shape[1], [(0, RANDOM_WEIGHTS_NOTE.upper())], colour=(255, 215, 215)))
    return np.concatenate(parts, axis=0)


def letterbox(frame: np.ndarray, shape: tuple[int, int], fill: int = 0) -> np.ndarray:
    """Scale ``frame`` to fit inside ``shape`` (H, W) keeping its aspect ratio, centred on a ``fill`` background."""
    H, W = shape
    h, w = frame.shape[:2]
    if (h, w) == (H, W):
        return frame
    from PIL import Image

    scale = min(H / h, W / w)
    nh, nw = max(1, min(H, round(h * scale))), max(1, min(W, round(w * scale)))
    resized = np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BILINEAR))
    out = np.full((H, W, 3), fill, dtype=np.uint8)
    y, x = (H - nh) // 2, (W - nw) // 2
    out[y : y + nh, x : x + nw] = resized
    return out


def write_animation(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float = 4.0,
    captions: Sequence[str] | None = None,
    label_frames: bool = True,
) -> Path:
    """Write RGB frames as ``.gif`` (looping) or ``.mp4`` (H.264) atomically.

    Every frame is shown for ``1000 / fps`` milliseconds. Frames whose size differs from the first are
    letterboxed into it (scaled to fit, aspect kept, black bars), never stretched. With ``label_frames`` a strip
    above each frame reads ``frame i/N`` and ``captions[i - 1]`` when given.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"{path}: animations are written as .gif or .mp4")
    if not 0 < fps < float("inf"):
        raise ValueError(f"fps must be positive, got {fps}")
    frames = [np.ascontiguousarray(np.asarray(f)[..., :3]) for f in frames]
    if not frames:
        raise ValueError("no frames to animate")
    if captions is not None and len(captions) != len(frames):
        raise ValueError(f"{len(captions)} captions for {len(frames)} frames")
    h, w = frames[0].shape[:2]
    n = len(frames)
    out = []
    for i, f in enumerate(frames):
        f = letterbox(f, (h, w))
        if label_frames:
            text = f"frame {i + 1}/{n}" + (f": {captions[i]}" if captions is not None else "")
            f = np.concatenate([_band(w, [(0, text)]), f], axis=0)
        out.append(f)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        if suffix == ".gif":
            _write_gif(out, tmp, fps)
        else:
            _write_mp4(out, tmp, fps)
        os.replace(tmp, path)
        os.chmod(path, 0o644)  # mkstemp creates 0600
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _logger.info("wrote %d frames to %s (%.0f ms each)", n, path, 1000.0 / fps)
    return path


def _write_gif(frames: list[np.ndarray], path: str, fps: float) -> None:
    """Pillow's GIF writer: ``duration`` is in milliseconds per frame (GIF stores centiseconds)."""
    from PIL import Image

    images = [Image.fromarray(f).quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                          dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000.0 / fps),
                   loop=0, disposal=1)


def _write_mp4(frames: list[np.ndarray], path: str, fps: float) -> None:
    import imageio.v2 as iio2

    h, w = frames[0].shape[:2]
    even = (h + h % 2, w + w % 2)  # H.264 wants even sides
    try:
        writer = iio2.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                 pixelformat="yuv420p", macro_block_size=1, quality=8)
    except Exception as e:
        raise RuntimeError(f"writing MP4 needs imageio-ffmpeg (`pip install imageio-ffmpeg`): {e}") from e
    with writer:
        for f in frames:
            if f.shape[:2] != even:
                f = np.pad(f, ((0, even[0] - h), (0, even[1] - w), (0, 0)))
            writer.append_data(f)


def animate(
    model: nn.Module,
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    which=None,
    size: int | None = 224,
    fps: float = 4.0,
    weights: str | None = None,
) -> Path:
    """Modulator maps of every frame, written as one animation (see :func:`render_frame`)."""
    which = resolve_blocks(model, which)
    return write_animation((render_frame(model, f, which, size, weights) for f in frames), path, fps=fps)
