"""Mask2Former-FocalNet-T inference on CPU at 512x512: images/s and peak memory, next to Mask2Former-Swin-T.

Both models are Hugging Face's ``Mask2FormerForUniversalSegmentation`` with the paper's head (6 deformable
pixel-decoder layers, 9 masked-attention decoder layers, hidden 256, 100 queries, 150 classes as ADE20K); only
the encoder differs: ours is ``focalnet_tiny_srf`` (windows 9 as the segmentation recipes) through
``focalnet.seg.build_mask2former``, the peer is HF's own Swin-T (``SwinConfig`` defaults: embed 96, depths
2/2/6/2, window 7), the backbone of the paper's Mask2Former-Swin-T. Random weights (speed does not depend on
them). Timing: interleaved rounds (a burst of load elsewhere hits both alike), medians, forward + HF's semantic
post-processing excluded. Memory: peak bytes of live tensors during one forward (PyTorch's ``MemTracker``),
split into parameters and the rest.

    PYTHONPATH=src python benchmarks/bench_mask2former.py --size 512 --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse

import torch


def _ours(num_classes: int) -> torch.nn.Module:
    from focalnet.backbones import FocalNetBackbone
    from focalnet.seg.mask2former import build_mask2former

    bb = FocalNetBackbone.from_name("focalnet_tiny_srf", focal_windows=9)
    return build_mask2former(bb, num_classes).hf


def _swin(num_classes: int) -> torch.nn.Module:
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    from focalnet.seg.mask2former import PaperSettings

    sw = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                    out_features=["stage1", "stage2", "stage3", "stage4"])
    return Mask2FormerForUniversalSegmentation(Mask2FormerConfig(backbone_config=sw, num_labels=num_classes,
                                                                 **PaperSettings))


def _peak_forward(model: torch.nn.Module, x: torch.Tensor) -> dict[str, int]:
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model, x)
    with tracker, torch.no_grad():
        model(pixel_values=x)
    snap = next(iter(tracker.get_tracker_snapshot("peak").values()))
    return {str(k).split(".")[-1]: int(v) for k, v in snap.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes", type=int, default=150)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    from focalnet.utils.benchmark import format_table, summarize, time_interleaved

    models = {"ours": _ours(a.classes).eval(), "swin_t": _swin(a.classes).eval()}
    x = torch.randn(a.batch, 3, a.size, a.size)

    def step(m):
        def run():
            with torch.no_grad():
                m(pixel_values=x)
        return run

    rows = summarize(time_interleaved({k: step(m) for k, m in models.items()}, rounds=a.rounds, warmup=a.warmup,
                                      batch=a.batch))
    print(f"Mask2Former inference, fp32 CPU, {a.threads} threads, batch {a.batch} at {a.size}x{a.size}, "
          f"{a.rounds} rounds\n")
    print(format_table(rows))
    print("\n" + ", ".join(f"{r['label']}: {a.batch / r['median_s']:.3f} images/s" for r in rows))
    print("\n| model | params (M) | backbone params (M) | peak memory, forward (MiB) | of which activations (MiB) |")
    print("|---|---|---|---|---|")
    for k, m in models.items():
        mem = _peak_forward(m, x)
        params = sum(t.numel() for t in m.parameters())
        bb = sum(t.numel() for t in m.model.pixel_level_module.encoder.parameters())
        total = mem.get("Total", 0) / 2**20
        act = total - mem.get("PARAM", 0) / 2**20 - mem.get("BUFFER", 0) / 2**20
        print(f"| {k} | {params / 1e6:.2f} | {bb / 1e6:.2f} | {total:.0f} | {act:.0f} |")


if __name__ == "__main__":
    main()
