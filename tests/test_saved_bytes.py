"""What the fused backwards keep, per learnable parameter alone (SPEC section 4; issue 19,
item 6): the membrane U_t always (4 bytes per neuron-step in float32), the synaptic current
I_t only for the alpha / beta partials or the undetached zero reset. A learnable threshold alone
needs U_t only: its partial, -sigma'(U_t - thr) dL/dS_t (minus S_{t-1} dL/dU_t for the subtract
reset), reads no I_t. Each case also checks the gradient against the reference, so a kernel
that needed the missing I_t would fail here.
"""

import os

import torch

if not torch.cuda.is_available():  # read when fastsnn imports its Triton modules
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import fastsnn  # noqa: E402
from helpers import kept_bytes  # noqa: E402

BACKENDS = [b for b in ("cpu", "triton") if b in fastsnn.available_backends()]
B, T, N = 3, 12, 40
# (learnable parameter, reset, detach_reset) -> float32 bytes per neuron-step kept
CASES = [("alpha", "zero", True, 8), ("beta", "zero", True, 8), ("threshold", "zero", True, 4),
         ("threshold", "subtract", True, 4), ("threshold", "subtract", False, 4),
         ("threshold", "zero", False, 8), ("none", "zero", True, 4)]


def run(op, backend, learn, reset, detach_reset):
    g = torch.Generator().manual_seed(0)
    X = (0.6 + 0.8 * torch.randn(B, T, N, generator=g)).requires_grad_()
    params = {"alpha": torch.full((N,), 0.8), "beta": torch.full((N,), 0.9),
              "threshold": torch.full((N,), 1.0)}
    if learn in params:
        params[learn].requires_grad_()
    W = 0.3 * torch.randn(N, N, generator=g) / N ** 0.5
    kw = dict(reset=reset, detach_reset=detach_reset, backend=backend)
    if op == "lif":
        def call():
            return fastsnn.lif(X, params["alpha"], params["beta"], params["threshold"], **kw)
    else:
        def call():
            return fastsnn.rlif(X, W, params["alpha"], params["beta"], params["threshold"], **kw)
    out = []
    storages = kept_bytes(lambda: out.append(call()))
    S, (i, u) = out[0]
    grads = torch.autograd.grad(S.sum() + u.sum(), [X] + [p for p in params.values()
                                                           if p.requires_grad])
    return storages, grads, X


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["lif", "rlif"])
@pytest.mark.parametrize("learn,reset,detach_reset,per_step", CASES)
def test_bytes_kept_per_parameter_alone(backend, op, learn, reset, detach_reset, per_step):
    storages, grads, X = run(op, backend, learn, reset, detach_reset)
    big = sum(n for n in storages.values() if n and n % (4 * B * T * N) == 0)  # [B, T, N]
    assert big / X.numel() == per_step, storages
    _, want, _ = run(op, "torch", learn, reset, detach_reset)
    for got, ref in zip(grads, want):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
