"""The autograd Function around the fused recurrent LIF scans (``fastsnn.rlif``).

One forward launch walks time with the recurrent product R_t = S_{t-1} @ V inside the loop;
one backward launch walks time in reverse with gI_{t+1} @ Vᵀ inside the loop and returns dV
(SPEC sections 4 and 5). ``kernels(backend)`` gives the pair of ops with the rlif_fwd /
rlif_bwd schemas of csrc/ops.cpp (torch.ops.fastsnn.* for "cpu" and "cuda", the Triton
implementations for "triton").

Saved for the backward: as for lif, the membrane U_t (spikes, and so S_{t-1} for the recurrence
and for dV, are recomputed from it exactly) plus I_t only when alpha or beta or the threshold
learns or the zero reset is not detached; V itself (the caller's parameter, no copy when it is
already in the accumulation dtype). Nothing is saved when no input needs a gradient.
"""

import torch

from ..._enums import RESETS, SURROGATES
from ..lif.function import (initial_state, neuron_vector, once_differentiable_fused,
                            saved_sources, tensors_or_none)
from ... import _validate as checks


def kernels(backend: str):
    """(fwd, bwd) callables with the rlif_fwd / rlif_bwd op schemas for a fused backend."""
    if backend == "triton":
        from .triton import rlif_bwd_triton, rlif_fwd_triton

        return rlif_fwd_triton, rlif_bwd_triton
    return torch.ops.fastsnn.rlif_fwd, torch.ops.fastsnn.rlif_bwd


class RLIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, alpha, beta, thr, i0, u0, backend, reset, detach_reset,
                detach_recurrent, surrogate, scale, normalize_input, grad_enabled,
                w_src, alpha_src, beta_src, thr_src):
        # x [B, T, N], w [N, N] (acc dtype, contiguous), alpha/beta/thr [N], i0/u0 [B, N]
        fwd, _ = kernels(backend)
        # needs_input_grad stays True under torch.no_grad(); grad_enabled is the caller's mode
        needs = [n and grad_enabled for n in ctx.needs_input_grad]
        train = any(needs[:7])
        param_grads = train and any(needs[2:5])
        save_i = param_grads or (train and reset == RESETS["zero"] and not detach_reset)
        s, iT, uT, u_saved, i_saved = fwd(x, w, alpha, beta, thr, i0, u0, reset,
                                          normalize_input, train, save_i)
        if train:
            ctx.save_for_backward(u_saved, i_saved, i0, u0, w, alpha, beta, thr,
                                  *saved_sources(w_src, alpha_src, beta_src, thr_src))
        ctx.cfg = (backend, reset, detach_reset, detach_recurrent, surrogate, scale,
                   normalize_input, param_grads, train and needs[1])
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
        needs = ctx.needs_input_grad
        ga = ga.sum(0) if needs[2] else None
        gb = gb.sum(0) if needs[3] else None
        gt = gt.sum(0) if needs[4] else None
        return (gx, gw if needs[1] else None, ga, gb, gt, gi0 if needs[5] else None,
                gu0 if needs[6] else None, None, None, None, None, None, None, None,
                None, None, None, None, None)


def rlif_fused_btn(x, weight_rec, alpha, beta, threshold, i0, u0, reset, detach_reset,
                   detach_recurrent, surrogate, scale, normalize_input, backend):
    """Fused rlif on a (B, T, N) view with validated arguments: S, (I_T, U_T)."""
    N, acc = x.shape[2], checks.acc_dtype(x.dtype)
    a, b, th = (neuron_vector(v, N, acc, x.device) for v in (alpha, beta, threshold))
    w = weight_rec.to(acc).contiguous()
    i0, u0 = initial_state(x, i0, u0)
    s, iT, uT = RLIFFunction.apply(x, w, a, b, th, i0, u0, backend, RESETS[reset], detach_reset,
                                   detach_recurrent, SURROGATES[surrogate], float(scale),
                                   normalize_input, torch.is_grad_enabled(),
                                   *tensors_or_none((weight_rec, alpha, beta, threshold),
                                                   (w, a, b, th)))
    return s, (iT, uT)
