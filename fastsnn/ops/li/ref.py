"""The pure-PyTorch leaky-integrator reference (SPEC section 2): a plain time loop."""

import torch

from ... import _validate as checks
from ..lif.ref import as_acc


def li_ref_btn(x, alpha, beta, i0, u0, normalize_input):
    """The loop on a (B, T, N) view; returns U (B, T, N) in x's dtype, (I_T, U_T)."""
    B, T, N = x.shape
    acc = checks.acc_dtype(x.dtype)
    alpha, beta = (as_acc(v, acc, x.device) for v in (alpha, beta))
    gamma = 1.0 - beta if normalize_input else torch.ones_like(beta)
    I = i0.to(acc) if i0 is not None else x.new_zeros((B, N), dtype=acc)
    U = u0.to(acc) if u0 is not None else x.new_zeros((B, N), dtype=acc)
    trace = []
    for x_t in x.to(acc).unbind(1):
        I = alpha * I + x_t
        U = beta * U + gamma * I
        trace.append(U)
    out = torch.stack(trace, 1) if trace else x.new_empty((B, 0, N), dtype=acc)
    return out.to(x.dtype), (I, U)


def li_ref(X, alpha, beta, *, state=None, normalize_input=True, batch_first=True):
    """Reference of ``fastsnn.li`` with the same signature (less ``backend``): what
    ``fastsnn.li(..., backend="torch")`` computes."""
    x, alpha, beta, state, _ = checks.check_li_args(X, alpha, beta, state, normalize_input,
                                                    batch_first, "torch")
    B, T, N = x.shape
    if T == 0:
        return checks.empty_time(X, state, B, N)
    i0, u0 = state if state is not None else (None, None)
    u, final = li_ref_btn(x, alpha, beta, i0, u0, normalize_input)
    return checks.to_btn(u, batch_first), final


def example(B, T, N, dtype, seed=0):
    """Arguments of ``fastsnn.li`` for the registry-driven tests (tests/test_registry_ops.py):
    (leaves, args) as lif's ``example``: X, alpha, beta and the state are leaves."""
    g = torch.Generator().manual_seed(seed)
    acc = checks.acc_dtype(dtype)
    leaves = [torch.randn(B, T, N, generator=g).to(dtype),
              0.6 + 0.35 * torch.rand(N, generator=g, dtype=acc),
              0.7 + 0.25 * torch.rand(N, generator=g, dtype=acc),
              0.1 * torch.randn(B, N, generator=g, dtype=acc),
              0.1 * torch.randn(B, N, generator=g, dtype=acc)]

    def args(v):
        return (v[0], v[1], v[2]), {"state": (v[3], v[4])}

    return [t.requires_grad_() for t in leaves], args
