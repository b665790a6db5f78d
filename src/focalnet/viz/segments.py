"""Pictures of semantic and panoptic segmentations: colours blended over the photo, outlines, and a legend.

Semantic maps get one colour per class; panoptic maps one colour per segment (stuff classes keep their class
colour, each thing instance gets its own shade of its class colour, so two horses side by side stay apart). The
legend lists what is in the picture: class names, and for things the instance number and score.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

__all__ = ["class_colours", "draw_semantic", "draw_panoptic"]


def class_colours(n: int) -> np.ndarray:
    """(n, 3) uint8 colours, well apart in hue, the same every time."""
    golden = 0.618033988749895
    out = []
    for i in range(n):
        h = (i * golden) % 1.0
        s, v = (0.75, 0.95) if i % 2 == 0 else (0.55, 0.8)
        out.append([round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v)])
    return np.asarray(out, np.uint8).reshape(n, 3)


def _shade(rgb: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th instance shade of a class colour (k = 0 is the colour itself)."""
    if k == 0:
        return rgb
    h, s, v = colorsys.rgb_to_hsv(*(rgb / 255.0))
    h = (h + 0.07 * ((k + 1) // 2) * (1 if k % 2 else -1)) % 1.0
    v = min(1.0, max(0.35, v - 0.12 * (k % 3)))
    return np.asarray([round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v)], np.uint8)


def _outline(ids: np.ndarray) -> np.ndarray:
    edge = np.zeros(ids.shape, bool)
    edge[:-1] |= ids[:-1] != ids[1:]
    edge[1:] |= ids[:-1] != ids[1:]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edge[:, 1:] |= ids[:, :-1] != ids[:, 1:]
    return edge


def _compose(image: np.ndarray, colour_map: np.ndarray, painted: np.ndarray, ids: np.ndarray,
             entries: list[tuple[np.ndarray, str]], alpha: float, title: str | None):
    from PIL import Image, ImageDraw, ImageFont

    img = image.astype(np.float32)
    blend = np.where(painted[..., None], img * (1 - alpha) + colour_map * alpha, img)
    blend[_outline(ids)] = 255
    pic = Image.fromarray(blend.clip(0, 255).astype(np.uint8))
    font = ImageFont.load_default()
    row = 14
    if min(pic.size) < 256:  # small images: enlarge so the legend text fits beside them
        f = int(np.ceil(256 / min(pic.size)))
        pic = pic.resize((pic.width * f, pic.height * f), Image.NEAREST)
    widths = [int(ImageDraw.Draw(pic).textlength(t, font=font)) for _, t in entries] or [0]
    legend_w = 28 + max(widths + [60])
    top = row + 6 if title else 4
    height = max(pic.height, top + row * len(entries) + 6)
    canvas = Image.new("RGB", (pic.width + legend_w, height), (255, 255, 255))
    canvas.paste(pic, (0, 0))
    d = ImageDraw.Draw(canvas)
    if title:
        d.text((pic.width + 6, 4), title, fill=(0, 0, 0), font=font)
    for k, (rgb, text) in enumerate(entries):
        y = top + k * row
        d.rectangle([pic.width + 6, y + 2, pic.width + 18, y + 12], fill=tuple(int(c) for c in rgb),
                    outline=(0, 0, 0))
        d.text((pic.width + 24, y + 1), text, fill=(0, 0, 0), font=font)
    return canvas


def draw_semantic(image: np.ndarray, labels: np.ndarray, class_names: Sequence[str], alpha: float = 0.5,
                  ignore_index: int = 255, title: str | None = None):
    """PIL image: ``labels`` (H, W) class indices over ``image`` (H, W, 3 uint8), with a legend of the classes
    present (largest first, with their share of the picture)."""
    pal = class_colours(len(class_names))
    labels = np.asarray(labels)
    painted = labels != ignore_index
    colour_map = pal[np.where(painted, labels, 0)].astype(np.float32)
    present = np.bincount(labels[painted].reshape(-1), minlength=len(class_names)) / labels.size
    entries = [(pal[c], f"{class_names[c]} {present[c]:.0%}") for c in np.argsort(-present) if present[c] > 0]
    return _compose(image, colour_map, painted, labels, entries, alpha, title)


def draw_panoptic(image: np.ndarray, segmentation: np.ndarray, segments_info: Sequence[dict],
                  class_names: Sequence[str], thing_classes: Sequence[int], alpha: float = 0.55,
                  title: str | None = None):
    """PIL image: ``segmentation`` (H, W) segment ids (0 = none) with ``segments_info`` entries
    ``{"id", "label_id", "score"?}`` over ``image``; the legend lists stuff by class and things as
    ``name #k (score)``."""
    pal = class_colours(len(class_names))
    seg = np.asarray(segmentation)
    colour_map = np.zeros((*seg.shape, 3), np.float32)
    things = set(int(c) for c in thing_classes)
    count: dict[int, int] = {}
    entries = []
    for s in sorted(segments_info, key=lambda s: (s["label_id"] in things, s["label_id"], s["id"])):
        c = int(s["label_id"])
        if c in things:
            k = count.get(c, 0)
            count[c] = k + 1
            rgb = _shade(pal[c], k)
            text = f"{class_names[c]} #{k + 1}" + (f" ({s['score']:.2f})" if "score" in s else "")
        else:
            rgb, text = pal[c], class_names[c]
        colour_map[seg == s["id"]] = rgb
        entries.append((rgb, text))
    return _compose(image, colour_map, seg > 0, seg, entries, alpha, title)
