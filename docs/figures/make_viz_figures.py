"""Regenerate the visualization figures in docs/figures/ and the ERF table in docs/visualization.md.

    PYTHONPATH=src python docs/figures/make_viz_figures.py            # ~3-6 CPU minutes on 2 cores; needs chromium

No trained FocalNet weights can be downloaded in the environment these figures were made in, so every network
here is randomly initialised (seed 0) and every figure says so. The modulation/gating figures therefore show only
how the maps are laid out; the kernel sizes and the effective-receptive-field growth are properties of the
architecture and do hold at initialisation. Photos: scikit-image's chelsea, astronaut and coffee.
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
from focalnet.viz.figures import _figure, _off, gates_figure, kernels_figure, overlay, save_figure, stamp

OUT = Path(__file__).resolve().parent
PHOTOS = {"chelsea": data.chelsea(), "astronaut": data.astronaut(), "coffee": data.coffee()}
DPI = 60


def model(name: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return focalnet.create_model(name, **kw).eval()


def modulation_grid(name: str) -> None:
    """Rows = photos; columns = input and the modulator-norm overlay of the last block of each stage."""
    net = model(name)
    rows = [compute_maps(net, img, size=224) for img in PHOTOS.values()]
    cols = 1 + len(rows[0].blocks)
    fig = _figure(2.9 * cols, 2.2 * len(rows) + 0.8)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for i, maps in enumerate(rows):
        axes[i, 0].imshow(maps.image)
        for j, b in enumerate(maps.blocks, start=1):
            axes[i, j].imshow(overlay(maps.image, b.modulator_norm_up))
            if i == 0:
                axes[i, j].set_title(f"stage {b.stage + 1}: |h(ctx_all)|", fontsize=10)
        for ax in axes[i]:
            _off(ax)
    axes[0, 0].set_title("input", fontsize=10)
    fig.suptitle(f"{name}: modulator L2 norm over channels, last block of each stage", fontsize=11)
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
        ax.imshow(np.log10(erf + 1e-12), cmap="viridis")
        ax.plot([c[1]], [c[0]], marker="+", color="red", markersize=12, markeredgewidth=2)
        ax.set_title(f"stage 2, {levels} focal level{'s' if levels > 1 else ''} (log)", fontsize=9)
    for ax in axes:
        _off(ax)
    fig.suptitle("gradient ERF of the centre token's modulator, mean over 3 photos (FocalNet-T, initialisation)",
                 fontsize=10)
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


def web_screenshot() -> None:
    """The local demo (focalnet serve) in headless Chromium after uploading chelsea."""
    import shutil
    import tempfile
    import threading

    from PIL import Image
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from focalnet.viz.web import DemoConfig, create_app

    srv = make_server("127.0.0.1", 0, create_app(DemoConfig(image_size=160)), threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        Image.fromarray(PHOTOS["chelsea"]).save(f"{tmp}/chelsea.png")
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"),
                                     args=["--no-sandbox", "--disable-gpu", "--headless"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(f"http://127.0.0.1:{srv.server_port}/")
        page.set_input_files("#image", f"{tmp}/chelsea.png")
        page.click("#submit")
        page.wait_for_selector("img.map.gate", timeout=300_000)
        page.screenshot(path=str(OUT / "viz_web_demo.png"), full_page=True)
        browser.close()
    srv.shutdown()


def shrink(path: Path) -> None:
    """Re-save a PNG with a 256-colour palette: the docs keep every figure under 500 KB."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def main() -> None:
    if "--erf-only" in sys.argv:
        print(erf_study())
        shrink(OUT / "viz_erf.png")
        return
    if "--attention-only" in sys.argv:
        attention_figure()
        shrink(OUT / "viz_attention.png")
        return
    if "--screenshot-only" in sys.argv:
        web_screenshot()
        shrink(OUT / "viz_web_demo.png")
        return
    modulation_grid("focalnet_tiny_srf")
    net = model("focalnet_tiny_lrf")
    maps = compute_maps(net, PHOTOS["coffee"], which=[(3, -1), (1, -1)], size=224)
    save_figure(gates_figure(maps, title=f"focalnet_tiny_lrf gating maps ({RANDOM_WEIGHTS_NOTE})"),
                OUT / "viz_gates.png", dpi=DPI)
    save_figure(kernels_figure(focal_kernels(net), meaningful=False,
                               title="focalnet_tiny_lrf depthwise kernels, mean over channels (initialisation)"),
                OUT / "viz_kernels.png", dpi=DPI)
    attention_figure()
    print(erf_study())
    web_screenshot()
    for p in sorted(OUT.glob("viz_*.png")):
        shrink(p)
        print(f"{p.name}: {p.stat().st_size / 1024:.0f} KB", file=sys.stderr)


if __name__ == "__main__":
    main()
