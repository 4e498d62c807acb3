"""SPEC section 6: bad input raises a clear error naming the argument, before any kernel runs;
empty sizes give empty outputs."""

import pytest
import torch

import fastsnn

BACKENDS = [b for b in ("torch", "cpu") if b in fastsnn.available_backends()]
X = torch.randn(2, 5, 4)


def lif(*args, **kw):
    return fastsnn.lif(*args, **kw)


BAD = [
    pytest.param(lambda b: lif([[1.0]], 0.8, 0.9, backend=b), TypeError, "X must be a torch.Tensor", id="X-list"),
    pytest.param(lambda b: lif(X.long(), 0.8, 0.9, backend=b), TypeError, "X must be float", id="X-int"),
    pytest.param(lambda b: lif(X > 0, 0.8, 0.9, backend=b), TypeError, "X must be float", id="X-bool"),
    pytest.param(lambda b: lif(X[0], 0.8, 0.9, backend=b), ValueError, "X must have 3 dimensions", id="X-rank2"),
    pytest.param(lambda b: lif(X, 1.5, 0.9, backend=b), ValueError, "alpha must lie in [0, 1]", id="alpha-above-1"),
    pytest.param(lambda b: lif(X, 0.8, -0.1, backend=b), ValueError, "beta must lie in [0, 1]", id="beta-negative"),
    pytest.param(lambda b: lif(X, torch.tensor([0.5, 1.2, 0.5, 0.5]), 0.9, backend=b), ValueError, "alpha must lie in [0, 1]", id="alpha-tensor-out-of-range"),
    pytest.param(lambda b: lif(X, float("nan"), 0.9, backend=b), ValueError, "alpha must lie in [0, 1]", id="alpha-nan"),
    pytest.param(lambda b: lif(X, torch.ones(3), 0.9, backend=b), ValueError, "alpha must be a scalar tensor or have shape (4,)", id="alpha-shape"),
    pytest.param(lambda b: lif(X, torch.ones(1, 4) * 0.5, 0.9, backend=b), ValueError, "alpha must be a scalar tensor", id="alpha-rank2"),
    pytest.param(lambda b: lif(X, torch.tensor(1), 0.9, backend=b), TypeError, "alpha must be a floating-point tensor", id="alpha-int-tensor"),
    pytest.param(lambda b: lif(X, "0.8", 0.9, backend=b), TypeError, "alpha must be a float or a tensor", id="alpha-str"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, torch.ones(4, dtype=torch.float64), backend=b), TypeError, "threshold has dtype torch.float64", id="threshold-dtype"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, float("inf"), backend=b), ValueError, "threshold must be finite", id="threshold-inf"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, reset="hard", backend=b), ValueError, "reset must be one of", id="reset-unknown"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, reset=0, backend=b), TypeError, "reset must be a string", id="reset-int"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, surrogate="relu", backend=b), ValueError, "surrogate must be one of", id="surrogate-unknown"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, scale=-1.0, backend=b), ValueError, "scale must be finite and >= 0", id="scale-negative"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, scale=float("nan"), backend=b), ValueError, "scale must be finite", id="scale-nan"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, scale="10", backend=b), TypeError, "scale must be a real number", id="scale-str"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, state=torch.zeros(2, 4), backend=b), TypeError, "state must be None or a pair", id="state-not-pair"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, state=(torch.zeros(2, 4), torch.zeros(2, 3)), backend=b), ValueError, "state[1] (U) must have shape (B, N) = (2, 4)", id="state-shape"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, state=(torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4)), backend=b), TypeError, "state[0] (I) has dtype torch.float64", id="state-dtype"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, state=(torch.zeros(2, 4, device="meta"), torch.zeros(2, 4)), backend=b), RuntimeError, "state[0] (I) is on meta", id="state-device"),
    pytest.param(lambda b: lif(X, torch.ones(4, device="meta") * 0.5, 0.9, backend=b), RuntimeError, "alpha is on meta", id="alpha-device"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, detach_reset="yes", backend=b), TypeError, "detach_reset must be a bool", id="detach-not-bool"),
    pytest.param(lambda b: lif(X, 0.8, 0.9, backend="gpu"), ValueError, "backend must be one of", id="backend-unknown"),
    pytest.param(lambda b: fastsnn.li(X, 0.8, 1.1, backend=b), ValueError, "beta must lie in [0, 1]", id="li-beta"),
    pytest.param(lambda b: fastsnn.li(X[0], 0.8, 0.9, backend=b), ValueError, "X must have 3 dimensions", id="li-rank"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call,exc,msg", BAD)
def test_bad_input_raises_named_error(call, exc, msg, backend):
    with pytest.raises(exc) as info:
        call(backend)
    assert msg in str(info.value)


def test_backend_not_for_this_device():
    """Asking for a GPU backend with CPU tensors names the device, with or without a GPU."""
    with pytest.raises(RuntimeError, match="backend='cuda' runs on CUDA tensors"):
        fastsnn.lif(X, 0.8, 0.9, backend="cuda")
    with pytest.raises(RuntimeError, match="backend='cpu' runs on CPU tensors"):
        fastsnn.lif(X.to("meta"), 0.8, 0.9, backend="cpu")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(0, 5, 4), (2, 5, 0)], ids=["B0", "N0"])
def test_empty_batch_or_neurons(backend, shape):
    Xe = torch.randn(shape, requires_grad=True)
    S, (I, U) = fastsnn.lif(Xe, 0.8, 0.9, backend=backend)
    assert S.shape == shape and I.shape == (shape[0], shape[2])
    S.sum().backward()
    assert Xe.grad.shape == shape
    Ue, _ = fastsnn.li(Xe, 0.8, 0.9, backend=backend)
    assert Ue.shape == shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_steps_return_the_given_state(backend):
    Xe = torch.randn(2, 0, 4)
    I0, U0 = torch.randn(2, 4), torch.randn(2, 4)
    S, (I, U) = fastsnn.lif(Xe, 0.8, 0.9, state=(I0, U0), backend=backend)
    assert S.shape == (2, 0, 4)
    assert torch.equal(I, I0) and torch.equal(U, U0)
    S, (I, U) = fastsnn.li(Xe, 0.8, 0.9, backend=backend)
    assert torch.equal(U, torch.zeros(2, 4))


def test_raw_op_checks_name_the_argument():
    a = torch.full((4,), 0.5)
    z = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="alpha must have shape"):
        torch.ops.fastsnn.lif_fwd(X, a[:3], a, a, z, z, 0, True, False, False)
    with pytest.raises(TypeError, match="i0 must be Float"):
        torch.ops.fastsnn.lif_fwd(X, a, a, a, z.double(), z, 0, True, False, False)
    with pytest.raises(ValueError, match="reset code"):
        torch.ops.fastsnn.lif_fwd(X, a, a, a, z, z, 7, True, False, False)


def test_import_never_fails_without_the_extension():
    """With fastsnn._C unimportable, fastsnn imports, the reference runs, and asking for the
    fused backend by name says how to get it. Triton (GPU machines) does not need fastsnn._C."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['fastsnn._C'] = None\n"
        "import torch, fastsnn\n"
        "avail = fastsnn.available_backends()\n"
        "assert [b for b in avail if b != 'triton'] == ['torch'], avail\n"
        "assert 'triton' not in avail or torch.cuda.is_available(), avail\n"
        "S, _ = fastsnn.lif(torch.randn(2, 3, 4), 0.8, 0.9)\n"
        "try:\n"
        "    fastsnn.lif(torch.randn(2, 3, 4), 0.8, 0.9, backend='cpu')\n"
        "except RuntimeError as e:\n"
        "    assert 'pip install --no-build-isolation' in str(e), e\n"
        "    print('ok')\n"
    )
    env = dict(__import__("os").environ, TRITON_INTERPRET="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
