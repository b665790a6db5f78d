"""Figures of the maps, drawn with matplotlib's object API on the Agg canvas.

No ``pyplot``: figures are plain :class:`matplotlib.figure.Figure` objects, so drawing is thread-safe (the web demo
draws from request threads) and never opens a window. Colours follow the notebook: viridis, auto-scaled per map.
Any figure made from random weights should carry :func:`stamp` so it cannot be mistaken for a result.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
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
    "overlay_panel",
    "text_outside_figure",
    "wrap",
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


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """Break ``text`` into lines that fit ``width_in`` inches at ``fontsize`` points (an average glyph is ~0.55 em)."""
    chars = max(8, int(width_in * 72.0 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) for line in text.split("\n"))


def _title(ax, text: str, width_in: float, fontsize: float = 9) -> None:
    ax.set_title(wrap(text, width_in, fontsize), fontsize=fontsize)


def _suptitle(fig, text: str, fontsize: float = 10) -> None:
    fig.suptitle(wrap(text, fig.get_figwidth() * 0.95, fontsize), fontsize=fontsize)


def _colorbar(fig, mappable, ax, label: str | None = None):
    cb = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.02, shrink=0.9)
    cb.ax.tick_params(labelsize=7)
    cb.ax.yaxis.get_major_formatter().set_useOffset(False)  # an offset label sits above the bar, off the canvas
    if label:
        cb.set_label(label, fontsize=7)
    return cb


def overlay_panel(fig, ax, image: np.ndarray, m: np.ndarray, title: str, width_in: float, *,
                  cmap: str = "viridis", alpha: float = 0.55, label: str | None = None):
    """The image with ``m`` drawn over it (translucent) and a colour bar in the map's own units."""
    ax.imshow(image)
    im = ax.imshow(np.asarray(m, dtype=np.float64), cmap=cmap, alpha=alpha, interpolation="bilinear")
    _colorbar(fig, im, ax, label)
    _title(ax, title, width_in)
    _off(ax)
    return im


def _block_title(b) -> str:
    return f"stage {b.stage + 1}, block {b.block + 1}"


def modulation_figure(maps: ImageMaps, title: str | None = None):
    """Input beside each chosen block's modulator map: the raw norm (top) and the overlay on the image (bottom).

    Every map panel has a colour bar in the map's units (L2 norm of the modulator over channels).
    """
    n = len(maps.blocks)
    pw, ph = _panel_size(maps.image)
    pw += 0.6  # room for the colour bar
    fig = _figure(pw * (n + 1), ph * 2 + 1.2)
    axes = fig.subplots(2, n + 1, squeeze=False)
    axes[0, 0].imshow(maps.image)
    _title(axes[0, 0], "input", pw)
    for j, b in enumerate(maps.blocks, start=1):
        im = axes[0, j].imshow(b.modulator_norm_up, cmap="viridis")
        _colorbar(fig, im, axes[0, j], "|modulator|")
        _title(axes[0, j], f"|modulator|, {_block_title(b)}", pw)
        h, w = b.modulator_norm.shape
        overlay_panel(fig, axes[1, j], maps.image, b.modulator_norm_up, f"on the image ({h}x{w} tokens)", pw,
                      label="|modulator|")
    for ax in axes.ravel():
        _off(ax)
    axes[1, 0].set_visible(False)
    if title:
        _suptitle(fig, title)
    if not maps.meaningful:
        stamp(fig)
    return fig


def gates_figure(maps: ImageMaps, title: str | None = None):
    """One row per block: the input, then each focal level's raw gate and the global gate over the image."""
    n = len(maps.blocks)
    cols = 1 + max(b.gates.shape[0] for b in maps.blocks)
    pw, ph = _panel_size(maps.image, 2.2)
    pw += 0.6
    fig = _figure(pw * cols, ph * n + 1.2)
    axes = fig.subplots(n, cols, squeeze=False)
    for i, b in enumerate(maps.blocks):
        axes[i, 0].imshow(maps.image)
        _title(axes[i, 0], f"input; {_block_title(b)}", pw)
        _off(axes[i, 0])
        L = b.focal_level
        for j in range(cols - 1):
            ax = axes[i, j + 1]
            _off(ax)
            if j > L:
                ax.set_visible(False)
                continue
            name = "global gate" if j == L else f"gate, level {j + 1}"
            overlay_panel(fig, ax, maps.image, b.gates_up[j], f"{name}, {_block_title(b)}", pw, label="gate logit")
    _suptitle(fig, title or "gating maps over the image (raw gate logits; the last column is the global level)")
    if not maps.meaningful:
        stamp(fig)
    return fig


def kernels_figure(kernels: Mapping[int, Sequence[np.ndarray]], title: str | None = None, meaningful: bool = True):
    """Depthwise focal kernels (mean over channels): one row per stage, one column per focal level.

    Every kernel is drawn at its true relative size (a 3x3 kernel covers 3/7 of the width a 7x7 one does) on
    one shared, zero-centred colour scale with a single colour bar, so both the widening support of later levels
    and differences in weight between stages can be read off directly.
    """
    stages = sorted(kernels)
    cols = max(len(kernels[s]) for s in stages)
    kmax = max(k.shape[0] for s in stages for k in kernels[s])
    vmax = max(float(np.abs(k).max()) for s in stages for k in kernels[s]) or 1.0
    cell = 1.15 + 0.08 * kmax
    fig = _figure(cell * cols + 1.4, cell * len(stages) + 1.2)
    axes = fig.subplots(len(stages), cols, squeeze=False)
    im = None
    for i, s in enumerate(stages):
        for j in range(cols):
            ax = axes[i, j]
            _off(ax)
            if j >= len(kernels[s]):
                ax.set_visible(False)
                continue
            k = np.asarray(kernels[s][j])
            h = k.shape[0] / 2.0
            im = ax.imshow(k, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest",
                           extent=(-h, h, -h, h))
            ax.set_xlim(-kmax / 2.0, kmax / 2.0)
            ax.set_ylim(-kmax / 2.0, kmax / 2.0)
            ax.set_aspect("equal")
            for spine in ax.spines.values():  # the largest kernel's extent, for scale
                spine.set_visible(True)
                spine.set_color("0.8")
            _title(ax, f"stage {s + 1}, level {j + 1}: {k.shape[0]}x{k.shape[1]}", cell, 8)
    if im is not None:
        _colorbar(fig, im, axes.ravel().tolist(), "mean weight")
    _suptitle(fig, title or "depthwise focal kernels, mean over channels, at true relative size (shared scale)")
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
    note: str = RANDOM_WEIGHTS_NOTE,
    label: str | None = None,
):
    """Input, then one overlay per named heat map (ERF, attention...), each with its colour bar.

    ``point`` = a (y, x) pixel marked with a cross on every panel, or one point per heat map. ``log`` shows
    ``log10`` of the maps. ``note`` is the stamp written when not ``meaningful``.
    """
    n = len(heatmaps)
    pw, ph = _panel_size(image)
    pw += 0.6
    fig = _figure(pw * (n + 1), ph + 1.3)
    axes = fig.subplots(1, n + 1, squeeze=False)[0]
    if point is None or isinstance(point[0], (int, float, np.number)):
        points = [point] * n
    else:
        points = list(point)
    axes[0].imshow(image)
    _title(axes[0], "input", pw)
    _off(axes[0])
    for ax, (name, m), p in zip(axes[1:], heatmaps.items(), points, strict=True):
        m = np.log10(np.asarray(m, dtype=np.float64) + 1e-12 * max(float(np.max(m)), 1e-30)) if log else m
        overlay_panel(fig, ax, image, m, name, pw, label=("log10 " if log else "") + (label or "weight"))
        if p is not None:
            ax.plot([p[1]], [p[0]], marker="+", color="red", markersize=14, markeredgewidth=2)
    if title:
        _suptitle(fig, title)
    if not meaningful:
        stamp(fig, note)
    return fig


def text_outside_figure(fig) -> list[str]:
    """Texts (titles, labels, stamps) that stick out of the figure canvas; empty when nothing is clipped."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    bad = []
    texts = list(fig.texts) + ([fig._suptitle] if fig._suptitle is not None else [])
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # only the ticks that are drawn (inside the view)
                texts += [tick.label1, tick.label2]
    for t in texts:
        if not t.get_visible() or not t.get_text().strip():
            continue
        bb = t.get_window_extent(renderer)
        if bb.x0 < -1 or bb.y0 < -1 or bb.x1 > W + 1 or bb.y1 > H + 1:
            bad.append(t.get_text())
    return bad
