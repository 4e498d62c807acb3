"""The pure-PyTorch recurrent LIF reference: the LIF loop of ops/lif/ref.py with the recurrent
input R_t = S_{t-1} @ V joining the current every step (SPEC section 1)."""

import torch

from ... import _validate as checks
from ..lif.ref import example as lif_example, lif_ref_btn


def rlif_ref_btn(x, weight_rec, alpha, beta, threshold, i0, u0, reset, detach_reset,
                 detach_recurrent, surrogate, scale, normalize_input):
    """The loop on a (B, T, N) view with validated arguments; returns S (B, T, N), (I_T, U_T).
    S_{t-1} is detached from the recurrence when detach_recurrent (V still learns)."""
    return lif_ref_btn(x, alpha, beta, threshold, i0, u0, reset, detach_reset, surrogate, scale,
                       normalize_input, weight_rec=weight_rec, detach_recurrent=detach_recurrent)


def rlif_ref(X, weight_rec, alpha, beta, threshold=1.0, *, state=None, detach_recurrent=False,
             reset="zero", detach_reset=True, surrogate="superspike", scale=10.0,
             normalize_input=True, batch_first=True):
    """Reference of ``fastsnn.rlif`` with the same signature (less ``backend``): what
    ``fastsnn.rlif(..., backend="torch")`` computes."""
    x, alpha, beta, threshold, state, scale, _ = checks.check_lif_args(
        X, alpha, beta, threshold, state, reset, detach_reset, surrogate, scale,
        normalize_input, batch_first, "torch")
    B, T, N = x.shape
    checks.check_flag(detach_recurrent, "detach_recurrent")
    weight_rec = checks.check_weight_rec(weight_rec, X, N)
    if T == 0:
        return checks.empty_time(X, state, B, N)
    i0, u0 = state if state is not None else (None, None)
    s, final = rlif_ref_btn(x, weight_rec, alpha, beta, threshold, i0, u0, reset, detach_reset,
                            detach_recurrent, surrogate, scale, normalize_input)
    return checks.to_btn(s, batch_first), final



def example(B, T, N, dtype, seed=0):
    """Arguments of ``fastsnn.rlif`` for the registry-driven tests (tests/test_registry_ops.py):
    lif's ``example`` with V a leaf too (S_{t-1} differentiable through the recurrence) and the
    subtract reset."""
    leaves, lif_args = lif_example(B, T, N, dtype, seed)
    g = torch.Generator().manual_seed(seed + 1)
    V = 0.5 * torch.randn(N, N, generator=g, dtype=leaves[1].dtype) / N ** 0.5

    def args(v):
        a, kw = lif_args(v[:1] + v[2:])
        return (a[0], v[1], *a[1:]), dict(kw, reset="subtract")

    return [leaves[0], V.requires_grad_(), *leaves[1:]], args
