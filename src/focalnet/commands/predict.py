"""``focalnet predict INPUTS...``: predictions of a checkpoint of any task (or released classification weights).

    focalnet predict digit.png                                   # newest checkpoint of runs/digits
    focalnet predict cat.jpg --model focalnet_tiny_srf --pretrained true      # ImageNet-1K names
    focalnet predict street.jpg --checkpoint runs/det --out preds/ --score 0.3 # boxes/masks drawn as PNG
    focalnet predict room.jpg --checkpoint runs/seg --out preds/ --json preds.json

Classification prints the top-k labels; detection and segmentation also write pictures to ``--out``.
"""

from __future__ import annotations

import argparse
import math

from ._common import UsageError, config_errors, fail, runtime_errors, split_positionals


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files (and optional key=value overrides of the checkpoint's data/test settings)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file or run folder (default runs/digits)")
    parser.add_argument("--model", default=None, help="classification: a registered variant with --pretrained or "
                                                      "--weights, instead of a checkpoint")
    parser.add_argument("--pretrained", default=None, help="released weights of --model: true or a tag")
    parser.add_argument("--weights", default=None, help="weights file (any layout) or Hugging Face folder for --model")
    parser.add_argument("--ema", action="store_true", help="use the EMA weights of the checkpoint")
    parser.add_argument("--topk", type=int, default=5, help="classification: labels per image")
    parser.add_argument("--score", type=float, default=0.5, help="detection: keep detections with this score")
    parser.add_argument("--aug-test", action="store_true", help="segmentation: multi-scale + flip")
    parser.add_argument("--alpha", type=float, default=0.5, help="segmentation: overlay opacity of the mask colours")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--exact", action="store_true", help="classification: plain fp32 instead of the fast path "
                                                             "(bf16 where native, channels-last; focalnet.Predictor)")
    parser.add_argument("--out", default=None, metavar="DIR", help="folder for pictures (detection, segmentation)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write all results to this JSON file ('-': print JSON instead of the table)")


def _check(args) -> None:
    if args.topk < 1:
        raise UsageError(f"--topk must be >= 1, got {args.topk}")
    if not (0 <= args.score <= 1) or math.isnan(args.score):
        raise UsageError(f"--score must be in [0, 1], got {args.score}")
    if not (0 <= args.alpha <= 1) or math.isnan(args.alpha):
        raise UsageError(f"--alpha must be in [0, 1], got {args.alpha}")


def predict(args: argparse.Namespace) -> tuple[object | None, list[dict], dict]:
    """``(task or None, one result per input, header of the JSON output)``."""
    overrides, inputs = split_positionals(list(args.inputs))
    if not inputs:
        raise UsageError("no input files given")
    options = {"topk": args.topk, "score": args.score, "aug_test": args.aug_test, "alpha": args.alpha,
               "exact": args.exact}
    if args.model is not None:
        from focalnet.engine.distributed import resolve_device
        from focalnet.train.inference import load_for_inference, predict_images

        device = resolve_device(args.device)
        loaded = load_for_inference(None, args.model, args.pretrained, args.weights, device)
        head = {"task": "classification", "source": loaded.source, "label_set": loaded.label_set}
        return None, predict_images(loaded, inputs, args.topk, device, exact=args.exact), head
    from focalnet.engine.run import predict_run

    task, results = predict_run(args.checkpoint or "runs/digits", inputs, overrides, args.device, args.out,
                                args.ema, options)
    head = {"task": task.name, "source": str(args.checkpoint or "runs/digits"),
            "label_set": getattr(task, "label_set", None)}
    return task, results, head


def run(args: argparse.Namespace) -> int:
    try:
        _check(args)
        if args.json:
            from pathlib import Path

            if args.json != "-" and Path(args.json).is_dir():
                raise UsageError(f"--json {args.json} is a folder; give a file name")
        task, results, head = predict(args)
    except config_errors() + runtime_errors() as e:
        return fail("predict", e)
    for r in results if args.json != "-" else []:
        if task is None:
            from focalnet.tasks.classification import ClassificationTask

            print(ClassificationTask.format_prediction(None, r))  # type: ignore[arg-type]
        else:
            print(task.format_prediction(r))
    if args.json:
        from focalnet.engine.run import write_json

        write_json({**head, "results": results}, args.json)
        if args.json != "-":
            print(f"written: {args.json}")
    failed = [r for r in results if "error" in r]
    if failed:
        import sys

        print(f"focalnet predict: error: {len(failed)} of {len(results)} input(s) could not be used "
              f"(first: {failed[0]['error']})", file=sys.stderr)
        return 1
    return 0
