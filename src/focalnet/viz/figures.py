"""Figures of the maps, drawn with matplotlib's object API on the Agg canvas.

No ``pyplot``: figures are plain :class:`matplotlib.figure.Figure` objects, so drawing is thread-safe (the web demo
draws from request threads) and never opens a window. Colours follow the notebook: viridis, auto-scaled per map.
Any figure made from random weights should carry :func:`stamp` so it cannot be mistaken for a result.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .maps import RANDOM_WEIGHTS_NOTE, ImageMaps

__all__ = [
    "colorize",
    "overlay",
    "stamp",
    "save_figure",
    "modulation_figure",
    "gates_figure",
    "kernels_figure",
    "heatmap_figure",
]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _normalise(m: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lo = float(np.nanmin(m)) if vmin is None else vmin
    hi = float(np.nanmax(m)) if vmax is None else vmax
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros_like(m)
    return np.clip((m - lo) / (hi - lo), 0.0, 1.0)


def colorize(m: np.ndarray, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """A 2-D map as an RGB uint8 image through a colormap, auto-scaled to its own min/max unless given."""
    import matplotlib

    rgba = matplotlib.colormaps[cmap](_normalise(m, vmin, vmax))
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def overlay(image: np.ndarray, m: np.ndarray, alpha: float = 0.55, cmap: str = "viridis") -> np.ndarray:
    """Blend a colorized map (same height/width as ``image``) over the image; returns RGB uint8."""
    if image.shape[:2] != m.shape[:2]:
        raise ValueError(f"map {m.shape[:2]} and image {image.shape[:2]} differ in size; upsample the map first")
    img = image.astype(np.float64)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    out = (1.0 - alpha) * img[..., :3] + alpha * colorize(m, cmap).astype(np.float64)
    return (out + 0.5).clip(0, 255).astype(np.uint8)


def stamp(fig, note: str = RANDOM_WEIGHTS_NOTE) -> None:
    """Write a red warning across the bottom of a figure (used whenever no trained weights were loaded)."""
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):  # keep the panels clear of the warning line
        margin = min(0.2, 0.3 / fig.get_figheight())
        try:
            engine.set(rect=(0, margin, 1, 1 - margin))
        except TypeError:  # an engine without a rect (tight layout)
            pass
    fig.text(0.5, 0.005, note.upper(), ha="center", va="bottom", color="red", fontsize=11, fontweight="bold")


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save as PNG atomically (temp file + rename), so an interrupted run never leaves a half-written figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
        os.chmod(path, 0o644)  # mkstemp creates 0600
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def _panel_size(image: np.ndarray, height: float = 2.6) -> tuple[float, float]:
    h, w = image.shape[:2]
    return height * w / h, height


def _block_title(b) -> str:
    return f"stage {b.stage + 1}, block {b.block + 1}"


def modulation_figure(maps: ImageMaps, title: str | None = None):
    """Input beside each chosen block's modulator map: the raw norm (top) and the overlay on the image (bottom)."""
    n = len(maps.blocks)
    pw, ph = _panel_size(maps.image)
    fig = _figure(pw * (n + 1), ph * 2 + 0.9)
    axes = fig.subplots(2, n + 1, squeeze=False)
    axes[0, 0].imshow(maps.image)
    axes[0, 0].set_title("input")
    for j, b in enumerate(maps.blocks, start=1):
        im = axes[0, j].imshow(b.modulator_norm_up, cmap="viridis")
        axes[0, j].set_title(f"|modulator|, {_block_title(b)}", fontsize=9)
        fig.colorbar(im, ax=axes[0, j], fraction=0.035, pad=0.01)
        axes[1, j].imshow(overlay(maps.image, b.modulator_norm_up))
        axes[1, j].set_title(f"overlay ({b.modulator_norm.shape[0]}x{b.modulator_norm.shape[1]} tokens)", fontsize=9)
    for ax in axes.ravel():
        _off(ax)
    axes[1, 0].set_visible(False)
    if title:
        fig.suptitle(title)
    if not maps.meaningful:
        stamp(fig)
    return fig


def gates_figure(maps: ImageMaps, title: str | None = None):
    """One row per block: the input, then the raw gate map of each focal level and of the global level."""
    n = len(maps.blocks)
    cols = 1 + max(b.gates.shape[0] for b in maps.blocks)
    pw, ph = _panel_size(maps.image, 2.2)
    fig = _figure(pw * cols, ph * n + 0.9)
    axes = fig.subplots(n, cols, squeeze=False)
    for i, b in enumerate(maps.blocks):
        axes[i, 0].imshow(maps.image)
        axes[i, 0].set_title(_block_title(b), fontsize=9)
        L = b.focal_level
        for j in range(cols - 1):
            ax = axes[i, j + 1]
            if j > L:
                ax.set_visible(False)
                continue
            im = ax.imshow(b.gates_up[j], cmap="viridis")
            ax.set_title("global gate" if j == L else f"gate, level {j + 1}", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.035, pad=0.01)
    for ax in axes.ravel():
        _off(ax)
    fig.suptitle(title or "gating maps (raw gate logits; the last is the global level)", fontsize=10)
    if not maps.meaningful:
        stamp(fig)
    return fig


def kernels_figure(kernels: Mapping[int, Sequence[np.ndarray]], title: str | None = None, meaningful: bool = True):
    """Depthwise focal kernels (mean over channels): one column per stage, one row per focal level."""
    stages = sorted(kernels)
    rows = max(len(kernels[s]) for s in stages)
    fig = _figure(2.2 * len(stages), 2.2 * rows + 0.8)
    axes = fig.subplots(rows, len(stages), squeeze=False)
    for j, s in enumerate(stages):
        for i in range(rows):
            ax = axes[i, j]
            _off(ax)
            if i >= len(kernels[s]):
                ax.set_visible(False)
                continue
            k = kernels[s][i]
            ax.imshow(k, cmap="viridis", interpolation="nearest")
            ax.set_title(f"stage {s + 1}, level {i + 1} ({k.shape[0]}x{k.shape[1]})", fontsize=9)
    fig.suptitle(title or "depthwise focal kernels, mean over channels (yellow = high)", fontsize=10)
    if not meaningful:
        stamp(fig)
    return fig


def heatmap_figure(
    image: np.ndarray,
    heatmaps: Mapping[str, np.ndarray],
    title: str | None = None,
    point: tuple[float, float] | Sequence[tuple[float, float]] | None = None,
    meaningful: bool = True,
    log: bool = False,
):
    """Input, then one overlay per named heat map (ERF, attention...).

    ``point`` = a (y, x) pixel marked with a cross on every panel, or one point per heat map.
    """
    n = len(heatmaps)
    pw, ph = _panel_size(image)
    fig = _figure(pw * (n + 1), ph + 0.9)
    axes = fig.subplots(1, n + 1, squeeze=False)[0]
    if point is None or isinstance(point[0], (int, float, np.number)):
        points = [point] * n
    else:
        points = list(point)
    axes[0].imshow(image)
    axes[0].set_title("input")
    _off(axes[0])
    for ax, (name, m), p in zip(axes[1:], heatmaps.items(), points, strict=True):
        m = np.log10(np.asarray(m, dtype=np.float64) + 1e-12 * max(float(np.max(m)), 1e-30)) if log else m
        ax.imshow(overlay(image, m))
        ax.set_title(name, fontsize=9)
        _off(ax)
        if p is not None:
            ax.plot([p[1]], [p[0]], marker="+", color="red", markersize=14, markeredgewidth=2)
    if title:
        fig.suptitle(title, fontsize=10)
    if not meaningful:
        stamp(fig)
    return fig
