"""Shared test configuration.

Markers: ``slow`` (opt in with --runslow) and ``cuda`` (needs a real CUDA device; skipped
without one). The Triton test modules listed in GPU_WHEN_VISIBLE run on the GPU when one is
visible and in Triton's interpreter otherwise; on a GPU their tests are marked ``cuda`` too, so
``pytest -m cuda tests`` selects every test that runs on the device.

``--simulate-gpu`` (or FASTSNN_TEST_SIMULATE_GPU=1) makes this CPU machine look like a GPU
machine with a CUDA build, for backend selection only: torch.cuda.is_available() is True and
torch.cuda.device_count() is 1 (for fastsnn, benchmarks, the tests, and Python subprocesses
through a sitecustomize module on PYTHONPATH), TRITON_INTERPRET is unset, fastsnn's Triton
backend is settled as on a GPU, and available_backends()/resolve() treat the CUDA kernels as
built. A test that assumes "no GPU" (the default device, the backend list, Triton in the
interpreter) then fails here as it would on the GPU machine. Tests that really need the device
(marker ``cuda``) still skip: no CUDA tensor can be made. cuda_kernels_built() keeps reporting
what this build has (tests/test_cuda.py checks the registered kernels against it).

    .venv/bin/python -m pytest -q tests --simulate-gpu
"""

import os
import shutil
import sys
import tempfile

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

SIMULATE_ENV = "FASTSNN_TEST_SIMULATE_GPU"
# Modules whose tests run on the GPU when one is visible (their DEVICE is then "cuda").
GPU_WHEN_VISIBLE = ("test_triton.py", "test_rlif_triton.py")
# The simulated device, run in this process and (as a sitecustomize module on PYTHONPATH) in
# every Python subprocess the tests start. Only callers in fastsnn, benchmarks, the tests and a
# `python -c` / `-m` script see it: torch's own code (dynamo, AOT autograd, opcheck) and Triton
# keep seeing the real machine, or they would try to initialise CUDA.
SIM_PRELUDE = """
import sys as _sys, torch as _torch
def _fastsnn_sim(real, fake, mods=("fastsnn", "benchmarks", "test_", "helpers",
                                   "kernel_cases", "conftest", "__main__")):
    def f(*args, **kwargs):
        caller = _sys._getframe(1).f_globals.get("__name__", "")
        return fake if caller.startswith(mods) else real(*args, **kwargs)
    f.__wrapped__, f._fastsnn_sim = real, True
    return f
if not getattr(_torch.cuda.is_available, "_fastsnn_sim", False):
    _torch.cuda.is_available = _fastsnn_sim(_torch.cuda.is_available, True)
    _torch.cuda.device_count = _fastsnn_sim(_torch.cuda.device_count, 1)
"""
# Whether a real CUDA device is visible (also under a simulation inherited from a parent run).
REAL_CUDA = getattr(torch.cuda.is_available, "__wrapped__", torch.cuda.is_available)()
_STATE = {"simulating": False, "site": None}


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="run the long sweeps marked slow")
    parser.addoption("--simulate-gpu", action="store_true",
                     default=os.environ.get(SIMULATE_ENV, "0") == "1",
                     help="behave as on a GPU machine for backend selection (a visible CUDA "
                          f"device, a CUDA build); also {SIMULATE_ENV}=1")


def _simulate_gpu():
    if "fastsnn" in sys.modules:  # it settles Triton and the backends at import
        raise pytest.UsageError("--simulate-gpu: fastsnn was imported before tests/conftest.py "
                                "could simulate the GPU")
    os.environ.pop("TRITON_INTERPRET", None)  # a GPU machine compiles the Triton kernels
    exec(SIM_PRELUDE, {})
    if not os.environ.get("FASTSNN_TEST_SIM_SITE"):  # subprocesses: a sitecustomize module
        site = tempfile.mkdtemp(prefix="fastsnn-simgpu-")
        with open(os.path.join(site, "sitecustomize.py"), "w") as f:
            f.write(SIM_PRELUDE)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (site, os.environ.get("PYTHONPATH")) if p)
        os.environ["FASTSNN_TEST_SIM_SITE"] = _STATE["site"] = site
    from fastsnn import _backends

    built = _backends.cuda_kernels_built()
    _backends._WITH_CUDA = _backends.extension_available()  # a CUDA build, as CI's GPU machine
    _backends.cuda_kernels_built = lambda: built  # what this build really has
    _STATE["simulating"] = True


def pytest_configure(config):
    inherited = getattr(torch.cuda.is_available, "_fastsnn_sim", False)
    if config.getoption("--simulate-gpu") or inherited:
        if REAL_CUDA:
            raise pytest.UsageError("--simulate-gpu is for machines without a GPU; this one "
                                    "has one")
        _simulate_gpu()
    elif not REAL_CUDA:
        # Without a GPU the Triton kernels run in Triton's interpreter on CPU tensors. fastsnn
        # decides at import whether Triton can run, so this is set before any test imports it.
        os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_unconfigure(config):
    if _STATE["site"]:
        shutil.rmtree(_STATE["site"], ignore_errors=True)


def pytest_report_header(config):
    if _STATE["simulating"]:
        return ["fastsnn: simulating a GPU machine (--simulate-gpu): cuda-marked tests skip"]
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow sweep: opt in with --runslow")
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device" + (
        " (this one is simulated)" if _STATE["simulating"] else ""))
    for item in items:
        module = getattr(item, "module", None)
        if (module is not None and os.path.basename(str(item.fspath)) in GPU_WHEN_VISIBLE
                and getattr(module, "DEVICE", None) == "cuda"):
            item.add_marker(pytest.mark.cuda)
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "cuda" in item.keywords and not REAL_CUDA:
            item.add_marker(skip_cuda)


@pytest.fixture
def simulated_gpu():
    """True while --simulate-gpu is on."""
    return _STATE["simulating"]


@pytest.fixture
def poison():
    """Every buffer the C++ ops allocate starts as NaN while the test runs."""
    torch.ops.fastsnn.set_poison(True)
    try:
        yield
    finally:
        torch.ops.fastsnn.set_poison(False)
