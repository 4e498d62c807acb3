"""The one table of fastsnn's ops: per op, the modules of its folder (fastsnn/ops/<op>/).

Everything that enumerates the ops reads it: fastsnn._backends imports each op's fake (meta)
registrations once the compiled extension loads, and each op's Triton module where Triton can
run; ops/_function.py finds an op's kernels through it. A new op is a folder and a row here.

  ref       the pure-PyTorch reference (backend="torch")
  function  the autograd Function around the fused kernels
  triton    the Triton kernels and their custom ops <op>_fwd_triton / <op>_bwd_triton, or None
  fake      the fake implementations of the C++ ops torch.ops.fastsnn.<op>_fwd / <op>_bwd
"""

import importlib

_PACKAGE = __name__.rpartition(".")[0]  # fastsnn.ops

OPS = {
    "lif": {"ref": "lif.ref", "function": "lif.function", "triton": "lif.triton",
            "fake": "lif.fake"},
    "li": {"ref": "li.ref", "function": "li.function", "triton": "li.triton", "fake": "li.fake"},
    "rlif": {"ref": "rlif.ref", "function": "rlif.function", "triton": "rlif.triton",
             "fake": "rlif.fake"},
    # no reference module (F.linear is the reference) and no Triton kernels
    "spike_linear": {"ref": None, "function": "spike_linear.function", "triton": None,
                     "fake": "spike_linear.fake"},
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
