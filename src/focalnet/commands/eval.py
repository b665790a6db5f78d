"""``focalnet eval``: top-1 / top-5, loss and images/s of a checkpoint on a validation split, written as JSON.

    focalnet eval                                        # newest checkpoint of runs/digits
    focalnet eval --checkpoint runs/x/checkpoints/checkpoint-00001000.pt data.root=/data/imagenet
    focalnet eval --model focalnet_tiny_srf --pretrained true data.dataset=folder data.root=/data/imagenet
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from focalnet.errors import one_line


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="data.key=value",
                        help="data overrides, e.g. data.root=DIR data.val_split=val data.eval_batch_size=256")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file or run directory (default runs/digits)")
    parser.add_argument("--model", default=None, help="a registered variant, with --pretrained or --weights")
    parser.add_argument("--pretrained", default=None, help="released weights of --model: true or a tag")
    parser.add_argument("--weights", default=None, help="weights file for --model")
    parser.add_argument("--ema", action="store_true", help="evaluate the EMA weights of the checkpoint")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the run's `threads` setting, else PyTorch's default)")
    parser.add_argument("--out", default=None, help="JSON output (default: eval.json next to the checkpoint's run)")


def evaluate_checkpoint(args: argparse.Namespace) -> dict:
    """The plain function behind the command (returns the metrics it writes)."""
    import torch
    from torch.utils.data import DataLoader

    from focalnet.data import SeededTransformDataset, build_datasets, build_transform
    from focalnet.train.config import apply_overrides, config_from_dict
    from focalnet.train.distributed import resolve_device
    from focalnet.train.engine import evaluate
    from focalnet.train.inference import load_for_inference

    device = resolve_device(args.device)
    loaded = load_for_inference(args.checkpoint, args.model, args.pretrained, args.weights, device, args.ema)
    base = loaded.config or {}
    threads = args.threads if args.threads is not None else base.get("threads", 0)
    if threads and threads > 0:
        torch.set_num_threads(threads)
    cfg = config_from_dict({k: v for k, v in base.items() if k in ("data", "seed")} if base else {})
    if not base:
        cfg = apply_overrides(cfg, ["data.dataset=folder"] if not any(
            o.startswith("data.dataset=") for o in args.overrides) else [])
    cfg = apply_overrides(cfg, list(args.overrides))
    _, val, classes = build_datasets(cfg.data, seed=cfg.seed)
    if loaded.class_names and len(classes) > len(loaded.class_names):
        raise ValueError(f"the data has {len(classes)} classes but the model predicts {len(loaded.class_names)}")
    ds = SeededTransformDataset(val, build_transform(loaded.preprocess))
    loader = DataLoader(ds, batch_size=cfg.data.eval_batch_size or cfg.data.batch_size,
                        num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda")
    metrics = evaluate(loaded.model, loader, device, args.amp, progress=True, desc="eval")
    result = {"source": loaded.source, "dataset": cfg.data.dataset, "root": cfg.data.root,
              "split": cfg.data.val_split, "ema": bool(args.ema), "device": str(device), **metrics}
    if args.out:
        out = Path(args.out)
    elif args.model is None:
        src = Path(loaded.source)
        out = (src.parent.parent if src.parent.name == "checkpoints" else src.parent) / "eval.json"
    else:
        out = Path("eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    result["json"] = str(out)
    return result


def run(args: argparse.Namespace) -> int:
    from focalnet.data import DataError, ImageLoadError
    from focalnet.train import ConfigError
    from focalnet.weights.loading import CheckpointError

    try:
        r = evaluate_checkpoint(args)
    except (OSError, ConfigError, DataError, ImageLoadError, CheckpointError, ValueError, KeyError, ImportError) as e:
        print(f"focalnet eval: {one_line(e)}", file=sys.stderr)
        return 1
    print(f"{r['source']}: top-1 {r['top1']:.2f}%  top-5 {r['top5']:.2f}%  loss {r['loss']:.4f}  "
          f"{r['images']} images  {r['images_per_s']:.1f} images/s")
    print(f"written: {r['json']}")
    return 0
