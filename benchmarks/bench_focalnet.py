"""Our FocalNet vs timm's and Hugging Face transformers' FocalNet, side by side, same weights, one run.

Run (2 threads, fp32, CPU; about 5 minutes on a quiet 2-core machine):

    PYTHONPATH=src python benchmarks/bench_focalnet.py --model focalnet_tiny_srf --batch 8 --size 224 \\
        --threads 2 --backward --compare timm,hf --variants channels_last,bf16

Every candidate gets our random weights and its logits are compared with ours before anything is timed. The
candidates run in interleaved, rotating rounds; the tables give medians, inter-quartile ranges and each time
divided by ours (> 1: slower than ours). ``--profile`` adds a ``torch.profiler`` operator table of our forward;
``--layout`` times the depthwise focal convolutions in NCHW vs channels-last memory.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import focalnet
from focalnet.utils.benchmark import compare_speed, time_interleaved


def profile_ours(name: str, batch: int, size: int) -> str:
    """Self-CPU time per operator for one forward of our model (after a warm-up forward)."""
    from torch.profiler import ProfilerActivity, profile

    model = focalnet.create_model(name).eval()
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def depthwise_layout(batch: int, size: int, rounds: int) -> str:
    """The focal levels of one tiny-srf block per stage (3x3 then 5x5 depthwise + GELU), NCHW vs channels-last."""
    lines = ["| stage (C, HxW) | NCHW (ms) | channels-last (ms) | channels-last / NCHW |", "|---|---|---|---|"]
    for i in range(4):
        c, hw = 96 * 2**i, size // 4 // 2**i
        w3, w5 = torch.randn(c, 1, 3, 3), torch.randn(c, 1, 5, 5)
        tokens = torch.randn(batch, hw, hw, c)
        inputs = {"nchw": tokens.permute(0, 3, 1, 2).contiguous(), "cl": tokens.permute(0, 3, 1, 2)}

        def levels(t: torch.Tensor, c: int = c, w3: torch.Tensor = w3, w5: torch.Tensor = w5) -> None:
            with torch.no_grad():
                F.gelu(F.conv2d(F.gelu(F.conv2d(t, w3, padding=1, groups=c)), w5, padding=2, groups=c))

        res = {r.label: r.median for r in time_interleaved({k: (lambda t=t: levels(t)) for k, t in inputs.items()},
                                                           rounds=rounds, warmup=1)}
        lines.append(f"| {i} ({c}, {hw}x{hw}) | {1e3 * res['nchw']:.1f} | {1e3 * res['cl']:.1f} | "
                     f"{res['cl'] / res['nchw']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="focalnet_tiny_srf")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--backward", action="store_true", help="also time forward+backward")
    p.add_argument("--compare", default="timm,hf", help="comma-separated peers: timm, hf ('' for none)")
    p.add_argument("--variants", default="", help="comma-separated: channels_last, bf16, compile")
    p.add_argument("--profile", action="store_true", help="print a torch.profiler table of our forward")
    p.add_argument("--layout", action="store_true", help="time depthwise convs in NCHW vs channels-last")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    split = lambda s: [v for v in s.split(",") if v]  # noqa: E731

    t0 = time.time()
    report = compare_speed(args.model, args.batch, args.size, backward=args.backward, compare=split(args.compare),
                           variants=split(args.variants), threads=args.threads, rounds=args.rounds,
                           warmup=args.warmup, on_table=lambda t: print(t + "\n", flush=True))
    print(report.markdown())
    if args.layout:
        print("\nDepthwise focal convolutions (3x3 then 5x5, GELU after each), forward:\n")
        print(depthwise_layout(args.batch, args.size, max(3, args.rounds // 2)))
    if args.profile:
        print("\nProfile of our forward:\n")
        print(profile_ours(args.model, args.batch, args.size))
    print(f"\n(total wall time {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
