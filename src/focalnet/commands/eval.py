"""``focalnet eval``: evaluate a checkpoint of any task on its config's validation data; metrics as JSON.

    focalnet eval                                             # newest checkpoint of runs/digits
    focalnet eval --checkpoint runs/det --json det.json       # a run folder: task and config come from it
    focalnet eval --checkpoint runs/seg/checkpoints/best.pt test.mode=slide --aug-test
    focalnet eval --model focalnet_tiny_srf --pretrained true data.dataset=folder data.root=/data/imagenet
    focalnet eval --model focalnet_tiny_srf --weights hf_folder/ data.root=/data/imagenet   # only val/ is needed

Overrides may change the data and evaluation settings (``data.*``, ``test.*``, ...), never the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import UsageError, add_overrides, config_errors, fail, runtime_errors


def configure(parser: argparse.ArgumentParser) -> None:
    add_overrides(parser, "data / evaluation")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file or run folder (default runs/digits)")
    parser.add_argument("--model", default=None, help="classification: a registered variant, with --pretrained or "
                                                      "--weights, instead of a checkpoint")
    parser.add_argument("--pretrained", default=None, help="released weights of --model: true or a tag")
    parser.add_argument("--weights", default=None, help="weights file or Hugging Face folder for --model")
    parser.add_argument("--ema", action="store_true", help="evaluate the EMA weights of the checkpoint")
    parser.add_argument("--aug-test", action="store_true", help="segmentation: multi-scale + flip testing")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"], help="autocast precision")
    parser.add_argument("--fast", action="store_true",
                        help="classification: focalnet.Predictor's fast path (bf16 where native, channels-last, "
                             "torch.compile for large sets) instead of the exact fp32 eager metrics")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="metrics file (default: eval.json in the run folder, or in --out)")
    parser.add_argument("--out", default=None, metavar="DIR", help="folder for eval.json (instead of the run's)")


def _json_target(args) -> Path | None:
    if args.json:
        return Path(args.json)
    if args.out:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is an existing file; give a folder (or use --json FILE)")
        return out / "eval.json"
    return None


def evaluate_checkpoint(args: argparse.Namespace) -> dict:
    """The plain function behind the command (returns the metrics it writes)."""
    target = _json_target(args)
    overrides = list(args.overrides)
    if args.aug_test:
        overrides.append("test.aug=true")
    if args.model is not None:
        return _evaluate_released(args, overrides, target)
    from focalnet.engine.run import evaluate_run

    return evaluate_run(args.checkpoint or "runs/digits", overrides, args.device, args.amp, args.ema, target,
                        fast=args.fast)


def _evaluate_released(args, overrides: list[str], target: Path | None) -> dict:
    """Classification with released weights / a weights file (no run folder)."""
    import torch

    from focalnet.engine.distributed import resolve_device
    from focalnet.engine.run import write_json
    from focalnet.engine.task import Context
    from focalnet.tasks.classification import ClassificationTask
    from focalnet.train.config import load_config
    from focalnet.train.inference import load_for_inference

    device = resolve_device(args.device)
    if not any(o.startswith("data.dataset=") for o in overrides):
        overrides = ["data.dataset=folder", *overrides]
    cfg = load_config(overrides=overrides)
    loaded = load_for_inference(None, args.model, args.pretrained, args.weights, device)
    task = ClassificationTask(cfg)
    task.load_meta({"model_name": args.model, "model_kwargs": {}, "preprocess": loaded.preprocess,
                    "class_names": loaded.class_names, "label_set": loaded.label_set})
    ctx = Context(device, args.amp, progress=True)
    dataset = task.build_eval_dataset()
    model = loaded.model
    if args.fast:
        from focalnet.predictor import Predictor

        model = Predictor(model, device=device, expected_images=len(dataset)).as_module()
    with torch.no_grad():
        metrics = task.evaluate(model, dataset, ctx)
    result = {"task": "classification", "source": loaded.source, "dataset": cfg.data.dataset, "root": cfg.data.root,
              "split": cfg.data.val_split, "device": str(device), **metrics}
    out = target or Path("eval.json")
    write_json(result, out)
    return {**result, "json": str(out), "summary": task.summary(metrics), "checkpoint": loaded.source}


def run(args: argparse.Namespace) -> int:
    try:
        r = evaluate_checkpoint(args)
    except config_errors() + runtime_errors() as e:
        return fail("eval", e)
    speed = f"  {r['images_per_s']:.1f} images/s" if "images_per_s" in r else ""
    print(f"{r['checkpoint']}: {r['summary']}{speed}")
    print(f"written: {r['json']}")
    return 0
