"""The fused CPU adaptive LIF kernels (csrc/adlif/adlif.cpp) against the reference.

float64: identical spikes, final state and every gradient (X, V, alpha, beta, a, b, threshold,
the initial state) within 1e-9 relative, for every combination of variant, reset, detach flags,
recurrence on/off and learnable parameters with a given state; float32 and bfloat16 within the
per-dtype tolerances of the other ops (R_t is summed in another order than the reference's
matmul, so a membrane within rounding of the threshold may flip a spike). Also: every surrogate,
chunks equal one call, what the forward keeps (4 bytes per neuron-step, 12 when alpha or beta
learns), results independent of the thread count, opcheck of the ops' fake implementations and
torch.compile.
"""

import itertools

import pytest
import torch

import fastsnn
from helpers import kept_bytes

pytestmark = pytest.mark.skipif("cpu" not in fastsnn.available_backends(),
                                reason="the C++ extension is not built")

DT = {"f64": torch.float64, "f32": torch.float32, "bf16": torch.bfloat16}


def inputs(B, T, N, dt, seed=0, learn=True, state=True, recurrent=True):
    g = torch.Generator().manual_seed(seed)
    dtype = DT[dt]
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    X = (0.8 + 1.2 * torch.randn(B, T, N, generator=g, dtype=torch.float64)).to(dtype)
    V = (0.5 * torch.randn(N, N, generator=g, dtype=torch.float64) / N ** 0.5).to(acc)
    params = [0.8 + 0.15 * torch.rand(N, generator=g, dtype=torch.float64),
              0.9 + 0.09 * torch.rand(N, generator=g, dtype=torch.float64),
              torch.rand(N, generator=g, dtype=torch.float64),
              2 * torch.rand(N, generator=g, dtype=torch.float64),
              0.5 + 0.5 * torch.rand(N, generator=g, dtype=torch.float64)]
    params = [p.to(acc) for p in params] if learn else [0.9, 0.95, 0.5, 1.0, 1.0]
    st = None
    if state:
        st = (0.3 * torch.randn(B, N, generator=g, dtype=torch.float64).to(acc),
              0.2 * torch.randn(B, N, generator=g, dtype=torch.float64).to(acc),
              (torch.rand(B, N, generator=g) > 0.6).to(acc))
    return X, (V if recurrent else None), params, st


def run(backend, X, V, params, state, **opts):
    """Z, the final state and the gradients of one loss w.r.t. every leaf."""
    leaves = [X.clone().requires_grad_()]
    v = V.clone().requires_grad_() if V is not None else None
    ps = [p.clone().requires_grad_() if isinstance(p, torch.Tensor) else p for p in params]
    st = tuple(s.clone().requires_grad_() for s in state) if state else None
    Z, (u, w, z) = fastsnn.adlif(leaves[0], *ps, weight_rec=v, state=st, backend=backend,
                                 **opts)
    g = torch.Generator().manual_seed(1)
    loss = ((Z.double() * torch.randn(Z.shape, generator=g, dtype=torch.float64)).sum()
            + (u.double() * 0.3).sum() + (w.double() * 0.7).sum() + z.double().sum())
    wrt = leaves + ([v] if v is not None else []) + [p for p in ps if isinstance(p, torch.Tensor)]
    wrt += list(st or ())
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)  # z0: unused by "se" without V
    grads = tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, wrt))
    return Z.detach(), (u.detach(), w.detach(), z.detach()), grads


COMBOS = list(itertools.product(["se", "ef"], ["zero", "subtract", "none"], [True, False],
                                [None, False, True]))


@pytest.mark.parametrize("variant,reset,detach_reset,recurrence", COMBOS,
                         ids=[f"{v}-{r}-d{int(d)}-rec{c}" for v, r, d, c in COMBOS])
def test_float64_matches_reference(variant, reset, detach_reset, recurrence):
    X, V, params, st = inputs(3, 17, 23, "f64", recurrent=recurrence is not None)
    opts = dict(variant=variant, reset=reset, detach_reset=detach_reset,
                detach_recurrent=bool(recurrence))
    Z_ref, s_ref, g_ref = run("torch", X, V, params, st, **opts)
    Z, s, g = run("cpu", X, V, params, st, **opts)
    assert torch.equal(Z, Z_ref)
    assert 0.01 < Z.double().mean() < 0.9  # the case spikes, and not always
    for a, b in zip(s + g, s_ref + g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("surrogate", ["superspike", "superspike_asymptotic", "sigmoid",
                                       "esser", "atan", "exponential"])
def test_every_surrogate(surrogate):
    X, V, params, st = inputs(2, 13, 19, "f64", seed=3)
    opts = dict(surrogate=surrogate, scale=3.0, detach_reset=False)
    Z_ref, s_ref, g_ref = run("torch", X, V, params, st, **opts)
    Z, s, g = run("cpu", X, V, params, st, **opts)
    assert torch.equal(Z, Z_ref)
    for a, b in zip(s + g, s_ref + g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("dt,tol", [("f32", 1e-4), ("bf16", 2e-2)])
@pytest.mark.parametrize("variant", ["se", "ef"])
def test_low_precision_within_tolerance(dt, tol, variant):
    X, V, params, st = inputs(4, 30, 40, dt, seed=5)
    Z_ref, s_ref, g_ref = run("torch", X, V, params, st, variant=variant)
    Z, s, g = run("cpu", X, V, params, st, variant=variant)
    assert (Z != Z_ref).float().mean() <= 1e-3
    if torch.equal(Z, Z_ref):
        for a, b in zip(s + g, s_ref + g_ref):
            err = ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()
            assert err <= tol


def test_fixed_parameters_no_state_no_recurrence():
    X, V, params, st = inputs(3, 9, 12, "f64", learn=False, state=False, recurrent=False)
    Z_ref, s_ref, g_ref = run("torch", X, V, params, st)
    Z, s, g = run("cpu", X, V, params, st)
    assert torch.equal(Z, Z_ref)
    for a, b in zip(s + g, s_ref + g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("variant", ["se", "ef"])
def test_chunks_equal_one_call(variant):
    X, V, params, st = inputs(3, 20, 16, "f64", seed=7)
    Z, final = fastsnn.adlif(X, *params, weight_rec=V, state=st, variant=variant, backend="cpu")
    Z1, s1 = fastsnn.adlif(X[:, :8], *params, weight_rec=V, state=st, variant=variant,
                           backend="cpu")
    Z2, s2 = fastsnn.adlif(X[:, 8:], *params, weight_rec=V, state=s1, variant=variant,
                           backend="cpu")
    assert torch.equal(torch.cat([Z1, Z2], 1), Z)
    assert all(torch.equal(a, b) for a, b in zip(s2, final))


@pytest.mark.parametrize("learn,per_step", [(None, 4), ("a", 4), ("b", 4), ("threshold", 4),
                                            ("alpha", 12), ("beta", 12)])
def test_bytes_kept_per_neuron_step(learn, per_step):
    B, T, N = 2, 10, 30
    X = (torch.randn(B, T, N) + 0.8).requires_grad_()
    names = ["alpha", "beta", "a", "b", "threshold"]
    vals = [torch.full((N,), v) for v in (0.9, 0.95, 0.5, 1.0, 1.0)]
    if learn:
        vals[names.index(learn)].requires_grad_()
    storages = kept_bytes(lambda: fastsnn.adlif(X, *vals, backend="cpu"))
    big = sum(n for n in storages.values() if n and n % (4 * B * T * N) == 0)
    assert big / X.numel() == per_step, storages


def test_results_do_not_depend_on_threads():
    X, V, params, st = inputs(9, 12, 20, "f32", seed=9)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run("cpu", X, V, params, st)
        torch.set_num_threads(3)
        many = run("cpu", X, V, params, st)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], many[0])
    for a, b in zip(one[1] + one[2], many[1] + many[2]):
        assert torch.equal(a, b)


def test_opcheck():
    X, V, params, st = inputs(2, 5, 8, "f32", seed=11)
    args = (X, V, *params, *st, True, 0, True, True)
    torch.library.opcheck(torch.ops.fastsnn.adlif_fwd, args)
    z, uT, wT, zT, m, ws, ds = torch.ops.fastsnn.adlif_fwd(*args)
    bargs = (torch.randn_like(X), torch.randn_like(uT), torch.randn_like(wT),
             torch.randn_like(zT), m, ws, ds, *st, V, *params, True, 0, False, False, 0, 10.0,
             True, True)
    torch.library.opcheck(torch.ops.fastsnn.adlif_bwd, bargs)


def test_torch_compile_fullgraph():
    X, V, params, st = inputs(2, 6, 10, "f32", seed=13)

    def f(x, v):
        Z, (u, w, z) = fastsnn.adlif(x, *params, weight_rec=v, state=st, backend="cpu")
        return Z.sum() + u.sum() + w.sum()

    x1, v1 = X.clone().requires_grad_(), V.clone().requires_grad_()
    x2, v2 = X.clone().requires_grad_(), V.clone().requires_grad_()
    f(x1, v1).backward()
    torch.compile(f, fullgraph=True)(x2, v2).backward()
    assert torch.equal(x1.grad, x2.grad) and torch.equal(v1.grad, v2.grad)


def test_bad_op_arguments():
    with pytest.raises(ValueError, match="reset"):
        torch.ops.fastsnn.adlif_fwd(*(torch.zeros(1, 2, 3),), torch.empty(0),
                                    *[torch.zeros(3)] * 5, *[torch.zeros(1, 3)] * 3, True, 7,
                                    False, False)
