"""``spike_linear``: a linear layer whose input is mostly zeros (spikes), on the CPU.

y = x @ weightᵀ (+ bias), the same function as ``torch.nn.functional.linear``. The CPU kernel
(csrc/linear) walks only the nonzero entries of x: a row of y is the sum of the weight columns
its nonzero inputs pick (cost ∝ nonzeros × out_features, not in × out), and dL/dweight gathers
the same way. dL/dx = dL/dy @ weight is dense: a register-blocked loop for up to 32 outputs
(a readout), the BLAS product beyond. Where the kernel does not apply (other devices,
bfloat16/float16, CPU autocast) it is F.linear.

Zero entries of x contribute nothing, even against an infinite or NaN weight (the dense
product would give NaN there); NaN or infinite entries of x propagate as in F.linear.
"""

import torch
import torch.nn.functional as F

from ... import _backends
from .._function import once_differentiable_fused

_KERNEL_DTYPES = (torch.float32, torch.float64)


class SpikeLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):
        y = torch.ops.fastsnn.spike_linear_fwd(x, weight)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, weight)
        return y

    @staticmethod
    @once_differentiable_fused
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad
        gx, gw = torch.ops.fastsnn.spike_linear_bwd(gy.contiguous(), x, weight, need_x, need_w)
        return (gx if need_x else None), (gw if need_w else None)


def _check(x, weight, bias):
    for name, t in (("input", x), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if x.dim() < 1:
        raise ValueError("input must have at least one dimension (..., in_features)")
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape "
                         f"{tuple(weight.shape)}")
    if weight.shape[1] != x.shape[-1]:
        raise ValueError(f"weight has in_features {weight.shape[1]} but input's last dimension "
                         f"is {x.shape[-1]}")
    if weight.device != x.device or weight.dtype != x.dtype:
        raise ValueError(f"weight ({weight.dtype}, {weight.device}) must match input "
                         f"({x.dtype}, {x.device})")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must be a tensor of shape ({weight.shape[0]},), got "
                             f"{getattr(bias, 'shape', type(bias).__name__)}")


def spike_linear(input, weight, bias=None, *, backend="auto"):
    """``F.linear(input, weight, bias)`` computed over the nonzero entries of ``input``.

    backend: "auto" runs the CPU kernel for CPU float32/float64 tensors (outside CPU autocast)
    when the extension is built, and F.linear otherwise; "cpu" asks for the kernel (an error
    says why when it cannot run); "torch" is F.linear, the reference.
    """
    _check(input, weight, bias)
    if backend not in ("auto", "cpu", "torch"):
        raise ValueError(f"backend must be 'auto', 'cpu' or 'torch' for spike_linear (GPUs use "
                         f"F.linear under 'auto'), got {backend!r}")
    use_kernel = False
    if backend == "cpu":
        _backends.resolve("cpu", input)  # raises with the reason when the kernel cannot run
        if input.dtype not in _KERNEL_DTYPES:
            raise TypeError(f"backend='cpu' spike_linear runs float32 or float64, got "
                            f"{input.dtype}; use backend='auto' (F.linear) for it")
        use_kernel = True
    elif backend == "auto":
        use_kernel = (input.device.type == "cpu" and input.dtype in _KERNEL_DTYPES
                      and _backends.resolve("auto", input) == "cpu"
                      and not torch.is_autocast_enabled("cpu"))
    if not use_kernel:
        return F.linear(input, weight, bias)
    y = SpikeLinearFunction.apply(input, weight)
    return y if bias is None else y + bias
