"""Fused CPU inference kernels: a GEMM or depthwise convolution with its bias, GELU, residual add or gating
multiply done in one pass (oneDNN post-ops through ``torch.ops.mkldnn``), instead of a GEMM followed by one or two
full passes of element-wise work over memory.

Only for inference on the CPU: these ops have no autograd formula, and export/compile see the plain ops instead
(:func:`fusable` says no while tracing). The GELU post-op is oneDNN's exact erf GELU, the same function as
``nn.GELU()``; outputs agree with the unfused ops to float rounding (the residual is added after the bias, not
before, ~1e-7). Under CPU autocast the inputs and weights are cast to the autocast dtype first, as autocast would.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["fusable", "linear_gelu", "linear_add", "linear_mul", "dwconv_gelu"]


@functools.lru_cache(maxsize=1)
def _available() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x = torch.ones(2, 4)
        w = torch.ones(3, 4)
        torch.ops.mkldnn._linear_pointwise(x, w, None, "gelu", [], "none")
        torch.ops.mkldnn._linear_pointwise.binary(x, torch.ones(2, 3), w, None, "add")
        return True
    except Exception:  # an ATen build without oneDNN post-ops: the plain path is used
        return False


def _tracing() -> bool:
    return (torch.fx._symbolic_trace.is_fx_symbolic_tracing() or torch.compiler.is_compiling() or torch.jit.is_tracing()
            or torch.jit.is_scripting())


def fusable(x: torch.Tensor) -> bool:
    """True where the fused kernels may run: CPU, no autograd, fp32/bf16, not under compile/export/tracing."""
    return (
        not _tracing()  # first: under FX symbolic tracing ``x`` is a Proxy whose attributes cannot be branched on
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and x.dtype in (torch.float32, torch.bfloat16)
        and _available()
    )


def _dtype(x: torch.Tensor) -> torch.dtype:
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


def _cast(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return t if t is None or t.dtype == dtype else t.to(dtype)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


def linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``gelu(x @ weight.T + bias)`` over the last dim of ``x``."""
    dt = _dtype(x)
    y = torch.ops.mkldnn._linear_pointwise(_cast(_flat(x), dt), _cast(weight, dt), _cast(bias, dt), "gelu", [], "none")
    return y.view(*x.shape[:-1], weight.shape[0])


def linear_add(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, other: torch.Tensor) -> torch.Tensor:
    """``other + (x @ weight.T + bias)`` (a residual added in the GEMM's epilogue)."""
    dt = _dtype(x)
    if other.dtype != dt:  # autocast keeps the residual stream in fp32: add outside, in fp32, as autocast would
        return other + F.linear(_cast(x, dt), _cast(weight, dt), _cast(bias, dt))
    y = torch.ops.mkldnn._linear_pointwise.binary(_cast(_flat(x), dt), _flat(other).contiguous(), _cast(weight, dt),
                                                  _cast(bias, dt), "add")
    return y.view(*x.shape[:-1], weight.shape[0])


def linear_mul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, other: torch.Tensor) -> torch.Tensor:
    """``other * (x @ weight.T + bias)`` (the focal modulation's query times modulator, in the epilogue)."""
    dt = _dtype(x)
    y = torch.ops.mkldnn._linear_pointwise.binary(_cast(_flat(x), dt), _cast(_flat(other), dt).contiguous(),
                                                  _cast(weight, dt), _cast(bias, dt), "mul")
    return y.view(*x.shape[:-1], weight.shape[0])


def dwconv_gelu(x: torch.Tensor, weight: torch.Tensor, padding: int) -> torch.Tensor:
    """``gelu(depthwise_conv2d(x))`` (no bias), keeping ``x``'s memory format."""
    dt = _dtype(x)
    return torch.ops.mkldnn._convolution_pointwise(
        _cast(x, dt), _cast(weight, dt), None, [padding, padding], [1, 1], [1, 1], weight.shape[0], "gelu", [], "none"
    )
