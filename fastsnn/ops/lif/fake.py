"""Fake (meta) implementations of fastsnn::lif_fwd / lif_bwd, so torch.compile can trace them.

They mirror the allocations of csrc/lif/lif.cpp: outputs like x (neuron stride made 1), (B, N)
states and partials, and empty({0}) for outputs that were not asked for (ops/_outputs.py).
rlif's fakes (../rlif/fake.py) build on them.
"""

import torch

from .._outputs import outputs


def unit_neuron_stride(x):
    """x, or a contiguous copy when its neuron stride is not 1 (as the C++ host code does)."""
    return x if x.size(2) <= 1 or x.stride(2) == 1 else x.contiguous()


@torch.library.register_fake("fastsnn::lif_fwd")
def lif_fwd_fake(x, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u, save_i):
    return outputs(unit_neuron_stride(x), seq=(save_u, save_i))


@torch.library.register_fake("fastsnn::lif_bwd")
def lif_bwd_fake(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta, threshold,
                 reset, detach_reset, surrogate, scale, normalize_input, param_grads):
    return outputs(unit_neuron_stride(grad_s), part=(param_grads,) * 3)
