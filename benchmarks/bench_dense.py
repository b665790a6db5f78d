"""Forward time vs input size: FocalNet-T (ours), timm's Swin-T and ViT-S/16, batch 1, fp32 CPU, random weights.

    PYTHONPATH=src python benchmarks/bench_dense.py --sizes 224,448,672,896,1024 --rounds 3 --threads 2

At each size the three models run in interleaved rounds (medians). The exponent ``a`` of ``time ~ pixels^a`` is
fitted by least squares on log-log over all sizes (a = 1: linear in pixels; 2: quadratic, global attention).
FocalNet is timed through ``forward_features`` (the dense-prediction trunk); the peers through theirs.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import focalnet
from focalnet.utils.benchmark import time_interleaved


def build(name: str, size: int):
    import timm

    if name == "focalnet_tiny_srf":
        return focalnet.create_model(name, drop_path_rate=0.0).eval()
    kw = {"img_size": size, "pretrained": False, "num_classes": 0}
    if name.startswith("swin"):
        kw["strict_img_size"] = False
    return timm.create_model(name, **kw).eval()


def fit_exponent(pixels: list[float], times: list[float]) -> float:
    xs, ys = [math.log(p) for p in pixels], [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="224,448,672,896,1024")
    p.add_argument("--models", default="focalnet_tiny_srf,swin_tiny_patch4_window7_224,vit_small_patch16_224")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    names = args.models.split(",")
    t0 = time.time()
    table: dict[str, dict[int, float | None]] = {n: {} for n in names}
    for size in sizes:
        x = torch.randn(1, 3, size, size)
        steps = {}
        for n in names:
            try:
                m = build(n, size)
                with torch.no_grad():
                    m.forward_features(x)
            except Exception as e:  # a peer that cannot take this size
                print(f"{n} @ {size}: {type(e).__name__}: {str(e)[:120]}", flush=True)
                table[n][size] = None
                continue

            def step(m=m, x=x) -> None:
                with torch.no_grad():
                    m.forward_features(x)

            steps[n] = step
        for r in time_interleaved(steps, rounds=args.rounds, warmup=0, batch=1):
            table[r.label][size] = r.median
        print(f"{size}: " + ", ".join(f"{n} {table[n][size]:.3f}s" if table[n][size] else f"{n} n/a"
                                      for n in names), flush=True)
    print("\n| model | " + " | ".join(f"{s}² (s)" for s in sizes) + " | exponent a (time ~ pixels^a) |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for n in names:
        ok = [(s * s, t) for s, t in table[n].items() if t]
        a = fit_exponent([p for p, _ in ok], [t for _, t in ok]) if len(ok) >= 2 else float("nan")
        cells = " | ".join(f"{table[n][s]:.3f}" if table[n].get(s) else "n/a" for s in sizes)
        print(f"| {n} | {cells} | {a:.2f} |")
    print(f"\n(batch 1, fp32, {args.threads} threads, {args.rounds} interleaved rounds per size, medians; "
          f"{time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
