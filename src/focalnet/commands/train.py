"""``focalnet train``: train or fine-tune; with no arguments, the built-in digits job.

    focalnet train                                   # digits, small FocalNet, ~1-2 min on 2 CPU cores
    focalnet train --config configs/focalnet_tiny_srf.yaml data.root=/data/imagenet
    focalnet train sched.epochs=30 optim.lr=1e-3 --resume auto
    torchrun --nproc_per_node 8 -m focalnet.cli train --config configs/focalnet_tiny_srf.yaml data.root=...
"""

from __future__ import annotations

import argparse
import os
import sys

from focalnet.errors import one_line


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="dotted overrides, e.g. optim.lr=1e-3 data.batch_size=128 model.name=focalnet_tiny_lrf")
    parser.add_argument("--config", "-c", default=None, help="YAML recipe (see configs/); defaults: the digits job")
    parser.add_argument("--resume", default=None, help="'auto' (newest checkpoint of the run) or a checkpoint path")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    import yaml

    from focalnet.data import DataError
    from focalnet.train import ConfigError, NonFiniteLossError, config_to_dict, load_config, train
    from focalnet.weights.loading import CheckpointError

    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"resume={args.resume}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"focalnet train: config error: {one_line(e)}", file=sys.stderr)
        return 2
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    try:
        result = train(cfg)
    except (NonFiniteLossError, OSError, DataError, ConfigError, CheckpointError) as e:  # OSError: bad image, full disk
        print(f"focalnet train: stopped: {one_line(e)}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    m = result.metrics
    print()
    if result.stopped_early:
        print(f"stopped after {result.steps} steps (max_steps); resume with: focalnet train ... --resume auto")
    if m:
        print(f"validation: top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%  loss {m['loss']:.4f}  "
              f"({m['images']} images)")
    print(f"trained {result.steps} steps in {result.elapsed_s:.1f} s")
    print(f"run directory : {result.run_dir}")
    print(f"checkpoint    : {result.checkpoint}")
    print(f"config        : {result.config_path}")
    print(f"metrics       : {result.metrics_jsonl} , {result.metrics_csv}")
    if result.curve_png:
        print(f"curve         : {result.curve_png}")
    if result.eval_json:
        print(f"evaluation    : {result.eval_json}")
    print(f"next: focalnet eval --checkpoint {result.checkpoint}  |  focalnet predict IMAGE --checkpoint "
          f"{result.checkpoint}")
    return 0
