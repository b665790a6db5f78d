"""``focalnet predict IMAGES...``: top-k labels per image, preprocessing from the weights' metadata.

    focalnet predict digit.png                                   # newest checkpoint of runs/digits
    focalnet predict cat.jpg --model focalnet_tiny_srf --pretrained true      # ImageNet-1K names
    focalnet predict cat.jpg --model focalnet_large_fl4 --pretrained true     # ImageNet-22K names
"""

from __future__ import annotations

import argparse
import json
import sys

from focalnet.errors import one_line


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files (any PIL-readable format)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file or run directory (default runs/digits)")
    parser.add_argument("--model", default=None, help="a registered variant, with --pretrained or --weights")
    parser.add_argument("--pretrained", default=None, help="released weights of --model: true or a tag")
    parser.add_argument("--weights", default=None, help="weights file for --model")
    parser.add_argument("--ema", action="store_true", help="use the EMA weights of the checkpoint")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from focalnet.train.distributed import resolve_device
    from focalnet.train.inference import load_for_inference, predict_images
    from focalnet.weights.loading import CheckpointError

    device = resolve_device(args.device)
    try:
        loaded = load_for_inference(args.checkpoint, args.model, args.pretrained, args.weights, device, args.ema)
    except (OSError, CheckpointError, ValueError, KeyError, ImportError) as e:
        print(f"focalnet predict: {one_line(e)}", file=sys.stderr)
        return 1
    results = predict_images(loaded, args.images, args.topk, device)
    if args.json:
        print(json.dumps({"source": loaded.source, "label_set": loaded.label_set, "results": results}, indent=2))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['path']}: ERROR {r['error']}")
                continue
            print(r["path"])
            for p in r["top"]:
                print(f"  {100 * p['prob']:6.2f}%  {p['index']:>5}  {p['label']}")
    return 1 if any("error" in r for r in results) else 0
