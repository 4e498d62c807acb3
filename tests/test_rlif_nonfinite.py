"""rlif with inf/NaN in the recurrent weight V (issue 18, item 2) against the reference.

The reference forms R_t = S_{t-1} @ V as a dense product, so a neuron that did not spike adds
0 * V[j, :], NaN where V[j, :] holds an inf or a NaN. The kernels that gather the rows of V of
the spiking neurons only form R_t over every neuron when V is not finite (the CPU's dense tile
product, the CUDA forward's list of all neurons), and dV = S_prevᵀ @ gI gets the reference's
0 * inf = NaN too. Each backend here (the C++ CPU kernels, Triton in the interpreter, and the
CUDA kernels in their host emulation: tests/test_cuda_emulated.py runs CASES through
check_backend) must give the reference's NaN pattern in S, I_T, U_T and every gradient, the
same infinities, and its finite values to the dtype's tolerance. Finite V keeps the gather: its
results stay bitwise those of the emulated CUDA forward (test_cuda_emulated.py) and of the
sparse path (test_finite_v_forward_bitwise_unchanged).
"""

import os

import torch

if not torch.cuda.is_available():  # read when fastsnn imports its Triton modules
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import fastsnn  # noqa: E402

# (where, value, dtype): V[j, c] = value for a neuron j that spikes at every step ("spiking")
# or never spikes ("silent"); V in the accumulation dtype.
CASES = [(where, value, dt) for dt in ("f64", "f32") for where in ("spiking", "silent")
         for value in ("inf", "-inf", "nan")]
IDS = [f"{w}-{v}-{d}" for w, v, d in CASES]
DT = {"f64": torch.float64, "f32": torch.float32}
TOL = {"f64": (1e-9, 1e-12), "f32": (2e-4, 1e-5)}  # rtol, atol of the finite values
SPIKING, SILENT, COL = 1, 2, 4


def inputs(where, value, dt, B=3, T=6, N=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = DT[dt]
    X = 0.6 + 0.8 * torch.randn(B, T, N, generator=g, dtype=torch.float64)
    X[:, :, SPIKING] = 4.0  # spikes at every step
    X[:, :, SILENT] = -4.0  # never spikes
    V = 0.3 * torch.randn(N, N, generator=g, dtype=torch.float64) / N ** 0.5
    V[SILENT, :] = -0.2  # keeps neuron SILENT below threshold whatever V[SILENT, SILENT]
    V[:, SILENT] = -0.2
    V[SPIKING, SPIKING] = 0.0
    V[SPIKING if where == "spiking" else SILENT, COL] = float(value)
    return X.to(dtype), V.to(dtype)


def run(backend, X, V, **opts):
    """Spikes, the final state and the gradients of a loss w.r.t. X, V and the initial state."""
    B, _, N = X.shape
    x, v = X.clone().requires_grad_(), V.clone().requires_grad_()
    st = (torch.zeros(B, N, dtype=X.dtype).requires_grad_(),
          torch.zeros(B, N, dtype=X.dtype).requires_grad_())
    S, (I, U) = fastsnn.rlif(x, v, 0.8, 0.9, state=st, backend=backend, **opts)
    w = torch.randn(S.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = (S.double() * w).sum() + U.double().sum() + 0.5 * I.double().sum()
    grads = torch.autograd.grad(loss, [x, v, *st])
    return [S.detach(), I.detach(), U.detach(), *grads]


NAMES = ("S", "I_T", "U_T", "dX", "dV", "dI0", "dU0")


def assert_same(got, want, dt, name):
    """NaN where want is NaN, the same infinities, finite values to the dtype's tolerance."""
    assert got.shape == want.shape and got.dtype == want.dtype, name
    nan = want.isnan()
    assert torch.equal(got.isnan(), nan), f"{name}: NaN pattern differs"
    inf = want.isinf()
    assert torch.equal(got.isinf(), inf), f"{name}: inf pattern differs"
    assert torch.equal(got[inf], want[inf]), f"{name}: infinities differ"
    fin = ~(nan | inf)
    rtol, atol = TOL[dt]
    torch.testing.assert_close(got[fin], want[fin], rtol=rtol, atol=atol, msg=name)


def check_backend(backend, where, value, dt, **kw):
    X, V = inputs(where, value, dt, **kw)
    want = run("torch", X, V)
    got = run(backend, X, V)
    # The case is what it says: neuron SPIKING spikes, SILENT does not, and V's inf/NaN shows.
    S_ref = want[0]
    assert S_ref[:, :, SILENT].eq(0).all()
    assert not all(w.isfinite().all() for w in want), "the non-finite V changed nothing"
    for name, a, b in zip(NAMES, got, want):
        if name == "S":
            assert torch.equal(a, b), "spikes differ"
        else:
            assert_same(a, b, dt, name)


@pytest.mark.parametrize("where,value,dt", CASES, ids=IDS)
def test_cpu(where, value, dt):
    check_backend("cpu", where, value, dt)


@pytest.mark.parametrize("where,value,dt", CASES, ids=IDS)
def test_cpu_wide_rows(where, value, dt):
    """N = 150: float32 rows past the 128-lane walk (gather_rows)."""
    check_backend("cpu", where, value, dt, N=150, T=4)


@pytest.mark.parametrize("where,value,dt", CASES, ids=IDS)
def test_triton(where, value, dt):
    pytest.importorskip("fastsnn.ops.rlif.triton", reason="Triton is not installed")
    if not fastsnn._backends.triton_available():
        pytest.skip("Triton backend unavailable")
    check_backend("triton", where, value, dt, B=2, T=3, N=10)  # the direct path
    if value != "-inf":
        check_backend("triton", where, value, dt, B=2, T=3, N=40)  # the chunked path


def test_cpu_dv_non_finite_grad_from_x():
    """Finite V, an inf in X: gI_t holds NaN/inf, and dV = S_prevᵀ @ gI has the reference's
    NaN columns (0 * inf for the neurons that did not spike), not the spike gather's."""
    X, V = inputs("spiking", 0.1, "f64")
    X[1, 3, 5] = float("inf")
    want = run("torch", X, V)
    got = run("cpu", X, V)
    assert not want[4].isfinite().all()
    for name, a, b in zip(NAMES, got, want):
        assert_same(a, b, "f64", name)


@pytest.mark.parametrize("dt", ["f64", "f32"])
@pytest.mark.parametrize("N", [10, 150])
def test_finite_v_forward_bitwise_unchanged(dt, N, monkeypatch):
    """Finite V keeps the gather over the spikes: every step's I_t is bitwise
    (alpha I_{t-1} + x_t) + R_t with R_t the left-to-right sum, from 0, of the rows of V of the
    neurons that spiked at t-1 in ascending order (S_{t-1} from the saved U_{t-1}), as before
    the change; and a call with a non-finite V in between (the dense path) leaves the next
    finite call bitwise the same."""
    torch.ops.fastsnn.set_rlif_dense(False)
    X, V = inputs("spiking", 0.1, dt, N=N)
    B, T, _ = X.shape
    acc = V.dtype
    alpha, beta, thr = (torch.full((N,), c, dtype=acc) for c in (0.8, 0.9, 1.0))
    i0 = 0.1 * torch.randn(B, N, generator=torch.Generator().manual_seed(2), dtype=acc)
    u0 = 1.0 + 0.5 * torch.randn(B, N, generator=torch.Generator().manual_seed(3), dtype=acc)
    rest = (alpha, beta, thr, i0, u0, 0, False, True, True)
    out = torch.ops.fastsnn.rlif_fwd(X, V, *rest)
    S, _, _, Us, Is = out
    assert S.sum() > B * T  # spikes besides neuron SPIKING
    for t in range(T):
        u_prev = u0 if t == 0 else Us[:, t - 1]
        i_prev = i0 if t == 0 else Is[:, t - 1]
        for b in range(B):
            r = torch.zeros(N, dtype=acc)
            for j in torch.nonzero(u_prev[b] - thr > 0).flatten().tolist():
                r = r + V[j]
            want = (alpha * i_prev[b] + X[b, t]) + r
            assert torch.equal(Is[b, t], want), (t, b)
    V_inf = V.clone()
    V_inf[SILENT, COL] = float("inf")
    dense = torch.ops.fastsnn.rlif_fwd(X, V_inf, *rest)
    assert dense[1].isnan().any()
    for a, b in zip(torch.ops.fastsnn.rlif_fwd(X, V, *rest), out):
        assert torch.equal(a, b)
