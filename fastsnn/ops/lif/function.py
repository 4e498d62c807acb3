"""The autograd Function around the fused LIF scans (one forward launch, one backward launch).

The same Function serves every fused backend: ``kernels(backend)`` gives the pair of forward and
backward ops with the schemas of csrc/ops.cpp (torch.ops.fastsnn.* for "cpu" and "cuda", the
Triton implementations for "triton").

Saved for the backward (SPEC section 4): the membrane U_t of every step in the accumulation
dtype (4 bytes per neuron-step in float32; spikes are recomputed from it exactly), plus the
synaptic current I_t only when alpha or beta needs a gradient or the zero reset is not detached.
Nothing is saved when no input needs a gradient.

The backward is differentiable once: a double backward through it raises
(``once_differentiable_fused``). The raising node is linked to the incoming gradients and to
the saved inputs (parameters, state), not to X, which is not saved: a second derivative asked
with respect to X alone finds X unused (an error, or None with allow_unused=True) instead of
raising.

The caller's alpha / beta / threshold tensors are saved too (``saved_sources``), so that
changing one in place between forward and backward raises autograd's version-counter error,
as on the reference backend.
"""

import functools

import torch

from ... import _validate as checks
from ..._enums import RESETS, SURROGATES

DOUBLE_BACKWARD_ERROR = (
    "double backward (differentiating a gradient, e.g. torch.autograd.grad(..., "
    "create_graph=True) and then backward through the result) is not supported by the fused "
    "fastsnn kernels (backend 'cpu', 'cuda' or 'triton' of lif / rlif / li, and the CPU kernel "
    "of spike_linear); use backend='torch', which supports it")


def once_differentiable_fused(fn):
    """``torch.autograd.function.once_differentiable`` with fastsnn's message: the backward runs
    without building a graph, and a second backward through its results raises a RuntimeError
    that says double backward is unsupported on the fused backends (backend='torch' supports
    it), instead of silently giving zero second derivatives."""

    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with torch.no_grad():
            outputs = fn(ctx, *args)
        # grad mode is on in a backward only under create_graph=True; the gradients then depend
        # on the inputs (through the saved tensors) even when the incoming gradients do not
        # require grad, so every tensor result gets the raising grad_fn
        if not torch.is_grad_enabled():
            return outputs
        outs = outputs if isinstance(outputs, tuple) else (outputs,)

        def fake_requires_grad(t):
            if t is not None:
                t = t.detach()
                t.requires_grad = True
            return t

        # the raising node also takes the incoming gradients and the saved inputs (parameters,
        # state, weight_rec) that require grad, so that differentiating the results with respect
        # to any of them reaches it and raises (rather than reporting them unused)
        links = [t for t in (*args, *ctx.saved_tensors)
                 if isinstance(t, torch.Tensor) and t.requires_grad]
        ins = [fake_requires_grad(t) for t in outs] + links
        err_fn = torch._C._functions.DelayedError(DOUBLE_BACKWARD_ERROR.encode(), len(ins))
        res = err_fn(*ins)
        res = (res if isinstance(res, tuple) else (res,))[:len(outs)]
        return res if isinstance(outputs, tuple) else res[0]

    return wrapper


def kernels(backend: str):
    """(fwd, bwd) callables with the lif_fwd / lif_bwd op schemas for a fused backend."""
    if backend == "triton":
        from .triton import lif_bwd_triton, lif_fwd_triton

        return lif_fwd_triton, lif_bwd_triton
    return torch.ops.fastsnn.lif_fwd, torch.ops.fastsnn.lif_bwd


class LIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, beta, thr, i0, u0, backend, reset, detach_reset, surrogate,
                scale, normalize_input, grad_enabled, alpha_src, beta_src, thr_src):
        # x [B, T, N] (unit neuron stride or any), alpha/beta/thr [N], i0/u0 [B, N] (acc dtype);
        # sources: the caller's parameter tensors (see saved_sources)
        fwd, _ = kernels(backend)
        # needs_input_grad stays True under torch.no_grad(); grad_enabled is the caller's mode
        needs = [n and grad_enabled for n in ctx.needs_input_grad]
        train = any(needs[:6])
        param_grads = train and any(needs[1:4])
        save_i = param_grads or (train and reset == RESETS["zero"] and not detach_reset)
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
        needs = ctx.needs_input_grad
        ga = ga.sum(0) if needs[1] else None
        gb = gb.sum(0) if needs[2] else None
        gt = gt.sum(0) if needs[3] else None
        return (gx, ga, gb, gt, gi0 if needs[4] else None, gu0 if needs[5] else None,
                None, None, None, None, None, None, None, None, None, None)


def tensors_or_none(values, passed):
    """The *_src arguments of the Functions: each caller's value when it is a tensor other than
    the one passed to the kernels (dynamo rejects the same tensor as two inputs), else None."""
    return tuple(v if isinstance(v, torch.Tensor) and v is not p else None
                 for v, p in zip(values, passed))


def saved_sources(*values):
    """The caller's tensors among alpha / beta / threshold (and weight_rec), passed to the fused
    Functions as extra inputs that the forward saves and the backward never reads: the vectors
    the kernels get are often copies (a 0-d tensor expanded to (N,), a dtype change), so saving
    only those would miss an in-place change of the caller's tensor between forward and
    backward; saving the tensor itself makes autograd's version check raise, as the reference
    does."""
    return tuple(v for v in values if isinstance(v, torch.Tensor))


def neuron_vector(value, N, acc, device):
    """A float or a scalar / (N,) tensor as a contiguous (N,) tensor of dtype acc."""
    if isinstance(value, torch.Tensor):
        return value.to(acc).expand(N).contiguous()
    return torch.full((N,), value, dtype=acc, device=device)


def initial_state(x, i0, u0):
    """The given (I, U) in the accumulation dtype, zeros where none was given: [B, N] each."""
    B, _, N = x.shape
    acc = checks.acc_dtype(x.dtype)
    i0 = i0.to(acc) if i0 is not None else x.new_zeros((B, N), dtype=acc)
    u0 = u0.to(acc) if u0 is not None else x.new_zeros((B, N), dtype=acc)
    return i0, u0


def lif_fused_btn(x, alpha, beta, threshold, i0, u0, reset, detach_reset, surrogate, scale,
                  normalize_input, backend):
    """Fused LIF on a (B, T, N) view with validated arguments: S, (I_T, U_T)."""
    N, acc = x.shape[2], checks.acc_dtype(x.dtype)
    a, b, th = (neuron_vector(v, N, acc, x.device) for v in (alpha, beta, threshold))
    i0, u0 = initial_state(x, i0, u0)
    s, iT, uT = LIFFunction.apply(x, a, b, th, i0, u0, backend, RESETS[reset], detach_reset,
                                  SURROGATES[surrogate], float(scale), normalize_input,
                                  torch.is_grad_enabled(),
                                  *tensors_or_none((alpha, beta, threshold), (a, b, th)))
    return s, (iT, uT)
