"""Op registration: opcheck on every op, torch.compile without graph breaks, backend choice,
and a long sequence in pieces equal to one call."""

import pytest
import torch

import fastsnn
from fastsnn import _backends
from helpers import make_inputs, rel_err, run

needs_ext = pytest.mark.skipif(not _backends.extension_available(),
                               reason="fastsnn._C is not built")


def _lif_args(B=2, T=7, N=5, dtype=torch.float32, grad=False):
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x = (0.5 + torch.randn(B, T, N)).to(dtype).requires_grad_(grad)
    vec = lambda v: torch.full((N,), v, dtype=acc)  # noqa: E731
    return x, vec(0.8), vec(0.9), vec(1.0), torch.zeros(B, N, dtype=acc), torch.rand(B, N, dtype=acc) * 1.5


@needs_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("save_u,save_i", [(False, False), (True, False), (True, True)])
def test_opcheck_lif_fwd(dtype, save_u, save_i):
    x, a, b, th, i0, u0 = _lif_args(dtype=dtype)
    torch.library.opcheck(torch.ops.fastsnn.lif_fwd.default,
                          (x, a, b, th, i0, u0, 0, True, save_u, save_i))
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)  # (T, B, N) memory, (B, T, N) view
    torch.library.opcheck(torch.ops.fastsnn.lif_fwd.default,
                          (xt, a, b, th, i0, u0, 1, False, save_u, save_i))


@needs_ext
@pytest.mark.parametrize("param_grads,reset,detach", [(False, 0, True), (True, 1, False),
                                                      (False, 0, False)])
def test_opcheck_lif_bwd(param_grads, reset, detach):
    x, a, b, th, i0, u0 = _lif_args()
    _, _, _, us, i_s = torch.ops.fastsnn.lif_fwd(x, a, b, th, i0, u0, reset, True, True, True)
    gs = torch.randn_like(x)
    torch.library.opcheck(torch.ops.fastsnn.lif_bwd.default,
                          (gs, torch.randn_like(i0), torch.randn_like(u0), us, i_s, i0, u0, a, b,
                           th, reset, detach, 0, 10.0, True, param_grads))


@needs_ext
@pytest.mark.parametrize("save", [False, True])
def test_opcheck_li(save):
    x, a, b, _, i0, u0 = _lif_args()
    torch.library.opcheck(torch.ops.fastsnn.li_fwd.default, (x, a, b, i0, u0, True, save))
    _, _, _, i_s, u_s = torch.ops.fastsnn.li_fwd(x, a, b, i0, u0, True, True)
    torch.library.opcheck(torch.ops.fastsnn.li_bwd.default,
                          (torch.randn_like(x), torch.randn_like(i0), torch.randn_like(u0), i_s,
                           u_s, i0, u0, a, b, True, save))


class TinySNN(torch.nn.Module):
    """Linear -> LIF -> Linear -> LI, max over time: the paper's network in miniature."""

    def __init__(self, backend):
        super().__init__()
        self.backend = backend
        self.fc1 = torch.nn.Linear(6, 16)
        self.fc2 = torch.nn.Linear(16, 3)
        self.alpha = torch.nn.Parameter(torch.full((16,), 0.8))

    def forward(self, x):
        S, _ = fastsnn.lif(self.fc1(x), self.alpha, 0.9, 1.0, backend=self.backend)
        U, _ = fastsnn.li(self.fc2(S), 0.8, 0.9, backend=self.backend)
        return U.amax(1)


@needs_ext
def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = TinySNN("cpu")
    x = 2.0 * torch.rand(4, 25, 6)
    eager = model(x)
    eager.sum().backward()
    g_eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager)
    for p, g in zip(model.parameters(), g_eager):
        torch.testing.assert_close(p.grad, g)


@needs_ext
def test_compile_inductor_fullgraph():
    torch.manual_seed(0)
    model = TinySNN("cpu")
    x = 2.0 * torch.rand(2, 10, 6)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))


def test_available_backends_and_auto():
    """CPU tensors get the C++ kernels (or the reference) whether or not a GPU is visible."""
    avail = fastsnn.available_backends()
    assert avail[-1] == "torch"
    x = torch.randn(2, 3, 4)
    expected = "cpu" if "cpu" in avail else "torch"
    assert _backends.resolve("auto", x) == expected


@pytest.mark.parametrize("backend", [b for b in ("torch", "cpu") if b in fastsnn.available_backends()])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sequence_in_two_calls_equals_one(backend, dtype):
    """Carrying the final state into the next call gives the same values and gradients."""
    X, params, state = make_inputs(3, 40, 24, dtype, learn=("alpha", "threshold"), state=True)
    tol = 1e-12 if dtype == torch.float64 else 1e-5

    def whole(X, alpha, beta, threshold, I0, U0):
        S, (I, U) = fastsnn.lif(X, alpha, beta, threshold, state=(I0, U0), backend=backend)
        return S, I, U

    def pieces(X, alpha, beta, threshold, I0, U0):
        S1, st = fastsnn.lif(X[:, :17], alpha, beta, threshold, state=(I0, U0), backend=backend)
        S2, (I, U) = fastsnn.lif(X[:, 17:], alpha, beta, threshold, state=st, backend=backend)
        return torch.cat([S1, S2], 1), I, U

    args = (X, params["alpha"], params["beta"], params["threshold"], *state)
    outs_w, outs_p = whole(*args), pieces(*args)
    assert torch.equal(outs_w[0], outs_p[0])
    for a, b in zip(outs_w[1:], outs_p[1:]):
        assert rel_err(b, a) <= tol
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    w = [torch.randn_like(o) for o in outs_w]
    gw = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(outs_w, w)), leaves)
    gp = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(outs_p, w)), leaves)
    for a, b in zip(gw, gp):
        assert rel_err(b, a) <= tol


@needs_ext
def test_li_sequence_in_two_calls_equals_one():
    X = torch.randn(2, 30, 9, dtype=torch.float64)
    U, (I_T, U_T) = fastsnn.li(X, 0.7, 0.9, backend="cpu")
    U1, st = fastsnn.li(X[:, :11], 0.7, 0.9, backend="cpu")
    U2, (I2, U2T) = fastsnn.li(X[:, 11:], 0.7, 0.9, state=st, backend="cpu")
    assert rel_err(torch.cat([U1, U2], 1), U) <= 1e-14 and rel_err(U2T, U_T) <= 1e-14


@needs_ext
def test_cpu_pool_reuses_and_releases():
    torch.ops.fastsnn.empty_cache()
    X = torch.randn(8, 200, 1024)  # 6.5 MB: pooled
    S, _ = fastsnn.lif(X, 0.8, 0.9, backend="cpu")
    ptr = S.data_ptr()
    del S
    assert torch.ops.fastsnn.cpu_pool_cached_bytes() > 0
    S2, _ = fastsnn.lif(X, 0.8, 0.9, backend="cpu")
    assert S2.data_ptr() == ptr  # the freed block came back
    S2.mul_(2)  # an ordinary tensor: in-place works, memory is ours
    torch.ops.fastsnn.empty_cache()
    assert torch.ops.fastsnn.cpu_pool_cached_bytes() == 0


# Backends that run CPU tensors: the C++ kernels, and Triton only in its interpreter (on a GPU
# machine TRITON_INTERPRET is unset and Triton wants CUDA tensors).
CPU_FUSED = [b for b in ("cpu", "triton") if b in fastsnn.available_backends()
             and (b != "triton" or _backends._triton_interpret())]


@pytest.mark.parametrize("backend", CPU_FUSED)
def test_autocast_bf16_runs_and_matches_reference(backend):
    """Under AMP the layers feed the kernels bfloat16 currents; state stays float32 inside."""
    torch.manual_seed(0)
    x = 2.0 * torch.rand(3, 12, 6)
    outs, grads = {}, {}
    for be in ("torch", backend):
        torch.manual_seed(1)
        model = TinySNN(be)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert out.dtype == torch.bfloat16
        out.float().sum().backward()
        outs[be] = out.float()
        grads[be] = [p.grad.float() for p in model.parameters()]
    assert rel_err(outs[backend], outs["torch"]) <= 1e-2
    for g, gr in zip(grads[backend], grads["torch"]):
        assert rel_err(g, gr) <= 5e-2
