"""Readable pictures of detections: translucent masks, class-coloured boxes, labels that never overlap, a legend.

Labels (``score``; the class is told by the colour and the legend) are placed greedily, highest score first, at the
first of several spots around their box (above, inside top, below, inside bottom) that overlaps no label placed
before and stays inside the picture; a label with no free spot is left out (its box and colour still show it, and
the legend counts it). Small pictures are enlarged first so the text is legible at 100 %. Drawn with Pillow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .segments import class_colours

__all__ = ["draw_detections", "legend_strip"]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _overlaps(a, b) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def legend_strip(entries: Sequence[tuple[Sequence[int], str]], width: int, font_size: int = 13):
    """A white PIL strip ``width`` px wide listing ``(colour, text)`` entries left to right (wrapping)."""
    from PIL import Image, ImageDraw

    font = _font(font_size)
    row = font_size + 8
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    items, x, y = [], 6, 4
    for rgb, text in entries:
        w = 22 + int(probe.textlength(text, font=font)) + 14
        if x + w > width and x > 6:
            x, y = 6, y + row
        items.append((x, y, rgb, text))
        x += w
    strip = Image.new("RGB", (width, y + row + 2), (255, 255, 255))
    d = ImageDraw.Draw(strip)
    for x, y, rgb, text in items:
        d.rectangle([x, y + 2, x + 14, y + 2 + font_size - 2], fill=tuple(int(c) for c in rgb), outline=(0, 0, 0))
        d.text((x + 20, y), text, fill=(0, 0, 0), font=font)
    return strip


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[int],
    scores: Sequence[float],
    class_names: Sequence[str],
    masks: np.ndarray | None = None,
    min_side: int = 384,
    title: str | None = None,
    legend: bool = True,
    return_label_boxes: bool = False,
):
    """An RGB uint8 picture of detections on ``image`` (H, W, 3).

    ``boxes`` (N, 4) xyxy pixels, ``labels`` (N,) indices into ``class_names``, ``scores`` (N,), ``masks`` (N, H, W)
    bool or ``None``. The picture is enlarged so its shorter side is at least ``min_side``. With
    ``return_label_boxes`` also the list of drawn label rectangles (for tests: they never overlap).
    """
    from PIL import Image, ImageDraw

    image = np.ascontiguousarray(image[..., :3])
    H, W = image.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = [int(c) for c in labels]
    scores = [float(s) for s in scores]
    pal = class_colours(max(len(class_names), 1))
    f = max(1, int(np.ceil(min_side / max(1, min(H, W)))))
    pic = image.astype(np.float32)
    if masks is not None and len(masks):
        for m, c in zip(np.asarray(masks, dtype=bool), labels):
            pic[m] = 0.55 * pic[m] + 0.45 * pal[c]
    canvas = Image.fromarray(pic.clip(0, 255).astype(np.uint8)).resize((W * f, H * f), Image.NEAREST)
    d = ImageDraw.Draw(canvas)
    font = _font(12 + 2 * (f > 1))
    order = np.argsort(-np.asarray(scores)) if scores else []
    for i in order:
        x0, y0, x1, y1 = (boxes[i] * f).tolist()
        d.rectangle([x0, y0, x1, y1], outline=tuple(int(v) for v in pal[labels[i]]), width=2)
    placed = []
    for i in order:
        x0, y0, x1, y1 = (boxes[i] * f).tolist()
        text = f"{scores[i]:.2f}"
        tw, th = int(d.textlength(text, font=font)) + 6, font.size + 4 if hasattr(font, "size") else 14
        spots = [(x0, y0 - th), (x0, y0 + 1), (x0, y1 + 1), (x0, y1 - th), (x1 - tw, y0 - th), (x1 - tw, y1 + 1)]
        for sx, sy in spots:
            sx = min(max(0.0, sx), W * f - tw)
            rect = (sx, sy, sx + tw, sy + th)
            if sy < 0 or sy + th > H * f or any(_overlaps(rect, r) for r in placed):
                continue
            placed.append(rect)
            d.rectangle(rect, fill=tuple(int(v) for v in pal[labels[i]]))
            lum = 0.299 * pal[labels[i]][0] + 0.587 * pal[labels[i]][1] + 0.114 * pal[labels[i]][2]
            d.text((sx + 3, sy + 1), text, fill=(0, 0, 0) if lum > 140 else (255, 255, 255), font=font)
            break
    parts = [canvas]
    if title:
        parts.insert(0, _title_strip(title, canvas.width))
    if legend:
        present = sorted(set(labels))
        entries = [(pal[c], f"{class_names[c]} x{labels.count(c)}") for c in present] or [((255, 255, 255),
                                                                                           "no detections")]
        parts.append(legend_strip(entries, canvas.width))
    out = Image.new("RGB", (canvas.width, sum(p.height for p in parts)), (255, 255, 255))
    y = 0
    for p in parts:
        out.paste(p, (0, y))
        y += p.height
    arr = np.asarray(out)
    return (arr, placed) if return_label_boxes else arr


def _title_strip(text: str, width: int, font_size: int = 14):
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, font_size + 10), (255, 255, 255))
    ImageDraw.Draw(strip).text((6, 4), text, fill=(0, 0, 0), font=_font(font_size))
    return strip
