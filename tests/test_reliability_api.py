"""Project issue 18: double backward raises on the fused backends, the argument checks close
their holes (non-finite tensor parameters, torch.compile, meta tensors, in-place changes between
forward and backward, T = 0), and learnable module parameters stay in range under training."""

import pytest
import torch

import fastsnn

FUSED = [b for b in ("cpu",) if b in fastsnn.available_backends()]
needs_cpu = pytest.mark.skipif(not FUSED, reason="the C++ extension is not built")
DOUBLE = "double backward"


def _call(name, backend, x, p, state=None, detach_reset=False):
    N = x.shape[-1]
    if name == "lif":
        return fastsnn.lif(x, p, 0.9, 0.3, state=state, detach_reset=detach_reset,
                           backend=backend)
    if name == "rlif":
        w = (0.3 * torch.randn(N, N, dtype=x.dtype, generator=torch.Generator().manual_seed(3))
             ).requires_grad_()
        return fastsnn.rlif(x, w, p, 0.9, 0.3, state=state, detach_reset=detach_reset,
                            backend=backend)
    return fastsnn.li(x, p, 0.9, state=state, backend=backend)


def _inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 5, 4, generator=g, dtype=dtype) + 0.5).requires_grad_()
    a = torch.full((4,), 0.5, dtype=dtype, requires_grad=True)
    return x, a


# ---- 1. double backward -------------------------------------------------------------------


@needs_cpu
@pytest.mark.parametrize("name", ["lif", "rlif", "li"])
@pytest.mark.parametrize("backend", FUSED)
def test_double_backward_raises_on_fused(name, backend):
    x, a = _inputs()
    # gradgradcheck's pattern: first-order grads with create_graph, differentiated again with
    # respect to the inputs and the incoming gradients
    out, (iT, uT) = _call(name, backend, x, a)
    go = torch.randn_like(out).requires_grad_()
    gx, ga = torch.autograd.grad((out, uT), (x, a), (go, torch.ones_like(uT)),
                                 create_graph=True)
    with pytest.raises(RuntimeError, match=DOUBLE) as e:
        torch.autograd.grad((gx ** 2).sum() + ga.sum(), (a, go), allow_unused=True)
    assert "backend='torch'" in str(e.value)
    # and through .backward() with respect to the parameter alone
    out, (iT, uT) = _call(name, backend, x, a)
    (ga,) = torch.autograd.grad(out.sum() + uT.sum(), a, create_graph=True)
    with pytest.raises(RuntimeError, match=DOUBLE):
        (ga ** 2).sum().backward()


@needs_cpu
@pytest.mark.parametrize("name", ["lif", "rlif", "li"])
def test_gradgradcheck_raises_fused_and_passes_reference(name):
    x, a = _inputs()
    x = x.detach()[:1, :3, :2].clone().requires_grad_()
    a = a.detach()[:2].clone().requires_grad_()

    def f(backend):
        return lambda x, a: _call(name, backend, x, a)[0]

    with pytest.raises(RuntimeError, match=DOUBLE):
        torch.autograd.gradgradcheck(f("cpu"), (x, a))
    # the reference supports double backward: li checks numerically; for lif/rlif the
    # surrogate is not the derivative of the step, so only check that it runs and is nonzero
    if name == "li":
        assert torch.autograd.gradgradcheck(f("torch"), (x, a))
    else:
        out = f("torch")(x, a)
        (ga,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), a, create_graph=True)
        (gga,) = torch.autograd.grad((ga ** 2).sum(), a)
        assert torch.isfinite(gga).all() and gga.abs().sum() > 0


@needs_cpu
def test_first_order_unchanged_and_no_graph_without_create_graph():
    x, a = _inputs()
    out, _ = fastsnn.lif(x, a, 0.9, 0.3, backend="cpu")
    gx, ga = torch.autograd.grad(out.sum(), (x, a))
    assert not gx.requires_grad and not ga.requires_grad
    ref, _ = fastsnn.lif(x, a, 0.9, 0.3, backend="torch")
    rx, ra = torch.autograd.grad(ref.sum(), (x, a))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(ga, ra)


@needs_cpu
def test_spike_linear_double_backward_raises():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 6, generator=g, dtype=torch.float64) > 0.5).double().requires_grad_()
    w = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    y = fastsnn.spike_linear(x, w, backend="cpu")
    (gw,) = torch.autograd.grad((y ** 2).sum(), w, create_graph=True)
    with pytest.raises(RuntimeError, match=DOUBLE):
        torch.autograd.grad(gw.sum(), w)
    y = fastsnn.spike_linear(x, w, backend="torch")
    (gw,) = torch.autograd.grad((y ** 2).sum(), w, create_graph=True)
    torch.autograd.grad(gw.sum(), w)


# ---- 2. argument checks ----------------------------------------------------------------------

ALL = ["torch", *FUSED]
X4 = torch.randn(2, 5, 4)
NONFINITE = [float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("bad", NONFINITE)
@pytest.mark.parametrize("shape", [(), (4,)])
def test_tensor_threshold_must_be_finite(backend, bad, shape):
    thr = torch.ones(shape)
    thr.view(-1)[-1] = bad
    with pytest.raises(ValueError, match="threshold must be finite"):
        fastsnn.lif(X4, 0.8, 0.9, thr, backend=backend)
    w = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="threshold must be finite"):
        fastsnn.rlif(X4, w, 0.8, 0.9, thr, backend=backend)


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_tensor_decay_nan_rejected(backend, name):
    bad = torch.tensor([0.5, float("nan"), 0.5, 0.5])
    kw = {"alpha": 0.8, "beta": 0.9, name: bad}
    with pytest.raises(ValueError, match=f"{name} must lie in \\[0, 1\\]"):
        fastsnn.lif(X4, kw["alpha"], kw["beta"], backend=backend)
    with pytest.raises(ValueError, match=f"{name} must lie in \\[0, 1\\]"):
        fastsnn.li(X4, kw["alpha"], kw["beta"], backend=backend)


@pytest.mark.parametrize("backend", ALL)
def test_compiled_range_checks_raise(backend):
    torch._dynamo.reset()

    def f(x, a, thr):
        s, (_, u) = fastsnn.lif(x, a, 0.9, thr, backend=backend)
        v, _ = fastsnn.li(s, a, 0.9, backend=backend)
        return v.sum() + u.sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    good_a, good_thr = torch.full((4,), 0.5), torch.ones(4)
    torch.testing.assert_close(compiled(X4, good_a, good_thr), f(X4, good_a, good_thr))
    with pytest.raises(RuntimeError, match=r"alpha must lie in \[0, 1\]"):
        compiled(X4, torch.tensor([0.5, 1.5, 0.5, 0.5]), good_thr)
    with pytest.raises(RuntimeError, match=r"alpha must lie in \[0, 1\]"):
        compiled(X4, torch.tensor([0.5, float("nan"), 0.5, 0.5]), good_thr)
    with pytest.raises(RuntimeError, match="threshold must be finite"):
        compiled(X4, good_a, torch.tensor([1.0, float("inf"), 1.0, 1.0]))


@pytest.mark.parametrize("name", ["alpha", "beta", "threshold"])
def test_meta_parameter_named(name):
    x = torch.randn(2, 5, 4, device="meta")
    kw = {"alpha": 0.8, "beta": 0.9, "threshold": 1.0, name: torch.full((4,), 0.5, device="meta")}
    with pytest.raises(RuntimeError, match=f"{name} is a meta tensor"):
        fastsnn.lif(x, kw["alpha"], kw["beta"], kw["threshold"], backend="torch")


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("name", ["lif", "rlif", "li"])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_in_place_change_between_forward_and_backward_raises(backend, name, requires_grad):
    x = torch.randn(2, 5, 4, requires_grad=True)
    a = torch.tensor(0.5, requires_grad=requires_grad)  # 0-d: the fused path expands a copy
    out, (_, u) = _call(name, backend, x, a)
    with torch.no_grad():
        a.fill_(0.1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (out.sum() + u.sum()).backward()


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_empty_time_returns_fresh_state_in_acc_dtype(backend, dtype):
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x = torch.randn(2, 0, 4, dtype=dtype)
    state = (torch.randn(2, 4, dtype=dtype), torch.randn(2, 4, dtype=dtype))
    w = torch.zeros(4, 4, dtype=dtype)
    for run in (lambda: fastsnn.lif(x, 0.8, 0.9, state=state, backend=backend),
                lambda: fastsnn.rlif(x, w, 0.8, 0.9, state=state, backend=backend),
                lambda: fastsnn.li(x, 0.8, 0.9, state=state, backend=backend)):
        out, final = run()
        assert out.shape == x.shape
        for got, given in zip(final, state):
            assert got is not given and got.dtype == acc
            assert got.data_ptr() != given.data_ptr()
            torch.testing.assert_close(got, given.to(acc))
        final[0].add_(1.0)
        assert not torch.equal(final[0], state[0].to(acc))


# ---- 3. learnable parameters stay in range -----------------------------------------------------


def _in_range(model):
    from fastsnn.nn.modules import MIN_THRESHOLD

    out = []
    for m in model.modules():
        for name in ("alpha", "beta", "threshold"):
            p = getattr(m, name, None)
            if isinstance(p, torch.nn.Parameter):
                lo, hi = (MIN_THRESHOLD, float("inf")) if name == "threshold" else (0.0, 1.0)
                out.append(bool(((p >= lo) & (p <= hi)).all()))
    return out


@pytest.mark.parametrize("backend", ALL)
def test_learned_parameters_train_300_adam_steps_and_constrain(backend):
    from fastsnn.nn import LIF, LeakyIntegrator, RecurrentLIF, constrain_parameters

    torch.manual_seed(0)
    learn = dict(learn_alpha=True, learn_beta=True, learn_threshold=True, backend=backend)
    model = torch.nn.Sequential()
    lif = LIF(6, 8, **learn)
    rec = RecurrentLIF(8, 8, **learn)
    ro = LeakyIntegrator(8, 3, learn_alpha=True, learn_beta=True, backend=backend)
    opt = torch.optim.Adam([*lif.parameters(), *rec.parameters(), *ro.parameters()], lr=1e-2)
    x = torch.rand(4, 10, 6) * 2.0
    for _ in range(300):  # push every decay up and every threshold down, past the bounds
        s, _ = lif(x)
        s2, _ = rec(s)
        v, (_, uT) = ro(s2)
        loss = -(s.mean() + s2.mean() + v.mean() + uT.mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
    modules = torch.nn.ModuleList([lif, rec, ro])
    assert not all(_in_range(modules))  # unconstrained, the stored values drifted out
    before = ro(rec(lif(x)[0])[0])[0]
    assert constrain_parameters(modules) is modules
    assert all(_in_range(modules))
    after = ro(rec(lif(x)[0])[0])[0]
    torch.testing.assert_close(after, before)  # the forward already used the projected values


def test_constrain_method_and_out_of_range_storage():
    from fastsnn.nn import LIFNeuron, LeakyIntegrator

    n = LIFNeuron(4, learn_alpha=True, learn_beta=True, learn_threshold=True, backend="torch")
    li = LeakyIntegrator(3, 4, learn_alpha=True, learn_beta=True, backend="torch")
    with torch.no_grad():
        n.alpha.fill_(5.5)
        n.beta.fill_(-0.5)
        n.threshold.fill_(-1.0)
        li.alpha.fill_(2.0)
    x = torch.rand(2, 5, 4)
    n(x)  # the forward projects: no error because of the module's own parameters
    li(torch.rand(2, 5, 3))
    assert n.constrain_() is n and li.constrain_() is li
    assert torch.equal(n.alpha, torch.ones(4)) and torch.equal(n.beta, torch.zeros(4))
    assert (n.threshold > 0).all() and torch.equal(li.alpha, torch.ones(4))
    fixed = LIFNeuron(alpha=0.7)
    fixed.constrain_()  # floats: nothing to do
    assert fixed.alpha == 0.7
