"""The autograd Function around the fused recurrent LIF scans (``fastsnn.rlif``).

One forward launch walks time with the recurrent product R_t = S_{t-1} @ V inside the loop;
one backward launch walks time in reverse with gI_{t+1} @ Vᵀ inside the loop and returns dV
(SPEC sections 4 and 5). ``kernels(backend)`` gives the pair of ops with the rlif_fwd /
rlif_bwd schemas of csrc/rlif/rlif.cpp (torch.ops.fastsnn.* for "cpu" and "cuda", the Triton
implementations for "triton").

Saved for the backward: as for lif, the membrane U_t (spikes, and so S_{t-1} for the recurrence
and for dV, are recomputed from it exactly) plus I_t only when alpha or beta learns or the zero
reset is not detached (a learnable threshold alone needs U_t only); V itself (the caller's parameter, no copy when it is
already in the accumulation dtype). Nothing is saved when no input needs a gradient.
"""

import torch

from ..._enums import RESETS, SURROGATES
from .._function import (batch_sum, kernel_inputs, kernel_pair, needs,
                         once_differentiable_fused, saved_sources, tensors_or_none)


def kernels(backend: str):
    """(fwd, bwd) callables with the rlif_fwd / rlif_bwd op schemas for a fused backend."""
    return kernel_pair("rlif", backend)


class RLIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, alpha, beta, thr, i0, u0, backend, reset, detach_reset,
                detach_recurrent, surrogate, scale, normalize_input, grad_enabled,
                w_src, alpha_src, beta_src, thr_src):
        # x [B, T, N], w [N, N] (acc dtype, contiguous), alpha/beta/thr [N], i0/u0 [B, N]
        fwd, _ = kernels(backend)
        need = needs(ctx, grad_enabled)
        train = any(need[:7])
        param_grads = train and any(need[2:5])
        # I_t only for the alpha / beta partials or the undetached zero reset (SPEC section 4):
        # a learnable threshold alone needs U_t only
        save_i = train and (any(need[2:4]) or (reset == RESETS["zero"] and not detach_reset))
        s, iT, uT, u_saved, i_saved = fwd(x, w, alpha, beta, thr, i0, u0, reset,
                                          normalize_input, train, save_i)
        if train:
            ctx.save_for_backward(u_saved, i_saved, i0, u0, w, alpha, beta, thr,
                                  *saved_sources(w_src, alpha_src, beta_src, thr_src))
        ctx.cfg = (backend, reset, detach_reset, detach_recurrent, surrogate, scale,
                   normalize_input, param_grads, train and need[1])
        return s, iT, uT

    @staticmethod
    @once_differentiable_fused
    def backward(ctx, gs, giT, guT):
        (backend, reset, detach_reset, detach_recurrent, surrogate, scale, normalize_input,
         param_grads, weight_grad) = ctx.cfg
        u_saved, i_saved, i0, u0, w, alpha, beta, thr = ctx.saved_tensors[:8]
        _, bwd = kernels(backend)
        gx, gi0, gu0, ga, gb, gt, gw = bwd(
            gs, giT.contiguous(), guT.contiguous(), u_saved, i_saved, i0, u0, w, alpha, beta,
            thr, reset, detach_reset, detach_recurrent, surrogate, scale, normalize_input,
            param_grads, weight_grad)
        need = ctx.needs_input_grad
        return (gx, gw if need[1] else None, batch_sum(ga, need[2]), batch_sum(gb, need[3]),
                batch_sum(gt, need[4]), gi0 if need[5] else None, gu0 if need[6] else None,
                None, None, None, None, None, None, None, None, None, None, None, None)


def rlif_fused_btn(x, weight_rec, alpha, beta, threshold, i0, u0, reset, detach_reset,
                   detach_recurrent, surrogate, scale, normalize_input, backend):
    """Fused rlif on a (B, T, N) view with validated arguments: S, (I_T, U_T)."""
    (a, b, th), (i0, u0) = kernel_inputs(x, (alpha, beta, threshold), i0, u0)
    w = weight_rec.to(a.dtype).contiguous()
    s, iT, uT = RLIFFunction.apply(x, w, a, b, th, i0, u0, backend, RESETS[reset], detach_reset,
                                   detach_recurrent, SURROGATES[surrogate], float(scale),
                                   normalize_input, torch.is_grad_enabled(),
                                   *tensors_or_none((weight_rec, alpha, beta, threshold),
                                                   (w, a, b, th)))
    return s, (iT, uT)
