"""Fake (meta) implementations of the C++ ops, so torch.compile can trace them.

They mirror the allocations of csrc/lif/lif.cpp and csrc/li/li.cpp: outputs like x (neuron
stride made 1), (B, N) states and partials, and empty({0}) for outputs that were not asked for.
"""

import torch

from .._validate import acc_dtype


def _unit_neuron_stride(x):
    return x if x.size(2) <= 1 or x.stride(2) == 1 else x.contiguous()


def _acc(x):
    return acc_dtype(x.dtype)


def _maybe(want, shape, like, dtype):
    return like.new_empty(shape if want else (0,), dtype=dtype)


@torch.library.register_fake("fastsnn::lif_fwd")
def _lif_fwd_fake(x, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u, save_i):
    x = _unit_neuron_stride(x)
    B, T, N = x.shape
    acc = _acc(x)
    return (torch.empty_like(x), x.new_empty((B, N), dtype=acc), x.new_empty((B, N), dtype=acc),
            _maybe(save_u, (B, T, N), x, acc), _maybe(save_i, (B, T, N), x, acc))


@torch.library.register_fake("fastsnn::lif_bwd")
def _lif_bwd_fake(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta, threshold,
                  reset, detach_reset, surrogate, scale, normalize_input, param_grads):
    gs = _unit_neuron_stride(grad_s)
    B, T, N = gs.shape
    acc = _acc(gs)
    part = [_maybe(param_grads, (B, N), gs, acc) for _ in range(3)]
    return (torch.empty_like(gs), gs.new_empty((B, N), dtype=acc),
            gs.new_empty((B, N), dtype=acc), *part)


@torch.library.register_fake("fastsnn::li_fwd")
def _li_fwd_fake(x, alpha, beta, i0, u0, normalize_input, save_state):
    x = _unit_neuron_stride(x)
    B, T, N = x.shape
    acc = _acc(x)
    return (torch.empty_like(x), x.new_empty((B, N), dtype=acc), x.new_empty((B, N), dtype=acc),
            _maybe(save_state, (B, T, N), x, acc), _maybe(save_state, (B, T, N), x, acc))


@torch.library.register_fake("fastsnn::li_bwd")
def _li_bwd_fake(grad_u, grad_iT, grad_uT, i_saved, u_saved, i0, u0, alpha, beta,
                 normalize_input, param_grads):
    gu = _unit_neuron_stride(grad_u)
    B, T, N = gu.shape
    acc = _acc(gu)
    part = [_maybe(param_grads, (B, N), gu, acc) for _ in range(2)]
    return (torch.empty_like(gu), gu.new_empty((B, N), dtype=acc),
            gu.new_empty((B, N), dtype=acc), *part)


@torch.library.register_fake("fastsnn::rlif_fwd")
def _rlif_fwd_fake(x, weight_rec, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u,
                   save_i):
    return _lif_fwd_fake(x, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u,
                         save_i)


@torch.library.register_fake("fastsnn::rlif_bwd")
def _rlif_bwd_fake(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, weight_rec, alpha, beta,
                   threshold, reset, detach_reset, detach_recurrent, surrogate, scale,
                   normalize_input, param_grads, weight_grad):
    grads = _lif_bwd_fake(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta,
                          threshold, reset, detach_reset, surrogate, scale, normalize_input,
                          param_grads)
    N = grad_s.size(2)
    return (*grads, _maybe(weight_grad, (N, N), grad_s, _acc(grad_s)))


@torch.library.register_fake("fastsnn::spike_linear_fwd")
def _spike_linear_fwd_fake(x, weight):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


@torch.library.register_fake("fastsnn::spike_linear_bwd")
def _spike_linear_bwd_fake(grad_y, x, weight, input_grad, weight_grad):
    return (x.new_empty(x.shape if input_grad else (0,)),
            x.new_empty(weight.shape if weight_grad else (0,)))
