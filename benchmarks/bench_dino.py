"""DINO-FocalNet inference on CPU at 800x1333: images/s, peak memory and where the time goes.

Two structures, random weights (speed does not depend on them): FocalNet-T (``focalnet_tiny_srf``, the 4-scale
recipe: stages 1-3 + one extra level) and the released FocalNet-L fl4 5-scale detector (stages 0-3 + one extra,
900 queries, 6+6 layers). Timing: median of the timed forwards after one warm-up. Time split: wall time inside
every multi-scale deformable attention (encoder self- and decoder cross-attention), inside the backbone, and the
rest, from forward hooks during the timed forwards. Peer: the deformable-attention kernel of Hugging Face
transformers on the encoder's real shapes, next to ours (same inputs, outputs compared first). Memory: peak bytes
of live tensors during one forward (PyTorch's ``MemTracker``), which is also the warm-up.

    PYTHONPATH=src python benchmarks/bench_dino.py --rounds 1 --threads 2
    PYTHONPATH=src python benchmarks/bench_dino.py --models tiny --rounds 3      # quicker
"""

from __future__ import annotations

import argparse
import time

import torch


def build(which: str):
    from focalnet.det.dino import DINO, DinoConfig, build_backbone

    if which == "tiny":
        cfg = DinoConfig(backbone="focalnet_tiny_srf", return_interm_indices=[1, 2, 3], num_feature_levels=4)
        bb = build_backbone({"name": "focalnet_tiny_srf", "out_indices": (1, 2, 3)})
    else:
        from focalnet.det.dino import backbone_kwargs_from_args

        cfg = DinoConfig()  # the released 5-scale L-fl4 structure
        bb = build_backbone(backbone_kwargs_from_args(cfg.to_dict()))
    return DINO(bb, cfg).eval()


def time_split(model, x) -> dict[str, float]:
    from focalnet.det.dino import MSDeformAttn

    spent = {"deform_attn": 0.0, "backbone": 0.0}
    starts: dict[int, float] = {}

    def pre(m, _args):
        starts[id(m)] = time.perf_counter()

    def post(key):
        def hook(m, _args, _out):
            spent[key] += time.perf_counter() - starts.pop(id(m))
        return hook

    handles = [model.backbone.register_forward_pre_hook(pre), model.backbone.register_forward_hook(post("backbone"))]
    for m in model.modules():
        if isinstance(m, MSDeformAttn):
            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post("deform_attn"))]
    t = time.perf_counter()
    with torch.no_grad():
        model(x)
    total = time.perf_counter() - t
    for h in handles:
        h.remove()
    return {"total_s": total, **{k: v / total for k, v in spent.items()}}


def peak_forward(model, x) -> dict[str, float]:
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model, x)
    with tracker, torch.no_grad():
        model(x)
    snap = next(iter(tracker.get_tracker_snapshot("peak").values()))
    mem = {str(k).split(".")[-1]: int(v) for k, v in snap.items()}
    total = mem.get("Total", 0) / 2**20
    return {"total": total, "params": mem.get("PARAM", 0) / 2**20}


def kernel_peer(model, x, rounds: int) -> list[dict]:
    """Our ms_deform_attn vs transformers' MultiScaleDeformableAttention on the encoder's shapes."""
    from focalnet.det.dino.ops import _transformers_kernel, ms_deform_attn
    from focalnet.utils.benchmark import summarize, time_interleaved

    feats = model.backbone(x)
    shapes = [tuple(f.shape[-2:]) for f in feats]
    h, w = shapes[-1]
    for _ in range(model.config.num_feature_levels - len(shapes)):
        h, w = (h + 1) // 2, (w + 1) // 2
        shapes.append((h, w))
    S = sum(a * b for a, b in shapes)
    M, D, L, P = 8, 32, len(shapes), 4
    value = torch.randn(1, S, M, D)
    loc = torch.rand(1, S, M, L, P, 2)
    wts = torch.rand(1, S, M, L, P).softmax(-1)
    hf = _transformers_kernel()
    torch.testing.assert_close(hf(value, shapes, loc, wts), ms_deform_attn(value, shapes, loc, wts))
    steps = {"ours": lambda: ms_deform_attn(value, shapes, loc, wts),
             "transformers": lambda: hf(value, shapes, loc, wts)}
    with torch.no_grad():
        return summarize(time_interleaved(steps, rounds=rounds, warmup=1, batch=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["tiny", "large"], choices=["tiny", "large"])
    p.add_argument("--height", type=int, default=800)
    p.add_argument("--width", type=int, default=1333)
    p.add_argument("--rounds", type=int, default=2, help="timed forwards per model (time split: their mean)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn(1, 3, a.height, a.width)
    print(f"DINO inference, fp32 CPU, {a.threads} threads, batch 1 at {a.height}x{a.width}, {a.rounds} timed "
          "forward(s) per model after one warm-up\n")
    print("| model | params (M) | median s / image | images/s | peak memory, forward (MiB) | of which parameters "
          "(MiB) | deformable attention share | backbone share |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    first = None
    for k in a.models:
        m = build(k)
        first = first or m
        mem = peak_forward(m, x)  # also the warm-up
        splits = [time_split(m, x) for _ in range(a.rounds)]
        med = sorted(s["total_s"] for s in splits)[len(splits) // 2]
        da = sum(s["deform_attn"] for s in splits) / len(splits)
        bb = sum(s["backbone"] for s in splits) / len(splits)
        n = sum(t.numel() for t in m.parameters()) / 1e6
        print(f"| dino_focalnet_{k} | {n:.1f} | {med:.2f} | {1 / med:.3f} | {mem['total']:.0f} | {mem['params']:.0f} | "
              f"{da:.1%} | {bb:.1%} |", flush=True)
        if m is not first:
            del m
    from focalnet.utils.benchmark import format_table

    print(f"\nDeformable-attention kernel on the encoder's shapes of dino_focalnet_{a.models[0]} "
          "(peer: transformers)\n")
    with torch.no_grad():
        print(format_table(kernel_peer(first, x, max(a.rounds, 3))), flush=True)


if __name__ == "__main__":
    main()
