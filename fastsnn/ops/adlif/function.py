"""The autograd Function around the fused adaptive LIF scans (fastsnn::adlif_fwd / adlif_bwd,
csrc/adlif/adlif.cpp; the CPU backend so far).

Saved for the backward (ops/adlif/README.md): the membrane m_t compared with the threshold
(spikes, u_t and u_{t-1} are recomputed from it exactly), plus w_t and the drive d_t only when
alpha or beta needs a gradient; the parameters, the initial state and V. Nothing is saved when no
input needs a gradient. The backward is differentiable once, as for the other fused ops.
"""

import torch

from ..._enums import RESETS, SURROGATES
from .._function import (batch_sum, kernel_inputs, kernel_pair, needs,
                         once_differentiable_fused, saved_sources, tensors_or_none,
                         initial_state)


def kernels(backend: str):
    """(fwd, bwd) callables with the adlif_fwd / adlif_bwd op schemas for a fused backend."""
    return kernel_pair("adlif", backend)


class ADLIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, alpha, beta, a, b, thr, u0, w0, z0, backend, se, reset,
                detach_reset, detach_recurrent, surrogate, scale, grad_enabled,
                w_src, alpha_src, beta_src, a_src, b_src, thr_src):
        # x [B, T, N]; w [N, N] (acc dtype) or an empty (0,) tensor without recurrence;
        # alpha/beta/a/b/thr [N]; u0/w0/z0 [B, N] (acc dtype)
        fwd, _ = kernels(backend)
        need = needs(ctx, grad_enabled)
        train = any(need[:10])
        param_grads = train and any(need[2:7])
        save_wd = train and any(need[2:4])  # the alpha / beta partials read w_{t-1} and d_t
        z, uT, wT, zT, m, ws, ds = fwd(x, w, alpha, beta, a, b, thr, u0, w0, z0, se, reset,
                                       train, save_wd)
        if train:
            ctx.save_for_backward(m, ws, ds, u0, w0, z0, w, alpha, beta, a, b, thr,
                                  *saved_sources(w_src, alpha_src, beta_src, a_src, b_src,
                                                 thr_src))
        ctx.cfg = (backend, se, reset, detach_reset, detach_recurrent, surrogate, scale,
                   param_grads, train and need[1])
        return z, uT, wT, zT

    @staticmethod
    @once_differentiable_fused
    def backward(ctx, gz, guT, gwT, gzT):
        (backend, se, reset, detach_reset, detach_recurrent, surrogate, scale, param_grads,
         weight_grad) = ctx.cfg
        m, ws, ds, u0, w0, z0, w, alpha, beta, a, b, thr = ctx.saved_tensors[:12]
        _, bwd = kernels(backend)
        gx, gu0, gw0, gz0, ga, gb, gaa, gbb, gt, gw = bwd(
            gz, guT.contiguous(), gwT.contiguous(), gzT.contiguous(), m, ws, ds, u0, w0, z0, w,
            alpha, beta, a, b, thr, se, reset, detach_reset, detach_recurrent, surrogate, scale,
            param_grads, weight_grad)
        need = ctx.needs_input_grad
        return (gx, gw if need[1] else None, batch_sum(ga, need[2]), batch_sum(gb, need[3]),
                batch_sum(gaa, need[4]), batch_sum(gbb, need[5]), batch_sum(gt, need[6]),
                gu0 if need[7] else None, gw0 if need[8] else None, gz0 if need[9] else None,
                *(None,) * 14)


def adlif_fused_btn(x, alpha, beta, a, b, threshold, state, weight_rec, variant, reset,
                    detach_reset, detach_recurrent, surrogate, scale, backend):
    """Fused adlif on a (B, T, N) view with validated arguments: Z, (u_T, w_T, z_T)."""
    u0, w0, z0 = state if state is not None else (None, None, None)
    params, (u0, w0) = kernel_inputs(x, (alpha, beta, a, b, threshold), u0, w0)
    z0 = initial_state(x, z0, None)[0]
    acc = params[0].dtype
    w = (weight_rec.to(acc).contiguous() if weight_rec is not None
         else x.new_empty((0,), dtype=acc))
    z, uT, wT, zT = ADLIFFunction.apply(
        x, w, *params, u0, w0, z0, backend, variant == "se", RESETS[reset], detach_reset,
        detach_recurrent, SURROGATES[surrogate], float(scale), torch.is_grad_enabled(),
        *tensors_or_none((weight_rec, alpha, beta, a, b, threshold), (w, *params)))
    return z, (uT, wT, zT)
