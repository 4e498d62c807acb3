"""Fake (meta) implementations of fastsnn::li_fwd / li_bwd, so torch.compile can trace them.

They mirror the allocations of csrc/li/li.cpp (see ../lif/fake.py).
"""

import torch

from ..._validate import acc_dtype
from ..lif.fake import maybe, unit_neuron_stride


@torch.library.register_fake("fastsnn::li_fwd")
def li_fwd_fake(x, alpha, beta, i0, u0, normalize_input, save_state):
    x = unit_neuron_stride(x)
    B, T, N = x.shape
    acc = acc_dtype(x.dtype)
    return (torch.empty_like(x), x.new_empty((B, N), dtype=acc), x.new_empty((B, N), dtype=acc),
            maybe(save_state, (B, T, N), x, acc), maybe(save_state, (B, T, N), x, acc))


@torch.library.register_fake("fastsnn::li_bwd")
def li_bwd_fake(grad_u, grad_iT, grad_uT, i_saved, u_saved, i0, u0, alpha, beta,
                normalize_input, param_grads):
    gu = unit_neuron_stride(grad_u)
    B, T, N = gu.shape
    acc = acc_dtype(gu.dtype)
    part = [maybe(param_grads, (B, N), gu, acc) for _ in range(2)]
    return (torch.empty_like(gu), gu.new_empty((B, N), dtype=acc),
            gu.new_empty((B, N), dtype=acc), *part)
