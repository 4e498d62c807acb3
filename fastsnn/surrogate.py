"""Surrogate derivatives of the spike (SPEC section 1), as used by the pure-PyTorch reference.

``surrogate_grad(name, x, k)`` is sigma'(x) of x = U - threshold with scale k; ``spike`` is the
Heaviside step whose backward is that surrogate. ``smooth_spike`` replaces the step by an
antiderivative of the surrogate, so its derivative is exactly the surrogate: tests use it to
gradcheck the reference numerically.
"""

import math

import torch

from ._enums import SURROGATES


def surrogate_grad(name: str, x: torch.Tensor, k: float) -> torch.Tensor:
    if name == "superspike":
        return 1.0 / (k * x.abs() + 1.0) ** 2
    if name == "superspike_asymptotic":
        return k / (k * x.abs() + 1.0) ** 2
    if name == "sigmoid":
        s = torch.sigmoid(k * x)
        return s * (1.0 - s)
    if name == "esser":
        return (1.0 - k * x.abs()).clamp_min(0.0)
    if name == "atan":
        return (k / 2.0) / (1.0 + (math.pi / 2.0 * k * x) ** 2)
    if name == "exponential":
        return torch.exp(-k * x.abs())
    raise ValueError(f"surrogate must be one of {sorted(SURROGATES)}, got {name!r}")


def surrogate_antiderivative(name: str, x: torch.Tensor, k: float) -> torch.Tensor:
    """A smooth function whose derivative is ``surrogate_grad(name, x, k)``."""
    if name == "superspike":
        return x / (k * x.abs() + 1.0)
    if name == "superspike_asymptotic":
        return k * x / (k * x.abs() + 1.0)
    if name == "sigmoid":
        return torch.sigmoid(k * x) / k if k > 0 else 0.25 * x
    if name == "esser":
        c = x.abs().clamp(max=1.0 / k) if k > 0 else x.abs()
        return torch.sign(x) * (c - 0.5 * k * c * c)
    if name == "atan":
        return torch.atan(math.pi / 2.0 * k * x) / math.pi
    if name == "exponential":
        return torch.sign(x) * (1.0 - torch.exp(-k * x.abs())) / k if k > 0 else x
    raise ValueError(f"surrogate must be one of {sorted(SURROGATES)}, got {name!r}")


class SpikeFunction(torch.autograd.Function):
    """Theta(x) forward (Theta(0) = 0); surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x, name, k):
        ctx.save_for_backward(x)
        ctx.name, ctx.k = name, k
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * surrogate_grad(ctx.name, x, ctx.k), None, None


def spike(x: torch.Tensor, name: str = "superspike", k: float = 10.0) -> torch.Tensor:
    return SpikeFunction.apply(x, name, k)


def smooth_spike(x: torch.Tensor, name: str = "superspike", k: float = 10.0) -> torch.Tensor:
    return surrogate_antiderivative(name, x, k)
