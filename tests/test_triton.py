"""The Triton backend of fastsnn.lif / fastsnn.li against the pure-PyTorch reference.

Without a GPU the kernels run under the Triton interpreter on CPU tensors (TRITON_INTERPRET=1,
set below before fastsnn is imported, or earlier by tests/conftest.py); with one, on CUDA
tensors. Every case runs forward and backward through the public API with one loss mixing the
output and the final state, with every kernel output poisoned with NaN before it is written.

Tolerances (SPEC section 4):
  float64         identical spikes; outputs and gradients within 1e-10 relative (max error over
                  the tensor divided by its largest magnitude).
  float32         spike mismatches at most 1 in 1000 (the interpreter and the GPU kernels
                  compute the reference's float32 ops in its order, so this is 0 in practice);
                  lanes (batch, neuron) whose spike trains differ are left out of the
                  gradient comparison, the rest agree within 1e-5 relative.
  bf16 / fp16     float32 state inside; spikes against the reference run on the same
                  low-precision input as for float32; every other output and gradient has an
                  error against a float64 reference run on the same (upcast) values at most
                  2 x the error of the low-precision reference run plus one epsilon of the
                  output's dtype (the I/O dtype for the output and grad_x, float32 for the
                  state and the parameter gradients), as flash-attention does. The interpreter
                  rounds float32 -> bfloat16 stores toward zero where GPUs round to nearest,
                  which this bound absorbs.
"""

import os

import torch

if not torch.cuda.is_available():  # read when fastsnn imports its Triton modules
    os.environ["TRITON_INTERPRET"] = "1"

import time  # noqa: E402

import pytest  # noqa: E402

import fastsnn  # noqa: E402
from helpers import DTYPES  # noqa: E402
from kernel_cases import (F32_RTOL, LI_SHARED_CASES, LIF_SHARED_CASES,  # noqa: E402
                          Target, assert_bitwise, check_against_reference,
                          check_empty_sizes, check_torch_compile_fullgraph, cpp_op, li_case,
                          lif_case, op_args, rel_err)

lif_tr = pytest.importorskip("fastsnn.ops.lif.triton", reason="Triton is not installed")
li_tr = pytest.importorskip("fastsnn.ops.li.triton", reason="Triton is not installed")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# fastsnn settles at import whether the Triton backend can run, and a kernel module imported
# without TRITON_INTERPRET=1 compiles for a GPU: when another test module imported fastsnn
# first, the variable comes too late here and every test below fails with this message.
MISCONFIGURED = DEVICE == "cpu" and (lif_tr.COMPILED or not fastsnn._backends.triton_available())
MISCONFIGURED_MSG = ("fastsnn was imported before TRITON_INTERPRET=1 was set; without a GPU, set "
                     "it in tests/conftest.py before any test module imports fastsnn")

# inputs are drawn on the CPU, so the interpreter and a GPU see the same values
TARGET = Target("triton", DEVICE, rng_device="cpu")
MODULE_BUDGET_S = 180.0  # the whole file, interpreter included, on a 2-core machine
_T0 = {}

LIF_CASES = [
    lif_case(7, 2, 33),
    lif_case(8, 2, 32, reset="subtract", surrogate="sigmoid"),
    lif_case(9, 3, 40, reset="none", surrogate="esser"),
    lif_case(5, 3, 17, detach_reset=False, surrogate="atan", scale=3.7),
    lif_case(6, 2, 33, reset="subtract", detach_reset=False, surrogate="exponential"),
    lif_case(7, 2, 16, surrogate="superspike_asymptotic", normalize_input=False),
    lif_case(1, 2, 33),
    lif_case(1, 1, 1, reset="subtract", detach_reset=False, surrogate="sigmoid"),
    lif_case(7, 2, 33, detach_reset=False, batch_first=False, layout="sliced"),
    lif_case(6, 3, 24, reset="subtract", surrogate="esser", normalize_input=False,
             layout="nstrided"),
    *LIF_SHARED_CASES,
]

LI_CASES = [
    li_case(7, 2, 33, learn="ab"),
    li_case(8, 3, 32, learn="ab", normalize_input=False, batch_first=False),
    li_case(1, 2, 33, learn="ab"),
    *LI_SHARED_CASES,
]


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    """Every tensor the Triton ops return starts as NaN: an element never written fails."""
    if MISCONFIGURED:
        pytest.fail(MISCONFIGURED_MSG)

    def alloc(shape, like, dtype):
        return like.new_full(shape, float("nan"), dtype=dtype)

    def alloc_like(x):
        return torch.full_like(x, float("nan"))

    for mod in (lif_tr, li_tr):
        monkeypatch.setattr(mod, "alloc", alloc)
        monkeypatch.setattr(mod, "alloc_like", alloc_like)
    _T0.setdefault("start", time.perf_counter())


@pytest.mark.parametrize("case", LIF_CASES)
def test_lif_matches_reference(case):
    check_against_reference("lif", case, TARGET)


@pytest.mark.parametrize("case", LI_CASES)
def test_li_matches_reference(case):
    check_against_reference("li", case, TARGET)


@pytest.mark.parametrize("fn,case", [
    pytest.param(fn, p.values[0], id=f"{fn}-{p.id}") for fn, p in (
        ("lif", lif_case(5, 3, 33, detach_reset=False)),
        ("lif", lif_case(4, 2, 40, dtype="bf16", reset="subtract", layout="sliced")),
        ("li", li_case(5, 3, 33, learn="ab")))
])
def test_several_neuron_blocks_per_row(monkeypatch, fn, case):
    """Blocks of 16 neurons: N = 33 is 16 + 16 + 1, so full and ragged blocks of several rows."""
    monkeypatch.setattr(lif_tr, "MAX_BLOCK_N", 16)
    check_against_reference(fn, case, TARGET)


def test_poisoning_is_active():
    """The fixture above really fills the ops' outputs with NaN (else it would prove nothing)."""
    x = torch.zeros(2, 3, 4, device=DEVICE)
    assert lif_tr.alloc((2, 4), x, torch.float32).isnan().all()
    assert li_tr.alloc_like(x).isnan().all()


# The C++ CPU ops are the yardstick on a GPU too: they round like the Triton kernels (no
# contraction).
needs_cpp = pytest.mark.skipif(not fastsnn._backends.extension_available(),
                               reason="the C++ extension is not built")


@needs_cpp
@pytest.mark.parametrize("dtype", ["f64", "f32"])
def test_lif_ops_match_cpp_ops(dtype):
    """Every output of lif_fwd / lif_bwd, saved tensors and partials included, for every reset,
    surrogate, detach and save flag: forwards bit for bit, backwards to the rounding of exp()."""
    dt = DTYPES[dtype]
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(2, 5, 19, dt, TARGET)
    # exp() of numpy / libdevice vs glibc; GPUs also divide and exponentiate approximately in fp32
    tol = 1e-13 if dt == torch.float64 else F32_RTOL
    for reset in range(3):
        for normalize in (True, False):
            for save_u, save_i in ((False, False), (True, False), (True, True)):
                args = (x, a, b, th, i0, u0, reset, normalize, save_u, save_i)
                got = lif_tr.lif_fwd_triton(*args)
                want = cpp_op(torch.ops.fastsnn.lif_fwd, *args)
                assert_bitwise(got, want, (reset, normalize, save_u, save_i))
        _, _, _, us, is_ = want
        # param_grads on computes every output; one run with it off checks the empty partials
        runs = [(sg, detach, sg % 2 == 0, True) for sg in range(6) for detach in (True, False)]
        for surrogate, detach, normalize, params in runs + [(0, True, True, False)]:
            args = (gs, giT, guT, us, is_, i0, u0, a, b, th, reset, detach, surrogate, 3.7,
                    normalize, params)
            got = lif_tr.lif_bwd_triton(*args)
            want = cpp_op(torch.ops.fastsnn.lif_bwd, *args)
            for g_, w_ in zip(got, want):
                assert g_.shape == w_.shape and g_.dtype == w_.dtype
                assert rel_err(g_, w_) <= tol, (reset, surrogate, detach, normalize, params)


@needs_cpp
@pytest.mark.parametrize("dtype", ["f64", "f32"])
def test_li_ops_match_cpp_ops(dtype):
    """Every output of li_fwd / li_bwd bit for bit (the readout has no exp and no division)."""
    dt = DTYPES[dtype]
    x, (a, b, _), (i0, u0), (gu, giT, guT) = op_args(3, 6, 21, dt, TARGET)
    for normalize in (True, False):
        for save in (True, False):
            args = (x, a, b, i0, u0, normalize, save)
            got, want = li_tr.li_fwd_triton(*args), cpp_op(torch.ops.fastsnn.li_fwd, *args)
            assert_bitwise(got, want)
            args = (gu, giT, guT, want[3], want[4], i0, u0, a, b, normalize, save)
            got, want = li_tr.li_bwd_triton(*args), cpp_op(torch.ops.fastsnn.li_bwd, *args)
            for g_, w_ in zip(got, want):
                assert g_.shape == w_.shape and torch.equal(g_, w_)


def test_inference_saves_nothing():
    x, (a, b, th), (i0, u0), _ = op_args(2, 4, 9, torch.float32, TARGET)
    s, iT, uT, us, is_ = lif_tr.lif_fwd_triton(x, a, b, th, i0, u0, 0, True, False, False)
    assert us.shape == (0,) and is_.shape == (0,) and us.dtype == torch.float32
    u, iT, uT, is_, us = li_tr.li_fwd_triton(x, a, b, i0, u0, True, False)
    assert us.shape == (0,) and is_.shape == (0,)
    with torch.no_grad():
        for fn, kw in ((fastsnn.lif, {"threshold": th}), (fastsnn.li, {})):
            got = fn(x, a, b, state=(i0, u0), backend="triton", **kw)
            want = fn(x, a, b, state=(i0, u0), backend="torch", **kw)
            assert torch.equal(got[0], want[0])
            assert rel_err(got[1][1], want[1][1]) <= F32_RTOL


def test_empty_sizes():
    """T = 0 launches a kernel that only copies the state through; B = 0 or N = 0 launches none."""
    check_empty_sizes((lif_tr.lif_fwd_triton, lif_tr.lif_bwd_triton, li_tr.li_fwd_triton,
                       li_tr.li_bwd_triton), TARGET)
    _, _, (i0, u0), _ = op_args(2, 0, 5, torch.float64, TARGET)
    x = torch.randn(2, 0, 5, device=DEVICE)
    for fn in (fastsnn.lif, fastsnn.li):
        out, (i_T, u_T) = fn(x, 0.5, 0.9, state=(i0.float(), u0.float()), backend="triton")
        assert out.shape == (2, 0, 5) and torch.equal(u_T, u0.float())


def test_op_argument_errors():
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(2, 3, 5, torch.float32, TARGET)
    with pytest.raises(ValueError, match="reset"):
        lif_tr.lif_fwd_triton(x, a, b, th, i0, u0, 3, True, True, True)
    with pytest.raises(TypeError, match="alpha"):
        lif_tr.lif_fwd_triton(x, a.double(), b, th, i0, u0, 0, True, True, True)
    with pytest.raises(ValueError, match="u0"):
        li_tr.li_fwd_triton(x, a, b, i0, u0[:1], True, True)
    _, _, _, us, _ = lif_tr.lif_fwd_triton(x, a, b, th, i0, u0, 0, True, True, False)
    with pytest.raises(ValueError, match="i_saved"):
        lif_tr.lif_bwd_triton(gs, giT, guT, us, us.new_empty(0), i0, u0, a, b, th, 0, False, 0,
                              10.0, True, False)
    with pytest.raises(ValueError, match="surrogate"):
        lif_tr.lif_bwd_triton(gs, giT, guT, us, us.new_empty(0), i0, u0, a, b, th, 1, True, 6,
                              10.0, True, False)


def test_opcheck():
    """Schemas, fake (meta) implementations and their strides agree with the real ops."""
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(2, 3, 6, torch.float32, TARGET)
    xn = torch.randn(2, 3, 12, device=DEVICE)[..., ::2]  # neuron stride 2: the op copies it
    for xi in (x, xn):
        torch.library.opcheck(lif_tr.lif_fwd_triton, (xi, a, b, th, i0, u0, 0, True, True, True))
        torch.library.opcheck(li_tr.li_fwd_triton, (xi, a, b, i0, u0, False, True))
    _, _, _, us, is_ = lif_tr.lif_fwd_triton(x, a, b, th, i0, u0, 0, True, True, True)
    torch.library.opcheck(lif_tr.lif_bwd_triton, (gs, giT, guT, us, is_, i0, u0, a, b, th, 0,
                                                  False, 2, 4.0, True, True))
    torch.library.opcheck(lif_tr.lif_bwd_triton, (gs, giT, guT, us, is_.new_empty(0), i0, u0, a,
                                                  b, th, 1, True, 4, 4.0, False, False))
    torch.library.opcheck(li_tr.li_bwd_triton, (gs, giT, guT, us, is_, i0, u0, a, b, True, True))


def test_torch_compile_fullgraph():
    check_torch_compile_fullgraph(TARGET)


def test_triton_is_an_available_backend():
    assert "triton" in fastsnn.available_backends()


def test_module_runtime_budget():
    """Last in the file: the interpreter is slow, and this file must stay quick to run."""
    elapsed = time.perf_counter() - _T0["start"]
    assert elapsed < MODULE_BUDGET_S, f"tests/test_triton.py took {elapsed:.0f} s"
