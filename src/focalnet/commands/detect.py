"""``focalnet detect``: train | eval | predict torchvision detectors on FocalNet backbones (COCO-format data).

    focalnet detect data --root data/synthetic_coco            # the offline synthetic COCO set
    focalnet detect train --config configs/detection/mask_rcnn_focalnet_synthetic_demo.yaml
    focalnet detect eval --checkpoint runs/detect/demo/last.pt
    focalnet detect predict --checkpoint runs/detect/demo/last.pt image.png --out predictions/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from focalnet.errors import one_line


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{train,eval,predict,data}")

    t = sub.add_parser("train", help="train a detector from a YAML recipe (configs/detection/*.yaml)")
    t.add_argument("--config", "-c", default=None, help="YAML recipe; defaults are the 1x Mask R-CNN T-srf")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=2e-4 (repeatable)")
    t.add_argument("--output", default=None, help="output folder (overrides output_dir)")
    t.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")

    e = sub.add_parser("eval", help="COCO bbox/segm mAP of a checkpoint (pycocotools)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--images", default=None, help="image folder (default: the checkpoint config's val split)")
    e.add_argument("--ann", default=None, help="COCO instances JSON (default: the config's val split)")
    e.add_argument("--device", default="auto")
    e.add_argument("--batch-size", type=int, default=2)
    e.add_argument("--json", default=None, help="also write the metrics to this JSON file")

    p = sub.add_parser("predict", help="draw boxes and masks on images (PNG)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--out", default="predictions", help="folder for the PNGs")
    p.add_argument("--score", type=float, default=0.5, help="keep detections with at least this score")
    p.add_argument("--device", default="auto")

    d = sub.add_parser("data", help="write the synthetic COCO-format data set (scikit-image objects, NOT COCO)")
    d.add_argument("--root", default="data/synthetic_coco")
    d.add_argument("--n-train", type=int, default=200)
    d.add_argument("--n-val", type=int, default=50)
    d.add_argument("--size", type=int, default=128)
    d.add_argument("--seed", type=int, default=0)


def _print_metrics(metrics: dict) -> None:
    for kind in ("bbox", "segm"):
        if kind in metrics:
            m = metrics[kind]
            print(f"{kind:5s} mAP {m['mAP']:.4f}  mAP50 {m['mAP50']:.4f}  mAP75 {m['mAP75']:.4f}")


def _train(args: argparse.Namespace) -> int:
    from focalnet.det.config import load_config
    from focalnet.det.engine import train

    cfg = load_config(args.config, args.overrides)
    if args.output:
        cfg.output_dir = args.output
    result = train(cfg, progress=not args.no_progress and sys.stderr.isatty())
    h = result["history"]
    if h:
        k = max(1, min(10, len(h) // 4))
        first, last = sum(r["loss"] for r in h[:k]) / k, sum(r["loss"] for r in h[-k:]) / k
        print(f"{result['steps']} steps on {result['device']}: loss {first:.4f} (first {k}) -> {last:.4f} "
              f"(last {k}), {result['images_per_s']:.2f} images/s")
    _print_metrics(result["metrics"])
    print(f"checkpoint: {result['checkpoint']}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from focalnet.det.dataset import CocoDetection
    from focalnet.det.engine import evaluate, load_checkpoint, resolve_data, resolve_device

    device = resolve_device(args.device)
    model, cfg, cats = load_checkpoint(args.checkpoint, device)
    images, ann = args.images, args.ann
    if images is None or ann is None:
        paths = resolve_data(cfg)
        images, ann = images or paths["val_images"], ann or paths["val_ann"]
    ds = CocoDetection(images, ann, masks=False, cat_ids=[c["id"] for c in cats])
    metrics = evaluate(model, ds, device, batch_size=args.batch_size, progress=sys.stderr.isatty())
    print(f"{metrics['images']} images, {metrics['detections']} detections")
    _print_metrics(metrics)
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from focalnet.data.images import ImageLoadError, load_rgb
    from focalnet.det.engine import draw_predictions, load_checkpoint, predict, resolve_device

    device = resolve_device(args.device)
    model, _, cats = load_checkpoint(args.checkpoint, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        try:
            img = np.array(load_rgb(path))
        except ImageLoadError as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 1
        pred = predict(model, img, device, score_thresh=args.score)
        dest = out / (Path(path).stem + "_det.png")
        Image.fromarray(draw_predictions(img, pred, cats)).save(dest)
        n = len(pred["boxes"])
        if n == 0:
            print(f"{path}: no detections with score >= {args.score} (image written unmarked to {dest})")
            continue
        found = ", ".join(f"{cats[int(lab) - 1]['name']} {float(s):.2f}"
                          for lab, s in zip(pred["labels"], pred["scores"]))
        print(f"{path}: {n} detections ({found}) -> {dest}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from focalnet.data.coco import make_synthetic_coco

    paths = make_synthetic_coco(args.root, args.n_train, args.n_val, args.size, args.seed)
    for k, v in paths.items():
        print(f"{k:13s} {v}")
    print("note: synthetic scenes (scikit-image objects pasted on textures), not COCO")
    return 0


def run(args: argparse.Namespace) -> int:
    from focalnet.det.dataset import DatasetError
    from focalnet.weights.loading import CheckpointError

    actions = {"train": _train, "eval": _eval, "predict": _predict, "data": _data}
    try:
        return actions[args.action](args)
    except (DatasetError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"focalnet detect {args.action}: error: {one_line(e)}", file=sys.stderr)
        return 2
