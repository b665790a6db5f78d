"""``focalnet detect ...``: the old spelling of detection commands, kept as an alias that prints the new one.

    focalnet detect train --config C --set k=v --output DIR   ->  focalnet train --config C k=v --out DIR
    focalnet detect eval --checkpoint C --json F              ->  focalnet eval --checkpoint C --json F
    focalnet detect predict --checkpoint C IMG --out D        ->  focalnet predict IMG --checkpoint C --out D
    focalnet detect data --root R --n-train N                 ->  focalnet data synth coco --out R --train N
"""

from __future__ import annotations

import argparse
import shlex
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{train,eval,predict,data}")
    t = sub.add_parser("train", help="= focalnet train --config C task=detection ...")
    t.add_argument("--config", "-c", default=None)
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--output", default=None)
    t.add_argument("--no-progress", action="store_true")
    e = sub.add_parser("eval", help="= focalnet eval --checkpoint C")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--images", default=None)
    e.add_argument("--ann", default=None)
    e.add_argument("--device", default="auto")
    e.add_argument("--batch-size", type=int, default=None)
    e.add_argument("--json", default=None)
    p = sub.add_parser("predict", help="= focalnet predict IMAGES --checkpoint C")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+")
    p.add_argument("--out", default="predictions")
    p.add_argument("--score", type=float, default=0.5)
    p.add_argument("--device", default="auto")
    d = sub.add_parser("data", help="= focalnet data synth coco")
    d.add_argument("--root", default="data/synthetic_coco")
    d.add_argument("--n-train", type=int, default=200)
    d.add_argument("--n-val", type=int, default=50)
    d.add_argument("--size", type=int, default=128)
    d.add_argument("--seed", type=int, default=0)
    for sp in (t, e, p, d):
        sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)


def translate(args: argparse.Namespace) -> list[str]:
    """The new command line for an old ``focalnet detect ...`` one."""
    if args.action == "train":
        new = ["train", *(["--config", args.config] if args.config else []), "task=detection", *args.overrides]
        new += ["--out", args.output] if args.output else []
        return new + (["progress=false"] if args.no_progress else [])
    if args.action == "eval":
        new = ["eval", "--checkpoint", args.checkpoint, "--device", args.device]
        new += [f"data.val_images={args.images}"] if args.images else []
        new += [f"data.val_ann={args.ann}"] if args.ann else []
        new += [f"optim.batch_size={args.batch_size}"] if args.batch_size else []
        return new + (["--json", args.json] if args.json else [])
    if args.action == "predict":
        return ["predict", *args.images, "--checkpoint", args.checkpoint, "--out", args.out, "--score",
                str(args.score), "--device", args.device]
    return ["data", "synth", "coco", "--out", args.root, "--train", str(args.n_train), "--val", str(args.n_val),
            "--size", str(args.size), "--seed", str(args.seed)]


def run(args: argparse.Namespace) -> int:
    from focalnet.cli import main

    new = translate(args)
    print(f"note: `focalnet detect {args.action}` is now: focalnet {shlex.join(new)}", file=sys.stderr)
    return main(new + (["-v"] if getattr(args, "verbose", False) else []))
