"""``focalnet train``: train any task through the one engine; with no arguments, the built-in digits job.

    focalnet train                                                     # digits, small FocalNet, ~2 min on 2 CPUs
    focalnet train --config configs/focalnet_tiny_srf.yaml data.root=/data/imagenet
    focalnet train --config configs/detection/mask_rcnn_focalnet_synthetic_demo.yaml --out runs/det max_steps=20
    focalnet train --out runs/det --resume auto                        # continue with the saved config
    torchrun --nproc_per_node 8 -m focalnet train --config configs/focalnet_tiny_srf.yaml data.root=...
"""

from __future__ import annotations

import argparse
import os
import sys

from ._common import add_config, add_overrides, fail


def configure(parser: argparse.ArgumentParser) -> None:
    add_overrides(parser)
    add_config(parser)
    parser.add_argument("--out", default=None, help="run folder (sets output_dir and name); default output_dir/name")
    parser.add_argument("--resume", default=None, metavar="auto|PATH",
                        help="continue a run: 'auto' (newest checkpoint of the run folder) or a checkpoint / run "
                             "folder; the saved config is used and overrides are checked against it")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the final metrics to this file")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    try:
        from ._common import resolve_train_config

        cfg = resolve_train_config(args.config, list(args.overrides), args.out, args.resume)
        if args.json and os.path.isdir(args.json):
            from ._common import UsageError

            raise UsageError(f"--json {args.json} is a folder; give a file name")
    except Exception as e:  # noqa: BLE001 - config / usage problems: one line, exit 2
        from ._common import config_errors, runtime_errors

        if isinstance(e, config_errors() + runtime_errors()):
            return fail("train", e)
        raise
    if args.print_config:
        import yaml

        from focalnet.utils.config import to_dict

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    from focalnet.engine.loop import fit

    try:
        result = fit(cfg)
    except Exception as e:  # noqa: BLE001
        from ._common import config_errors, runtime_errors

        if isinstance(e, config_errors() + runtime_errors()):
            return fail("train", e)
        raise
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if args.json:
        from focalnet.engine.run import write_json

        write_json({"task": result.task, "steps": result.steps, "checkpoint": str(result.checkpoint),
                    "elapsed_s": result.elapsed_s, **result.metrics}, args.json)
    _report(result, cfg)
    return 0


def _report(result, cfg) -> None:
    from focalnet.engine.registry import get_task

    task = get_task(result.task)(cfg)
    out = sys.stdout
    print(file=out)
    if result.stopped_early:
        print(f"stopped after {result.steps} steps (max_steps); continue with: focalnet train --out {result.run_dir} "
              "--resume auto", file=out)
    if result.metrics:
        print(f"validation: {task.summary(result.metrics)}", file=out)
    print(f"trained {result.steps} steps in {result.elapsed_s:.1f} s", file=out)
    print(f"run directory : {result.run_dir}", file=out)
    print(f"checkpoint    : {result.checkpoint}", file=out)
    if result.best_checkpoint:
        print(f"best          : {result.best_checkpoint}", file=out)
    print(f"config        : {result.config_path}", file=out)
    print(f"metrics       : {result.metrics_jsonl} , {result.metrics_csv}", file=out)
    if result.curve_png:
        print(f"curves        : {result.curve_png}", file=out)
    if result.eval_json:
        print(f"evaluation    : {result.eval_json}", file=out)
    print(f"next: focalnet eval --checkpoint {result.run_dir}  |  focalnet predict INPUT --checkpoint "
          f"{result.run_dir}", file=out)
