"""Fake (meta) implementations of fastsnn::rlif_fwd / rlif_bwd, so torch.compile can trace them:
lif's (../lif/fake.py) plus the (N, N) gradient of weight_rec."""

import torch

from ..._validate import acc_dtype
from ..lif.fake import lif_bwd_fake, lif_fwd_fake, maybe


@torch.library.register_fake("fastsnn::rlif_fwd")
def rlif_fwd_fake(x, weight_rec, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u,
                  save_i):
    return lif_fwd_fake(x, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u,
                        save_i)


@torch.library.register_fake("fastsnn::rlif_bwd")
def rlif_bwd_fake(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, weight_rec, alpha, beta,
                  threshold, reset, detach_reset, detach_recurrent, surrogate, scale,
                  normalize_input, param_grads, weight_grad):
    grads = lif_bwd_fake(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta,
                         threshold, reset, detach_reset, surrogate, scale, normalize_input,
                         param_grads)
    N = grad_s.size(2)
    return (*grads, maybe(weight_grad, (N, N), grad_s, acc_dtype(grad_s.dtype)))
