"""The autograd Function around the fused leaky-integrator scans.

The readout is linear, so its backward needs nothing from the forward unless alpha or beta
learn; then I_t and U_t are saved in the accumulation dtype.
"""

import torch

from .._function import (batch_sum, kernel_inputs, kernel_pair, needs,
                         once_differentiable_fused, saved_sources, tensors_or_none)


def kernels(backend: str):
    """(fwd, bwd) callables with the li_fwd / li_bwd op schemas for a fused backend."""
    return kernel_pair("li", backend)


class LIFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, beta, i0, u0, backend, normalize_input, grad_enabled,
                alpha_src, beta_src):
        # x [B, T, N], alpha/beta [N], i0/u0 [B, N] (acc dtype)
        fwd, _ = kernels(backend)
        need = needs(ctx, grad_enabled)
        param_grads = any(need[1:3])
        u, iT, uT, i_saved, u_saved = fwd(x, alpha, beta, i0, u0, normalize_input, param_grads)
        if any(need[:5]):
            ctx.save_for_backward(i_saved, u_saved, i0, u0, alpha, beta,
                                  *saved_sources(alpha_src, beta_src))
        ctx.cfg = (backend, normalize_input, param_grads)
        return u, iT, uT

    @staticmethod
    @once_differentiable_fused
    def backward(ctx, gu, giT, guT):
        backend, normalize_input, param_grads = ctx.cfg
        i_saved, u_saved, i0, u0, alpha, beta = ctx.saved_tensors[:6]
        _, bwd = kernels(backend)
        gx, gi0, gu0, ga, gb = bwd(gu, giT.contiguous(), guT.contiguous(), i_saved, u_saved, i0,
                                   u0, alpha, beta, normalize_input, param_grads)
        need = ctx.needs_input_grad
        return (gx, batch_sum(ga, need[1]), batch_sum(gb, need[2]),
                gi0 if need[3] else None, gu0 if need[4] else None, None, None, None, None,
                None)


def li_fused_btn(x, alpha, beta, i0, u0, normalize_input, backend):
    """Fused LI on a (B, T, N) view with validated arguments: U, (I_T, U_T)."""
    (a, b), (i0, u0) = kernel_inputs(x, (alpha, beta), i0, u0)
    u, iT, uT = LIFunction.apply(x, a, b, i0, u0, backend, normalize_input,
                                 torch.is_grad_enabled(), *tensors_or_none((alpha, beta), (a, b)))
    return u, (iT, uT)
