"""``focalnet export``: a classifier as ONNX (dynamic batch and image size) or a ``torch.export`` program.

    focalnet export --format onnx --out model.onnx                       # newest checkpoint of runs/digits
    focalnet export --format onnx --model focalnet_tiny_srf --pretrained true --out tiny.onnx --time
    focalnet export --format torch-export --model focalnet_tiny_srf --out tiny.pt2

Every artefact is verified after writing: it is loaded (onnxruntime / ``torch.export.load``) and run on inputs of
several batch sizes and image sizes, and the max |logits difference| against PyTorch fp32 is printed; above
``--tolerance`` (1e-4) the command fails. ``--time`` adds an interleaved timing next to PyTorch eager fp32 and
``focalnet.Predictor``'s fast path.
"""

from __future__ import annotations

import argparse
import sys

FORMATS = {"onnx": ".onnx", "torch-export": ".pt2"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="onnx", choices=sorted(FORMATS), help="artefact format (default onnx)")
    parser.add_argument("--out", default=None, help="output file (default: <model>.onnx / <model>.pt2)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file or run directory (default runs/digits)")
    parser.add_argument("--model", default=None,
                        help="a registered variant; with --pretrained/--weights, else random weights")
    parser.add_argument("--pretrained", default=None, help="released weights of --model: true or a tag")
    parser.add_argument("--weights", default=None, help="weights file for --model")
    parser.add_argument("--size", type=int, default=None, help="example image side for tracing (default: model's)")
    parser.add_argument("--exporter", default="torchscript", choices=["torchscript", "dynamo"],
                        help="ONNX exporter: torch.onnx's TorchScript one (seconds) or the dynamo one (minutes)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max |logits difference| allowed")
    parser.add_argument("--no-verify", action="store_true", help="skip loading the artefact back and comparing")
    parser.add_argument("--time", action="store_true", help="time the artefact next to the PyTorch paths")
    parser.add_argument("--batch", type=int, default=8, help="batch size for --time")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds for --time")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch and onnxruntime")


def _load(args: argparse.Namespace):
    import logging

    import focalnet

    if args.model is not None and not args.pretrained and not args.weights:
        focalnet.get_spec(args.model)  # KeyError names the choices
        logging.getLogger(__name__).warning("exporting %s with random weights (no --pretrained/--weights)",
                                            args.model)
        return focalnet.create_model(args.model, drop_path_rate=0.0).eval(), args.model
    from focalnet.train.inference import load_for_inference

    loaded = load_for_inference(args.checkpoint, args.model, args.pretrained, args.weights, "cpu")
    return loaded.model.eval(), loaded.source


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from focalnet.errors import UsageError, one_line
    from focalnet.utils import exporting
    from focalnet.weights.loading import CheckpointError

    if args.batch < 1 or args.rounds < 1 or (args.size is not None and args.size < 32):
        print("focalnet export: --batch and --rounds must be positive, --size at least 32", file=sys.stderr)
        return 2
    if (args.threads is not None and args.threads < 1) or not args.tolerance >= 0:
        print("focalnet export: --threads must be >= 1 and --tolerance >= 0", file=sys.stderr)
        return 2
    if args.out and Path(args.out).is_dir():
        print(f"focalnet export: --out {args.out} is a folder; give a file name", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, source = _load(args)
    except (OSError, CheckpointError, ValueError, KeyError, ImportError) as e:
        if isinstance(e, UsageError):  # an unknown --model: exit code 2, shown by the CLI
            raise
        print(f"focalnet export: {one_line(e)}", file=sys.stderr)
        return 1
    if not hasattr(model, "stride") or not hasattr(model, "head"):
        print("focalnet export: only classifiers can be exported", file=sys.stderr)
        return 1
    size = args.size or int(getattr(model, "img_size", 224))
    name = args.model or Path(str(source)).stem
    out = Path(args.out or f"{name}{FORMATS[args.format]}")
    fmt = "onnx" if args.format == "onnx" else "program"
    try:
        if fmt == "onnx":
            exporting.export_onnx(model, out, size=size, opset=args.opset, exporter=args.exporter)
        else:
            exporting.export_program(model, out, size=size)
    except ImportError as e:
        print(f"focalnet export: missing dependency {e.name!r}; pip install 'focalnet[export]'", file=sys.stderr)
        return 1
    except Exception as e:  # an exporter failure is a runtime error with the exporter's message
        print(f"focalnet export: exporting failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
              file=sys.stderr)
        return 1
    print(f"written: {out} ({out.stat().st_size / 2**20:.1f} MiB, {args.format}, from {source})")
    rc = 0
    if not args.no_verify:
        s = int(model.stride)
        shapes = [(2, 2 * s, 3 * s), (1, 4 * s, 2 * s), (3, size, size)]
        diffs = exporting.verify(model, fmt, out, shapes)
        worst = max(diffs.values())
        print("verified against PyTorch fp32: " + ", ".join(f"{k}: max |d| {v:.1e}" for k, v in diffs.items()))
        if worst > args.tolerance:
            print(f"focalnet export: max |logits difference| {worst:.2e} exceeds --tolerance {args.tolerance:g}",
                  file=sys.stderr)
            rc = 1
    if args.time:
        from focalnet.utils.benchmark import format_table

        rows = exporting.time_artefacts(model, {fmt: out}, batch=args.batch, size=size, rounds=args.rounds,
                                        threads=args.threads)
        print()
        print(format_table(rows, title=f"forward, batch {args.batch}, {size}x{size}, {torch.get_num_threads()} threads"
                           ).replace("time / ours", "time / eager"))
    return rc
