"""``focalnet segment ...``: the old spelling of segmentation commands, kept as an alias that prints the new one.

    focalnet segment synth --out D                       ->  focalnet data synth ade --out D
    focalnet segment train --config C --set k=v --out R  ->  focalnet train --config C k=v --out R
    focalnet segment eval --checkpoint C [--aug-test]    ->  focalnet eval --checkpoint C [--aug-test]
    focalnet segment predict --checkpoint C IMG --out D  ->  focalnet predict IMG --checkpoint C --out D
"""

from __future__ import annotations

import argparse
import shlex
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{synth,train,eval,predict}")
    s = sub.add_parser("synth", help="= focalnet data synth ade")
    s.add_argument("--out", required=True)
    s.add_argument("--train", type=int, default=200)
    s.add_argument("--val", type=int, default=50)
    s.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--original-names", action="store_true")
    t = sub.add_parser("train", help="= focalnet train --config C task=segmentation ...")
    t.add_argument("--config")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--data")
    t.add_argument("--out", default="runs/segment")
    t.add_argument("--resume")
    subs = [s, t]
    for name in ("eval", "predict"):
        p = sub.add_parser(name, help=f"= focalnet {name} --checkpoint C ...")
        p.add_argument("--checkpoint", required=True)
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--aug-test", action="store_true")
        p.add_argument("--device", default="auto")
        if name == "eval":
            p.add_argument("--data")
            p.add_argument("--json")
        else:
            p.add_argument("images", nargs="+")
            p.add_argument("--out", required=True)
            p.add_argument("--alpha", type=float, default=0.5)
        subs.append(p)
    for sp in subs:
        sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)


def translate(args: argparse.Namespace) -> list[str]:
    """The new command line for an old ``focalnet segment ...`` one."""
    a = args
    if a.action == "synth":
        return ["data", "synth", "ade", "--out", a.out, "--train", str(a.train), "--val", str(a.val), "--size",
                *map(str, a.size), "--seed", str(a.seed), *(["--original-names"] if a.original_names else [])]
    if a.action == "train":
        new = ["train", *(["--config", a.config] if a.config else []), "task=segmentation", *a.overrides,
               "--out", a.out]
        new += [f"data.root={a.data}"] if a.data else []
        return new + (["--resume", a.resume] if a.resume else [])
    common = ["--checkpoint", a.checkpoint, "--device", a.device, *a.overrides, *(["--aug-test"] if a.aug_test else [])]
    if a.action == "eval":
        return ["eval", *common, *([f"data.root={a.data}"] if a.data else []), *(["--json", a.json] if a.json else [])]
    return ["predict", *a.images, *common, "--out", a.out, "--alpha", str(a.alpha)]


def run(args: argparse.Namespace) -> int:
    from focalnet.cli import main

    new = translate(args)
    print(f"note: `focalnet segment {args.action}` is now: focalnet {shlex.join(new)}", file=sys.stderr)
    return main(new + (["-v"] if getattr(args, "verbose", False) else []))
