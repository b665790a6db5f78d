"""Sequences: frames from a folder or a video in, an animated GIF or MP4 of the modulation maps out.

This is what the README animations (``focalnet_base_lrf_s{2,3,4}.gif``, ``focalnet_base_iso_l{4,8,12}.gif``)
show and what the original repository has no script for. GIFs are written with imageio's Pillow plugin; MP4 and
reading videos need ``imageio-ffmpeg`` (in the ``viz`` extra), which bundles an ffmpeg binary.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from torch import nn

from .figures import overlay
from .maps import compute_maps, resolve_blocks

_logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "iter_frames", "count_frames", "render_frame", "maps_frame", "write_animation",
    "animate",
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


def maps_frame(maps) -> np.ndarray:
    """The input and each block's modulator overlay of an :class:`~focalnet.viz.maps.ImageMaps`, side by side."""
    tiles = [maps.image] + [overlay(maps.image, b.modulator_norm_up) for b in maps.blocks]
    gap = np.full((maps.image.shape[0], 4, 3), 255, dtype=np.uint8)
    row = [tiles[0]]
    for t in tiles[1:]:
        row += [gap, t]
    return np.concatenate(row, axis=1)


def _fit(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if frame.shape[:2] == shape:
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((shape[1], shape[0]), Image.BILINEAR))


def write_animation(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 4.0) -> Path:
    """Write RGB frames as ``.gif`` (looping) or ``.mp4`` (H.264) atomically; frames are resized to the first."""
    import imageio.v2 as iio2

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"{path}: animations are written as .gif or .mp4")
    if not 0 < fps < float("inf"):
        raise ValueError(f"fps must be a positive number, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=path.parent)
    os.close(fd)
    shape = None
    n = 0
    try:
        if suffix == ".gif":
            writer = iio2.get_writer(tmp, format="GIF-PIL", mode="I", duration=1000.0 / fps, loop=0)
        else:
            try:
                writer = iio2.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                         pixelformat="yuv420p", macro_block_size=1, quality=8)
            except Exception as e:
                raise RuntimeError(f"writing MP4 needs imageio-ffmpeg (`pip install imageio-ffmpeg`): {e}") from e
        with writer:
            for frame in frames:
                if shape is None:
                    h, w = frame.shape[:2]
                    shape = (h, w) if suffix == ".gif" else (h + h % 2, w + w % 2)  # H.264 wants even sides
                writer.append_data(_fit(np.ascontiguousarray(frame[..., :3]), shape))
                n += 1
        if n == 0:
            raise ValueError("no frames to animate")
        os.replace(tmp, path)
        os.chmod(path, 0o644)  # mkstemp creates 0600
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _logger.info("wrote %d frames to %s", n, path)
    return path


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
