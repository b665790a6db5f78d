"""``focalnet benchmark``: forward (and backward) speed of a variant, side by side with timm / transformers.

A thin wrapper over :func:`focalnet.utils.benchmark.compare_speed`, the function ``benchmarks/bench_focalnet.py``
uses. Prints Markdown tables: medians over interleaved rounds and each candidate's time relative to ours.
``--memory`` adds what per-block gradient checkpointing saves in a training step.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="focalnet_tiny_srf", help="registered variant (see `focalnet models`)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224, help="square input side in pixels")
    parser.add_argument("--backward", action="store_true", help="also time forward+backward")
    parser.add_argument("--compare", default="", help="comma-separated peers to run beside ours: timm, hf")
    parser.add_argument("--channels-last", action="store_true", help="also time ours with a channels-last input")
    parser.add_argument("--bf16", action="store_true", help="also time ours under bfloat16 CPU autocast")
    parser.add_argument("--compile", action="store_true", help="also time ours under torch.compile (inductor)")
    parser.add_argument("--exact", action="store_true",
                        help="also time our plain fp32 ops (the fused CPU inference kernels switched off)")
    parser.add_argument("--predictor", action="store_true",
                        help="also time focalnet.Predictor's fast path (bf16 where native, channels-last)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="write one JSON record per candidate (medians, IQRs, ratios, peak memory, settings, "
                             "machine)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per candidate")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--memory", action="store_true",
                        help="report the memory gradient checkpointing saves in one training step")


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with the train/viz extras; without it, no bar
        return None, None
    bar = tqdm(total=total, desc="timing rounds", unit="round", leave=False)
    return bar, lambda _r: bar.update(1)


def run(args: argparse.Namespace) -> int:
    import torch

    from focalnet.errors import UsageError
    from focalnet.models.registry import get_spec
    from focalnet.utils.benchmark import compare_speed, saved_activation_bytes, step_peak_memory
    from focalnet.utils.flops import count_macs

    if args.batch < 1 or args.size < 1 or args.rounds < 1 or args.warmup < 0:
        raise UsageError("--batch, --size and --rounds must be positive, --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    get_spec(args.model)  # an unknown name is a UsageError naming the closest ones
    compare = [c.strip() for c in args.compare.split(",") if c.strip()]
    unknown = [c for c in compare if c not in ("timm", "hf")]
    if unknown:
        raise UsageError(f"unknown peer {unknown[0]!r}; choose from timm, hf")
    variants = [v for v, on in [("channels_last", args.channels_last), ("bf16", args.bf16),
                                ("compile", args.compile), ("exact", args.exact), ("predictor", args.predictor)] if on]

    import focalnet

    macs = count_macs(focalnet.create_model(args.model, device="meta"), (1, 3, args.size, args.size))
    print(f"{args.model}: {macs:.2f} GMACs per image at {args.size}x{args.size}\n")

    bar, progress = _progress(args.rounds * (2 if args.backward else 1))
    try:
        report = compare_speed(args.model, args.batch, args.size, backward=args.backward, compare=compare,
                               variants=variants, threads=args.threads, rounds=args.rounds, warmup=args.warmup,
                               progress=progress, memory=bool(args.json or args.memory))
    except (ValueError, KeyError) as e:
        raise UsageError(str(e.args[0]) if e.args else str(e)) from None
    finally:
        if bar is not None:
            bar.close()
    print(report.markdown())
    if args.json:
        from focalnet.utils.benchmark import write_json

        try:
            write_json(report.records(), args.json)
        except OSError as e:
            raise UsageError(f"cannot write {args.json}: {e}") from None
        print(f"\nwritten: {args.json} ({len(report.records())} records)")

    if args.memory:
        x = torch.randn(args.batch, 3, args.size, args.size)
        print("\n| MiB | checkpointing off | checkpointing on |\n|---|---|---|")
        saved, peak = {}, {}
        for on in (False, True):
            model = focalnet.create_model(args.model, drop_path_rate=0.0).train()
            model.set_grad_checkpointing(on)
            saved[on] = saved_activation_bytes(model, x) / 2**20
            peak[on] = step_peak_memory(model, x)["Total"] / 2**20
        print(f"| saved for backward | {saved[False]:,.0f} | {saved[True]:,.0f} |")
        print(f"| training-step peak (tensors) | {peak[False]:,.0f} | {peak[True]:,.0f} |")
    return 0
