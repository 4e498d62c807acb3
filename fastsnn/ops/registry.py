"""The one table of fastsnn's ops: per op, the modules of its folder (fastsnn/ops/<op>/).

Everything that enumerates the ops reads it: fastsnn._backends imports each op's fake (meta)
registrations once the compiled extension loads, and each op's Triton module where Triton can
run; ops/_function.py finds an op's kernels through it. A new op is a folder and a row here.

  ref       the pure-PyTorch reference (backend="torch")
  function  the autograd Function around the fused kernels
  triton    the Triton kernels and their custom ops <op>_fwd_triton / <op>_bwd_triton, or None
  fake      the fake implementations of the C++ ops torch.ops.fastsnn.<op>_fwd / <op>_bwd
  public    the public function, ``fastsnn.<public>``
  backends  the fused backends the op has (each runs where available_backends() lists it)

Each op with a reference module also defines ``example(B, T, N, dtype, seed)`` there:
tests/test_registry_ops.py calls it to check every fused backend of every op in this table
against the reference, so a new op is tested there without editing the test.
"""

import importlib

_PACKAGE = __name__.rpartition(".")[0]  # fastsnn.ops

OPS = {
    "lif": {"ref": "lif.ref", "function": "lif.function", "triton": "lif.triton",
            "fake": "lif.fake", "public": "lif", "backends": ("cpu", "cuda", "triton")},
    "li": {"ref": "li.ref", "function": "li.function", "triton": "li.triton", "fake": "li.fake",
           "public": "li", "backends": ("cpu", "cuda", "triton")},
    "rlif": {"ref": "rlif.ref", "function": "rlif.function", "triton": "rlif.triton",
             "fake": "rlif.fake", "public": "rlif", "backends": ("cpu", "cuda", "triton")},
    # the C++ CPU kernels so far (issue 20: Triton and CUDA are still to come)
    "adlif": {"ref": "adlif.ref", "function": "adlif.function", "triton": None,
              "fake": "adlif.fake", "public": "adlif", "backends": ("cpu",)},
    # no reference module (F.linear is the reference) and no Triton kernels
    "spike_linear": {"ref": None, "function": "spike_linear.function", "triton": None,
                     "fake": "spike_linear.fake", "public": "spike_linear",
                     "backends": ("cpu",)},
}

PARTS = ("ref", "function", "triton", "fake")

# op -> (<op>_fwd_triton, <op>_bwd_triton): each Triton module adds its own pair when imported
TRITON_KERNELS = {}


def module_name(op: str, part: str):
    """The full module name of an op's part (e.g. "fastsnn.ops.lif.triton"), or None."""
    rel = OPS[op][part]
    return None if rel is None else f"{_PACKAGE}.{rel}"


def module_names(part: str):
    """The modules of one part over every op that has it, in table order."""
    return [module_name(op, part) for op in OPS if OPS[op][part] is not None]


def import_all(part: str):
    """Import one part of every op (registrations run on import); returns the modules."""
    return [importlib.import_module(name) for name in module_names(part)]


def import_part(op: str, part: str):
    return importlib.import_module(module_name(op, part))
