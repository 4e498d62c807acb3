"""The CUDA kernels executed on the CPU, in every test run: tests/cuda_emu.py compiles the real
kernel sources of lif, li and rlif (forward and backward, every template instantiation the
launchers use, chosen by the same host launchers with the same launch plans) with the host
emulation of csrc/emu/ and its race and bounds checker. No GPU is needed; any change to csrc/
is rebuilt (cached by content hash under build/cuda_emu/).

What runs here:
- the explicit case lists of tests/test_cuda.py (lif, li) and tests/test_rlif_cuda.py (rlif)
  through the public API against the reference, with the kernels of backend "cuda" swapped in
  for those of "cpu" on CPU tensors, under the tolerances those files state (float64: identical
  spikes and 1e-10; float32: spike mismatches at most 1e-3 and gradients 1e-5 for lif/li, 1e-4
  for rlif where the spikes agree; bf16/fp16 as stated there);
- the raw ops against the C++ CPU ops on every output (forwards bit for bit, backwards to the
  rounding of exp());
- rlif on three emulated devices: an H200 (132 multiprocessors, 227 KB of shared memory: V
  wholly in shared memory for small N, partly for large N) and two with little shared memory
  (V partly or not at all there, the state and the gI exchange in global memory, several batch
  rows per block and ragged last blocks with odd B);
- the checker itself, on kernels of this test's own (tests/emu_broken_kernels.cu): each bug
  (a missing barrier, an index off by one, ...) must be reported, its fixed twin must run clean.

Every output buffer starts as NaN. FASTSNN_REQUIRE_CUDA_EMULATION=1 (CI) turns a missing host
compiler from a skip into a failure.
"""

import ctypes
import os
import re

import pytest
import torch

import cuda_emu as E
import fastsnn
from fastsnn.ops.li import function as li_function
from fastsnn.ops.lif import function as lif_function
from fastsnn.ops.rlif import function as rlif_function
from helpers import DTYPES, mismatch_rate, rel_err
from kernel_cases import (Target, assert_bitwise, check_against_reference, check_empty_sizes,
                          cpp_op, op_args)
from test_cuda import LI_CASES, LIF_CASES, _bwd_tol, _misaligned
from test_rlif_cuda import CASES as RLIF_CASES
from test_rlif_cuda import TOL as RLIF_TOL
from test_rlif_cuda import inputs as rlif_cuda_inputs
from test_rlif_cuda import run as rlif_run
from test_rlif_nonfinite import CASES as NONFINITE_CASES
from test_rlif_nonfinite import IDS as NONFINITE_IDS
from test_rlif_nonfinite import check_backend as check_nonfinite

if not E.compiler_available():
    if os.environ.get("FASTSNN_REQUIRE_CUDA_EMULATION") == "1":
        raise RuntimeError(f"FASTSNN_REQUIRE_CUDA_EMULATION=1 but {E.CXX} or addr2line is missing")
    pytest.skip(f"the CUDA emulation needs {E.CXX} and addr2line", allow_module_level=True)

TARGET = Target("cpu", "cpu", rng_device="cpu", strict=True)
OPS = torch.ops.fastsnn


@pytest.fixture(scope="module")
def lib():
    lib = E.library()
    yield lib
    launches, blocks, threads, accesses, barriers, colls = E.stats(lib)
    print(f"\nCUDA emulation: {launches} launches, {blocks} blocks, {threads} threads, "
          f"{accesses} checked memory accesses, {barriers} barriers, {colls} warp collectives")


@pytest.fixture
def device(lib, request):
    """The emulated device (default: the H200); restored after the test."""
    E.set_device(lib, getattr(request, "param", "h200"))
    yield getattr(request, "param", "h200")
    E.set_device(lib, "h200")


@pytest.fixture
def cuda_kernels_on_cpu(lib, device, monkeypatch):
    """backend="cpu" runs the emulated CUDA kernels: the Functions' kernels() give them."""
    def patch(module, fwd, bwd):
        orig = module.kernels
        monkeypatch.setattr(module, "kernels",
                            lambda backend: (E.OPS[fwd], E.OPS[bwd]) if backend == "cpu"
                            else orig(backend))
    patch(lif_function, "lif_fwd", "lif_bwd")
    patch(li_function, "li_fwd", "li_bwd")
    patch(rlif_function, "rlif_fwd", "rlif_bwd")
    before = E.stats(lib)[0]
    yield
    assert E.stats(lib)[0] > before, "no emulated kernel ran"


# ---- lif and li: the case lists of tests/test_cuda.py ---------------------------------------

@pytest.mark.parametrize("case", LIF_CASES)
def test_lif_matches_reference(case, cuda_kernels_on_cpu):
    check_against_reference("lif", case, TARGET)


@pytest.mark.parametrize("case", LI_CASES)
def test_li_matches_reference(case, cuda_kernels_on_cpu):
    check_against_reference("li", case, TARGET)


def test_empty_sizes(cuda_kernels_on_cpu):
    check_empty_sizes((E.lif_fwd, E.lif_bwd, E.li_fwd, E.li_bwd), TARGET)


# With 4 multiprocessors the launchers give 16-byte lanes from B * N / lane >= 1024 lanes: the
# wide path at a size the emulation runs quickly. The one-neuron lanes keep N odd.
LANES = {"one-neuron-lanes": (2, 9, 19), "16-byte-lanes": (4, 9, 1024)}


def _lane_blocks(B, N, dtype, wide):
    lane = (16 // (8 if dtype == torch.float64 else 4)) if wide else 1
    return -(-B * N // lane // 128)


@pytest.mark.parametrize("device", ["small-smem"], indirect=True)
@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_lif_ops_match_cpp_ops(dtype, lanes, lib, device):
    """Every output of lif_fwd / lif_bwd, saved tensors and partials included, for every reset,
    surrogate, detach and save flag: forwards bit for bit, backwards to the rounding of exp()."""
    B, T, N = LANES[lanes]
    dt = DTYPES[dtype]
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(B, T, N, dt, TARGET)
    for reset in range(3):
        for normalize in (True, False):
            for save_u, save_i in ((False, False), (True, False), (False, True), (True, True)):
                args = (x, a, b, th, i0, u0, reset, normalize, save_u, save_i)
                got = E.lif_fwd(*args)
                assert E.last_launch(lib)[0] == _lane_blocks(B, N, dt, lanes == "16-byte-lanes")
                assert_bitwise(got, cpp_op(OPS.lif_fwd, *args), (reset, normalize, save_u, save_i))
        _, _, _, us, is_ = got
        runs = [(sg, detach, sg % 2 == 0, True) for sg in range(6) for detach in (True, False)]
        for surrogate, detach, normalize, params in runs + [(0, True, True, False),
                                                            (2, False, False, False)]:
            args = (gs, giT, guT, us, is_, i0, u0, a, b, th, reset, detach, surrogate, 3.7,
                    normalize, params)
            got_b, want_b = E.lif_bwd(*args), cpp_op(OPS.lif_bwd, *args)
            for g_, w_ in zip(got_b, want_b):
                assert g_.shape == w_.shape and g_.dtype == w_.dtype
                assert rel_err(g_, w_) <= _bwd_tol(g_), (reset, surrogate, detach, normalize)


@pytest.mark.parametrize("device", ["small-smem"], indirect=True)
@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_li_ops_match_cpp_ops(dtype, lanes, lib, device):
    """Every output of li_fwd / li_bwd bit for bit (the readout has no exp and no division)."""
    B, T, N = LANES[lanes]
    dt = DTYPES[dtype]
    x, (a, b, _), (i0, u0), (gu, giT, guT) = op_args(B, T, N, dt, TARGET)
    for normalize in (True, False):
        for save in (True, False):
            args = (x, a, b, i0, u0, normalize, save)
            got = E.li_fwd(*args)
            assert E.last_launch(lib)[0] == _lane_blocks(B, N, dt, lanes == "16-byte-lanes")
            assert_bitwise(got, cpp_op(OPS.li_fwd, *args))
            args = (gu, giT, guT, got[3], got[4], i0, u0, a, b, normalize, save)
            for g_, w_ in zip(E.li_bwd(*args), cpp_op(OPS.li_bwd, *args)):
                assert g_.shape == w_.shape and torch.equal(g_, w_)


@pytest.mark.parametrize("device", ["small-smem"], indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_lane_width_changes_no_result(dtype, lib, device):
    """16-byte lanes and one-neuron lanes (a misaligned copy) give the same bits."""
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(4, 11, 1024, DTYPES[dtype], TARGET, seed=3)
    xm, gsm = _misaligned(x), _misaligned(gs)
    for reset, surrogate, detach in ((0, 0, False), (1, 2, False), (2, 5, True)):
        wide = E.lif_fwd(x, a, b, th, i0, u0, reset, True, True, True)
        narrow = E.lif_fwd(xm, a, b, th, i0, u0, reset, True, True, True)
        assert E.last_launch(lib)[0] == 4 * 1024 // 128
        for g_, w_ in zip(wide, narrow):
            assert torch.equal(g_, w_), reset
        args = (wide[3], wide[4], i0, u0, a, b, th, reset, detach, surrogate, 10.0, True, True)
        for g_, w_ in zip(E.lif_bwd(gs, giT, guT, *args), E.lif_bwd(gsm, giT, guT, *args)):
            assert torch.equal(g_, w_), (reset, surrogate, detach)


# ---- rlif: the case list of tests/test_rlif_cuda.py on three emulated devices -----------------

def rlif_inputs(*args, **kw):
    """The draws of tests/test_rlif_cuda.py, on the CPU."""
    return rlif_cuda_inputs(*args, device="cpu", **kw)


# Odd B and ragged last blocks, N around warps and the 256-thread block, and every reset,
# detach mode and surrogate family, for the small devices' plans (rows per block 2 and 4;
# V, the state and the gI buffers partly or wholly in global memory).
RLIF_SMALL = [
    (5, 13, 33, "f64", dict(state=True)), (7, 9, 257, "f64", dict(learn=True)),
    (3, 11, 70, "f32", dict(reset="subtract", detach_reset=False)),
    (6, 10, 40, "f64", dict(learn=True, state=True, detach_recurrent=True)),
    (9, 8, 31, "bf16", dict(reset="none", surrogate="atan")),
    (2, 12, 64, "f16", dict(learn=True, detach_reset=False)),
]
RLIF_PARAMS = ([pytest.param("h200", c, id=f"h200-{i}") for i, c in enumerate(RLIF_CASES)]
               + [pytest.param(d, c, id=f"{d}-{i}") for d in ("small-smem", "tiny-smem")
                  for i, c in enumerate(RLIF_SMALL)])


@pytest.mark.parametrize("device,case", RLIF_PARAMS, indirect=["device"])
def test_rlif_matches_reference(case, device, cuda_kernels_on_cpu):
    B, T, N, dt, kw = case
    kw = dict(kw)
    learn, state = kw.pop("learn", False), kw.pop("state", False)
    X, V, params, st = rlif_inputs(B, T, N, dt, learn=learn, state=state)
    S_ref, _, g_ref = rlif_run("torch", X, V, params, st, **kw)
    S, (I, U), g = rlif_run("cpu", X, V, params, st, **kw)  # the emulated CUDA kernels
    assert not S.isnan().any() and not I.isnan().any() and not U.isnan().any()
    spike_tol, tol = RLIF_TOL[dt]
    assert mismatch_rate(S, S_ref) <= spike_tol
    if dt == "f64":
        assert torch.equal(S, S_ref)
    if torch.equal(S, S_ref):
        for a, b in zip(g, g_ref):
            assert rel_err(a, b) <= tol


@pytest.mark.parametrize("device", ["h200", "tiny-smem"], indirect=True)
def test_rlif_forward_bitwise_vs_cpu(device):
    """The CUDA forward sums R_t over the spiking neurons in ascending order, like the CPU."""
    X, V, params, _ = rlif_inputs(6, 40, 300, "f32")
    N = 300
    a, b, th = (torch.full((N,), v) for v in params)
    i0, u0 = torch.zeros(6, N), torch.zeros(6, N)
    for reset in range(3):
        args = (X, V, a, b, th, i0, u0, reset, True, True, True)
        assert_bitwise(E.rlif_fwd(*args), OPS.rlif_fwd(*args), reset)


@pytest.mark.parametrize("device", ["h200", "tiny-smem"], indirect=True)
@pytest.mark.parametrize("where,value,dt", NONFINITE_CASES, ids=NONFINITE_IDS)
def test_rlif_nonfinite_v_matches_reference(where, value, dt, device, cuda_kernels_on_cpu):
    """inf/NaN in V (tests/test_rlif_nonfinite.py): the forward's dense list of all neurons
    and the host's dV product give the reference's NaN/inf pattern; tiny-smem: 4 rows a block
    (B = 3: a ragged block), V and the state in global memory."""
    check_nonfinite("cpu", where, value, dt)


@pytest.mark.parametrize("device", ["h200", "tiny-smem"], indirect=True)
@pytest.mark.parametrize("value", ["inf", "nan"])
def test_rlif_nonfinite_v_wide(value, device, cuda_kernels_on_cpu):
    """N = 300: two column slots per thread, the dense list over slots and warps."""
    check_nonfinite("cpu", "silent", value, "f32", N=300, T=3)
    check_nonfinite("cpu", "spiking", value, "f64", N=300, T=3)


@pytest.mark.parametrize("device", ["h200", "small-smem", "tiny-smem"], indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rlif_ops_match_cpp_ops(dtype, device):
    """Every output of rlif_bwd (partials and dV included) against the C++ CPU op, for every
    reset, detach mode and surrogate, on the saved tensors of one forward."""
    dt = DTYPES[dtype]
    B, T, N = 5, 7, 45
    x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(B, T, N, dt, TARGET)
    acc = a.dtype
    V = (0.5 * torch.randn(N, N, generator=torch.Generator().manual_seed(4),
                           dtype=torch.float64) / N ** 0.5).to(acc)
    for reset in range(3):
        args = (x, V, a, b, th, i0, u0, reset, reset != 1, True, True)
        fwd = E.rlif_fwd(*args)
        want = OPS.rlif_fwd(*args)
        assert torch.equal(fwd[0], want[0]) or dt != torch.float64
        us, is_ = want[3], want[4]
        for sg in range(6):
            detach, rec = sg % 2 == 0, sg % 3 == 0
            args = (gs, giT, guT, us, is_, i0, u0, V, a, b, th, reset, detach, rec, sg, 3.7,
                    reset != 1, sg < 4, True)
            for g_, w_ in zip(E.rlif_bwd(*args), OPS.rlif_bwd(*args)):
                assert g_.shape == w_.shape and g_.dtype == w_.dtype
                tol = 1e-12 if g_.dtype == torch.float64 else 1e-4
                assert rel_err(g_, w_) <= tol, (reset, sg)


def test_rlif_plans_cover_shared_and_global_v(lib):
    """The emulated H200 gets the plans the GPU gets: V wholly in shared memory at N = 100,
    partly at N = 600 (the opt-in limit of 227 KB is used)."""
    E.set_device(lib, "h200")
    for N, whole in ((100, True), (600, False)):
        X, V, params, _ = rlif_inputs(3, 4, N, "f32")
        a, b, th = (torch.full((N,), v) for v in params)
        E.rlif_fwd(X, V, a, b, th, torch.zeros(3, N), torch.zeros(3, N), 0, True, False, False)
        grid, block, smem = E.last_launch(lib)
        assert grid == 3 and block == (128 if N == 100 else 256)
        if whole:
            assert smem >= N * N * 4
        else:
            assert N * N * 4 > smem > 200 * 1024


# ---- The checker bites ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def broken():
    lib = E.load(E.build([os.path.join(os.path.dirname(__file__), "emu_broken_kernels.cu")],
                         name="emu_broken_kernels", with_ops=False))
    lib.run_broken.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                               ctypes.c_int]
    return lib


def run_broken(lib, name, bug, n=64):
    inp = torch.arange(1, n + 1, dtype=torch.float32)
    out = torch.full((5 * n,), float("nan"))
    lib.emu_clear_buffers()
    lib.emu_take_report()
    lib.emu_register_buffer(b"in", inp.data_ptr(), inp.numel() * 4, 0)
    lib.emu_register_buffer(b"out", out.data_ptr(), n * 4 if name != "warp_ops" else 5 * n * 4, 1)
    rc = lib.run_broken(name.encode(), inp.data_ptr(), out.data_ptr(), n, int(bug))
    assert rc >= 0, f"no kernel {name}"
    report = E.take_report(lib)
    lib.emu_clear_buffers()
    return rc, report, inp, out


BUGS = {
    # both threads, the shared-memory offset, and where each access is in the source
    "neighbour_sum": ["shared-memory race",
                      r"thread \(1,0,0\) of block \(0,0,0\) writes 4 bytes at offset 4 of the "
                      "dynamic shared memory",
                      r"thread \(0,0,0\) of block \(0,0,0\) read it in the same barrier epoch",
                      r"other: tests/emu_broken_kernels.cu:\d+", r"at: tests/emu_broken_kernels.cu"],
    "neighbour_sum_static": ["shared-memory race", "static shared memory"],
    "copy_all": ["out-of-bounds global access", "writes 4 bytes", "0 bytes past the end of "
                 "buffer 'out'"],
    "smem_tail": ["out-of-bounds shared access", "offset 256 of the dynamic shared memory "
                  r"\(256 bytes\)"],
    "smem_uninitialised": ["read of uninitialised shared memory"],
    "divergent_barrier": ["not every thread reaches the barrier"],
    "ballot_after_exit": ["__ballot_sync", "exits while lanes 0x0000ffff of its warp wait"],
    "write_input": ["write to a read-only buffer", "'in'"],
}


@pytest.mark.parametrize("name", BUGS)
def test_checker_reports_the_bug(broken, name):
    rc, report, _, _ = run_broken(broken, name, bug=True)
    assert rc != 0, f"{name}: the launch did not fail"
    assert f"{name}(" in report, report  # the kernel is named
    for pattern in BUGS[name]:
        assert re.search(pattern, report), f"{pattern!r} not in:\n{report}"


@pytest.mark.parametrize("name", BUGS)
def test_fixed_kernel_runs_clean(broken, name):
    rc, report, inp, out = run_broken(broken, name, bug=False)
    assert rc == 0 and report == "", report
    n = inp.numel()
    want = {"neighbour_sum": inp + inp.roll(-1), "neighbour_sum_static": inp + inp.roll(-1),
            "ballot_after_exit": torch.full((n,), 32.0)}.get(name, inp)
    assert torch.equal(out[:n], want), name


def test_warp_intrinsics(broken):
    n = 64
    rc, report, inp, out = run_broken(broken, "warp_ops", bug=False, n=n)
    assert rc == 0 and report == "", report
    out = out.view(n, 5)
    sums = inp.view(2, 32).sum(1)
    for t in range(n):
        w = t // 32
        assert out[t, 0] == (sums[w] if t % 32 == 0 else 0.0)
        assert out[t, 1] == sums[w]
        assert out[t, 2] == 32 + 1000  # every input positive, none above 100, all true
        assert out[t, 3] == inp[32 * w + 3]
        assert out[t, 4] == (inp[t - 1] if t % 32 else inp[t])


def test_layout_names_every_params_field(lib):
    """The Python side fills every field of every Params struct (csrc/common/params.h)."""
    text = open(os.path.join(E.CSRC, "common", "params.h")).read()
    layout = E.Layout(lib.emu_layout().decode()).structs
    for name, body in re.findall(r"struct (\w+Params) \{(.*?)\n\};", text, re.S):
        body = re.sub(r"//[^\n]*", "", body)
        fields = set()
        for decl in body.split(";"):
            decl = decl.strip()
            if decl:
                fields.update(re.findall(r"(\w+)\s*(?:,|$)", decl.replace("*", " ")))
        if name == "SpikeLinearParams":
            continue  # CPU only
        assert set(layout[name]["fields"]) == fields, name


def test_every_kernel_instantiation_runs(lib):
    """Each __global__ instantiation in the library (every one the launchers can dispatch to)
    is launched on a small case and agrees with the C++ CPU op: both lane widths (16-byte lanes
    from 512 lanes on the 2-multiprocessor device; one-neuron lanes on a misaligned copy), every
    dtype, reset, surrogate, detach, save and parameter flag."""
    E.set_device(lib, "tiny-smem")
    try:
        for dtype in DTYPES.values():
            x, (a, b, th), (i0, u0), (gs, giT, guT) = op_args(2, 3, 1024, dtype, TARGET, seed=7)
            V = (0.5 * torch.randn(1024, 1024, generator=torch.Generator().manual_seed(1),
                                   dtype=torch.float64) / 32).to(a.dtype)
            for xi, gi in ((x, gs), (_misaligned(x), _misaligned(gs))):
                for reset in range(3):
                    for save_u, save_i in ((False, False), (True, False), (False, True),
                                           (True, True)):
                        args = (xi, a, b, th, i0, u0, reset, True, save_u, save_i)
                        assert_bitwise(E.lif_fwd(*args), OPS.lif_fwd(*args))
                    _, _, _, us, is_ = OPS.lif_fwd(xi, a, b, th, i0, u0, reset, True, True, True)
                    for sg in range(6):
                        for detach in (True, False):
                            for params in (True, False):
                                args = (gi, giT, guT, us, is_, i0, u0, a, b, th, reset, detach,
                                        sg, 3.0, True, params)
                                for g_, w_ in zip(E.lif_bwd(*args), OPS.lif_bwd(*args)):
                                    assert rel_err(g_, w_) <= _bwd_tol(g_)
                for save in (True, False):
                    args = (xi, a, b, i0, u0, True, save)
                    got = E.li_fwd(*args)
                    assert_bitwise(got, OPS.li_fwd(*args))
                    args = (gi, giT, guT, got[3], got[4], i0, u0, a, b, True, save)
                    assert_bitwise(E.li_bwd(*args), OPS.li_bwd(*args))
            xs, gss = x[:, :, :40], gs[:, :, :40]
            Vs = V[:40, :40].contiguous()
            a, b, th = (v[:40].contiguous() for v in (a, b, th))
            i0, u0, giT, guT = (v[:, :40].contiguous() for v in (i0, u0, giT, guT))
            for reset in range(3):
                args = (xs, Vs, a, b, th, i0, u0, reset, True, True, True)
                got = E.rlif_fwd(*args)
                assert torch.equal(got[0], OPS.rlif_fwd(*args)[0]) or dtype != torch.float64
                for detach in (True, False):
                    for params in (True, False):
                        args = (gss, giT, guT, got[3], got[4], i0, u0, Vs, a, b, th, reset,
                                detach, False, 0, 3.0, True, params, True)
                        for g_, w_ in zip(E.rlif_bwd(*args), OPS.rlif_bwd(*args)):
                            assert rel_err(g_, w_) <= (1e-12 if g_.dtype == torch.float64
                                                       else 1e-4)
    finally:
        E.set_device(lib, "h200")
    kernels = E.kernel_symbols(E.build())
    # lif 96 + 480, li 16 + 16, rlif 12 + 40 (forward + backward), as the launchers dispatch
    assert len(kernels) == 660, len(kernels)
    missing = [name for off, name in kernels.items() if off not in E.launched_kernels(lib)]
    assert not missing, f"{len(missing)} of {len(kernels)} kernels never ran, e.g. {missing[:3]}"
