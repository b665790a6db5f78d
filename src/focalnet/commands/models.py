"""``focalnet models``: the table of registered variants."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'focalnet_*_lrf'")
    parser.add_argument("--family", default=None, help="focalnet or focal_transformer")


def run(args: argparse.Namespace) -> int:
    from focalnet.models.registry import get_spec, list_models

    names = list_models(args.pattern, family=args.family)
    header = f"{'model':<28} {'params':>13} {'GMACs':>8} {'res':>4} {'classes':>7} {'top-1':>6}"
    print(header)
    print("-" * len(header))
    for n in names:
        s = get_spec(n)
        params = f"{s.params:,}" if s.params else "-"
        gmacs = f"{s.gmacs:.1f}" if s.gmacs else "-"
        top1 = f"{s.top1:.1f}" if s.top1 else "-"
        print(f"{n:<28} {params:>13} {gmacs:>8} {s.img_size:>4} {s.num_classes:>7} {top1:>6}")
    return 0
