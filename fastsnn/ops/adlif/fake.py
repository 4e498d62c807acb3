"""Fake (meta) implementations of fastsnn::adlif_fwd / adlif_bwd, so torch.compile can trace
them: the shapes and dtypes of csrc/adlif/adlif.cpp's outputs."""

import torch

from ..._validate import acc_dtype
from ..lif.fake import unit_neuron_stride


def _empty(like, want, shape):
    return like.new_empty(shape if want else (0,), dtype=acc_dtype(like.dtype))


@torch.library.register_fake("fastsnn::adlif_fwd")
def adlif_fwd_fake(x, weight_rec, alpha, beta, a, b, threshold, u0, w0, z0, se, reset, save_m,
                   save_wd):
    x = unit_neuron_stride(x)
    B, T, N = x.shape
    return (torch.empty_like(x), *(_empty(x, True, (B, N)) for _ in range(3)),
            _empty(x, save_m, (B, T, N)), _empty(x, save_wd, (B, T, N)),
            _empty(x, save_wd, (B, T, N)))


@torch.library.register_fake("fastsnn::adlif_bwd")
def adlif_bwd_fake(grad_z, grad_uT, grad_wT, grad_zT, m_saved, w_saved, d_saved, u0, w0, z0,
                   weight_rec, alpha, beta, a, b, threshold, se, reset, detach_reset,
                   detach_recurrent, surrogate, scale, param_grads, weight_grad):
    gz = unit_neuron_stride(grad_z)
    B, T, N = gz.shape
    gw = weight_grad and weight_rec.numel() > 0
    return (torch.empty_like(gz), *(_empty(gz, True, (B, N)) for _ in range(3)),
            *(_empty(gz, param_grads, (B, N)) for _ in range(5)),
            gz.new_empty((N, N) if gw else (0, 0), dtype=acc_dtype(gz.dtype)))
