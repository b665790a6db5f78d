"""Depthwise convolution whose weight gradient stays fast for large kernels on the CPU.

PyTorch's CPU backward for the *weight* of a depthwise convolution falls onto a slow path once the kernel is large:
for a 15x15 kernel (the fourth level of an fl4 backbone with focal window 9) one backward of a 192-channel 96x96
map takes ~10 s in bf16 channels-last and ~4.5 s in fp32, and grows with the image, so a bf16 training step of such
a backbone appears to hang. The input gradient is fast in every layout.

:func:`depthwise_conv2d` computes the forward and the input gradient with the usual kernels and the weight gradient
as one grouped convolution, in fp32: ``dW[c] = sum_b  x_pad[b, c] (*) dY[b, c]`` is a correlation of each channel's
padded input with its output gradient, which ``conv2d`` evaluates with the batch as the input channels of a group
per image channel. Same function, same gradients (to float rounding); about 10x faster at 15x15.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["depthwise_conv2d", "LARGE_KERNEL", "depthwise_weight_grad"]

# Kernels from this size up take the grouped-convolution weight gradient (13x13 and below are fast in aten).
LARGE_KERNEL = 15


def depthwise_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: int, padding: int) -> torch.Tensor:
    """Weight gradient ``(C, 1, k, k)`` (fp32) of a stride-1 depthwise conv of ``x`` given ``grad_out``."""
    B, C, H, W = x.shape
    xp = F.pad(x.float(), (padding, padding, padding, padding))
    Ho, Wo = grad_out.shape[-2:]
    inp = xp.transpose(0, 1).reshape(1, C * B, H + 2 * padding, W + 2 * padding)
    wt = grad_out.float().transpose(0, 1).reshape(C, B, Ho, Wo)
    return F.conv2d(inp, wt, groups=C).reshape(C, 1, kernel, kernel)


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: int, dtype: torch.dtype | None):
        if dtype is not None:  # autocast was on: compute in its dtype, as autocast would
            x, weight = x.to(dtype), weight.to(dtype)
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.weight_dtype = weight.dtype
        with torch.autocast(x.device.type, enabled=False):
            return F.conv2d(x, weight, None, 1, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        p, C, k = ctx.padding, weight.shape[0], weight.shape[-1]
        grad_x = grad_w = None
        grad_out = grad_out.to(x.dtype)
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [1, 1], [p, p], [1, 1], False, [0, 0], C, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(x, grad_out, k, p)
        return grad_x, grad_w, None, None


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, padding: int) -> torch.Tensor:
    """``conv2d(x, weight, padding=padding, groups=C)`` (stride 1, no bias) with a fast large-kernel backward."""
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else None
    return _DepthwiseConv.apply(x, weight, padding, dtype)
