"""Fake (meta) implementations of fastsnn::li_fwd / li_bwd, so torch.compile can trace them.

They mirror the allocations of csrc/li/li.cpp (see ../lif/fake.py).
"""

import torch

from .._outputs import outputs
from ..lif.fake import unit_neuron_stride


@torch.library.register_fake("fastsnn::li_fwd")
def li_fwd_fake(x, alpha, beta, i0, u0, normalize_input, save_state):
    return outputs(unit_neuron_stride(x), seq=(save_state,) * 2)


@torch.library.register_fake("fastsnn::li_bwd")
def li_bwd_fake(grad_u, grad_iT, grad_uT, i_saved, u_saved, i0, u0, alpha, beta,
                normalize_input, param_grads):
    return outputs(unit_neuron_stride(grad_u), part=(param_grads,) * 2)
