"""Regenerate the visualization figures in docs/figures/ and the ERF table in docs/visualization.md.

    PYTHONPATH=src python docs/figures/make_viz_figures.py            # ~3-6 CPU minutes on 2 cores
    PYTHONPATH=src python docs/figures/make_viz_figures.py --dense RUN/last.pt   # backbone of a detector run

No trained FocalNet weights can be downloaded in the environment these figures were made in, so every network
here is randomly initialised (seed 0) and every figure says so. The modulation/gating figures therefore show only
how the maps are laid out; the kernel sizes and the effective-receptive-field growth are properties of the
architecture and do hold at initialisation. Photos: scikit-image's chelsea, astronaut and coffee. Figures are
saved in full colour (no palette reduction, which posterised the maps). The demo screenshot (viz_web_demo.png) is
taken by the browser test: ``FOCALNET_SAVE_SCREENSHOT=1 pytest tests/test_viz_web.py -k browser``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from skimage import data

import focalnet
from focalnet.viz import RANDOM_WEIGHTS_NOTE, compute_maps, focal_kernels, prepare_image
from focalnet.viz.erf import effective_receptive_field, erf_radius
from focalnet.viz.figures import (
    _colorbar,
    _figure,
    _off,
    _suptitle,
    _title,
    gates_figure,
    kernels_figure,
    overlay_panel,
    save_figure,
    stamp,
)

OUT = Path(__file__).resolve().parent
PHOTOS = {"chelsea": data.chelsea(), "astronaut": data.astronaut(), "coffee": data.coffee()}
DPI = 80


def model(name: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return focalnet.create_model(name, **kw).eval()


def modulation_grid(name: str) -> None:
    """Rows = photos; columns = input and the modulator-norm overlay of the last block of each stage."""
    net = model(name)
    rows = [compute_maps(net, img, size=224) for img in PHOTOS.values()]
    cols = 1 + len(rows[0].blocks)
    pw = 3.4
    fig = _figure(pw * cols, 2.4 * len(rows) + 1.0)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for i, maps in enumerate(rows):
        axes[i, 0].imshow(maps.image)
        _title(axes[i, 0], "input", pw)
        _off(axes[i, 0])
        for j, b in enumerate(maps.blocks, start=1):
            overlay_panel(fig, axes[i, j], maps.image, b.modulator_norm_up, f"stage {b.stage + 1}: |h(ctx_all)|", pw,
                          label="|modulator|")
    _suptitle(fig, f"{name}: modulator L2 norm over channels, last block of each stage", 11)
    stamp(fig)
    save_figure(fig, OUT / "viz_modulation.png", dpi=DPI)


def erf_study() -> str:
    """ERF radii of the stage-2/3 modulator (centre token) of FocalNet-T with 1..4 focal levels; mean of 3 seeds."""
    x = torch.cat([prepare_image(img, size=224).tensor[..., :224, :224] for img in PHOTOS.values()])
    lines = [
        "| focal levels (kernels) | stage 2: 50 % / 90 % of the mass | stage 3: 50 % / 90 % |",
        "|---|---|---|",
    ]
    maps_for_fig = {}
    for levels in (1, 2, 3, 4):
        radii = np.zeros((3, 2, 2))
        for seed in range(3):
            net = model("focalnet_tiny_srf", seed=seed, focal_levels=levels)
            for i, s in enumerate((1, 2)):
                erf, centre = effective_receptive_field(net, x, stage=s, target="modulator")
                radii[seed, i] = erf_radius(erf, centre, 0.5), erf_radius(erf, centre, 0.9)
                if seed == 0 and s == 1 and levels in (1, 4):
                    maps_for_fig[levels] = (erf.numpy(), centre)
        kernels = ", ".join(str(3 + 2 * k) for k in range(levels))
        m = radii.mean(0)
        lines.append(f"| {levels} ({kernels}) | {m[0, 0]:.0f} / {m[0, 1]:.0f} px | {m[1, 0]:.0f} / {m[1, 1]:.0f} px |")
        print(lines[-1], file=sys.stderr)

    disp = prepare_image(PHOTOS["chelsea"], size=224).display[:224, :224]
    fig = _figure(3.2 * 3, 3.6)
    axes = fig.subplots(1, 3)
    axes[0].imshow(disp)
    axes[0].set_title("input (crop)", fontsize=10)
    for ax, (levels, (erf, c)) in zip(axes[1:], sorted(maps_for_fig.items()), strict=True):
        im = ax.imshow(np.log10(erf + 1e-12), cmap="viridis")
        _colorbar(fig, im, ax, "log10 share of the gradient")
        ax.plot([c[1]], [c[0]], marker="+", color="red", markersize=12, markeredgewidth=2)
        _title(ax, f"stage 2, {levels} focal level{'s' if levels > 1 else ''} (log)", 3.2)
    for ax in axes:
        _off(ax)
    _suptitle(fig, "gradient ERF of the centre token's modulator, mean over 3 photos (FocalNet-T, initialisation)")
    stamp(fig)
    save_figure(fig, OUT / "viz_erf.png", dpi=DPI)
    return "\n".join(lines)


def attention_figure() -> None:
    """Focal Transformer-T: attention of one query over its fine and pooled keys, every stage (coffee)."""
    from focalnet.viz.attention import attention_map
    from focalnet.viz.figures import heatmap_figure

    net = model("focal_transformer_tiny")
    prepared = prepare_image(PHOTOS["coffee"], size=224, square=True)
    heat, points = {}, []
    for s in range(4):
        att = attention_map(net, prepared.tensor, which=(s, -1), query=(0.35, 0.5), image_size=prepared.size)
        heat[f"stage {s + 1}, last block"] = att.image
        points.append(att.query_pixel)
    fig = heatmap_figure(prepared.display, heat, point=points, meaningful=False,
                         title="focal_transformer_tiny: attention of the query (+) over its fine and pooled keys")
    save_figure(fig, OUT / "viz_attention.png", dpi=DPI)


def vit_comparison() -> None:
    """The blog's comparison: FocalNet-T modulation beside ViT-S attention (CLS + rollout), same image, one command."""
    import subprocess
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        Image.fromarray(PHOTOS["astronaut"]).save(f"{tmp}/astronaut.png")
        subprocess.run([sys.executable, "-m", "focalnet", "visualize", f"{tmp}/astronaut.png", "--model",
                        "focalnet_tiny_srf", "--compare-vit", "vit_small_patch16_224", "--stages", "4",
                        "--out", tmp], check=True)
        (OUT / "viz_vs_vit.png").write_bytes(Path(f"{tmp}/astronaut_vs_vit.png").read_bytes())


def dense_figure(checkpoint: str, image: str) -> None:
    """Modulation maps of the backbone inside the synthetic Mask R-CNN demo checkpoint, on a held-out image."""
    from focalnet.viz.dense import backbone_from_checkpoint
    from focalnet.viz.figures import modulation_figure

    dense = backbone_from_checkpoint(checkpoint)
    maps = compute_maps(dense.model, image, size=256, weights=checkpoint)
    fig = modulation_figure(maps, title=f"{dense.description}: modulator L2 norm on a held-out SYNTHETIC image "
                            "(demo detector trained from scratch on synthetic data; not COCO)")
    save_figure(fig, OUT / "viz_dense_backbone.png", dpi=DPI)


def main() -> None:
    if "--dense" in sys.argv:
        i = sys.argv.index("--dense")
        dense_figure(sys.argv[i + 1], sys.argv[i + 2])
        return
    if "--erf-only" in sys.argv:
        print(erf_study())
        return
    if "--attention-only" in sys.argv:
        attention_figure()
        return
    if "--vit-only" in sys.argv:
        vit_comparison()
        return
    modulation_grid("focalnet_tiny_srf")
    net = model("focalnet_tiny_lrf")
    maps = compute_maps(net, PHOTOS["coffee"], which=[(3, -1), (1, -1)], size=224)
    save_figure(gates_figure(maps, title=f"focalnet_tiny_lrf gating maps over the image ({RANDOM_WEIGHTS_NOTE})"),
                OUT / "viz_gates.png", dpi=DPI)
    save_figure(kernels_figure(focal_kernels(net), meaningful=False,
                               title="focalnet_tiny_lrf depthwise kernels, mean over channels (initialisation), "
                               "true relative size, shared scale"),
                OUT / "viz_kernels.png", dpi=DPI)
    attention_figure()
    vit_comparison()
    print(erf_study())
    for p in sorted(OUT.glob("viz_*.png")):
        print(f"{p.name}: {p.stat().st_size / 1024:.0f} KB", file=sys.stderr)


if __name__ == "__main__":
    main()
