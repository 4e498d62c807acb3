"""The pure-PyTorch LIF reference: SPEC section 1 as a plain time loop with autograd.

This is the specification in code and the baseline of every benchmark. It walks time with
``unbind`` (per-step indexing would make the backward O(T^2)) and computes in float32, or
float64 for float64 inputs, whatever the input dtype.
"""

import torch

from ... import _validate as checks
from ...surrogate import spike as heaviside_spike


def lif_step_ref(x_t, I, U, alpha, beta, gamma, thr, reset, s_reset, r_t=None):
    """One step: (I, U) of step t-1 -> step t. s_reset is S_{t-1} as the reset sees it; r_t the
    recurrent input S_{t-1} @ V of rlif (added after the feed-forward current, as in SPEC)."""
    I = alpha * I + x_t
    if r_t is not None:
        I = I + r_t
    H = beta * U + gamma * I
    if reset == "zero":
        U = H * (1.0 - s_reset)
    elif reset == "subtract":
        U = H - thr * s_reset
    else:
        U = H
    return I, U


def as_acc(value, acc, device):
    """A float or tensor parameter as a tensor of the accumulation dtype (differentiable)."""
    if isinstance(value, torch.Tensor):
        return value.to(acc)
    return torch.tensor(value, dtype=acc, device=device)


def lif_ref_btn(x, alpha, beta, threshold, i0, u0, reset, detach_reset, surrogate, scale,
                normalize_input, spike_fn=None, weight_rec=None, detach_recurrent=False):
    """The loop on a (B, T, N) view with validated arguments; returns S (B, T, N), (I_T, U_T).

    With weight_rec (V, (N, N)) it is rlif: R_t = S_{t-1} @ V joins the current every step,
    with S_{t-1} detached from the recurrence when detach_recurrent (V still learns)."""
    B, T, N = x.shape
    acc = checks.acc_dtype(x.dtype)
    alpha, beta, thr = (as_acc(v, acc, x.device) for v in (alpha, beta, threshold))
    gamma = 1.0 - beta if normalize_input else torch.ones_like(beta)
    I = i0.to(acc) if i0 is not None else x.new_zeros((B, N), dtype=acc)
    U = u0.to(acc) if u0 is not None else x.new_zeros((B, N), dtype=acc)
    spike_fn = spike_fn or heaviside_spike

    S_prev = spike_fn(U - thr, surrogate, scale)
    spikes = []
    V_rec = weight_rec.to(acc) if weight_rec is not None else None
    for x_t in x.to(acc).unbind(1):
        s_reset = S_prev.detach() if detach_reset else S_prev
        r_t = None
        if V_rec is not None:
            r_t = (S_prev.detach() if detach_recurrent else S_prev) @ V_rec
        I, U = lif_step_ref(x_t, I, U, alpha, beta, gamma, thr, reset, s_reset, r_t)
        S_prev = spike_fn(U - thr, surrogate, scale)
        spikes.append(S_prev)
    S = torch.stack(spikes, 1) if spikes else x.new_empty((B, 0, N), dtype=acc)
    return S.to(x.dtype), (I, U)


def lif_ref(X, alpha, beta, threshold=1.0, *, state=None, reset="zero", detach_reset=True,
            surrogate="superspike", scale=10.0, normalize_input=True, batch_first=True):
    """Reference of ``fastsnn.lif`` with the same signature (less ``backend``): what
    ``fastsnn.lif(..., backend="torch")`` computes."""
    x, alpha, beta, threshold, state, scale, _ = checks.check_lif_args(
        X, alpha, beta, threshold, state, reset, detach_reset, surrogate, scale,
        normalize_input, batch_first, "torch")
    B, T, N = x.shape
    if T == 0:
        return checks.empty_time(X, state, B, N)
    i0, u0 = state if state is not None else (None, None)
    s, final = lif_ref_btn(x, alpha, beta, threshold, i0, u0, reset, detach_reset, surrogate,
                           scale, normalize_input)
    return checks.to_btn(s, batch_first), final



def example(B, T, N, dtype, seed=0):
    """Arguments of ``fastsnn.lif`` for the registry-driven tests (tests/test_registry_ops.py):
    (leaves, args) where args(leaves) gives the call's positional and keyword arguments (less
    ``backend``). Every input that can learn is a leaf (X, alpha, beta, threshold, the state),
    the zero reset is not detached, and about a fifth of the neuron-steps spike."""
    g = torch.Generator().manual_seed(seed)
    acc = checks.acc_dtype(dtype)
    leaves = [(0.6 + 0.8 * torch.randn(B, T, N, generator=g)).to(dtype),
              0.6 + 0.35 * torch.rand(N, generator=g, dtype=acc),
              0.7 + 0.25 * torch.rand(N, generator=g, dtype=acc),
              0.8 + 0.4 * torch.rand(N, generator=g, dtype=acc),
              0.1 * torch.randn(B, N, generator=g, dtype=acc),
              0.1 * torch.randn(B, N, generator=g, dtype=acc)]

    def args(v):
        return (v[0], v[1], v[2], v[3]), {"state": (v[4], v[5]), "detach_reset": False}

    return [t.requires_grad_() for t in leaves], args
