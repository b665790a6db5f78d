"""``focalnet serve``: a local web page showing modulation and gating maps of uploaded images.

    focalnet serve --weights focalnet_tiny_srf.pth        # then open http://127.0.0.1:7860

The page lets the user choose a model and one of the weights files given here (``--weights``, ``--weights-dir``),
upload an image, and see the maps. It listens on 127.0.0.1 by default; the Flask development server is meant for
a local demo, not for exposure on a network.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

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
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a request is answered 503")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from focalnet.models.registry import list_models
    from focalnet.viz.web import DemoConfig, create_app, default_models

    files = [Path(w) for w in args.weights]
    if args.weights_dir:
        d = Path(args.weights_dir)
        if not d.is_dir():
            print(f"focalnet serve: --weights-dir {d} is not a folder", file=sys.stderr)
            return 2
        files += sorted(p for p in d.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"focalnet serve: weights not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    weights = {f.name: str(f) for f in files}
    models = list_models(args.models, family="focalnet") if args.models else default_models()
    if not models:
        print(f"focalnet serve: no FocalNet matches --models {args.models!r}", file=sys.stderr)
        return 2
    if not weights:
        print("WARNING: no --weights given: the demo offers only random weights, whose maps are not meaningful.",
              file=sys.stderr)
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            print(f"WARNING: listening on {args.host}: the demo server is reachable from other machines.",
                  file=sys.stderr)
    except ValueError:
        pass
    cfg = DemoConfig(models=models, default_model=args.model, weights=weights, image_size=args.size,
                     max_upload_mb=args.max_upload_mb, timeout_s=args.timeout, device=args.device)
    app = create_app(cfg)
    from werkzeug.serving import make_server

    server = make_server(args.host, args.port, app, threaded=True)
    print(f"FocalNet demo on http://{args.host}:{server.server_port}/  (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
