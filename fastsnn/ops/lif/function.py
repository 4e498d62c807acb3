"""The autograd Function around the fused LIF scans (one forward launch, one backward launch).

The same Function serves every fused backend: ``kernels(backend)`` gives the pair of forward and
backward ops with the schemas of csrc/lif/lif.cpp (torch.ops.fastsnn.* for "cpu" and "cuda", the
Triton implementations for "triton").

Saved for the backward (SPEC section 4): the membrane U_t of every step in the accumulation
dtype (4 bytes per neuron-step in float32; spikes are recomputed from it exactly), plus the
synaptic current I_t only when alpha or beta needs a gradient or the zero reset is not detached.
Nothing is saved when no input needs a gradient.

The plumbing the fused Functions share (kernel lookup, once-differentiable backward, saved
sources of the caller's parameters, parameter vectors and initial state) is ops/_function.py.
"""

import torch

from ..._enums import RESETS, SURROGATES
from .._function import (batch_sum, kernel_inputs, kernel_pair, needs,
                         once_differentiable_fused, saved_sources, tensors_or_none)


def kernels(backend: str):
    """(fwd, bwd) callables with the lif_fwd / lif_bwd op schemas for a fused backend."""
    return kernel_pair("lif", backend)


class LIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, beta, thr, i0, u0, backend, reset, detach_reset, surrogate,
                scale, normalize_input, grad_enabled, alpha_src, beta_src, thr_src):
        # x [B, T, N] (unit neuron stride or any), alpha/beta/thr [N], i0/u0 [B, N] (acc dtype);
        # sources: the caller's parameter tensors (see saved_sources)
        fwd, _ = kernels(backend)
        need = needs(ctx, grad_enabled)
        train = any(need[:6])
        param_grads = train and any(need[1:4])
        # I_t only for the alpha / beta partials or the undetached zero reset (SPEC section 4):
        # a learnable threshold alone needs U_t only
        save_i = train and (any(need[1:3]) or (reset == RESETS["zero"] and not detach_reset))
        s, iT, uT, u_saved, i_saved = fwd(x, alpha, beta, thr, i0, u0, reset, normalize_input,
                                          train, save_i)
        if train:
            ctx.save_for_backward(u_saved, i_saved, i0, u0, alpha, beta, thr,
                                  *saved_sources(alpha_src, beta_src, thr_src))
        ctx.cfg = (backend, reset, detach_reset, surrogate, scale, normalize_input, param_grads)
        return s, iT, uT

    @staticmethod
    @once_differentiable_fused
    def backward(ctx, gs, giT, guT):
        backend, reset, detach_reset, surrogate, scale, normalize_input, param_grads = ctx.cfg
        u_saved, i_saved, i0, u0, alpha, beta, thr = ctx.saved_tensors[:7]
        _, bwd = kernels(backend)
        gx, gi0, gu0, ga, gb, gt = bwd(gs, giT.contiguous(), guT.contiguous(), u_saved, i_saved,
                                       i0, u0, alpha, beta, thr, reset, detach_reset, surrogate,
                                       scale, normalize_input, param_grads)
        need = ctx.needs_input_grad
        return (gx, batch_sum(ga, need[1]), batch_sum(gb, need[2]), batch_sum(gt, need[3]),
                gi0 if need[4] else None, gu0 if need[5] else None,
                None, None, None, None, None, None, None, None, None, None)


def lif_fused_btn(x, alpha, beta, threshold, i0, u0, reset, detach_reset, surrogate, scale,
                  normalize_input, backend):
    """Fused LIF on a (B, T, N) view with validated arguments: S, (I_T, U_T)."""
    (a, b, th), (i0, u0) = kernel_inputs(x, (alpha, beta, threshold), i0, u0)
    s, iT, uT = LIFFunction.apply(x, a, b, th, i0, u0, backend, RESETS[reset], detach_reset,
                                  SURROGATES[surrogate], float(scale), normalize_input,
                                  torch.is_grad_enabled(),
                                  *tensors_or_none((alpha, beta, threshold), (a, b, th)))
    return s, (iT, uT)
