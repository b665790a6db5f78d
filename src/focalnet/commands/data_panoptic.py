"""``focalnet data synth panoptic``: a small SYNTHETIC set in the real COCO panoptic + instance formats.

    focalnet data synth panoptic --out data/synthetic_panoptic --train 12 --val 6 --size 96 96

Things are the scikit-image objects (horse, coin, logo), stuff the textures (brick, grass, gravel, moon); see
:func:`focalnet.seg.panoptic.write_synthetic_panoptic`. Registered in :data:`focalnet.commands.data.SYNTH`.
"""

from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="data/synthetic_panoptic",
                   help="folder to write ({train,val}2017/ + annotations/panoptic_*.json, PNGs, instances_*.json)")
    p.add_argument("--train", type=int, default=200, help="training images")
    p.add_argument("--val", type=int, default=50, help="validation images")
    p.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"), help="image size")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.train < 1 or args.val < 1:
        raise ValueError(f"--train and --val must be >= 1, got {args.train} and {args.val}")
    if min(args.size) < 32 or max(args.size) > 4096:
        raise ValueError(f"--size must be between 32 and 4096 pixels, got {args.size[0]} {args.size[1]}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    from focalnet.seg.panoptic import write_synthetic_panoptic

    root = write_synthetic_panoptic(out, args.train, args.val, (args.size[0], args.size[1]), args.seed)
    print(f"wrote {args.train} training + {args.val} validation images to {root} "
          "(COCO panoptic: annotations/panoptic_{train,val}2017.json + PNGs; instances_{train,val}2017.json)")
    print("note: synthetic scenes (scikit-image objects as things, textures as stuff), not COCO")
    return 0
