"""Training memory: selective recomputation of the cheap parts vs whole-block checkpointing vs timm, side by side.

    PYTHONPATH=src python benchmarks/memory_selective.py --batch 8 --size 224 --rounds 5 --threads 2

Prints (1) the activation memory one block keeps alive after its training forward, per block type (stage), for
each mode and for timm's block; (2) the peak tensor memory of a whole training step (PyTorch's MemTracker) and the
median step time of each mode in interleaved rounds, with ratios to timm's peak and to our plain step time.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

import focalnet
from focalnet.utils.benchmark import (
    Candidate,
    build_timm_peer,
    make_step,
    step_peak_memory,
    summarize,
    time_interleaved,
)

MODES = {"plain": (False, False), "selective": (True, False), "selective+mlp": ("mlp", False),
         "block checkpointing": (False, True)}


def block_activation_mib(block: torch.nn.Module, x: torch.Tensor) -> float:
    """MiB of activations alive after one training forward of ``block`` (what backward will need + the output),
    minus the input."""
    from torch.distributed._tools.mem_tracker import MemTracker

    x = x.clone().requires_grad_()
    tracker = MemTracker()
    tracker.track_external(block, x)
    with tracker:
        y = block(x)
        snap = tracker.get_tracker_snapshot("current")
    del y
    by_dev = next(iter(snap.values()))
    act = next(int(v) for k, v in by_dev.items() if str(k).endswith("ACT"))
    return (act - x.numel() * x.element_size()) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="focalnet_tiny_srf")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-time", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    torch.manual_seed(0)
    ours = focalnet.create_model(args.model, drop_path_rate=0.0).train()
    timm_model = build_timm_peer(ours).train()
    models = {}
    for label, (sel, ckpt) in MODES.items():
        m = copy.deepcopy(ours)
        m.set_selective_recompute(sel)
        m.set_grad_checkpointing(ckpt)
        models[label] = m

    print("Activation memory one block keeps for its backward (MiB, beyond its input; MemTracker after the forward):\n")
    print("| block (stage, C, HxW) | " + " | ".join(MODES) + " | timm |")
    print("|---|" + "---|" * (len(MODES) + 1))
    for i in range(len(ours.layers)):
        c, hw = ours.embed_dims[i], args.size // 4 // 2**i
        x = torch.randn(args.batch, hw, hw, c)
        cells = []
        for label in MODES:
            blk = models[label].layers[i].blocks[0]
            if label == "block checkpointing":
                from torch.utils.checkpoint import checkpoint

                def run(t: torch.Tensor, blk=blk) -> torch.Tensor:
                    return checkpoint(blk, t, use_reentrant=False)

                wrapper = _Call(run, blk)
                cells.append(block_activation_mib(wrapper, x))
            else:
                cells.append(block_activation_mib(blk, x))
        tb = timm_model.layers[i].blocks[0]
        cells.append(block_activation_mib(tb, x.permute(0, 3, 1, 2).contiguous()))
        print(f"| FocalNetBlock, stage {i + 1} ({c}, {hw}x{hw}) | " + " | ".join(f"{v:.1f}" for v in cells) + " |")

    x = torch.randn(args.batch, 3, args.size, args.size)
    peaks = {label: step_peak_memory(m, x)["Total"] / 2**20 for label, m in models.items()}
    peaks["timm"] = step_peak_memory(timm_model, x)["Total"] / 2**20
    times = {}
    if not args.no_time:
        everyone = {**models, "timm": timm_model}
        steps = {label: make_step(Candidate(label, m, m), x, True) for label, m in everyone.items()}
        times = {r["label"]: r for r in summarize(time_interleaved(steps, rounds=args.rounds, warmup=1,
                                                                   batch=args.batch), baseline="plain")}
    print(f"\nTraining step, batch {args.batch}, {args.size}x{args.size}:\n")
    print("| mode | step peak (MiB) | peak / timm's | step median (s) | time / our plain step |")
    print("|---|---|---|---|---|")
    for label in [*MODES, "timm"]:
        t = times.get(label)
        print(f"| {label} | {peaks[label]:,.0f} | {peaks[label] / peaks['timm']:.2f} | "
              + (f"{t['median_s']:.2f} | {t['time_vs_ours']:.2f} |" if t else "– | – |"))
    print(f"\n({args.threads} threads, {args.rounds} interleaved rounds, {time.time() - t0:.0f} s)")


class _Call(torch.nn.Module):
    def __init__(self, fn, inner: torch.nn.Module) -> None:
        super().__init__()
        self.fn, self.inner = fn, inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


if __name__ == "__main__":
    main()
