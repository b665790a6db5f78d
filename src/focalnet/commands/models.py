"""``focalnet models``: the table of registered variants.

The ``weights`` column says whether released weights can be downloaded today (``available``), were published
but every known link is dead (``dead``), or were never released (``none``); see docs/weights.md.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'focalnet_*_lrf'")
    parser.add_argument("--family", default=None, help="focalnet or focal_transformer")


def run(args: argparse.Namespace) -> int:
    from focalnet.models.registry import get_spec, list_models
    from focalnet.weights.records import weights_status

    names = list_models(args.pattern, family=args.family)
    header = f"{'model':<28} {'params':>13} {'GMACs':>8} {'res':>4} {'classes':>7} {'top-1':>6} {'weights':>9}"
    print(header)
    print("-" * len(header))
    for n in names:
        s = get_spec(n)
        own = s.params_at()  # with the head the variant has (21,842 classes for L/XL/H)
        params = f"{own:,}" if own else "-"
        gmacs = f"{s.gmacs:.1f}" if s.gmacs else "-"
        top1 = f"{s.top1:.1f}" if s.top1 else "-"
        print(f"{n:<28} {params:>13} {gmacs:>8} {s.img_size:>4} {s.num_classes:>7} {top1:>6} {weights_status(n):>9}")
    print("params: with the variant's own head (the classes column); GMACs: with a 1000-class head")
    return 0
