"""``focalnet data``: data tools. ``focalnet data synth KIND --out DIR``: write a small SYNTHETIC data set.

    focalnet data synth coco --out data/synthetic_coco          # COCO-format instances (detection)
    focalnet data synth ade --out data/synthetic_ade            # ADE20K-layout folders (segmentation)
    focalnet data synth panoptic --out data/synthetic_panoptic  # COCO panoptic + instances (Mask2Former)

Each kind is one entry of :data:`SYNTH`: ``kind -> (module:function configuring its parser, module:function
running it, help)``; a new writer (e.g. panoptic) adds one line there and two small functions.
"""

from __future__ import annotations

import argparse
import importlib

# kind -> ("module:configure", "module:run", help). Functions are imported only when the kind is used.
SYNTH: dict[str, tuple[str, str, str]] = {
    "coco": ("focalnet.commands.data:_coco_args", "focalnet.commands.data:_coco_run",
             "COCO-format instance set (scikit-image objects on textures, NOT COCO)"),
    "ade": ("focalnet.commands.data:_ade_args", "focalnet.commands.data:_ade_run",
            "ADE20K-layout semantic segmentation set (scikit-image objects, NOT ADE20K)"),
    "panoptic": ("focalnet.commands.data_panoptic:configure", "focalnet.commands.data_panoptic:run",
                 "COCO panoptic + instance set (objects as things, textures as stuff; NOT COCO)"),
}


def _resolve(target: str):
    module, _, fn = target.partition(":")
    return getattr(importlib.import_module(module), fn)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{synth}")
    synth = sub.add_parser("synth", help="write a synthetic data set", description="write a synthetic data set",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    kinds = synth.add_subparsers(dest="kind", required=True, metavar="{" + ",".join(SYNTH) + "}")
    for kind, (conf, _, help_) in SYNTH.items():
        p = kinds.add_parser(kind, help=help_, description=help_,
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
        _resolve(conf)(p)


def run(args: argparse.Namespace) -> int:
    import sys

    _, runner, _ = SYNTH[args.kind]
    try:
        return int(_resolve(runner)(args) or 0)
    except (OSError, ValueError) as e:
        print(f"focalnet data synth {args.kind}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1


def _coco_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="data/synthetic_coco", help="folder to write (images/ + annotations/)")
    p.add_argument("--train", type=int, default=200, help="training images")
    p.add_argument("--val", type=int, default=50, help="validation images")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)


def _check_counts(args) -> None:
    if args.train < 1 or args.val < 1:
        raise ValueError(f"--train and --val must be >= 1, got {args.train} and {args.val}")
    size = args.size if isinstance(args.size, int) else min(args.size)
    if size < 32:
        raise ValueError(f"--size must be >= 32 pixels, got {args.size}")


def _coco_run(args) -> int:
    from focalnet.data.coco import make_synthetic_coco

    _check_counts(args)
    paths = make_synthetic_coco(args.out, args.train, args.val, args.size, args.seed)
    for k, v in paths.items():
        print(f"{k:13s} {v}")
    print("note: synthetic scenes (scikit-image objects pasted on textures), not COCO")
    return 0


def _ade_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="data/synthetic_ade", help="folder to write (images/ + annotations/)")
    p.add_argument("--train", type=int, default=200, help="training images")
    p.add_argument("--val", type=int, default=50, help="validation images (held out: other seeds)")
    p.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--original-names", action="store_true",
                   help="use the authors' folder names (images/{train,validation}, annotations/{train,val})")


def _ade_run(args) -> int:
    from focalnet.seg.data import SYNTHETIC_CLASSES, write_synthetic_ade

    _check_counts(args)
    names = ("train", "validation") if args.original_names else ("training", "validation")
    root = write_synthetic_ade(args.out, args.train, args.val, tuple(args.size), args.seed, names)
    print(f"wrote {args.train} + {args.val} SYNTHETIC images to {root} (classes: {', '.join(SYNTHETIC_CLASSES)})")
    if args.original_names:
        print("note: annotations for validation are in annotations/validation; set data.val_ann_dir accordingly")
    return 0
