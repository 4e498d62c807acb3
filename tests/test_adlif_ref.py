"""The adaptive LIF reference (fastsnn/ops/adlif/ref.py) against SPEC section 7.

An independent scalar loop written from section 7's equations checks the reference's forward
for both variants, every reset, with and without recurrence and a given state; gradcheck (the
Heaviside spike swapped for the antiderivative of its surrogate, as for lif) checks its
backward for every combination of variant, reset, detach flags, recurrence and learnable
parameters in float64; chunks carried through the state equal one call.
"""

import itertools
import math

import pytest
import torch

from fastsnn.ops.adlif.ref import adlif_ref_btn
from fastsnn.surrogate import smooth_spike


def scalar_adlif(X, alpha, beta, a, b, thr, V, variant, reset, state):
    """Section 7 elementwise in Python floats: X [B][T][N] lists; returns Z and (u, w, z)."""
    B, T, N = len(X), len(X[0]), len(X[0][0])
    u = [[state[0][i][j] for j in range(N)] for i in range(B)]
    w = [[state[1][i][j] for j in range(N)] for i in range(B)]
    z = [[state[2][i][j] for j in range(N)] for i in range(B)]
    Z = [[[0.0] * N for _ in range(T)] for _ in range(B)]

    def rst(v, s, th):
        return v * (1 - s) if reset == "zero" else (v - th * s if reset == "subtract" else v)

    for i in range(B):
        for t in range(T):
            r = [sum(z[i][k] * V[k][j] for k in range(N)) if V is not None else 0.0
                 for j in range(N)]
            for j in range(N):
                cur = X[i][t][j] + r[j] - w[i][j]
                if variant == "se":
                    up = alpha[j] * u[i][j] + (1 - alpha[j]) * cur
                    zt = 1.0 if up - thr[j] > 0 else 0.0
                    ut = rst(up, zt, thr[j])
                    wt = beta[j] * w[i][j] + (1 - beta[j]) * (a[j] * ut + b[j] * zt)
                else:
                    ur = rst(u[i][j], z[i][j], thr[j])
                    ut = alpha[j] * ur + (1 - alpha[j]) * cur
                    wt = beta[j] * w[i][j] + (1 - beta[j]) * (a[j] * ur + b[j] * z[i][j])
                    zt = 1.0 if ut - thr[j] > 0 else 0.0
                u[i][j], w[i][j] = ut, wt
                Z[i][t][j] = zt
            z[i] = [Z[i][t][j] for j in range(N)]
    return Z, (u, w, z)


def params(N, seed):
    g = torch.Generator().manual_seed(seed)
    alpha = 0.7 + 0.25 * torch.rand(N, generator=g, dtype=torch.float64)
    beta = 0.8 + 0.19 * torch.rand(N, generator=g, dtype=torch.float64)
    a = torch.rand(N, generator=g, dtype=torch.float64) * 2 - 0.5
    b = torch.rand(N, generator=g, dtype=torch.float64) * 2
    thr = 0.5 + 0.5 * torch.rand(N, generator=g, dtype=torch.float64)
    return alpha, beta, a, b, thr


@pytest.mark.parametrize("variant", ["se", "ef"])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_forward_matches_section_7(variant, reset, recurrent):
    B, T, N = 2, 9, 4
    g = torch.Generator().manual_seed(1)
    X = 1.5 * torch.randn(B, T, N, generator=g, dtype=torch.float64) + 0.8
    alpha, beta, a, b, thr = params(N, 2)
    V = 0.5 * torch.randn(N, N, generator=g, dtype=torch.float64) if recurrent else None
    state = (0.3 * torch.randn(B, N, generator=g, dtype=torch.float64),
             0.2 * torch.randn(B, N, generator=g, dtype=torch.float64),
             (torch.rand(B, N, generator=g) > 0.5).double())
    Z, (u, w, z) = adlif_ref_btn(X, alpha, beta, a, b, thr, state, weight_rec=V,
                                 variant=variant, reset=reset)
    Zs, (us, ws, zs) = scalar_adlif(X.tolist(), alpha.tolist(), beta.tolist(), a.tolist(),
                                    b.tolist(), thr.tolist(), V.tolist() if recurrent else None,
                                    variant, reset, [s.tolist() for s in state])
    assert Z.tolist() == Zs and z.tolist() == zs
    assert 0 < Z.mean() < 1  # the case spikes, and not always
    for got, want in ((u, us), (w, ws)):
        for gr, wr in zip(got.tolist(), want):
            for x, y in zip(gr, wr):
                assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12)


COMBOS = list(itertools.product(["se", "ef"], ["zero", "subtract", "none"], [True, False],
                                [None, False, True]))


def with_constants(X, alpha, beta, a, b, thr, u0, w0, z0, V, variant, reset, reset_z, rec_z):
    """Section 7 with the detached spikes given as constants: reset_z[t] is the Z that step t's
    reset uses (Z_t for "se", Z_{t-1} for "ef"), rec_z[t] the Z_{t-1} of R_t; None where the
    spike keeps its gradient. The gradient of this function is, by definition, the gradient
    that the detach flags ask for."""
    u, w, z = u0, w0, z0
    out = []
    for t, x_t in enumerate(X.unbind(1)):
        if V is not None:
            x_t = x_t + (z if rec_z is None else rec_z[t]) @ V
        if variant == "se":
            up = alpha * u + (1 - alpha) * (x_t - w)
            z_t = smooth_spike(up - thr, "superspike", 2.0)
            zr = z_t if reset_z is None else reset_z[t]
            u_t = up * (1 - zr) if reset == "zero" else (up - thr * zr if reset == "subtract"
                                                          else up)
            w = beta * w + (1 - beta) * (a * u_t + b * z_t)
        else:
            zr = z if reset_z is None else reset_z[t]
            ur = u * (1 - zr) if reset == "zero" else (u - thr * zr if reset == "subtract" else u)
            u_t = alpha * ur + (1 - alpha) * (x_t - w)
            w = beta * w + (1 - beta) * (a * ur + b * z)
            z_t = smooth_spike(u_t - thr, "superspike", 2.0)
        u, z = u_t, z_t
        out.append(z)
    return torch.stack(out, 1), u, w, z


@pytest.mark.parametrize("variant,reset,detach_reset,recurrence", COMBOS)
def test_reference_gradcheck(variant, reset, detach_reset, recurrence):
    """recurrence: None (no V), False (V, Z_{t-1} differentiable), True (detach_recurrent).
    Without detaching, gradcheck of the reference. With a detach flag, the detached spikes are
    constants: gradcheck of that function (with_constants, the spikes of a first pass), and
    the reference's gradient must equal its gradient."""
    B, T, N = 2, 5, 3
    g = torch.Generator().manual_seed(3)
    X = (torch.randn(B, T, N, generator=g, dtype=torch.float64) + 0.8).requires_grad_()
    ps = [p.clone().requires_grad_() for p in params(N, 4)]
    state = [(0.3 * torch.randn(B, N, generator=g, dtype=torch.float64)).requires_grad_()
             for _ in range(3)]
    V = (0.4 * torch.randn(N, N, generator=g, dtype=torch.float64)).requires_grad_()
    inputs = [X, *ps, *state] + ([V] if recurrence is not None else [])

    def ref(X, alpha, beta, a, b, thr, u0, w0, z0, V=None):
        Z, (u, w, z) = adlif_ref_btn(X, alpha, beta, a, b, thr, (u0, w0, z0), weight_rec=V,
                                     variant=variant, reset=reset, detach_reset=detach_reset,
                                     detach_recurrent=bool(recurrence), spike_fn=smooth_spike,
                                     scale=2.0)
        return Z, u, w, z

    detached = (detach_reset and reset != "none") or bool(recurrence)
    if not detached:
        assert torch.autograd.gradcheck(ref, inputs, atol=1e-7, rtol=1e-6)
        return
    with torch.no_grad():  # the spikes of a first pass: Z_{-1} = z0, then Z_0 .. Z_{T-1}
        Z, *_ = ref(*inputs)
    # a copy of z0: gradcheck perturbs the inputs in place
    prev = [state[2].detach().clone()] + list(Z.unbind(1))[:-1]
    reset_z = (list(Z.unbind(1)) if variant == "se" else prev) if detach_reset else None
    rec_z = prev if recurrence else None

    def const(*args):
        return with_constants(*args[:9], args[9] if len(args) > 9 else None, variant, reset,
                              reset_z, rec_z)

    assert torch.autograd.gradcheck(const, inputs, atol=1e-7, rtol=1e-6)
    weights = [torch.randn(o.shape, generator=g, dtype=torch.float64) for o in ref(*inputs)]
    g_ref = torch.autograd.grad(sum((o * w).sum() for o, w in zip(ref(*inputs), weights)),
                                inputs, allow_unused=True)
    g_const = torch.autograd.grad(sum((o * w).sum() for o, w in zip(const(*inputs), weights)),
                                  inputs, allow_unused=True)
    for x, y, i in zip(g_ref, g_const, inputs):
        zero = torch.zeros_like(i)
        torch.testing.assert_close(zero if x is None else x, zero if y is None else y,
                                   rtol=1e-10, atol=1e-12)


def test_detach_flags_change_the_gradient():
    """The detach cases above could not fail if the flags did nothing: they must change dX."""
    g = torch.Generator().manual_seed(8)
    X = (torch.randn(2, 6, 3, generator=g, dtype=torch.float64) + 0.8).requires_grad_()
    V = 0.4 * torch.randn(3, 3, generator=g, dtype=torch.float64)

    def dx(**kw):
        Z, (u, w, z) = adlif_ref_btn(X, 0.9, 0.95, 0.5, 1.0, 1.0, weight_rec=V, **kw)
        return torch.autograd.grad(Z.sum() + u.sum() + w.sum(), X)[0]

    for variant in ("se", "ef"):
        base = dx(variant=variant, detach_reset=False)
        assert not torch.allclose(base, dx(variant=variant, detach_reset=True))
        assert not torch.allclose(base, dx(variant=variant, detach_reset=False,
                                           detach_recurrent=True))


@pytest.mark.parametrize("variant", ["se", "ef"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_chunks_equal_one_call(variant, reset):
    B, T, N = 3, 12, 5
    g = torch.Generator().manual_seed(5)
    X = torch.randn(B, T, N, generator=g, dtype=torch.float64) + 0.9
    alpha, beta, a, b, thr = params(N, 6)
    V = 0.5 * torch.randn(N, N, generator=g, dtype=torch.float64)
    kw = dict(weight_rec=V, variant=variant, reset=reset)
    Z, st = adlif_ref_btn(X, alpha, beta, a, b, thr, **kw)
    Z1, st1 = adlif_ref_btn(X[:, :5], alpha, beta, a, b, thr, **kw)
    Z2, st2 = adlif_ref_btn(X[:, 5:], alpha, beta, a, b, thr, st1, **kw)
    assert torch.equal(torch.cat([Z1, Z2], 1), Z)
    for x, y in zip(st, st2):
        assert torch.equal(x, y)


def test_empty_time_returns_new_state():
    X = torch.zeros(2, 0, 3)
    state = tuple(torch.randn(2, 3) for _ in range(3))
    Z, out = adlif_ref_btn(X, 0.9, 0.9, 0.5, 1.0, 1.0, state)
    assert Z.shape == (2, 0, 3)
    for s, o in zip(state, out):
        assert torch.equal(s, o) and o.data_ptr() != s.data_ptr()


@pytest.mark.parametrize("variant,reset,detach_reset,recurrence", COMBOS)
@pytest.mark.parametrize("surrogate", ["superspike", "sigmoid"])
def test_manual_backward_matches_reference(variant, reset, detach_reset, recurrence, surrogate):
    """The reverse scan of ops/adlif/README.md (tests/adlif_manual.py, reading only what the
    README says is saved) gives the reference's gradients of X, alpha, beta, a, b, thr, the
    initial state and V, in float64, for every combination; the forward it saves from gives
    the reference's Z and final state bitwise."""
    from adlif_manual import backward, forward_saved

    B, T, N = 3, 11, 5
    g = torch.Generator().manual_seed(11)
    X = (torch.randn(B, T, N, generator=g, dtype=torch.float64) + 0.9).requires_grad_()
    ps = [p.clone().requires_grad_() for p in params(N, 12)]
    st = [(0.4 * torch.randn(B, N, generator=g, dtype=torch.float64)).requires_grad_(),
          (0.2 * torch.randn(B, N, generator=g, dtype=torch.float64)).requires_grad_(),
          (torch.rand(B, N, generator=g) > 0.5).double().requires_grad_()]
    V = ((0.5 * torch.randn(N, N, generator=g, dtype=torch.float64)).requires_grad_()
         if recurrence is not None else None)
    kw = dict(variant=variant, reset=reset)
    Z, (u, w, z) = adlif_ref_btn(X, *ps, tuple(st), weight_rec=V, detach_reset=detach_reset,
                                 detach_recurrent=bool(recurrence), surrogate=surrogate,
                                 scale=5.0, **kw)
    assert 0.02 < Z.mean() < 0.9
    G, gu, gw, gz = (torch.randn(t.shape, generator=g, dtype=torch.float64)
                     for t in (Z, u, w, z))
    inputs = [X, *ps, *st] + ([V] if V is not None else [])
    want = torch.autograd.grad((Z * G).sum() + (u * gu).sum() + (w * gw).sum() + (z * gz).sum(),
                               inputs, allow_unused=True)
    with torch.no_grad():
        Zm, (um, wm, zm), M, W, D = forward_saved(X, *ps, *st, V, **kw)
        got = backward(G, gu, gw, gz, M, W, D, *ps, *st, V, detach_reset=detach_reset,
                       detach_recurrent=bool(recurrence), surrogate=surrogate, scale=5.0, **kw)
    assert torch.equal(Zm, Z) and torch.equal(zm, z)
    torch.testing.assert_close(um, u, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(wm, w, rtol=1e-12, atol=1e-12)
    names = ["X", "alpha", "beta", "a", "b", "thr", "u0", "w0", "z0", "V"]
    for name, x, y, i in zip(names, want, got, inputs):
        x = torch.zeros_like(i) if x is None else x
        torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-10, msg=name)


def test_public_function_runs_the_reference():
    """fastsnn.adlif(backend="torch") is the reference with checked arguments, in both
    layouts (backend "auto" runs the fused CPU kernels: tests/test_adlif_cpu.py)."""
    import fastsnn

    g = torch.Generator().manual_seed(9)
    X = torch.randn(3, 8, 6, generator=g) + 0.8
    V = 0.3 * torch.randn(6, 6, generator=g)
    state = tuple(0.1 * torch.randn(3, 6, generator=g) for _ in range(3))
    want = adlif_ref_btn(X, 0.9, 0.95, 0.5, 1.0, 1.0, state, weight_rec=V, variant="ef")
    got = fastsnn.adlif(X, 0.9, 0.95, 0.5, 1.0, weight_rec=V, variant="ef", state=state,
                        backend="torch")
    assert torch.equal(got[0], want[0])
    assert all(torch.equal(x, y) for x, y in zip(got[1], want[1]))
    Zt, _ = fastsnn.adlif(X.transpose(0, 1), 0.9, 0.95, 0.5, 1.0, weight_rec=V, variant="ef",
                          state=state, batch_first=False, backend="torch")
    assert torch.equal(Zt.transpose(0, 1), want[0])


@pytest.mark.parametrize("kwargs,err,match", [
    ({"variant": "rk4"}, ValueError, "variant"),
    ({"state": (torch.zeros(2, 3), torch.zeros(2, 3))}, TypeError, "triple"),
    ({"state": (torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 3))}, ValueError,
     r"state\[2\] \(z\)"),
    ({"a": torch.zeros(4)}, ValueError, "a must"),
    ({"b": torch.zeros(2, 3)}, ValueError, "b must"),
    ({"alpha": 1.5}, ValueError, "alpha"),
    ({"beta": torch.full((3,), -0.1)}, ValueError, "beta"),
    ({"threshold": float("nan")}, ValueError, "threshold"),
    ({"weight_rec": torch.zeros(3, 4)}, ValueError, "weight_rec"),
    ({"reset": "soft"}, ValueError, "reset"),
    ({"backend": "triton"}, NotImplementedError, "no triton adLIF kernels"),
])
def test_bad_arguments_name_the_argument(kwargs, err, match):
    import fastsnn

    args = dict(alpha=0.9, beta=0.95, a=0.5, b=1.0)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        fastsnn.adlif(torch.zeros(2, 5, 3), **args)


def test_empty_time_public():
    import fastsnn

    state = tuple(torch.randn(2, 3) for _ in range(3))
    Z, out = fastsnn.adlif(torch.zeros(2, 0, 3), 0.9, 0.9, 0.5, 1.0, state=state)
    assert Z.shape == (2, 0, 3)
    assert all(torch.equal(s, o) and s.data_ptr() != o.data_ptr() for s, o in zip(state, out))
