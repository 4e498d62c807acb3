"""Fake (meta) implementations of fastsnn::rlif_fwd / rlif_bwd, so torch.compile can trace them:
lif's (../lif/fake.py) plus the (N, N) gradient of weight_rec."""

import torch

from .._outputs import outputs
from ..lif.fake import lif_fwd_fake, unit_neuron_stride


@torch.library.register_fake("fastsnn::rlif_fwd")
def rlif_fwd_fake(x, weight_rec, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u,
                  save_i):
    return lif_fwd_fake(x, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u,
                        save_i)


@torch.library.register_fake("fastsnn::rlif_bwd")
def rlif_bwd_fake(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, weight_rec, alpha, beta,
                  threshold, reset, detach_reset, detach_recurrent, surrogate, scale,
                  normalize_input, param_grads, weight_grad):
    return outputs(unit_neuron_stride(grad_s), part=(param_grads,) * 3, square=(weight_grad,))
