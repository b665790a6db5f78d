"""How much memory per-block gradient checkpointing saves in a FocalNet training step, and what it costs in time.

Run (2 threads; a few minutes on a quiet 2-core machine):

    PYTHONPATH=src python benchmarks/memory_checkpointing.py --model focalnet_tiny_srf --batch 8 --size 224

Three measurements, with and without ``model.set_grad_checkpointing(True)``:

1. *Saved for backward*: unique bytes of the tensors autograd keeps from one training forward (saved-tensor hooks,
   plus the block inputs a checkpoint keeps), parameters excluded.
2. *Step peak*: peak bytes of live tensors during one forward+backward (PyTorch's ``MemTracker``), split into
   parameters, gradients, activations and temporaries. Allocator-independent, unlike process RSS.
3. *Step time*: forward+backward, both modes interleaved in one process; median of ``--rounds``.
"""

from __future__ import annotations

import argparse

import torch

import focalnet
from focalnet.utils.benchmark import Candidate, make_step, saved_activation_bytes, step_peak_memory, time_interleaved

MiB = 2**20


def _model(name: str, checkpointing: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = focalnet.create_model(name, drop_path_rate=0.0).train()
    model.set_grad_checkpointing(checkpointing)
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="focalnet_tiny_srf")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="timed forward+backward rounds per mode (0: skip timing)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 3, args.size, args.size)
    modes = ("off", "on")

    saved = {m: saved_activation_bytes(_model(args.model, m == "on"), x) for m in modes}
    peak = {m: step_peak_memory(_model(args.model, m == "on"), x) for m in modes}

    print(f"{args.model}, batch {args.batch}, {args.size}x{args.size}, fp32, CPU, {args.threads} threads, "
          f"torch {torch.__version__}\n")
    print("| MiB | checkpointing off | checkpointing on | on / off |")
    print("|---|---|---|---|")

    def row(name: str, off: float, on: float) -> None:
        print(f"| {name} | {off / MiB:,.0f} | {on / MiB:,.0f} | {on / off:.2f} |")

    row("saved for backward", saved["off"], saved["on"])
    for key, name in [("ACT", "step peak: activations"), ("GRAD", "step peak: gradients"),
                      ("TEMP", "step peak: temporaries"), ("PARAM", "step peak: parameters"),
                      ("Total", "**step peak: total**")]:
        row(name, peak["off"][key], peak["on"][key])

    if args.rounds > 0:
        steps = {}
        for m in modes:
            model = _model(args.model, m == "on")
            steps[m] = make_step(Candidate(m, model, model), x, backward=True)
        res = {r.label: r.median for r in time_interleaved(steps, rounds=args.rounds, warmup=1, batch=args.batch)}
        print(f"| forward+backward median (s) | {res['off']:.2f} | {res['on']:.2f} | {res['on'] / res['off']:.2f} |")


if __name__ == "__main__":
    main()
