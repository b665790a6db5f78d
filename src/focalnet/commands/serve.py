"""``focalnet serve``: a local web page showing modulation and gating maps of uploaded images.

    focalnet serve --weights focalnet_tiny_srf.pth        # then open http://127.0.0.1:7860

A Gradio app (the ``serve`` extra): the user chooses a model and one of the weights files given here that fit it
(``--weights``, ``--weights-dir``), uploads an image, GIF or video or picks a bundled example, and sees the maps.
It listens on 127.0.0.1 by default; it is a local demo, not meant for exposure on a network.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from focalnet.errors import one_line

WEIGHT_SUFFIXES = {".pth", ".pt", ".bin", ".safetensors"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (0 = any free port)")
    parser.add_argument("--model", default="focalnet_tiny_srf", help="model selected when the page opens")
    parser.add_argument("--models", default=None, metavar="PATTERN",
                        help="registered models to offer (shell pattern); default: FocalNets up to 100M parameters")
    parser.add_argument("--weights", nargs="*", default=[], metavar="FILE", help="weights files to offer")
    parser.add_argument("--weights-dir", default=None, help="offer every .pth/.pt/.bin/.safetensors in this folder")
    parser.add_argument("--size", type=int, default=224, help="shorter image side fed to the model")
    parser.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted upload")
    parser.add_argument("--queue-size", type=int, default=8, help="jobs that may wait; more are turned away")
    parser.add_argument("--max-frames", type=int, default=24, help="frames read from an uploaded GIF/video")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("focalnet serve: the web demo needs Gradio: pip install 'focalnet[serve]'", file=sys.stderr)
        return 1
    from focalnet.models.registry import list_models
    from focalnet.viz.web import DemoConfig, UserError, create_demo, default_models, launch, scan_weights

    files = [Path(w) for w in args.weights]
    if args.weights_dir:
        d = Path(args.weights_dir)
        if not d.is_dir():
            print(f"focalnet serve: --weights-dir {d} is not a folder", file=sys.stderr)
            return 2
        files += sorted(p for p in d.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"focalnet serve: weights not found (or not regular files): {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.queue_size < 1 or args.max_frames < 1:
        print("focalnet serve: --queue-size and --max-frames must be >= 1", file=sys.stderr)
        return 2
    problems = []
    if not 0 <= args.port <= 65535:
        problems.append(f"--port must be in 0..65535 (0 = any free port), got {args.port}")
    if args.size < 32:
        problems.append(f"--size must be >= 32 (the network's stride), got {args.size}")
    if not args.max_upload_mb > 0:
        problems.append(f"--max-upload-mb must be positive, got {args.max_upload_mb:g}")
    if problems:
        print(f"focalnet serve: {'; '.join(problems)}", file=sys.stderr)
        return 2
    from focalnet.engine.distributed import resolve_device
    from focalnet.errors import UsageError

    try:
        resolve_device(args.device)
    except UsageError as e:
        print(f"focalnet serve: {e}", file=sys.stderr)
        return 2
    models = list_models(args.models, family="focalnet") if args.models else default_models()
    if not models:
        print(f"focalnet serve: no FocalNet matches --models {args.models!r}", file=sys.stderr)
        return 2
    if args.model not in models:
        print(f"focalnet serve: --model {args.model} is not one of the offered models ({', '.join(models)})",
              file=sys.stderr)
        return 2
    try:
        infos = scan_weights({f.name: str(f) for f in files})
    except UserError as e:  # a damaged or refused weights file: a runtime error
        print(f"focalnet serve: {one_line(e)}", file=sys.stderr)
        return 1
    for info in infos.values():
        if info.variant is None:
            print(f"WARNING: {info.path} matches no registered FocalNet variant; it is not offered.", file=sys.stderr)
    if not files:
        print("WARNING: no --weights given: the demo offers only random weights, whose maps are not meaningful.",
              file=sys.stderr)
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            print(f"WARNING: listening on {args.host}: the demo server is reachable from other machines.",
                  file=sys.stderr)
    except ValueError:
        pass
    cfg = DemoConfig(models=models, default_model=args.model, weights={f.name: str(f) for f in files},
                     image_size=args.size, max_upload_mb=args.max_upload_mb, queue_size=args.queue_size,
                     max_frames=args.max_frames, device=args.device)
    demo = create_demo(cfg, infos=infos)
    print(f"FocalNet demo on http://{args.host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    try:
        launch(demo, host=args.host, port=args.port, block=True, max_upload_mb=args.max_upload_mb)
    except KeyboardInterrupt:
        pass
    except OSError as e:  # port in use, address not available
        print(f"focalnet serve: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    return 0
