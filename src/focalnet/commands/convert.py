"""``focalnet convert SRC DST``: move a checkpoint between the original, timm, Hugging Face and safetensors formats.

Examples::

    focalnet convert focalnet_tiny_srf.pth tiny.safetensors            # + tiny.json (variant, kwargs)
    focalnet convert tiny.safetensors tiny_hf --to hf                  # transformers from_pretrained directory
    focalnet convert tiny_hf focalnet_tiny_srf.pth --to original       # back to the authors' layout
    focalnet convert model.safetensors timm.pth --to timm --model focalnet_tiny_srf
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from focalnet.weights.export import FORMATS

    parser.description = (
        "Convert a FocalNet checkpoint between the original, timm, Hugging Face and safetensors formats; the result "
        "is verified against the variant's shapes and written atomically."
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "examples:\n" + __doc__.split("Examples::\n\n")[1]
    parser.add_argument("src", help="checkpoint file, HF directory, URL, or registered weights name")
    parser.add_argument("dst", help="output file (directory for --to hf)")
    parser.add_argument("--model", default=None, help="registered variant name (default: from a config or the shapes)")
    parser.add_argument("--to", default="safetensors", choices=FORMATS, help="output format (default: safetensors)")


def run(args: argparse.Namespace) -> int:
    from focalnet.weights.export import convert_checkpoint

    s = convert_checkpoint(args.src, args.dst, model=args.model, to=args.to)  # errors: one line via cli.main
    print(f"variant:  {s['variant'] or '(custom config)'}")
    print(f"layout:   {s['from_layout']} -> {s['to']}")
    print(f"tensors:  {s['tensors']} ({s['params']:,} values), verified against the variant's shapes")
    for f in s["files"]:
        print(f"wrote:    {f}")
    return 0
