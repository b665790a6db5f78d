"""Deployable artefacts of a classifier: ONNX with dynamic batch and image size, and a ``torch.export`` program.

Both are verified against the PyTorch model (max |logits difference| on inputs of several shapes) and can be timed
next to the PyTorch paths (eager fp32 and :class:`focalnet.Predictor`) in interleaved rounds. Used by
``focalnet export``; library code, so results are returned, never printed.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["export_onnx", "export_program", "onnx_session", "verify", "time_artefacts", "VERIFY_SHAPES"]

_logger = logging.getLogger(__name__)

# Batch and (non-square, different) sizes that must all run through one artefact.
VERIFY_SHAPES: tuple[tuple[int, int, int], ...] = ((2, 64, 96), (1, 128, 64), (3, 96, 96))


def _stride(model: nn.Module) -> int:
    return int(getattr(model, "stride", 32))


def export_onnx(model: nn.Module, path: str | os.PathLike, size: int = 224, opset: int = 17,
                exporter: str = "torchscript") -> Path:
    """Write ``model`` (eval, fp32) as ONNX with dynamic batch, height and width; returns the path.

    ``exporter``: ``torchscript`` (``torch.onnx.export(dynamo=False)``, seconds) or ``dynamo`` (through
    ``torch.export``, minutes on a small CPU). Input ``images`` (B, C, H, W), output ``logits`` (B, classes).
    """
    from focalnet.weights.export import atomic_write

    model = model.eval()
    x = torch.randn(1, int(getattr(model, "in_chans", 3)), size, size)

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python comparisons on input shapes
            if exporter == "dynamo":
                from torch.export import Dim

                s = _stride(model)
                dims = {0: Dim("batch", min=1, max=4096), 2: s * Dim("h", min=1, max=8192 // s),
                        3: s * Dim("w", min=1, max=8192 // s)}
                prog = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes={"x": dims},
                                         input_names=["images"], output_names=["logits"])
                prog.save(tmp)
            elif exporter == "torchscript":
                torch.onnx.export(model, (x,), tmp, dynamo=False, opset_version=opset, input_names=["images"],
                                  output_names=["logits"],
                                  dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                                "logits": {0: "batch"}})
            else:
                raise ValueError(f"unknown ONNX exporter {exporter!r}; choose torchscript or dynamo")

    with torch.no_grad():
        return atomic_write(path, write)


def export_program(model: nn.Module, path: str | os.PathLike, size: int = 224) -> Path:
    """Write a ``torch.export`` program (``.pt2``) with dynamic batch and sides (multiples of the stride, >= 64)."""
    from torch.export import Dim, export, save

    from focalnet.weights.export import atomic_write

    model = model.eval()
    s = _stride(model)
    x = torch.randn(2, int(getattr(model, "in_chans", 3)), max(size, 2 * s), max(size, 2 * s))
    # Sides of at least 2 strides: a 1x1 last stage makes a channels-last conv's strides ambiguous (docs).
    dims = {0: Dim("batch", min=1, max=4096), 2: s * Dim("h", min=2, max=8192 // s),
            3: s * Dim("w", min=2, max=8192 // s)}
    with torch.no_grad():
        ep = export(model, (x,), dynamic_shapes={"x": dims})
    return atomic_write(path, lambda tmp: save(ep, tmp))


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session (``threads``: intra-op threads, default onnxruntime's choice)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _runner(fmt: str, path: Path, threads: int | None = None):
    if fmt == "onnx":
        sess = onnx_session(path, threads)
        name = sess.get_inputs()[0].name
        return lambda x: torch.from_numpy(sess.run(None, {name: x.numpy()})[0])
    prog = torch.export.load(str(path)).module()
    return lambda x: prog(x)


def verify(model: nn.Module, fmt: str, path: str | os.PathLike,
           shapes: Sequence[tuple[int, int, int]] = VERIFY_SHAPES) -> dict[str, float]:
    """Max |logits difference| artefact vs PyTorch (fp32 eager) per input shape ``(batch, H, W)``."""
    run = _runner(fmt, Path(path))
    out = {}
    c = int(getattr(model, "in_chans", 3))
    torch.manual_seed(0)
    for b, h, w in shapes:
        x = torch.randn(b, c, h, w)
        with torch.no_grad():
            ref = model.eval()(x)
            got = run(x)
        out[f"{b}x{c}x{h}x{w}"] = (got.float() - ref).abs().max().item()
    return out


def time_artefacts(model: nn.Module, artefacts: dict[str, Path], batch: int = 8, size: int = 224, rounds: int = 5,
                   warmup: int = 1, threads: int | None = None) -> list[dict]:
    """Interleaved timing of PyTorch eager fp32, the Predictor's fast path and each artefact (``fmt -> path``)."""
    from focalnet.predictor import Predictor

    from .benchmark import summarize, time_interleaved

    x = torch.randn(batch, int(getattr(model, "in_chans", 3)), size, size)
    exact, fast = Predictor.exact(model), Predictor(model, compile=False)
    steps = {"pytorch eager fp32 (exact)": lambda: exact(x),
             f"pytorch Predictor ({fast.settings.precision})": lambda: fast(x)}
    for fmt, path in artefacts.items():
        run = _runner(fmt, path, threads)
        label = "onnxruntime (CPU)" if fmt == "onnx" else "torch.export program"
        steps[label] = (lambda run=run: torch.no_grad()(run)(x))
    results = time_interleaved(steps, rounds=rounds, warmup=warmup, batch=batch)
    return summarize(results, baseline="pytorch eager fp32 (exact)")
