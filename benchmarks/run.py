"""fastsnn's main benchmark: every available backend against the pure-PyTorch reference.

    python -m benchmarks.run                 # default sweep on the best device (cuda, else cpu)
    python -m benchmarks.run --quick         # tiny sizes, seconds; a smoke test
    python -m benchmarks.run --ops lif --modes fwdbwd --sizes 32,500,1024 --backends cpu
    python -m benchmarks.run --ops rlif --modes fwdbwd --sizes "250,100,100;64,500,512"
    python -m benchmarks.run --ops lif --sizes 250,100,100 --backends cpu --busy 1
    python -m benchmarks.run --ops lif --modes fwdbwd --sizes 32,500,1024 --grad expanded

Cases are op (lif, rlif, li) x dtype x size (B, T, N) x mode x provider. Modes: "fwd" is inference,
run under torch.no_grad() (the fused kernels save nothing then); "fwdbwd" is a fresh leaf input
that requires grad, the forward, and out.backward(G) with a fixed random upstream gradient G
(the final state is unused; --grad expanded makes G the stride-0 ones that out.sum().backward()
passes). --busy K runs K processes that each keep a core busy while timing, as a DataLoader
worker or a second job would. Providers: "torch" (the eager reference, the baseline),
"torch-compile" (the reference under torch.compile, compiled afresh per case: off on CPU
unless --compile-ref or named in --backends, since compiling the T-step unrolled loop is slow;
on CUDA on for T <= --compile-max-t, 256), and each fused backend of available_backends() for
the device. --backends picks among these; the eager reference always runs, as the baseline.
Inputs: X ~ N(0.15, 0.3^2), seeded; alpha=0.8, beta=0.9, threshold=1.0, fastsnn's defaults
otherwise (about 1.5% of neuron-steps spike). rlif: V ~ N(0, 0.5^2/N), one seeded leaf per N that
requires grad, so fwdbwd includes dV (and the correctness gate compares dX and dV together).

Reading the table (also in results.md / results.json, and plotted in speedup.png):
- time ms: median over the reps (results.json also has the 20%/80% quantiles and rep count).
- min / max ms, IQR/med: the spread of the reps: fastest and slowest rep, and the interquartile
  range over the median (results.json: min_ms, max_ms, q25_ms, q75_ms, iqr_rel). A case is "noisy" when IQR/median > NOISY_IQR (0.25): half of its reps lie in a band
  wider than a quarter of the median, which a quiet machine does not produce after warm-up (a
  single slow rep, e.g. a page fault, moves max but not the IQR, so max/min is shown and not
  used). Noisy rows keep status "ok" in results.json with "noisy": true; the table's status says
  "ok, noisy", a note under the table gives the spread, and a warning goes to stderr.
  CPU: time.perf_counter around each call after warm-up, inputs rotated over enough copies to
  leave the cache. CUDA: CUDA events around each call, L2 flushed before each, one sync at end.
- speedup vs torch: eager reference time / this time, same op/mode/size/dtype, same run. A
  speedup whose own timing or whose reference timing is noisy is marked "noisy" (results.json:
  speedup_noisy) and is left out of the summary under the table (and drawn hollow in
  speedup.png).
- neuron-steps/s: B*T*N / time.
- peak mem: CUDA only, max_memory_allocated during one call minus what was allocated before
  it (inputs and G excluded), in MiB.
- saved B/step: bytes of the unique storages the forward packs for the backward (counted with
  torch.autograd.graph.saved_tensors_hooks), per neuron-step. 0 in fwd mode: nothing is saved.
  It includes the (B, N) initial states and per-neuron constants, about 8/T bytes at small T.
- GB/s and % copy (CUDA only): bytes the op must move / time, against a device-to-device copy
  measured at start. Byte model per neuron-step, e = I/O element size, a = state element size
  (4, or 8 for float64): lif fwd 2e (read X, write S); lif fwdbwd 4e + 2a (plus write and read
  the saved membrane U, read G, write dX), the same for rlif (V and its gradient not counted);
  li fwd 2e; li fwdbwd 4e (the readout is linear and
  saves nothing). The (B, N) states are ignored.
- status: "ok"; "MISMATCH" when the provider disagrees with the reference on the same inputs
  (then no time-derived number is reported for it, see below the table for why); "ERROR" when
  it raised (message in results.json).

Correctness gate, before timing each non-reference provider: lif spikes by mismatch rate (the
fraction of elements that differ); li output and all input gradients (fwdbwd) by relative L2
error ||y - y_ref|| / ||y_ref||. Bounds, per dtype (see TOL): float64 spikes identical, errors
<= 1e-10; float32 mismatch <= 1e-3, li/gradient error <= 1e-4 (lif gradients <= 1e-2: a
membrane within rounding of the threshold may flip a spike, which changes the gradient along
that neuron); bfloat16/float16 I/O (float32 state) mismatch <= 5e-3, li/gradient error <= 2e-2
(bf16) or 5e-3 (fp16), lif gradients <= 5e-2. NaN counts as a mismatch.
"""

import argparse
import contextlib
import datetime
import functools
import importlib.metadata
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch

import fastsnn
from fastsnn.ops import registry

FUSED = ("cpu", "cuda", "triton")

ALPHA, BETA, THRESHOLD = 0.8, 0.9, 1.0
X_MEAN, X_STD, SEED = 0.15, 0.3, 0
DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16,
          "float16": torch.float16}
# dtype: (lif spike mismatch rate, li output and li gradient rel. error, lif gradient rel. error)
TOL = {torch.float64: (0.0, 1e-10, 1e-10), torch.float32: (1e-3, 1e-4, 1e-2),
       torch.bfloat16: (5e-3, 2e-2, 5e-2), torch.float16: (5e-3, 5e-3, 5e-2)}
V_GAIN = 0.5  # rlif: V ~ N(0, V_GAIN^2 / N), seeded per (N, dtype, device)
_WEIGHTS = {}


def weight_rec(N, dtype, device):
    """The recurrent weight of the rlif cases: one leaf per (N, dtype, device) that requires
    grad, so fwdbwd also computes dV, as training does."""
    key = (N, dtype, str(device))
    if key not in _WEIGHTS:
        g = torch.Generator(device=device).manual_seed(SEED + 1)
        w = torch.randn(N, N, generator=g, device=device) * (V_GAIN / math.sqrt(N))
        _WEIGHTS[key] = w.to(torch.float64 if dtype == torch.float64 else torch.float32)
        _WEIGHTS[key].requires_grad_()
    return _WEIGHTS[key]


OPS = {"lif": lambda x, backend: fastsnn.lif(x, ALPHA, BETA, THRESHOLD, backend=backend),
       "rlif": lambda x, backend: fastsnn.rlif(x, weight_rec(x.shape[2], x.dtype, x.device),
                                               ALPHA, BETA, THRESHOLD, backend=backend),
       "li": lambda x, backend: fastsnn.li(x, ALPHA, BETA, backend=backend),
       "adlif": lambda x, backend: fastsnn.adlif(
           x, *ADLIF_PARAMS, THRESHOLD, weight_rec=weight_rec(x.shape[2], x.dtype, x.device),
           backend=backend)}
# adlif (SPEC section 7): tau_u = 20 and tau_w = 150 steps, a = 0.5, b = 1, recurrent, and
# X ~ N(0.9, 1.7^2), about 1% of neuron-steps spiking at the size
ADLIF_PARAMS = (math.exp(-1 / 20), math.exp(-1 / 150), 0.5, 1.0)
X_DIST = {"adlif": (0.9, 1.7)}  # (mean, std) of X per op; X_MEAN, X_STD otherwise
# Extra providers by name: factory(op) -> call(x) -> (out, state). Peers (snnTorch, Norse, ...)
# or, in tests, a deliberately wrong provider.
EXTRA_PROVIDERS = {}
SWEEPS = {  # device: (T sweep at fixed B, N), (B*N sweep at fixed T)
    "cpu": ([(32, T, 1024) for T in (50, 200, 500)],
            [(B, 100, N) for B, N in ((8, 256), (32, 1024), (64, 2048))]),
    "cuda": ([(64, T, 4096) for T in (32, 256, 1024)],
             [(B, 256, N) for B, N in ((16, 1024), (64, 4096), (128, 8192))]),
    "quick": ([(4, T, 64) for T in (8, 32)], [(B, 16, N) for B, N in ((2, 32), (4, 64), (8, 128))]),
}
# rlif's default sizes: the paper's Randman network and a wider layer (the CPU sizes),
# and on CUDA B=256, T=1000, N in {128, 512, 1024}; its per-step N x N product makes the lif
# sweep's N = 1024-2048 cases minutes long on a CPU.
RLIF_SIZES = {"cpu": [(250, 100, 100), (64, 500, 512)],
              "cuda": [(256, 1000, 128), (256, 1000, 512), (256, 1000, 1024)],
              "quick": [(4, 8, 32), (2, 16, 16)]}
# adlif's default size: the SHD-sized recurrent layer
ADLIF_SIZES = {"cpu": [(256, 250, 256)], "cuda": [(256, 1000, 512)], "quick": [(4, 8, 32)]}
OP_SIZES = {"rlif": RLIF_SIZES, "adlif": ADLIF_SIZES}
ROTATE_BYTES = 64 << 20  # CPU: rotate input copies until they span this much memory
COLUMNS = ["op", "mode", "dtype", "B", "T", "N", "provider", "time ms", "speedup vs torch",
           "neuron-steps/s", "peak mem", "saved B/step", "min / max ms", "IQR/med"]
# a timing is noisy when its interquartile range exceeds this fraction of its median
NOISY_IQR = 0.25


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if available, else cpu")
    p.add_argument("--ops", default="lif,rlif,li")
    p.add_argument("--modes", default="fwd,fwdbwd")
    p.add_argument("--dtypes", default="float32", help=f"comma list of {', '.join(DTYPES)}")
    p.add_argument("--sizes", help='"B,T,N;B,T,N" (default: a T sweep and a B*N sweep)')
    p.add_argument("--backends", help="providers to compare with the eager reference, comma "
                   "list (default: torch-compile where enabled, and every fused backend)")
    p.add_argument("--compile-ref", nargs="?", const="on", default="auto",
                   choices=["auto", "on", "off"], help="time the reference under torch.compile; "
                   "auto: when named in --backends, or on CUDA for T <= --compile-max-t; "
                   "the bare flag: always")
    p.add_argument("--compile-max-t", type=int, default=256)
    p.add_argument("--reps", type=int, default=5, help="minimum timed reps per case")
    p.add_argument("--min-time", type=float, default=0.25, help="minimum timed seconds per case")
    p.add_argument("--quick", action="store_true", help="tiny sizes and short timings")
    p.add_argument("--out", default="bench_out", help="directory for results.json/.md, speedup.png")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--busy", type=int, default=0, metavar="K",
                   help="run K other processes that keep a core busy each while timing (a "
                        "DataLoader worker, a second job): how the speedups hold on a shared "
                        "machine")
    p.add_argument("--grad", choices=["dense", "expanded"], default="dense",
                   help="fwdbwd upstream gradient: a random dense tensor, or the expanded ones "
                        "of out.sum().backward() (stride 0)")
    a = p.parse_args(argv)
    if a.busy < 0:
        p.error("--busy: expected a number of processes >= 0")
    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible")
    a.ops, a.modes, dtypes = a.ops.split(","), a.modes.split(","), a.dtypes.split(",")
    for name, vals, ok in (("ops", a.ops, OPS), ("modes", a.modes, ("fwd", "fwdbwd")),
                           ("dtypes", dtypes, DTYPES)):
        bad = [v for v in vals if v not in ok]
        if bad:
            p.error(f"--{name}: unknown {bad}, expected some of {list(ok)}")
    a.dtypes = [DTYPES[d] for d in dtypes]
    a.op_sizes = {}  # rlif and adlif have their own default sizes; --sizes overrides them all
    if a.sizes:
        try:
            a.sizes = [tuple(int(v) for v in s.split(",")) for s in a.sizes.split(";") if s.strip()]
        except ValueError:
            a.sizes = [()]
        if not a.sizes or any(len(s) != 3 or min(s) < 1 for s in a.sizes):
            p.error("--sizes: expected positive B,T,N triples separated by ';'")
    else:
        t_sweep, bn_sweep = SWEEPS["quick" if a.quick else a.device]
        a.sizes = list(dict.fromkeys(t_sweep + bn_sweep))
        a.op_sizes = {op: sizes["quick" if a.quick else a.device]
                      for op, sizes in OP_SIZES.items()}
    a.rlif_sizes = a.op_sizes.get("rlif")
    if a.quick:
        a.reps, a.min_time = min(a.reps, 3), min(a.min_time, 0.02)
    # Fused backends that run on this device; Triton on the CPU only by name (interpreter, slow).
    native = [b for b in fastsnn.available_backends()
              if b != "torch" and (b == "cpu") == (a.device == "cpu")]
    known = ["torch-compile"] + native + list(EXTRA_PROVIDERS) + (
        ["triton"] if a.device == "cpu" and "triton" in fastsnn.available_backends() else [])
    a.compile_named = bool(a.backends) and "torch-compile" in a.backends.split(",")
    if a.backends:
        a.backends = [b for b in a.backends.split(",") if b and b != "torch"]
        bad = [b for b in a.backends if b not in known]
        if bad:
            p.error(f"--backends: {bad} not available on {a.device}; available: {known}")
    else:
        a.backends = ["torch-compile"] + native
    return a


def cpu_isa():
    """What the CPU kernels run on this machine ("base", "avx2", "avx2+avx512"), or None when
    the extension is not built."""
    try:
        return torch.ops.fastsnn.cpu_isa()
    except (AttributeError, RuntimeError):
        return None


def header(device, copy_gbps):
    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                                  cwd=os.path.dirname(__file__)).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    if device == "cuda":
        name = torch.cuda.get_device_name()
    else:
        try:
            with open("/proc/cpuinfo") as f:
                name = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
        except (OSError, StopIteration):
            name = "CPU"
    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = None
    commit = run("git", "rev-parse", "--short", "HEAD")
    if commit and run("git", "status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return {"device": device, "device_name": name, "torch": torch.__version__,
            "cuda": torch.version.cuda, "triton": triton, "fastsnn": fastsnn.__version__,
            "cpu_threads": torch.get_num_threads(), "cpu_isa": cpu_isa(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "git_commit": commit or None,
            "backends": fastsnn.available_backends(), "copy_gbps": copy_gbps}


def copy_bandwidth():
    """GB/s of a 1 GiB device-to-device copy (read + write counted), median of 10."""
    src = torch.empty(1 << 28, device="cuda")
    dst = torch.empty_like(src)
    times = []
    for i in range(13):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        dst.copy_(src)
        e1.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(e0.elapsed_time(e1) / 1e3)
    return 2 * src.nbytes / statistics.median(times) / 1e9


def compile_ref_on(args, T):
    return args.compile_ref == "on" or (args.compile_ref == "auto" and (
        args.compile_named or (args.device == "cuda" and T <= args.compile_max_t)))


def make_call(provider, op):
    """call(x) -> (out, state) for a provider."""
    if provider == "torch":
        return functools.partial(OPS[op], backend="torch")
    if provider == "torch-compile":
        torch._dynamo.reset()  # one compile per case: no recompile limits, no dynamic shapes
        return torch.compile(functools.partial(OPS[op], backend="torch"), dynamic=False)
    if provider in EXTRA_PROVIDERS:
        return EXTRA_PROVIDERS[provider](op)
    return functools.partial(OPS[op], backend=provider)


def run_once(call, x, G, mode):
    """One call as the mode times it: (out, dX or None)."""
    if mode == "fwd":
        with torch.no_grad():
            return call(x)[0], None
    x = x.detach().requires_grad_()  # a fresh leaf: no gradient carried over between reps
    for w in _WEIGHTS.values():
        w.grad = None
    out, _ = call(x)
    out.backward(G)
    return out, x.grad


def all_grads(dx):
    """dX and every rlif weight gradient as one vector, for the correctness gate (not timed)."""
    ws = [w.grad.flatten() for w in _WEIGHTS.values() if w.grad is not None]
    return torch.cat([dx.flatten()] + ws) if ws else dx


def rel_err(y, ref):
    y, ref = y.double(), ref.double()
    return ((y - ref).norm() / ref.norm().clamp_min(1e-300)).item()


def check(op, mode, dtype, out, grad, ref_out, ref_grad):
    """'' when the provider agrees with the reference, else why not."""
    spike_tol, li_tol, lif_grad_tol = TOL[dtype]
    if out.shape != ref_out.shape or out.dtype != ref_out.dtype:
        return (f"output {tuple(out.shape)} {out.dtype}, "
                f"expected {tuple(ref_out.shape)} {ref_out.dtype}")
    if op in ("lif", "rlif", "adlif"):
        rate = (out != ref_out).double().mean().item()
        if not rate <= spike_tol:
            return f"spike mismatch rate {rate:.3g} > {spike_tol:g}"
    else:
        err = rel_err(out, ref_out)
        if not err <= li_tol:
            return f"output rel. error {err:.3g} > {li_tol:g}"
    if mode == "fwdbwd":
        tol = li_tol if op == "li" else lif_grad_tol
        err = rel_err(grad, ref_grad) if grad is not None else math.nan
        if not err <= tol:
            return f"dX rel. error {err:.3g} > {tol:g}"
    return ""


def saved_bytes_per_step(call, x, G, mode):
    """Bytes of unique storages packed for the backward during one forward, per neuron-step."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[(s.data_ptr(), t.device)] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if mode == "fwd":
            with torch.no_grad():
                call(x)
        else:
            call(x.detach().requires_grad_())
    return sum(storages.values()) / x.numel()


def spread(times):
    """The statistics of one case's rep times (ms): median, q20/q80, min/max, q25/q75, the
    IQR over the median, and noisy (IQR/median > NOISY_IQR)."""
    times = list(times)
    med = statistics.median(times)
    if len(times) > 1:
        q = statistics.quantiles(times, n=5)
        q4 = statistics.quantiles(times, n=4, method="inclusive")
    else:
        q, q4 = times * 4, times * 3
    iqr_rel = (q4[2] - q4[0]) / med if med > 0 else 0.0
    return {"time_ms": med, "q20_ms": q[0], "q80_ms": q[3], "min_ms": min(times),
            "max_ms": max(times), "q25_ms": q4[0], "q75_ms": q4[2], "iqr_rel": iqr_rel,
            "reps": len(times), "noisy": iqr_rel > NOISY_IQR}


def time_call(call, xs, G, mode, device, min_reps, min_time):
    """The rep times (ms) of one call, after warm-up; spread() summarizes them."""
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    flush = torch.empty(256 << 20, dtype=torch.int8, device=device) if cuda else None
    t0 = time.perf_counter()
    for i in range(2):
        run_once(call, xs[i % len(xs)], G, mode)
    sync()
    est = (time.perf_counter() - t0) / 2
    reps = int(min(max(min_reps, min_time / max(est, 1e-6)), 10000))
    times = []
    if cuda:
        events = []
        for i in range(reps):
            flush.zero_()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            run_once(call, xs[0], G, mode)
            e1.record()
            events.append((e0, e1))
        sync()
        times = [e0.elapsed_time(e1) for e0, e1 in events]
    else:
        for i in range(reps):
            t0 = time.perf_counter()
            run_once(call, xs[i % len(xs)], G, mode)
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def peak_mib(call, x, G, mode):
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run_once(call, x, G, mode)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def model_bytes_per_step(op, mode, dtype):
    e = torch.empty((), dtype=dtype).element_size()
    a = 8 if dtype == torch.float64 else 4
    if mode == "fwd":
        return 2 * e
    return 4 * e if op == "li" else 4 * e + 2 * a


def cases(args):
    for op in args.ops:
        for dtype in args.dtypes:
            for size in args.op_sizes.get(op, args.sizes):
                for mode in args.modes:
                    for provider in ["torch"] + args.backends:
                        if provider in FUSED and provider not in registry.OPS[op]["backends"]:
                            continue  # the op has no such kernels (yet)
                        if provider != "torch-compile" or compile_ref_on(args, size[1]):
                            yield op, dtype, size, mode, provider


def measure(args, copy_gbps, progress=None):
    rows, inputs, ref = [], {}, {}
    todo = list(cases(args))
    bar = progress(todo, unit="case") if progress else todo
    for op, dtype, (B, T, N), mode, provider in bar:
        dname = str(dtype).replace("torch.", "")
        if progress:
            bar.set_description(f"{op} {mode} {dname} B={B} T={T} N={N} {provider}")
        key = (op, dtype, B, T, N)
        if key not in inputs:  # new op/dtype/size: fresh inputs and reference results
            inputs.clear(), ref.clear()
            g = torch.Generator(device=args.device).manual_seed(SEED)
            mean, std = X_DIST.get(op, (X_MEAN, X_STD))
            X = (torch.randn(B, T, N, generator=g, device=args.device) * std + mean).to(dtype)
            G = torch.randn(B, T, N, generator=g, device=args.device).to(dtype)
            if args.grad == "expanded":  # what out.sum().backward() passes: strides (0, 0, 0)
                G = torch.ones((), dtype=dtype, device=args.device).expand(B, T, N)
            nbuf = 1 if args.device == "cuda" else max(1, min(8, -(-ROTATE_BYTES // X.nbytes)))
            inputs[key] = ([X] + [X.clone() for _ in range(nbuf - 1)], G)
            ref_out, ref_dx = run_once(functools.partial(OPS[op], backend="torch"), X, G,
                                       "fwdbwd")
            ref[key] = (ref_out, all_grads(ref_dx))
        xs, G = inputs[key]
        row = {"op": op, "mode": mode, "dtype": dname, "B": B, "T": T, "N": N,
               "provider": provider, "time_ms": None, "q20_ms": None, "q80_ms": None,
               "reps": None, "min_ms": None, "max_ms": None, "q25_ms": None, "q75_ms": None,
               "iqr_rel": None, "noisy": False, "speedup": None,
               "speedup_noisy": False, "neuron_steps_per_s": None, "peak_mem_mib": None,
               "saved_bytes_per_step": None, "gbps": None, "bw_frac": None,
               "first_call_s": None, "status": "ok", "detail": ""}
        try:
            t0 = time.perf_counter()
            call = make_call(provider, op)
            if provider != "torch":
                out, grad = run_once(call, xs[0], G, mode)
                grad = all_grads(grad) if grad is not None else None
                row["first_call_s"] = time.perf_counter() - t0
                row["detail"] = check(op, mode, dtype, out, grad, *ref[key])
                del out, grad
                if row["detail"]:
                    row["status"] = "MISMATCH"
                    rows.append(row)
                    continue
            row.update(spread(time_call(call, xs, G, mode, args.device, args.reps,
                                        args.min_time)))
            med = row["time_ms"]
            row["neuron_steps_per_s"] = B * T * N / (med / 1e3)
            if args.device == "cuda":
                row["peak_mem_mib"] = peak_mib(call, xs[0], G, mode)
                row["gbps"] = model_bytes_per_step(op, mode, dtype) * B * T * N / med / 1e6
                row["bw_frac"] = row["gbps"] / copy_gbps
            try:
                row["saved_bytes_per_step"] = saved_bytes_per_step(call, xs[0], G, mode)
            except Exception as e:  # e.g. a compiled graph that refuses the hooks
                row["detail"] = f"saved bytes not measured: {type(e).__name__}: {e}"
        except Exception as e:
            row.update(status="ERROR", detail=f"{type(e).__name__}: {e}"[:500])
        rows.append(row)
    for row in rows:  # speedups against the eager reference of the same case
        base = next((r for r in rows if r["provider"] == "torch" and r["status"] == "ok" and all(
            r[k] == row[k] for k in ("op", "mode", "dtype", "B", "T", "N"))), None)
        if row["status"] == "ok" and base and row["time_ms"]:
            row["speedup"] = base["time_ms"] / row["time_ms"]
            row["speedup_noisy"] = bool(row["noisy"] or base["noisy"])
    return rows


def _case(r):
    return (f"{r['provider']} {r['op']} {r['mode']} {r['dtype']} B={r['B']} T={r['T']} "
            f"N={r['N']}")


def noisy_notes(rows):
    """One line per noisy timing: its spread."""
    return [f"{_case(r)}: noisy timing, {r['reps']} reps, min {r['min_ms']:.3g} / median "
            f"{r['time_ms']:.3g} / max {r['max_ms']:.3g} ms, IQR/median {r['iqr_rel']:.2f} > "
            f"{NOISY_IQR:g}" for r in rows if r.get("noisy")]


def summary(rows):
    """Speedup of each provider per op/mode over the rows whose timing (and reference timing)
    is steady: lines "provider op mode dtype: min-max x over n sizes (k noisy left out)"."""
    groups = {}
    for r in rows:
        if r["provider"] != "torch" and r["status"] == "ok" and r.get("speedup"):
            groups.setdefault((r["provider"], r["op"], r["mode"], r["dtype"]), []).append(r)
    lines = []
    for (p, op, mode, dt), rs in groups.items():
        steady = [r["speedup"] for r in rs if not r.get("speedup_noisy")]
        left = len(rs) - len(steady)
        what = (f"{min(steady):.2f}x to {max(steady):.2f}x over {len(steady)} size(s)"
                if steady else "no steady timing")
        lines.append(f"- {p} {op} {mode} {dt}: {what}"
                     + (f" ({left} noisy left out)" if left else ""))
    return lines


def _fmt(v, spec, unit=""):
    return "-" if v is None else format(v, spec) + unit


def _si(v):
    if v is None:
        return "-"
    for scale, s in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:.3g}{s}"
    return f"{v:.3g}"


def markdown(hdr, rows):
    cuda = hdr["device"] == "cuda"
    cols = COLUMNS + (["GB/s", "% copy BW"] if cuda else []) + ["status"]
    lines = [f"# fastsnn benchmark, {hdr['date']}", "",
             f"- device: {hdr['device']} ({hdr['device_name']})" + (
                 f", copy bandwidth {hdr['copy_gbps']:.0f} GB/s" if cuda else ""),
             f"- torch {hdr['torch']}, CUDA {hdr['cuda'] or '-'}, triton {hdr['triton'] or '-'}, "
             f"fastsnn {hdr['fastsnn']} (backends: {', '.join(hdr['backends'])})",
             f"- CPU threads: {hdr['cpu_threads']}, CPU kernels: {hdr.get('cpu_isa') or '-'}; "
             f"git commit: {hdr['git_commit'] or '-'}"
             + (f"; {hdr['busy_processes']} busy process(es) beside it"
                if hdr.get("busy_processes") else "")
             + ("; upstream gradient expanded (stride 0)" if hdr.get("grad") == "expanded"
                else ""), "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["op"], r["mode"], r["dtype"], r["B"], r["T"], r["N"], r["provider"],
                 _fmt(r["time_ms"], ".3f"), _fmt(r["speedup"], ".2f", "x"),
                 _si(r["neuron_steps_per_s"]), _fmt(r["peak_mem_mib"], ".1f", " MiB"),
                 _fmt(r["saved_bytes_per_step"], ".1f")]
        if r.get("speedup_noisy"):
            cells[8] += " noisy"
        cells += [("-" if r.get("min_ms") is None
                   else f"{r['min_ms']:.3f} / {r['max_ms']:.3f}"),
                  _fmt(r.get("iqr_rel"), ".2f")]
        if cuda:
            cells += [_fmt(r["gbps"], ".0f"), _fmt(r["bw_frac"] and 100 * r["bw_frac"], ".0f", "%")]
        status = r["status"] + (", noisy" if r.get("noisy") else "")
        lines.append("| " + " | ".join(str(c) for c in cells + [status]) + " |")
    notes = [f"- {_case(r)}: {r['status']}: {r['detail']}" for r in rows if r["detail"]]
    if notes:
        lines += ["", "Not ok (no speedup is reported for these):" if any(
            r["status"] != "ok" for r in rows) else "Notes:"] + notes
    noisy = noisy_notes(rows)
    if noisy:
        lines += ["", f"Noisy timings (IQR/median > {NOISY_IQR:g}: a loaded machine?); their "
                  "speedups, and those against a noisy reference, are marked noisy and left "
                  "out of the summary:"] + ["- " + n for n in noisy]
    lines += ["", "Summary (speedup vs torch, steady timings only):"] + (
        summary(rows) or ["- no speedups"])
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def busy_processes(k):
    """k processes that each spin on a core until the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main(argv=None):
    args = parse_args(argv)
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    copy_gbps = copy_bandwidth() if args.device == "cuda" else None
    hdr = header(args.device, copy_gbps)
    hdr.update(busy_processes=args.busy, grad=args.grad)
    with busy_processes(args.busy):
        rows = measure(args, copy_gbps, tqdm)
    md = markdown(hdr, rows)
    print(md)
    for n in noisy_notes(rows):
        print("warning:", n, file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"header": hdr, "rows": rows}, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    if not args.no_plot:
        from .plot import plot

        print("wrote", plot(os.path.join(args.out, "results.json"),
                            os.path.join(args.out, "speedup.png")))
    return hdr, rows


if __name__ == "__main__":
    main()
