"""Upstream gradients that are not dense (issue 18, item 7).

``S.sum().backward()`` hands the backward an expanded tensor (strides 0, 0, 0). The kernels read
any batch and time strides, so such a gradient is read in place: only a neuron stride other than
1 needs a copy, and then only of what varies (a batch or time dimension of stride 0 stays
expanded). Each case here must give the gradients of a dense upstream gradient holding the same
values, bitwise, on every fused backend of the CPU (the C++ kernels, Triton in the interpreter);
test_no_full_copy checks with the profiler that no [B, T, N] copy is made for ``S.sum()``.
"""

import os

import torch

if not torch.cuda.is_available():  # read when fastsnn imports its Triton modules
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import fastsnn  # noqa: E402

B, T, N = 3, 7, 20
BACKENDS = [b for b in ("cpu", "triton") if b in fastsnn.available_backends()]


def op_call(op, backend):
    g = torch.Generator().manual_seed(3)
    w = 0.4 * torch.randn(N, N, generator=g) / N ** 0.5
    if op == "lif":
        return lambda x: fastsnn.lif(x, 0.8, 0.9, backend=backend)[0]
    if op == "li":
        return lambda x: fastsnn.li(x, 0.8, 0.9, backend=backend)[0]
    return lambda x: fastsnn.rlif(x, w, 0.8, 0.9, backend=backend)[0]


def upstream(kind):
    """(loss of the output, the same gradient as a dense tensor) for each layout of dL/dS."""
    g = torch.Generator().manual_seed(5)
    wt = torch.randn(T, N, generator=g)
    wbt = torch.randn(B, T, generator=g)
    if kind == "sum":  # strides (0, 0, 0)
        return lambda s: s.sum(), torch.ones(B, T, N)
    if kind == "over_batch":  # (0, N, 1): already unit neuron stride
        return lambda s: (s * wt).sum(), wt.expand(B, T, N).clone()
    if kind == "over_neurons":  # (T, 1, 0): the neuron dimension is the expanded one
        return lambda s: (s.sum(-1) * wbt).sum(), wbt[:, :, None].expand(B, T, N).clone()
    if kind == "transposed":  # neuron stride T: S.transpose(1, 2) feeds a time convolution
        k = torch.randn(N, T, generator=g)
        return lambda s: (s.transpose(1, 2) * k).sum(), k.t().expand(B, T, N).clone()
    raise AssertionError(kind)


def grads(call, X, loss):
    x = X.clone().requires_grad_()
    loss(call(x)).backward()
    return x.grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["lif", "li", "rlif"])
@pytest.mark.parametrize("kind", ["sum", "over_batch", "over_neurons", "transposed"])
def test_strided_upstream_gradient(backend, op, kind):
    X = 0.6 + 0.8 * torch.randn(B, T, N, generator=torch.Generator().manual_seed(0))
    call = op_call(op, backend)
    loss, dense = upstream(kind)
    got = grads(call, X, loss)
    want = grads(call, X, lambda s: (s * dense).sum())
    assert torch.equal(got, want)
    ref = grads(op_call(op, "torch"), X, loss)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_unit_neuron_stride_keeps_expanded_dims():
    from fastsnn.ops._triton_common import unit_neuron_stride

    g = torch.ones(()).expand(B, T, N)
    c = unit_neuron_stride(g)
    assert c.stride() == (0, 0, 1) and c.untyped_storage().nbytes() == 4 * N
    d = torch.randn(B, T, N)
    assert unit_neuron_stride(d) is d
    t = torch.randn(B, N, T).transpose(1, 2)
    assert unit_neuron_stride(t).stride(2) == 1
    torch.testing.assert_close(unit_neuron_stride(t), t, rtol=0, atol=0)


@pytest.mark.parametrize("op", ["lif", "li", "rlif"])
def test_no_full_copy(op):
    """The gradient of S.sum() reaches the CPU kernel without a [B, T, N] copy."""
    if "cpu" not in fastsnn.available_backends():
        pytest.skip("the C++ extension is not built")
    X = 0.6 + 0.8 * torch.randn(B, T, N, generator=torch.Generator().manual_seed(0))
    x = X.clone().requires_grad_()
    S = op_call(op, "cpu")(x)
    loss = S.sum()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        loss.backward()
    copies = [(e.name, e.input_shapes) for e in prof.events()
              if e.name in ("aten::contiguous", "aten::clone", "aten::copy_")
              and any(list(s) == [B, T, N] for s in e.input_shapes)]
    assert not copies, copies
