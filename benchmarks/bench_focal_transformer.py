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


def _time(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one forward. CPU time is less disturbed by other processes on a
    shared machine (but with several threads it also counts OpenMP spin-waiting)."""
    w0, c0 = time.perf_counter(), time.process_time()
    model(x)
    return time.perf_counter() - w0, time.process_time() - c0


def _saved_mib(model: torch.nn.Module, x: torch.Tensor) -> float:
    """MiB of distinct tensors saved for backward by one train-mode forward (activation-memory proxy)."""
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        seen[key] = t.untyped_storage().nbytes()
        return t

    from focalnet.layers import DropPath

    rates = {m: m.p for m in model.modules() if isinstance(m, DropPath)}
    for m in rates:
        m.p = 0.0  # like the spec's measurement: stochastic depth off
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    model.eval()
    for m, rate in rates.items():
        m.p = rate
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for (ptr, _), n in seen.items() if ptr not in params) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="focal_transformer_tiny")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--memory", action="store_true", help="also report activation memory saved for backward")
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
        wall: dict[str, list[float]] = {k: [] for k in models}
        cpu: dict[str, list[float]] = {k: [] for k in models}
        names = list(models)
        for r in range(args.rounds):
            order = names[r % 3 :] + names[: r % 3]  # rotate who runs first in each round
            for name in order:
                w, c = _time(models[name], x)
                wall[name].append(w)
                cpu[name].append(c)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {wall[n][-1]:.3f}s" for n in names), flush=True)

    print()
    print(f"{args.model}, batch {args.batch} x 3 x {args.size}^2, fp32 CPU forward, {args.threads} thread(s), "
          f"median of {args.rounds} interleaved rounds (torch {torch.__version__})")
    print(f"{'path':<10} {'wall s':>8} {'img/s':>6} {'wall/plain':>11} {'cpu s':>8} {'cpu/plain':>10} "
          f"{'per-round wall ratio':>21}")
    med_w = {k: statistics.median(v) for k, v in wall.items()}
    med_c = {k: statistics.median(v) for k, v in cpu.items()}
    for k in names:
        per_round = statistics.median(a / b for a, b in zip(wall[k], wall["plain"], strict=True))
        print(f"{k:<10} {med_w[k]:>8.3f} {args.batch / med_w[k]:>6.1f} {med_w[k] / med_w['plain']:>11.2f} "
              f"{med_c[k]:>8.3f} {med_c[k] / med_c['plain']:>10.2f} {per_round:>21.2f}")
    if args.memory:
        mem = {k: _saved_mib(m, x) for k, m in models.items()}
        print("saved for backward (train-mode forward, MiB): "
              + ", ".join(f"{k} {v:.0f} ({v / mem['plain']:.2f}x plain)" for k, v in mem.items()))
    speedup_w, speedup_c = med_w["faithful"] / med_w["fast"], med_c["faithful"] / med_c["fast"]
    print(f"faithful/fast: {speedup_w:.2f}x wall, {speedup_c:.2f}x cpu; max |faithful - fast| logits: {diff:.2e}")


if __name__ == "__main__":
    main()
