"""The ``focalnet`` command: a thin dispatcher onto plain functions in ``focalnet.commands.*``.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``; only the chosen
subcommand's module is imported, so ``focalnet --help`` stays fast and optional extras are needed only by the
commands that use them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

# name -> (module, one-line help). Order is the order shown by --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("focalnet.commands.models", "list every registered variant: params, GMACs, resolution, weights"),
    "convert": ("focalnet.commands.convert", "convert a checkpoint between original / timm / HF / safetensors"),
    "train": ("focalnet.commands.train", "train any task: classification, detection, segmentation, ... "
              "(no arguments: the built-in digits job)"),
    "eval": ("focalnet.commands.eval", "evaluate a checkpoint or run folder of any task; metrics as JSON"),
    "predict": ("focalnet.commands.predict", "predict with a checkpoint of any task (labels, boxes, masks)"),
    "data": ("focalnet.commands.data", "data tools: synth coco|ade (synthetic demo sets)"),
    "visualize": ("focalnet.commands.visualize", "modulation / gating / kernel / attention maps as PNG + npz"),
    "serve": ("focalnet.commands.serve", "local web demo of modulation and gating maps"),
    "detect": ("focalnet.commands.detect", "old spelling of train/eval/predict for detection (prints the new one)"),
    "segment": ("focalnet.commands.segment", "old spelling of train/eval/predict for segmentation (prints the new)"),
    "benchmark": ("focalnet.commands.benchmark", "measure forward/backward speed and memory"),
    "export": ("focalnet.commands.export", "export a classifier as ONNX or a torch.export program, verified"),
}


def _top_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="focalnet",
        description="Focal Modulation Networks and Focal Transformers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {n:<10} {h}" for n, (m, h) in COMMANDS.items() if importlib.util.find_spec(m) is not None)
        + "\n\nRun `focalnet COMMAND --help` for a command's options.",
    )
    p.add_argument("command", nargs="?", help="one of the commands below")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``focalnet CMD: error: MESSAGE (see --help)``, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _report(name: str, error: BaseException, verbose: bool) -> int:
    """Show a failed command as one line on stderr and return its exit code (the one place this happens)."""
    from focalnet.errors import FocalnetError, one_line

    if isinstance(error, FocalnetError):
        print(f"focalnet {name}: {one_line(error)}", file=sys.stderr)
        return error.exit_code
    if verbose:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    print(f"focalnet {name}: internal error: {type(error).__name__}: {one_line(error, 500)} "
          "(a bug; run with -v for the traceback and please report it)", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in {"-h", "--help"}:
        top.print_help()
        return 0
    if argv[0] == "--version":
        from focalnet._version import __version__  # no torch import for --version

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("focalnet"):
            top.error(f"command {name!r} is not available in this installation")
        print(f"focalnet {name}: missing dependency {e.name!r}; install the extras: pip install 'focalnet[all]'",
              file=sys.stderr)
        return 2
    parser = _Parser(prog=f"focalnet {name}", description=help_text,
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.configure(parser)
    if getattr(module, "INTERMIXED", True) and not parser._subparsers:
        args = parser.parse_intermixed_args(rest)  # flags may come after key=value overrides
    else:
        args = parser.parse_args(rest)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user errors become one line + exit code; anything else is reported as a bug
        return _report(name, e, args.verbose)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
