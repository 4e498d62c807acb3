import os
import sys

import pytest
import torch

# Without a GPU the Triton kernels run in Triton's interpreter on CPU tensors. fastsnn decides
# at import whether Triton can run, so this must be set before any test imports it.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, os.path.dirname(__file__))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="run the long sweeps marked slow")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow sweep: opt in with --runslow")
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)


@pytest.fixture
def poison():
    """Every buffer the C++ ops allocate starts as NaN while the test runs."""
    torch.ops.fastsnn.set_poison(True)
    try:
        yield
    finally:
        torch.ops.fastsnn.set_poison(False)
