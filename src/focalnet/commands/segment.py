"""``focalnet segment``: semantic segmentation with UPerNet on a FocalNet backbone.

    focalnet segment synth   --out data/synthetic_ade                     # small SYNTHETIC ADE20K-layout set
    focalnet segment train   --config configs/segmentation/upernet_focalnet_synthetic_demo.yaml --out runs/seg
    focalnet segment eval    --checkpoint runs/seg/latest.pt [--aug-test] [--set test.mode=slide]
    focalnet segment predict --checkpoint runs/seg/latest.pt IMAGE... --out preds/

``predict`` writes, per image, ``<stem>_mask.png`` (an index PNG with a colour palette: viewers show colours,
programs read class indices) and ``<stem>_overlay.png`` (the colours blended over the photo).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from focalnet.errors import one_line


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{synth,train,eval,predict}")

    p = sub.add_parser("synth", help="write a small SYNTHETIC ADE20K-layout data set (scikit-image objects)")
    p.add_argument("--out", required=True, help="folder to write (images/ + annotations/)")
    p.add_argument("--train", type=int, default=200, help="training images")
    p.add_argument("--val", type=int, default=50, help="validation images (held out: other seeds)")
    p.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--original-names", action="store_true",
                   help="use the authors' folder names (images/{train,validation}, annotations/{train,val})")

    p = sub.add_parser("train", help="train UPerNet-FocalNet on an ADE20K-layout folder")
    p.add_argument("--config", help="YAML recipe (configs/segmentation/*.yaml); defaults: the ADE20K T-srf recipe")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_iters=200 (repeatable)")
    p.add_argument("--data", help="data root (same as --set data.root=...)")
    p.add_argument("--out", default="runs/segment", help="output folder: latest.pt, config.yaml, log.json")
    p.add_argument("--resume", help="checkpoint to resume from (weights, optimizer, schedule, iteration)")

    for name, help_ in (("eval", "mIoU / pixel accuracy of a checkpoint on a validation folder"),
                        ("predict", "segment images; write colour masks and overlays as PNG")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--checkpoint", required=True, help="a checkpoint written by `focalnet segment train`")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override data./test. values of the checkpoint's config (e.g. test.mode=slide)")
        p.add_argument("--aug-test", action="store_true", help="multi-scale + flip (test.aug_ratios, test.flip)")
        p.add_argument("--device", default="auto")
        if name == "eval":
            p.add_argument("--data", help="data root (default: the checkpoint's data.root)")
            p.add_argument("--json", help="also write the metrics to this JSON file")
        else:
            p.add_argument("images", nargs="+", help="image files")
            p.add_argument("--out", required=True, help="folder for the PNGs")
            p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the mask colours")


def palette(n: int):
    """Distinct, stable colours for class indices (the bit-interleaving colour map of PASCAL VOC)."""
    import numpy as np

    cmap = np.zeros((max(n, 256), 3), np.uint8)
    for i in range(len(cmap)):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def _print_metrics(m: dict, title: str) -> None:
    print(f"{title}: mIoU {_fmt(m['mIoU'])}  aAcc {_fmt(m['aAcc'])}  mAcc {_fmt(m['mAcc'])}  ({m['images']} images)")
    print(f"  {'class':<20} {'IoU':>7} {'Acc':>7}")
    for name, iou in m["IoU"].items():
        print(f"  {name:<20} {_fmt(iou):>7} {_fmt(m['Acc'][name]):>7}")


def _fmt(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.2f}"


def _checkpoint(args):
    from focalnet.seg.config import ConfigError, SegConfig, apply_overrides
    from focalnet.seg.engine import load_checkpoint, resolve_device

    model, cfg, obj = load_checkpoint(args.checkpoint)
    d = cfg.to_dict()
    if getattr(args, "data", None):
        d["data"]["root"] = args.data
    bad = [o for o in args.overrides if not o.split("=", 1)[0].startswith(("data.", "test."))]
    if bad:
        raise ConfigError(f"only data.* and test.* can be overridden at evaluation, not: {', '.join(bad)}")
    cfg = SegConfig.from_dict(apply_overrides(d, args.overrides)).validate()
    device = resolve_device(args.device)
    return model.to(device).eval(), cfg, device, obj


def run(args: argparse.Namespace) -> int:
    from focalnet.seg.config import ConfigError
    from focalnet.seg.data import SegDataError

    try:
        return {"synth": _synth, "train": _train, "eval": _eval, "predict": _predict}[args.action](args)
    except (ConfigError, SegDataError, FileNotFoundError, ValueError) as e:  # bad input: a message, not a trace
        print(f"focalnet segment {args.action}: {one_line(e)}", file=sys.stderr)
        return 2


def _synth(args) -> int:
    from focalnet.seg.data import SYNTHETIC_CLASSES, write_synthetic_ade

    names = ("train", "validation") if args.original_names else ("training", "validation")
    root = write_synthetic_ade(args.out, args.train, args.val, tuple(args.size), args.seed, names)
    print(f"wrote {args.train} + {args.val} SYNTHETIC images to {root} (classes: {', '.join(SYNTHETIC_CLASSES)})")
    if args.original_names:
        print("note: annotations for validation are in annotations/validation; set data.val_ann_dir accordingly")
    return 0


def _train(args) -> int:
    from focalnet.seg.config import load_config
    from focalnet.seg.engine import train

    overrides = list(args.overrides) + ([f"data.root={args.data}"] if args.data else [])
    cfg = load_config(args.config, overrides)
    res = train(cfg, args.out, progress=True, resume=args.resume)
    h = res["history"]
    if h:
        k = max(1, min(20, len(h) // 5))
        first, last = sum(r["loss"] for r in h[:k]) / k, sum(r["loss"] for r in h[-k:]) / k
        print(f"loss: first {k} iterations {first:.4f} -> last {k} {last:.4f}")
    if res["evals"]:
        _print_metrics(res["evals"][-1], f"validation @ {res['evals'][-1]['iter']}")
    print(f"checkpoint: {res['checkpoint']}")
    return 0


def _eval(args) -> int:
    from focalnet.seg.engine import evaluate, make_dataset

    model, cfg, device, obj = _checkpoint(args)
    ds = make_dataset(cfg, "val")
    m = evaluate(model, ds, cfg, aug=args.aug_test, device=device, progress=True)
    mode = ("multi-scale+flip " if args.aug_test else "single-scale ") + cfg.test.mode
    _print_metrics(m, f"{Path(args.checkpoint).name} (iter {obj.get('iter')}, {mode})")
    if args.json:
        Path(args.json).write_text(json.dumps(m, indent=1))
    return 0


def _predict(args) -> int:
    import numpy as np
    from PIL import Image
    from tqdm.auto import tqdm

    from focalnet.seg.data import read_image
    from focalnet.seg.engine import predict

    model, cfg, device, _ = _checkpoint(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = cfg.data.class_names or [str(i) for i in range(cfg.model.num_classes)]
    pal = palette(cfg.model.num_classes)
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"image(s) not found: {', '.join(missing)}")
    for path in tqdm(args.images, desc="predict", disable=len(args.images) < 2):
        try:
            img = read_image(path)
        except Exception as e:  # PIL raises several types for unreadable files
            print(f"skipping {path}: not a readable image ({e})", file=sys.stderr)
            continue
        pred = predict(model, img, cfg, args.aug_test, device).argmax(0).numpy().astype(np.uint8)
        stem = Path(path).stem
        mask = Image.fromarray(pred)  # mode L; attaching a palette makes it P with the same indices
        mask.putpalette(pal[:256].reshape(-1).tolist())
        mask.save(out / f"{stem}_mask.png")
        overlay = (img * (1 - args.alpha) + pal[pred] * args.alpha).clip(0, 255).astype(np.uint8)
        Image.fromarray(overlay).save(out / f"{stem}_overlay.png")
        present = np.bincount(pred.reshape(-1), minlength=len(names)) / pred.size
        found = ", ".join(f"{names[i]} {present[i]:.0%}" for i in np.argsort(-present) if present[i] > 0)
        print(f"{path}: {found}  -> {out / (stem + '_mask.png')}, {out / (stem + '_overlay.png')}")
    return 0
