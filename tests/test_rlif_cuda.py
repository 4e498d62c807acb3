"""The CUDA rlif kernels (csrc/rlif/rlif_cuda*.cu[h]) against the reference on the GPU.

Skipped without a CUDA device (marker ``cuda``) or without the CUDA build; registration of the
ops in a CUDA build is checked by tests/test_cuda.py on every machine. Every buffer the C++ ops
allocate starts as NaN (the ``poison`` fixture of tests/conftest.py), so an output element the
kernels never write fails. Cases cover both places V lives (wholly staged
in shared memory for small N, partly read from L2 for large N), rows per block (B odd), every
reset and detach mode, the recurrent gradient on and off, learnable per-neuron parameters, a
given initial state and every I/O dtype. Tolerances as tests/test_rlif_cpu.py: float64
identical spikes and 1e-10; float32 spike mismatch <= 1e-3 and gradients 1e-4 when the spikes
agree; bf16/fp16 2e-2.
"""

import types

import pytest
import torch

import fastsnn
from fastsnn import _backends
from helpers import DTYPES, mismatch_rate, rel_err

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not _backends.cuda_kernels_built(),
                                 reason="fastsnn._C was built without the CUDA kernels"),
              pytest.mark.usefixtures("poison")]

TOL = {"f64": (0.0, 1e-10), "f32": (1e-3, 1e-4), "bf16": (1e-3, 2e-2), "f16": (1e-3, 2e-2)}


def inputs(B, T, N, dt, seed=0, learn=False, state=False, device="cuda"):
    """X, V, [alpha, beta, threshold], state drawn on device (the CUDA emulation's tests use
    the same draws on the CPU)."""
    g = torch.Generator(device).manual_seed(seed)
    dtype = DTYPES[dt]
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    X = (0.6 + 0.8 * torch.randn(B, T, N, generator=g, device=device, dtype=torch.float64))
    V = 0.6 * torch.randn(N, N, generator=g, device=device, dtype=torch.float64) / N ** 0.5
    params = [0.8, 0.9, 1.0]
    if learn:  # True: alpha, beta and threshold; "threshold": that one alone (no I_t kept)
        params = [(v - 0.05 * torch.rand(N, generator=g, device=device, dtype=torch.float64))
                  .to(acc) for v in params]
        if learn == "threshold":
            params[:2] = [0.8, 0.9]
    st = None
    if state:
        st = (0.3 * torch.randn(B, N, generator=g, device=device, dtype=torch.float64).to(acc),
              (0.9 + 0.3 * torch.randn(B, N, generator=g, device=device,
                                       dtype=torch.float64)).to(acc))
    return X.to(dtype), V.to(acc), params, st


def run(backend, X, V, params, state, **opts):
    """Spikes, the final state (I_T, U_T) and the gradients of one loss w.r.t. every leaf."""
    leaves = [X.clone().requires_grad_(), V.clone().requires_grad_()]
    ps = [p.clone().requires_grad_() if isinstance(p, torch.Tensor) else p for p in params]
    st = tuple(s.clone().requires_grad_() for s in state) if state else None
    S, (I, U) = fastsnn.rlif(leaves[0], leaves[1], *ps, state=st, backend=backend, **opts)
    g = torch.Generator(X.device).manual_seed(1)
    w = torch.randn(S.shape, generator=g, device=X.device, dtype=torch.float64)
    loss = (S.double() * w).sum() + U.double().sum() + 0.5 * I.double().sum()
    wrt = leaves + [p for p in ps if isinstance(p, torch.Tensor)] + list(st or ())
    return S.detach(), (I.detach(), U.detach()), torch.autograd.grad(loss, wrt)


def _case(B, T, N, dt, **kw):
    """(B, T, N, dt, kw), kw read-only: inputs() takes learn/state, run() the rest; copy kw
    (dict(kw)) before changing it."""
    return (B, T, N, dt, types.MappingProxyType(kw))


# Shared with other test modules: nobody may change a case, hence tuples and read-only kw.
CASES = (
    _case(2, 17, 33, "f64"), _case(5, 30, 100, "f64", state=True),
    _case(3, 12, 700, "f64"), _case(7, 20, 64, "f32"), _case(4, 16, 600, "f32"),
    _case(3, 21, 37, "f64", learn=True, state=True, reset="subtract", detach_reset=False),
    _case(3, 21, 37, "f64", learn=True, reset="zero", detach_reset=False,
          detach_recurrent=True),
    _case(3, 21, 37, "f64", reset="none", surrogate="esser", scale=2.0),
    _case(3, 21, 37, "f64", learn="threshold", state=True, reset="subtract"),
    _case(2, 25, 47, "bf16"), _case(2, 25, 47, "f16"),
)


def _case_id(case):
    B, T, N, dt, kw = case
    return "-".join([f"B{B}T{T}N{N}", dt] + [f"{k}={v}" for k, v in kw.items()])


@pytest.mark.parametrize("B,T,N,dt,kw", CASES, ids=[_case_id(c) for c in CASES])
def test_rlif_cuda_matches_reference(B, T, N, dt, kw):
    opts = dict(kw)  # a copy: CASES stay as they are for the next test and other modules
    learn, state = opts.pop("learn", False), opts.pop("state", False)
    X, V, params, st = inputs(B, T, N, dt, learn=learn, state=state)
    S_ref, _, g_ref = run("torch", X, V, params, st, **opts)
    S, _, g = run("cuda", X, V, params, st, **opts)
    spike_tol, tol = TOL[dt]
    assert mismatch_rate(S, S_ref) <= spike_tol
    if dt == "f64":
        assert torch.equal(S, S_ref)
    if torch.equal(S, S_ref):
        for a, b in zip(g, g_ref):
            assert not a.isnan().any()
            assert rel_err(a, b) <= tol
    with torch.no_grad():  # the final state again, in inference (nothing saved)
        S_i, (I, U) = fastsnn.rlif(X, V, *params, state=st, backend="cuda", **opts)
        _, (I_ref, U_ref) = fastsnn.rlif(X, V, *params, state=st, backend="torch", **opts)
    assert not (I.isnan().any() or U.isnan().any())
    assert mismatch_rate(S_i, S_ref) <= spike_tol
    if torch.equal(S, S_ref):
        assert rel_err(I, I_ref) <= tol and rel_err(U, U_ref) <= tol


def test_rlif_cuda_matches_cpu_forward_bitwise():
    """The CUDA forward sums R_t over the spiking neurons in ascending order, like the CPU."""
    X, V, params, _ = inputs(6, 40, 300, "f32")
    S, (I, U) = fastsnn.rlif(X, V, *params, backend="cuda")
    S_c, (I_c, U_c) = fastsnn.rlif(X.cpu(), V.cpu(), *params, backend="cpu")
    assert torch.equal(S.cpu(), S_c) and torch.equal(U.cpu(), U_c) and torch.equal(I.cpu(), I_c)
