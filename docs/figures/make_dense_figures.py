"""Regenerate docs/figures/detection_synthetic_predictions.png and segmentation_synthetic_demo.png.

    PYTHONPATH=src python docs/figures/make_dense_figures.py --det runs/detect/synthetic_demo/last.pt \
        data/synthetic_coco
    PYTHONPATH=src python docs/figures/make_dense_figures.py --seg runs/seg_demo/latest.pt data/synthetic_ade

Both demos are trained from scratch on the SYNTHETIC offline sets (see docs/detection.md, docs/segmentation.md);
the figures say so. Detection panels: masks, class-coloured boxes, score labels placed so they never overlap, one
shared legend. Segmentation: photo | ground truth | prediction, titled columns, a colour legend of the classes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent


def detection(ckpt: str, root: str, ids=(1, 2, 3, 5)) -> None:
    from PIL import Image

    from focalnet.det.evaluation import predict
    from focalnet.engine.run import load_run
    from focalnet.viz.detections import _title_strip, draw_detections, legend_strip
    from focalnet.viz.segments import class_colours

    run = load_run(ckpt, device="cpu")
    model = run.model
    names = [c["name"] for c in run.task.categories]
    panels = []
    for i in ids:
        img = np.asarray(Image.open(Path(root) / "images" / "val" / f"{i:06d}.png").convert("RGB"))
        pred = predict(model, img, score_thresh=0.5)
        n = len(pred["boxes"])
        pic = draw_detections(img, pred["boxes"].numpy(), [int(v) - 1 for v in pred["labels"]],
                              pred["scores"].tolist(), names, masks=pred["masks"].numpy() if "masks" in pred else None,
                              min_side=320, legend=False, title=f"held-out image {i}: {n} detection{'s' * (n != 1)}")
        panels.append(Image.fromarray(pic))
    w, h, gap = max(p.width for p in panels), max(p.height for p in panels), 10
    cols = 2
    rows = -(-len(panels) // cols)
    grid = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), (255, 255, 255))
    for k, p in enumerate(panels):
        grid.paste(p, ((k % cols) * (w + gap), (k // cols) * (h + gap)))
    pal = class_colours(len(names))
    title = _title_strip("SYNTHETIC demo: Mask R-CNN + FocalNet trained from scratch (160 steps), score >= 0.5; "
                         "numbers on boxes are scores", grid.width)
    legend = legend_strip([(pal[c], n) for c, n in enumerate(names)], grid.width)
    out = Image.new("RGB", (grid.width, title.height + grid.height + legend.height), (255, 255, 255))
    out.paste(title, (0, 0))
    out.paste(grid, (0, title.height))
    out.paste(legend, (0, title.height + grid.height))
    out.save(OUT / "detection_synthetic_predictions.png", optimize=True)


def segmentation(ckpt: str, root: str, n: int = 4) -> None:
    from matplotlib.patches import Patch
    from PIL import Image

    from focalnet.engine.run import load_run
    from focalnet.seg.evaluation import predict
    from focalnet.viz.figures import _figure, _off, _suptitle, save_figure
    from focalnet.viz.segments import class_colours

    run = load_run(ckpt, device="cpu")
    model, cfg = run.model, run.cfg
    names = list(cfg.data.class_names)
    pal = class_colours(len(names))
    pal[0] = (0, 0, 0)  # background: left unpainted below
    imgs = sorted((Path(root) / "images" / "validation").glob("*.jpg"))[:n]
    fig = _figure(3 * 3.0, 3.0 * len(imgs) + 1.2)
    axes = fig.subplots(len(imgs), 3, squeeze=False)

    def paint(img, lab):
        out = img.astype(np.float32)
        m = lab > 0
        out[m] = 0.45 * out[m] + 0.55 * pal[lab[m]]
        return out.clip(0, 255).astype(np.uint8)

    for r, p in enumerate(imgs):
        img = np.asarray(Image.open(p).convert("RGB"))
        gt = np.asarray(Image.open(Path(root) / "annotations" / "validation" / f"{p.stem}.png"))
        pred = predict(model, img, cfg).argmax(0).numpy()
        for c, (pic, title) in enumerate(((img, "photo"), (paint(img, gt), "ground truth"),
                                          (paint(img, pred), "prediction (single scale)"))):
            axes[r, c].imshow(pic)
            _off(axes[r, c])
            if r == 0:
                axes[r, c].set_title(title, fontsize=11)
        axes[r, 0].set_ylabel(p.stem, fontsize=8)
    handles = [Patch(facecolor=np.asarray(pal[c]) / 255, edgecolor="black", label=names[c]) for c in
               range(1, len(names))] + [Patch(facecolor="white", edgecolor="black", label=f"{names[0]} (unpainted)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=10)
    _suptitle(fig, "SYNTHETIC demo: UPerNet + FocalNet trained from scratch (600 iterations), held-out images", 11)
    save_figure(fig, OUT / "segmentation_synthetic_demo.png", dpi=72)


if __name__ == "__main__":
    if "--det" in sys.argv:
        i = sys.argv.index("--det")
        detection(sys.argv[i + 1], sys.argv[i + 2])
    if "--seg" in sys.argv:
        i = sys.argv.index("--seg")
        segmentation(sys.argv[i + 1], sys.argv[i + 2])
