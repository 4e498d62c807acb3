"""fastsnn.spike_linear: the CPU kernel that skips the zero entries of its input, against
F.linear (the reference), and the modules' spike_input option.

float64: outputs and both gradients within 1e-12 of F.linear (only the summation order
differs). float32: within 1e-5 relative. The kernel's sums run in a fixed order, so results are
bitwise reproducible and the same on the AVX2 and baseline builds.
"""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import fastsnn
from fastsnn import nn as snn

pytestmark = pytest.mark.usefixtures("poison")


def spikes(shape, rate=0.05, seed=0, dtype=torch.float64, values="binary"):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g, dtype=torch.float64) < rate
    if values == "binary":
        x = mask.to(torch.float64)
    else:  # any values where nonzero, both signs
        x = torch.randn(shape, generator=g, dtype=torch.float64) * mask
    return x.to(dtype)


def weight(M, K, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(M, K, generator=g, dtype=torch.float64).to(dtype)


def grads(fn, x, w, b=None, seed=2):
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    b = None if b is None else b.detach().clone().requires_grad_()
    y = fn(x, w, b)
    g = torch.Generator().manual_seed(seed)
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
    (y * gy).sum().backward()
    return y.detach(), x.grad, w.grad, None if b is None else b.grad


def kernel(x, w, b):
    return fastsnn.spike_linear(x, w, b, backend="cpu")


def reference(x, w, b):
    return F.linear(x, w, b)


def close(a, b, tol):
    scale = max(b.abs().max().item(), 1.0)
    return (a - b).abs().max().item() <= tol * scale


@pytest.mark.parametrize("shape,M", [((7, 20), 100), ((3, 11, 100), 10), ((2, 5, 13), 1),
                                     ((4, 1), 9), ((5, 130), 33), ((20,), 6)])
@pytest.mark.parametrize("values", ["binary", "signed"])
@pytest.mark.parametrize("rate", [0.0, 0.05, 0.5, 1.0])
def test_matches_linear_float64(shape, M, values, rate):
    x = spikes(shape, rate, values=values)
    w = weight(M, shape[-1])
    b = torch.randn(M, dtype=torch.float64)
    for bias in (None, b):
        got = grads(kernel, x, w, bias)
        want = grads(reference, x, w, bias)
        for g_, w_ in zip(got, want):
            if w_ is not None:
                assert g_.shape == w_.shape
                assert close(g_, w_, 1e-12)


def test_float32_close_to_linear():
    x = spikes((16, 50, 100), 0.03, dtype=torch.float32)
    w = weight(10, 100, dtype=torch.float32)
    for g_, w_ in zip(grads(kernel, x, w), grads(reference, x, w)):
        if w_ is not None:
            assert g_.dtype == torch.float32
            assert close(g_, w_, 1e-5)


def test_gradcheck():
    x = spikes((3, 4, 9), 0.3, values="signed").requires_grad_()
    w = weight(5, 9).requires_grad_()
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: kernel(x, w, b), (x, w, b))


def test_strided_and_empty_inputs():
    x = spikes((9, 6, 12), 0.2).transpose(0, 1)  # rows not contiguous
    w = weight(7, 12)
    assert close(kernel(x, w, None), reference(x, w, None), 1e-12)
    xc = spikes((6, 24), 0.2)[:, ::2]  # column stride 2
    assert close(kernel(xc, w, None), reference(xc, w, None), 1e-12)
    e = torch.zeros(0, 4, 12, dtype=torch.float64)
    y, gx, gw, _ = grads(kernel, e, w)
    assert y.shape == (0, 4, 7) and gx.shape == e.shape and torch.equal(gw, torch.zeros_like(w))


def test_only_the_needed_gradients():
    x = spikes((4, 10, 20), 0.1)
    w = weight(8, 20).requires_grad_()
    y = kernel(x, w, None)  # x needs no gradient: dL/dx is not computed
    y.sum().backward()
    want = torch.ones(4 * 10, 8, dtype=torch.float64).t() @ x.reshape(-1, 20)
    assert close(w.grad, want, 1e-12)
    gx, gw = torch.ops.fastsnn.spike_linear_bwd(torch.ones_like(y), x, w.detach(), False, False)
    assert gx.numel() == 0 and gw.numel() == 0


def test_nan_and_zero_semantics():
    x = spikes((3, 16), 0.3)
    x[1, 3] = float("nan")
    w = weight(4, 16)
    y = kernel(x, w, None)
    assert torch.isnan(y[1]).all() and not torch.isnan(y[0]).any() and not torch.isnan(y[2]).any()
    # a zero input never touches its weight column, even an infinite one
    x = torch.zeros(2, 16, dtype=torch.float64)
    x[:, 0] = 1.0
    w[:, 5] = float("inf")
    assert torch.isfinite(kernel(x, w, None)).all()


def test_deterministic_and_same_on_every_instruction_set(tmp_path):
    x = spikes((64, 100, 100), 0.05, dtype=torch.float32)
    w = weight(10, 100, dtype=torch.float32)
    a, b = grads(kernel, x, w), grads(kernel, x, w)
    assert all(torch.equal(p, q) for p, q in zip(a[:3], b[:3]))
    code = ("import torch, fastsnn, sys\n"
            "g = torch.Generator().manual_seed(0)\n"
            "x = (torch.rand(64, 100, 100, generator=g) < 0.05).float()\n"
            "w = torch.randn(10, 100, generator=g, requires_grad=True)\n"
            "y = fastsnn.spike_linear(x, w, backend='cpu')\n"
            "y.backward(torch.randn(y.shape, generator=g))\n"
            "torch.save((y.detach(), w.grad), sys.argv[1])\n")
    outs = []
    for isa, path in (("base", "base.pt"), ("", "auto.pt")):
        env = dict(os.environ, FASTSNN_CPU_ISA=isa)
        subprocess.run([sys.executable, "-c", code, str(tmp_path / path)], env=env, check=True)
        outs.append(torch.load(tmp_path / path))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_opcheck():
    x = spikes((3, 5, 12), 0.2, dtype=torch.float32)
    w = weight(7, 12, dtype=torch.float32)
    torch.library.opcheck(torch.ops.fastsnn.spike_linear_fwd.default, (x, w))
    gy = torch.randn(3, 5, 7)
    for need_x, need_w in ((True, True), (False, True), (True, False)):
        torch.library.opcheck(torch.ops.fastsnn.spike_linear_bwd.default,
                              (gy, x, w, need_x, need_w))


def test_compiles_fullgraph():
    x = spikes((2, 8, 12), 0.2, dtype=torch.float32)
    w = weight(5, 12, dtype=torch.float32)

    def f(x, w):
        return (fastsnn.spike_linear(x, w) ** 2).sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    w1, w2 = w.clone().requires_grad_(), w.clone().requires_grad_()
    f(x, w1).backward()
    compiled(x, w2).backward()
    assert torch.equal(w1.grad, w2.grad)


def test_auto_uses_dense_where_the_kernel_does_not_apply():
    x = spikes((2, 6, 12), 0.2, dtype=torch.float32)
    w = weight(5, 12, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fastsnn.spike_linear(x, w).dtype == torch.bfloat16  # F.linear under autocast
    xb, wb = x.bfloat16(), w.bfloat16()
    assert torch.equal(fastsnn.spike_linear(xb, wb), F.linear(xb, wb))
    assert torch.equal(fastsnn.spike_linear(x, w, backend="torch"), F.linear(x, w))


@pytest.mark.parametrize("call,exc,match", [
    (lambda x, w: fastsnn.spike_linear(x, w[:, :5]), ValueError, "in_features"),
    (lambda x, w: fastsnn.spike_linear(x, w[0]), ValueError, "weight must be 2-D"),
    (lambda x, w: fastsnn.spike_linear(x, w.double()), ValueError, "must match input"),
    (lambda x, w: fastsnn.spike_linear(x.long(), w), TypeError, "input must be a floating"),
    (lambda x, w: fastsnn.spike_linear(x, w, torch.zeros(3)), ValueError, "bias must be"),
    (lambda x, w: fastsnn.spike_linear(x, w, backend="cuda"), ValueError, "backend must be"),
    (lambda x, w: fastsnn.spike_linear(x.half(), w.half(), backend="cpu"), TypeError,
     "float32 or float64"),
    (lambda x, w: torch.ops.fastsnn.spike_linear_fwd(x, w[:, :5]), RuntimeError,
     "in_features must equal"),
])
def test_errors_name_the_argument(call, exc, match):
    x = spikes((2, 6, 12), 0.2, dtype=torch.float32)
    w = weight(5, 12, dtype=torch.float32)
    with pytest.raises(exc, match=match):
        call(x, w)


@pytest.mark.parametrize("make", [
    lambda si, be: snn.LIF(20, 30, spike_input=si, alpha=0.8, beta=0.9, backend=be),
    lambda si, be: snn.RecurrentLIF(20, 30, spike_input=si, alpha=0.8, beta=0.9, backend=be),
    lambda si, be: snn.LeakyIntegrator(20, 30, alpha=0.8, beta=0.9, spike_input=si, backend=be),
])
@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_modules_spike_input_same_as_dense(make, backend):
    torch.manual_seed(0)
    dense = make(False, backend).double()
    sparse = make(True, backend).double()
    sparse.load_state_dict(dense.state_dict())  # same parameters, same state_dict keys
    x = spikes((4, 15, 20), 0.1, seed=5)
    outs = []
    for m in (dense, sparse):
        m.zero_grad()
        y, _ = m(x)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        outs.append((y.detach(), [p.grad.clone() for p in m.parameters()]))
    assert close(outs[0][0], outs[1][0], 1e-12)
    for a, b in zip(outs[0][1], outs[1][1]):
        assert close(a, b, 1e-10)
