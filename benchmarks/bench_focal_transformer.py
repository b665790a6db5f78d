"""Focal attention vs plain window attention in the same network, fp32 CPU forward, side by side in one run.

Times, in one process and interleaved round by round (the machine is shared and noisy, so medians are reported):

* ``faithful``: Focal-T with the original operations (4 rolls, index_select of 132 slots, unfold, sliced bias adds),
* ``fast``: the same model and weights with gathered keys and one ``scaled_dot_product_attention`` call,
* ``plain``: the same network with plain 7x7 window attention (``focal_levels=1, expand_sizes=0``: 49 keys per
  query window, no pooled level), fast path.

Usage (the numbers in docs/focal_transformer.md come from this command)::

    PYTHONPATH=src python benchmarks/bench_focal_transformer.py --model focal_transformer_tiny \
        --batch 8 --size 224 --threads 2 --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import focalnet


def _time(model: torch.nn.Module, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    model(x)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="focal_transformer_tiny")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    focal = focalnet.create_model(args.model).eval()
    faithful = focalnet.create_model(args.model).eval()
    faithful.load_state_dict(focal.state_dict())
    faithful.set_attn_impl("faithful")
    plain = focalnet.create_model(args.model, focal_levels=1, expand_sizes=0).eval()
    models = {"faithful": faithful, "fast": focal, "plain": plain}
    x = torch.randn(args.batch, 3, args.size, args.size)

    with torch.inference_mode():
        diff = (faithful(x) - focal(x)).abs().max().item()  # also the warm-up of both
        plain(x)
        times: dict[str, list[float]] = {k: [] for k in models}
        names = list(models)
        for r in range(args.rounds):
            order = names[r % 3 :] + names[: r % 3]  # rotate who runs first in each round
            for name in order:
                times[name].append(_time(models[name], x))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    per_round = {
        k: statistics.median(a / b for a, b in zip(times[k], times["plain"], strict=True)) for k in ("fast", "faithful")
    }
    print()
    print(f"{args.model}, batch {args.batch} x 3 x {args.size}^2, fp32 CPU, {args.threads} threads, "
          f"median of {args.rounds} interleaved rounds (torch {torch.__version__})")
    print(f"{'path':<10} {'median s':>9} {'img/s':>7} {'vs plain':>9} {'per-round ratio':>16}")
    for k in names:
        ratio = med[k] / med["plain"]
        pr = f"{per_round[k]:.2f}" if k in per_round else "1.00"
        print(f"{k:<10} {med[k]:>9.3f} {args.batch / med[k]:>7.1f} {ratio:>9.2f} {pr:>16}")
    print(f"faithful/fast speed-up: {med['faithful'] / med['fast']:.2f}x;  max |faithful - fast| logits: {diff:.2e}")


if __name__ == "__main__":
    main()
