"""Every Triton kernel compiles ahead of time for an H100/H200 (sm_90), without a GPU.

Triton's compiler and ptxas (shipped in the triton wheel) catch what the interpreter runs of
tests/test_triton.py and tests/test_rlif_triton.py cannot: dot shapes and dtypes, layouts,
registers, and API changes between Triton releases (Triton 3.6 rejected the float64 rlif dot).

What is compiled comes from the wrappers themselves: each kernel module's ``kernel_variants()``
runs its wrappers over their whole argument space (the four I/O dtypes, one neuron count per
tile configuration, every reset and surrogate code and flag) with the launches recorded, so a
new constexpr branch or tile path is listed as soon as a wrapper can take it. That is ~6,800
specialisations; each is compiled for two integer profiles, "aligned" (pointers and integers
divisible by 16, i32: the usual launch) and "wide" (no alignment, strides i64: tensors past 2^31
elements). The default run compiles a pairwise cover of them: for each kernel, every pair of
values of two axes that some variant has appears in at least one compiled variant, the I/O dtype
and the tile configuration counting as one axis (the "shape"), so every shape a kernel compiles
for meets every flag value, surrogate, reset and integer profile: about 320 compilations, under a
minute on 2 cores. (Plain pairwise, dtype and tiles apart, would miss a failure that needs three
values at once, as the float64 chunked rlif backward with the recurrence did.)
FASTSNN_AOT_ALL=1 compiles every variant in both profiles instead (~13,600: tens of minutes).

The compiler runs in child processes without TRITON_INTERPRET (spread over up to
FASTSNN_AOT_JOBS processes, default the CPU count capped at 8), with a fresh Triton cache, so
every run really compiles. ``python tests/test_triton_aot.py [--all] [--profiles aligned]
[--jobs N]`` does the same from the command line.
"""

import argparse
import importlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

MODULES = ("fastsnn.ops.lif.triton", "fastsnn.ops.li.triton", "fastsnn.ops.rlif.triton")
PROFILES = ("aligned", "wide")
TILE_KEYS = ("ACC", "BLOCK_B", "BLOCK_N", "BLOCK_K", "CHUNKED")  # what launch() adds from x
SIZE_ARGS = {"B", "T", "N"}  # integers that stay i32 in the "wide" profile; strides do not
TARGET = ("cuda", 90, 32)  # sm_90 (H100 / H200), warp size 32
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def all_variants(profiles=PROFILES):
    """(KernelVariant, profile) for every variant of every kernel module."""
    out = []
    for name in MODULES:
        mod = importlib.import_module(name)
        out += [(v, p) for v in mod.kernel_variants() for p in profiles]
    return out


def _features(v, profile):
    """The axes of a candidate: its shape (I/O dtype and tile configuration: what the input
    tensor decides), then the integer profile, the other pointer types and the constexprs."""
    consts = dict(v.constexprs)
    shape = (v.io, v.num_warps, *(consts.get(k) for k in TILE_KEYS))
    return (("shape", shape), ("profile", profile), *v.signature,
            *((k, x) for k, x in v.constexprs if k not in TILE_KEYS))


def pairwise_cover(candidates):
    """A subset of candidates [(variant, profile)] in which every pair of axis values that
    occurs together in some candidate of a kernel occurs together in a chosen one of that
    kernel. The I/O dtype and the tile configuration form one axis, so every shape a kernel
    compiles for meets every flag value and every integer profile. Greedy, taking at each step
    the first candidate that covers the most uncovered pairs: deterministic."""
    chosen = []
    by_kernel = {}
    for c in candidates:
        by_kernel.setdefault((c[0].module, c[0].kernel), []).append(c)
    for group in by_kernel.values():
        rows = [dict(_features(*c)) for c in group]
        # the axes that vary, each distinct column once (p_gx's type repeats p_gs's)
        columns = {}
        for key in rows[0]:
            col = tuple(r[key] for r in rows)
            if len(set(col)) > 1 and col not in columns.values():
                columns[key] = col
        keys = list(columns)
        bit = {}
        masks = []
        for i in range(len(rows)):
            m = 0
            for a, b in itertools.combinations(keys, 2):
                pair = (a, columns[a][i], b, columns[b][i])
                m |= 1 << bit.setdefault(pair, len(bit))
            masks.append(m)
        uncovered = (1 << len(bit)) - 1
        if not keys:
            chosen.append(group[0])
            continue
        while uncovered:
            best = max(range(len(rows)), key=lambda i: ((masks[i] & uncovered).bit_count(), -i))
            chosen.append(group[best])
            uncovered &= ~masks[best]
    return chosen


def selection(everything=False, profiles=PROFILES):
    cands = all_variants(profiles)
    return cands if everything else pairwise_cover(cands)


def to_json(v, profile):
    return {"module": v.module, "kernel": v.kernel, "io": v.io, "signature": list(v.signature),
            "constexprs": list(v.constexprs), "num_warps": v.num_warps,
            "enable_fp_fusion": v.enable_fp_fusion, "profile": profile}


def describe(spec):
    consts = ",".join(f"{k}={v}" for k, v in spec["constexprs"])
    return f"{spec['kernel']}[{spec['io']},{spec['profile']},warps={spec['num_warps']},{consts}]"


def compile_one(spec):
    """Compile one variant for sm_90: (seconds, None) or (seconds, the error)."""
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    t0 = time.perf_counter()
    try:
        kernel = getattr(importlib.import_module(spec["module"]), spec["kernel"])
        dtypes = {"fp64": tl.float64, "fp32": tl.float32, "bf16": tl.bfloat16,
                  "fp16": tl.float16}
        consts = {k: dtypes[v] if isinstance(v, str) else v for k, v in spec["constexprs"]}
        wide = spec["profile"] == "wide"
        sig, attrs = {}, {}
        types = dict(spec["signature"])
        for i, (name, param) in enumerate(zip(kernel.arg_names, kernel.params)):
            if name in consts:
                sig[name] = "constexpr"
                continue
            t = types[name]
            if t == "int":
                t = "i64" if wide and name not in SIZE_ARGS else "i32"
            sig[name] = t
            if not wide and not param.do_not_specialize:
                attrs[(i,)] = [["tt.divisibility", 16]]
        triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=consts, attrs=attrs),
                       target=GPUTarget(*TARGET),
                       options={"num_warps": spec["num_warps"],
                                "enable_fp_fusion": spec["enable_fp_fusion"]})
        err = None
    except Exception as e:  # noqa: BLE001 (report every failure, keep compiling the rest)
        err = f"{type(e).__name__}: {e}"
    return time.perf_counter() - t0, err


def _compile_indexed(args):
    i, spec = args
    return (i, *compile_one(spec))


def default_jobs():
    jobs = os.environ.get("FASTSNN_AOT_JOBS")
    if jobs:
        return max(1, int(jobs))
    return max(1, min(8, len(os.sched_getaffinity(0))))


def compile_all(specs, jobs):
    """Compile specs in jobs processes; prints a summary, returns the failures."""
    import multiprocessing

    t0 = time.perf_counter()
    # the costliest kernels first, so that the processes finish together
    order = sorted(range(len(specs)), key=lambda i: not specs[i]["kernel"].startswith("rlif"))
    work = [(i, specs[i]) for i in order]
    if jobs == 1:
        results = list(map(_compile_indexed, work))
    else:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = list(pool.imap_unordered(_compile_indexed, work))
    failures = [(specs[i], err) for i, _, err in sorted(results) if err]
    per_kernel = {}
    for i, sec, _ in results:
        n, total = per_kernel.get(specs[i]["kernel"], (0, 0.0))
        per_kernel[specs[i]["kernel"]] = (n + 1, total + sec)
    import triton
    print(f"triton {triton.__version__}: {len(specs)} variants compiled for sm_90 in "
          f"{time.perf_counter() - t0:.1f} s on {jobs} processes, {len(failures)} failed")
    for k, (n, total) in sorted(per_kernel.items()):
        print(f"  {k}: {n} variants, {total / n:.2f} s each")
    for spec, err in failures[:20]:
        print(f"FAILED {describe(spec)}\n  {err[-2000:]}")
    return failures


def run_in_subprocess(specs, jobs, tmpdir, timeout):
    """Compile specs in a child process without TRITON_INTERPRET and with a fresh Triton cache:
    (returncode, output)."""
    path = os.path.join(tmpdir, "variants.json")
    with open(path, "w") as f:
        json.dump(specs, f)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = os.path.join(tmpdir, "triton-cache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (ROOT, env.get("PYTHONPATH"))))
    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--specs", path,
                          "--jobs", str(jobs)], env=env, capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT)
    return res.returncode, res.stdout + res.stderr


# ---------------------------------------------------------------------------------------------

def _modules_or_skip():
    pytest.importorskip("triton", reason="Triton is not installed")
    pytest.importorskip("triton.backends.nvidia", reason="Triton has no CUDA backend")
    return [importlib.import_module(m) for m in MODULES]


def test_variants_cover_every_kernel_and_path():
    """kernel_variants() reaches every kernel a module exports, in every I/O dtype, and both
    rlif paths; the records are the wrappers' real launches, deduplicated."""
    for mod in _modules_or_skip():
        variants = mod.kernel_variants()
        assert len(set(variants)) == len(variants)
        kernels = {n for n in mod.__all__ if n.endswith("_kernel")}
        assert {v.kernel for v in variants} == kernels
        for k in kernels:
            io = {v.io for v in variants if v.kernel == k}
            assert io == {"fp64", "fp32", "bf16", "fp16"}, (k, io)
    rlif = importlib.import_module("fastsnn.ops.rlif.triton").kernel_variants()
    paths = {(dict(v.constexprs)["CHUNKED"], dict(v.constexprs)["BLOCK_N"]) for v in rlif}
    assert paths == {(False, 16), (False, 32), (True, 32)}
    lif = importlib.import_module("fastsnn.ops.lif.triton").kernel_variants()
    assert {dict(v.constexprs)["BLOCK_N"] for v in lif} == {16, 32, 64, 128}


def test_pairwise_cover_covers_pairs():
    """The default selection holds every value pair of every kernel's candidates, the shape
    (I/O dtype and tiles) counting as one axis."""
    _modules_or_skip()
    cands = all_variants()
    chosen = pairwise_cover(cands)
    assert len(chosen) < len(cands) / 10

    def pairs(cs):
        out = set()
        for v, p in cs:
            f = _features(v, p)
            out |= {(v.kernel, a, b) for a, b in itertools.combinations(f, 2)}
        return out

    assert pairs(chosen) == pairs(cands)


def test_kernels_compile_for_sm90(tmp_path):
    """Compile the selection (every variant with FASTSNN_AOT_ALL=1) for sm_90."""
    _modules_or_skip()
    everything = os.environ.get("FASTSNN_AOT_ALL", "0") == "1"
    specs = [to_json(v, p) for v, p in selection(everything)]
    t0 = time.perf_counter()
    rc, out = run_in_subprocess(specs, default_jobs(), str(tmp_path),
                                timeout=None if everything else 900)
    print(out)
    assert rc == 0 and "0 failed" in out, out[-6000:]
    print(f"test_kernels_compile_for_sm90: {time.perf_counter() - t0:.1f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--specs", help="JSON list of variants to compile (default: select them)")
    ap.add_argument("--all", action="store_true", help="every variant, not the pairwise cover")
    ap.add_argument("--profiles", default=",".join(PROFILES),
                    help="integer profiles, comma-separated (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=default_jobs())
    args = ap.parse_args()
    if args.specs:
        with open(args.specs) as f:
            specs = json.load(f)
    else:
        profiles = tuple(args.profiles.split(","))
        assert set(profiles) <= set(PROFILES), profiles
        specs = [to_json(v, p) for v, p in selection(args.all, profiles)]
    if "TRITON_CACHE_DIR" in os.environ:
        failures = compile_all(specs, args.jobs)
    else:  # a fresh cache: every variant really compiles
        with tempfile.TemporaryDirectory(prefix="fastsnn-aot-") as cache:
            os.environ["TRITON_CACHE_DIR"] = cache
            failures = compile_all(specs, args.jobs)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    os.environ.pop("TRITON_INTERPRET", None)  # the compiler needs @triton.jit kernels
    main()
