"""The pure-PyTorch adaptive LIF reference: SPEC section 7 as a plain time loop with autograd.

The specification in code of ``fastsnn.adlif`` (backend="torch") and the baseline of its
benchmarks. Like the lif reference it walks time with ``unbind`` and computes in float32, or
float64 for float64 inputs, whatever the input dtype. Names follow section 7: alpha is the
membrane decay, beta the adaptation decay (not lif's synaptic / membrane).
"""

import torch

from ..._validate import acc_dtype
from ...surrogate import spike as heaviside_spike

VARIANTS = ("se", "ef")


def _reset(u, z, thr, reset):
    """u after the reset by spikes z ("zero", "subtract" or "none")."""
    if reset == "zero":
        return u * (1.0 - z)
    if reset == "subtract":
        return u - thr * z
    return u


def adlif_step_ref(x_t, u, w, z, alpha, beta, a, b, thr, variant, reset, detach_reset,
                   spike_fn, surrogate, scale):
    """One step: (u, w, z) of step t-1 -> step t. x_t is the input current with R_t added
    (X_t + R_t). Returns the new (u, w, z)."""
    if variant == "se":
        u_pre = alpha * u + (1.0 - alpha) * (x_t - w)
        z_t = spike_fn(u_pre - thr, surrogate, scale)
        u_t = _reset(u_pre, z_t.detach() if detach_reset else z_t, thr, reset)
        w_t = beta * w + (1.0 - beta) * (a * u_t + b * z_t)
        return u_t, w_t, z_t
    u_reset = _reset(u, z.detach() if detach_reset else z, thr, reset)
    u_t = alpha * u_reset + (1.0 - alpha) * (x_t - w)
    w_t = beta * w + (1.0 - beta) * (a * u_reset + b * z)
    z_t = spike_fn(u_t - thr, surrogate, scale)
    return u_t, w_t, z_t


def _as_acc(value, acc, device):
    if isinstance(value, torch.Tensor):
        return value.to(acc)
    return torch.tensor(value, dtype=acc, device=device)


def adlif_ref_btn(x, alpha, beta, a, b, threshold, state=None, *, weight_rec=None,
                  variant="se", reset="zero", detach_reset=True, detach_recurrent=False,
                  surrogate="superspike", scale=10.0, spike_fn=None):
    """The loop on a (B, T, N) view with validated arguments; returns Z (B, T, N, the dtype of
    x) and the final state (u_T, w_T, z_T) in the accumulation dtype. state: None or a
    (u, w, z) triple of (B, N) tensors, the state of step -1 (zeros when None)."""
    B, T, N = x.shape
    acc = acc_dtype(x.dtype)
    alpha, beta, a, b, thr = (_as_acc(v, acc, x.device) for v in (alpha, beta, a, b, threshold))
    if state is None:
        u, w, z = (x.new_zeros((B, N), dtype=acc) for _ in range(3))
    else:
        u, w, z = (s.to(acc) for s in state)
    spike_fn = spike_fn or heaviside_spike
    V = weight_rec.to(acc) if weight_rec is not None else None
    out = []
    for x_t in x.to(acc).unbind(1):
        if V is not None:
            x_t = x_t + (z.detach() if detach_recurrent else z) @ V
        u, w, z = adlif_step_ref(x_t, u, w, z, alpha, beta, a, b, thr, variant, reset,
                                 detach_reset, spike_fn, surrogate, scale)
        out.append(z)
    Z = torch.stack(out, 1) if out else x.new_empty((B, 0, N), dtype=acc)
    if not out and state is not None:  # T = 0: new tensors, never the caller's own
        u, w, z = (s.clone() for s in (u, w, z))
    return Z.to(x.dtype), (u, w, z)


def example(B, T, N, dtype, seed=0):
    """Arguments of ``fastsnn.adlif`` for the registry-driven tests (tests/test_registry_ops.py):
    (leaves, args) as lif's ``example``: X, V, alpha, beta, a, b, threshold and the state are
    leaves, the reset is not detached, and S_{t-1} is differentiable through the recurrence."""
    g = torch.Generator().manual_seed(seed)
    acc = acc_dtype(dtype)
    leaves = [(0.8 + 1.0 * torch.randn(B, T, N, generator=g)).to(dtype),
              0.5 * torch.randn(N, N, generator=g, dtype=acc) / N ** 0.5,
              0.8 + 0.15 * torch.rand(N, generator=g, dtype=acc),
              0.9 + 0.09 * torch.rand(N, generator=g, dtype=acc),
              torch.rand(N, generator=g, dtype=acc),
              2 * torch.rand(N, generator=g, dtype=acc),
              0.5 + 0.5 * torch.rand(N, generator=g, dtype=acc),
              0.1 * torch.randn(B, N, generator=g, dtype=acc),
              0.1 * torch.randn(B, N, generator=g, dtype=acc),
              (torch.rand(B, N, generator=g) > 0.5).to(acc)]

    def args(v):
        return (v[0], v[2], v[3], v[4], v[5], v[6]), {
            "weight_rec": v[1], "state": (v[7], v[8], v[9]), "detach_reset": False}

    return [t.requires_grad_() for t in leaves], args
