"""What the autograd Functions of the fused ops (lif, li, rlif; spike_linear's backward) share.

Each op's function.py specialises one shape: ``kernels(backend)`` gives its (fwd, bwd) pair
(``kernel_pair``: torch.ops.fastsnn.<op>_fwd / _bwd for "cpu" and "cuda", the Triton custom ops
<op>_fwd_triton / _bwd_triton for "triton", found through ops/registry.py); the forward asks
``needs(ctx, grad_enabled)`` which inputs get gradients, calls fwd, saves the kernel's saved
tensors plus ``saved_sources`` of the caller's parameters; the backward is
``once_differentiable_fused``, calls bwd and sums the (B, N) parameter partials over the batch
(``batch_sum``). The callers turn parameters into ``neuron_vector``s and the state into
``initial_state`` before applying the Function.

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

from .. import _validate as checks
from . import registry

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


def kernel_pair(op: str, backend: str):
    """(fwd, bwd) callables with the <op>_fwd / <op>_bwd op schemas for a fused backend."""
    if backend == "triton":
        # filled by the Triton modules as they are imported (fastsnn._backends imports them
        # where Triton can run): a dict read, which torch.compile traces without a break
        pair = registry.TRITON_KERNELS.get(op)
        if pair is None:
            registry.import_part(op, "triton")
            pair = registry.TRITON_KERNELS[op]
        return pair
    return getattr(torch.ops.fastsnn, f"{op}_fwd"), getattr(torch.ops.fastsnn, f"{op}_bwd")


def needs(ctx, grad_enabled):
    """Which inputs get a gradient: needs_input_grad stays True under torch.no_grad(), so it is
    and-ed with grad_enabled, the caller's grad mode."""
    return [n and grad_enabled for n in ctx.needs_input_grad]


def batch_sum(partial, needed):
    """A (B, N) parameter partial summed over the batch, or None when no gradient is needed."""
    return partial.sum(0) if needed else None


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


def kernel_inputs(x, params, i0, u0):
    """The per-neuron parameters as (N,) vectors and the initial state, in the accumulation
    dtype, as the fused Functions take them."""
    N, acc = x.shape[2], checks.acc_dtype(x.dtype)
    vectors = tuple(neuron_vector(v, N, acc, x.device) for v in params)
    return vectors, initial_state(x, i0, u0)
