"""Fake (meta) implementations of fastsnn::lif_fwd / lif_bwd, so torch.compile can trace them.

They mirror the allocations of csrc/lif/lif.cpp: outputs like x (neuron stride made 1), (B, N)
states and partials, and empty({0}) for outputs that were not asked for. rlif's fakes
(../rlif/fake.py) build on them.
"""

import torch

from ..._validate import acc_dtype


def unit_neuron_stride(x):
    """x, or a contiguous copy when its neuron stride is not 1 (as the C++ host code does)."""
    return x if x.size(2) <= 1 or x.stride(2) == 1 else x.contiguous()


def maybe(want, shape, like, dtype):
    """An empty tensor of the shape, or of shape (0,) for an output that was not asked for."""
    return like.new_empty(shape if want else (0,), dtype=dtype)


@torch.library.register_fake("fastsnn::lif_fwd")
def lif_fwd_fake(x, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u, save_i):
    x = unit_neuron_stride(x)
    B, T, N = x.shape
    acc = acc_dtype(x.dtype)
    return (torch.empty_like(x), x.new_empty((B, N), dtype=acc), x.new_empty((B, N), dtype=acc),
            maybe(save_u, (B, T, N), x, acc), maybe(save_i, (B, T, N), x, acc))


@torch.library.register_fake("fastsnn::lif_bwd")
def lif_bwd_fake(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta, threshold,
                 reset, detach_reset, surrogate, scale, normalize_input, param_grads):
    gs = unit_neuron_stride(grad_s)
    B, T, N = gs.shape
    acc = acc_dtype(gs.dtype)
    part = [maybe(param_grads, (B, N), gs, acc) for _ in range(3)]
    return (torch.empty_like(gs), gs.new_empty((B, N), dtype=acc),
            gs.new_empty((B, N), dtype=acc), *part)
