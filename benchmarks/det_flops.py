"""Parameters and GFLOPs (multiply-adds) of the detectors on FocalNet-T next to the FocalNet README's figures.

Run (a few seconds, nothing is computed: models and input live on the ``meta`` device):

    PYTHONPATH=src python benchmarks/det_flops.py [--size 1280x800] [--variant lrf]

Counts follow mmdetection's ``get_flops.py``: one ``forward_dummy`` (backbone, FPN and heads; Cascade: 3 box heads on
1000 RoIs and 3 mask heads on 100; Sparse R-CNN: 6 stages on 300 proposals), counted by
``torch.utils.flop_counter`` (convolutions, matmuls, ``bmm``; FLOPs / 2 = multiply-adds, the README's "FLOPs").
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from focalnet.det.models import build_detector

README = {"cascade_mask_rcnn": (87.1, 751), "atss": (37.2, 220), "sparse_rcnn": (111.2, 178)}


def measure(arch: str, variant: str = "lrf", size: tuple[int, int] = (800, 1280)) -> tuple[float, float, float]:
    """(parameters in millions, GMACs of the whole forward_dummy, GMACs of backbone + FPN alone)."""
    levels = 3 if variant == "lrf" else 2
    with torch.device("meta"):
        model = build_detector(arch, f"focalnet_tiny_{variant}", 80, focal_windows=[11, 9, 9, 7],
                               focal_levels=[levels] * 4).eval()
    x = torch.zeros(1, 3, *size, device="meta")
    with FlopCounterMode(display=False) as total:
        model.forward_dummy(x)
    with FlopCounterMode(display=False) as body, torch.no_grad():
        model.backbone(x)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return params, total.get_total_flops() / 2e9, body.get_total_flops() / 2e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x800", help="W x H of the input (default 1280x800)")
    ap.add_argument("--variant", default="lrf", choices=("lrf", "srf"))
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    print(f"FocalNet-T ({args.variant}, windows [11, 9, 9, 7]), 80 classes, input {w}x{h}")
    print(f"{'detector':<20}{'params (M)':>12}{'README':>8}{'GFLOPs':>10}{'README':>8}{'backbone+FPN':>14}")
    for arch, (p_ref, f_ref) in README.items():
        p, f, b = measure(arch, args.variant, (h, w))
        print(f"{arch:<20}{p:>12.3f}{p_ref:>8.1f}{f:>10.1f}{f_ref:>8}{b:>14.1f}")


if __name__ == "__main__":
    main()
