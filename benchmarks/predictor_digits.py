"""focalnet.Predictor's fast path vs the exact fp32 path on the built-in digits model's whole validation set.

    focalnet train                                           # the built-in digits job -> runs/digits
    PYTHONPATH=src python benchmarks/predictor_digits.py --checkpoint runs/digits --threads 2

Reports top-1 of both paths, how many predictions differ, the max |logit difference| and the throughput of each
(the two run batch by batch, interleaved, on the same batches).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="runs/digits")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from torch.utils.data import DataLoader

    from focalnet.engine.run import load_run
    from focalnet.predictor import Predictor

    run = load_run(args.checkpoint, [], "cpu", "none", False)
    dataset = run.task.build_eval_dataset()
    loader = DataLoader(dataset, batch_size=args.batch, num_workers=0)
    exact, fast = Predictor.exact(run.model), Predictor(run.model, compile=False)
    hits = {"exact": 0, "fast": 0}
    secs = {"exact": 0.0, "fast": 0.0}
    n = differ = 0
    max_diff = 0.0
    for images, target in loader:
        out = {}
        for label, pred in (("exact", exact), ("fast", fast)) if n % 2 == 0 else (("fast", fast), ("exact", exact)):
            t0 = time.perf_counter()
            out[label] = pred(images)
            secs[label] += time.perf_counter() - t0
        for label in out:
            hits[label] += int((out[label].argmax(1) == target).sum())
        differ += int((out["exact"].argmax(1) != out["fast"].argmax(1)).sum())
        max_diff = max(max_diff, (out["exact"] - out["fast"]).abs().max().item())
        n += len(target)
    print(f"{run.checkpoint}: {n} validation images; fast path = {fast.settings}")
    print("| path | top-1 (%) | images/s |\n|---|---|---|")
    for label in ("exact", "fast"):
        print(f"| {label} | {100 * hits[label] / n:.2f} | {n / secs[label]:.1f} |")
    print(f"\npredictions that differ: {differ}; max |logit difference|: {max_diff:.3e}; "
          f"speed-up {secs['exact'] / secs['fast']:.2f}x")


if __name__ == "__main__":
    main()
