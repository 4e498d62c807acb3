"""The CUDA kernels of fastsnn executed on the CPU: build and drive the host emulation.

``library()`` compiles the checkout's real kernel sources (csrc/lif/lif_cuda.cu,
csrc/li/li_cuda.cu, csrc/rlif/rlif_cuda.cu, with the launchers that pick grid, block, shared
memory and lane width) with the host C++ compiler and csrc/emu/cuda_emu.h forced in, plus the
emulation runtime (csrc/emu/emu_runtime.cpp) and its C entry points (csrc/emu/emu_ops.cpp),
into one shared library cached under build/cuda_emu/<content hash>/: any change to csrc/ is
rebuilt and tested. The kernel units are compiled with -fsanitize=thread, whose callbacks are
the runtime's race and bounds checker (csrc/emu/README.md).

``OPS[name]`` are the emulated ops with the schemas of torch.ops.fastsnn.<name> (declared in
csrc/<op>/<op>.cpp) on CPU tensors: each checks nothing the C++ host entry would not,
allocates its outputs as the CUDA host entry does (poisoned with NaN, so an element a kernel
never writes fails every comparison), registers every input (read-only) and output (writable) with the checker, runs the
launcher, and raises ``EmulationError`` with the checker's finding, symbolised to function,
file and line, when there is one.

    python tests/cuda_emu.py          # builds the library and prints where it is
"""

import ctypes
import hashlib
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import threading

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
CACHE = ROOT / "build" / "cuda_emu"
KERNEL_UNITS = ("lif/lif_cuda.cu", "li/li_cuda.cu", "rlif/rlif_cuda.cu")
CXX = os.environ.get("CXX", "g++")
# -O1 keeps the build short; -fsanitize=thread (compile only) calls the checker before every
# access; -ffp-contract=off: no fused multiply-add, as nvcc --fmad=false builds the GPU code.
KERNEL_FLAGS = ["-std=c++17", "-x", "c++", "-O1", "-g", "-fPIC", "-fsanitize=thread",
                "-ffp-contract=off", "-Wno-unknown-pragmas",
                "-include", str(CSRC / "emu" / "cuda_emu.h"), "-I", str(CSRC / "emu" / "include")]
HOST_FLAGS = ["-std=c++17", "-O2", "-g", "-fPIC", "-DFASTSNN_WITH_CUDA",
              "-I", str(CSRC / "emu" / "include")]
LINK_FLAGS = ["-shared", "-Wl,-z,defs", "-Wl,-Bsymbolic", "-ldl"]

IO = {torch.float64: 0, torch.float32: 1, torch.bfloat16: 2, torch.float16: 3}

# The emulated devices: an H100/H200 (the GPU this project targets), and a small one whose
# shared memory holds only a part of V, the state or the gI buffers, with few multiprocessors
# (more batch rows per block), so those launch plans run on small sizes too.
DEVICES = {"h200": (132, 232448), "small-smem": (4, 6144), "tiny-smem": (2, 2048)}


class EmulationError(RuntimeError):
    """A finding of the emulation's checker, or an error the launcher raised."""


def compiler_available():
    return shutil.which(CXX) is not None and shutil.which("addr2line") is not None


def _digest(extra_sources=()):
    h = hashlib.sha256()
    files = sorted(p for p in CSRC.rglob("*") if p.is_file())
    for p in list(files) + [pathlib.Path(s) for s in extra_sources]:
        h.update(str(p).encode())
        h.update(p.read_bytes())
    ver = subprocess.run([CXX, "--version"], capture_output=True, text=True).stdout
    h.update(" ".join(KERNEL_FLAGS + HOST_FLAGS + LINK_FLAGS + [ver]).encode())
    return h.hexdigest()[:16]


def _compile_all(jobs, out_dir):
    """jobs: [(cmd, log name)]; at most two compilers at once (2-core CI)."""
    running, failed = [], []
    jobs = list(jobs)
    while jobs or running:
        while jobs and len(running) < max(1, min(2, os.cpu_count() or 1)):
            cmd, name = jobs.pop(0)
            running.append((subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True), cmd, name))
        proc, cmd, name = running.pop(0)
        out, _ = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"{name}: {' '.join(cmd)}\n{out}")
    if failed:
        raise EmulationError("building the CUDA emulation failed:\n" + "\n".join(failed))


def build(extra_kernel_sources=(), name="fastsnn_cuda_emu", with_ops=True):
    """Compiles (or finds in the cache) the emulation library: the fastsnn kernels and their
    entry points when with_ops, plus extra .cu files of a test's own; returns its path."""
    extra = [str(pathlib.Path(s).resolve()) for s in extra_kernel_sources]
    out_dir = CACHE / f"{name}-{_digest(extra)}"
    lib = out_dir / f"lib{name}.so"
    if lib.exists():
        return lib
    tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    units = [str(CSRC / u) for u in KERNEL_UNITS] if with_ops else []
    jobs, objs = [], []
    for i, src in enumerate(units + extra):
        obj = tmp / f"k{i}_{pathlib.Path(src).stem}.o"
        jobs.append(([CXX, *KERNEL_FLAGS, "-c", src, "-o", str(obj)], src))
        objs.append(str(obj))
    host = [CSRC / "emu" / "emu_runtime.cpp"] + ([CSRC / "emu" / "emu_ops.cpp"] if with_ops else [])
    for src in host:
        obj = tmp / f"h_{src.stem}.o"
        jobs.append(([CXX, *HOST_FLAGS, "-c", str(src), "-o", str(obj)], str(src)))
        objs.append(str(obj))
    _compile_all(jobs, tmp)
    _compile_all([([CXX, *objs, "-o", str(tmp / lib.name), *LINK_FLAGS], "link")], tmp)
    if not out_dir.exists():
        tmp.rename(out_dir)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return lib


_LOCK = threading.Lock()
_LIBS = {}


def load(path):
    with _LOCK:
        if path not in _LIBS:
            lib = ctypes.CDLL(str(path))
            lib.emu_take_report.restype = ctypes.c_char_p
            lib.emu_register_buffer.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
                                                ctypes.c_int]
            lib.emu_stats.argtypes = [ctypes.POINTER(ctypes.c_longlong)]
            lib.emu_last_launch.argtypes = [ctypes.POINTER(ctypes.c_longlong)]
            if hasattr(lib, "emu_layout"):
                lib.emu_layout.restype = ctypes.c_char_p
                lib.emu_rlif_bwd_workspace.restype = ctypes.c_longlong
            _LIBS[path] = lib
        return _LIBS[path]


def library():
    """The fastsnn kernels' emulation library (built on first use)."""
    return load(build())


def set_device(lib, device):
    sms, smem = DEVICES[device]
    lib.emu_set_device(sms, smem)


def stats(lib):
    """(launches, blocks, threads, checked accesses, barriers, warp collectives) so far."""
    out = (ctypes.c_longlong * 6)()
    lib.emu_stats(out)
    return tuple(out)


def last_launch(lib):
    """(grid.x, block.x, dynamic shared-memory bytes) of the last launch."""
    out = (ctypes.c_longlong * 3)()
    lib.emu_last_launch(out)
    return tuple(out)


def launched_kernels(lib):
    """Library offsets of every kernel launched so far."""
    out = (ctypes.c_longlong * 4096)()
    n = lib.emu_launched_kernels(out, len(out))
    return set(out[:min(n, len(out))])


def kernel_symbols(path, pattern=r"_(fwd|bwd)_kernel<"):
    """{library offset: demangled name} of the __global__ functions compiled into the library."""
    out = subprocess.run(["nm", "-C", "--defined-only", str(path)], capture_output=True,
                         text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW" and re.search(pattern, parts[2]):
            syms[int(parts[0], 16)] = parts[2]
    return syms


# ---- Reports ---------------------------------------------------------------------------------

_SYMS = {}


def _symbolise(kind, lib, off):
    key = (kind, lib, off)
    if key not in _SYMS:
        addr = off - 1 if kind == "code" else off  # a return address: the call is just before
        try:
            out = subprocess.run(["addr2line", "-f", "-C", "-i", "-e", lib, hex(addr)],
                                 capture_output=True, text=True, timeout=60).stdout.split("\n")
            pairs = [(out[i], out[i + 1]) for i in range(0, len(out) - 1, 2) if out[i]]
            if kind == "func":
                text = pairs[0][0] if pairs else hex(off)
            else:
                # innermost location first, then the functions it was inlined into
                text = " <- ".join(f"{os.path.relpath(loc, ROOT) if loc.startswith('/') else loc}"
                                   f" ({fn[:90]})" for fn, loc in pairs[:3])
        except (OSError, subprocess.SubprocessError):
            text = f"{lib}+{hex(off)}"
        _SYMS[key] = text or hex(off)
    return _SYMS[key]


def symbolise(report):
    return re.sub(r"\{(code|func):([^:}]*):0x([0-9a-f]+)\}",
                  lambda m: _symbolise(m.group(1), m.group(2), int(m.group(3), 16)), report)


def take_report(lib):
    return symbolise(lib.emu_take_report().decode())


# ---- Buffers and calls -----------------------------------------------------------------------

def span(t):
    """(address, bytes) of the memory a tensor's elements occupy (its view, not its storage)."""
    if t.numel() == 0:
        return None
    last = sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return t.data_ptr(), (last + 1) * t.element_size()


def call(lib, fn, params, io, inputs, outputs):
    """Registers the buffers, runs lib.fn(params, io), raises EmulationError on a finding."""
    lib.emu_clear_buffers()
    lib.emu_take_report()
    for writable, group in ((0, inputs), (1, outputs)):
        for name, t in group.items():
            if t is not None and (sp := span(t)) is not None:
                lib.emu_register_buffer(name.encode(), sp[0], sp[1], writable)
    err = ctypes.create_string_buffer(4096)
    rc = getattr(lib, fn)(params, io, err, len(err))
    report = take_report(lib)
    lib.emu_clear_buffers()
    if rc != 0 or report:
        raise EmulationError(f"{fn}: {err.value.decode()}\n{report}".strip())


def poisoned(shape, dtype, like=None):
    t = torch.empty_like(like, dtype=dtype) if like is not None else torch.empty(shape, dtype=dtype)
    if t.is_floating_point():
        t.fill_(float("nan"))
    else:
        t.fill_(0xFF)
    return t


class Layout:
    """The Params structs of csrc/common/params.h as laid out by the compiler (emu_layout)."""

    def __init__(self, text):
        self.structs = {}
        for line in text.splitlines():
            parts = line.split()
            if not line.startswith(" "):
                cur = self.structs[parts[0]] = {"size": int(parts[1]), "fields": {}}
            else:
                cur["fields"][parts[0]] = (int(parts[1]), parts[2])

    FMT = {"i64": "q", "i32": "i", "bool": "?", "double": "d", "ptr": "Q"}

    def pack(self, name, **values):
        st = self.structs[name]
        missing = set(st["fields"]) - set(values)
        extra = set(values) - set(st["fields"])
        if missing or extra:
            raise ValueError(f"{name}: fields missing {sorted(missing)}, unknown {sorted(extra)}")
        buf = bytearray(st["size"])
        for f, (off, kind) in st["fields"].items():
            v = values[f]
            if kind == "struct":
                buf[off:off + len(v)] = v
            else:
                if kind == "ptr":
                    v = 0 if v is None else (v if isinstance(v, int) else ptr(v))
                struct.pack_into(self.FMT[kind], buf, off, v)
        return bytes(buf)


def ptr(t):
    return t.data_ptr() if t is not None and t.numel() else 0


def _layout(lib):
    if not hasattr(lib, "_fastsnn_layout"):
        lib._fastsnn_layout = Layout(lib.emu_layout().decode())
    return lib._fastsnn_layout


def acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def unit_neuron_stride(t):
    """As the host's (csrc/common/host.h): in place with unit neuron stride; otherwise a copy
    of what varies, batch or time dimensions of stride 0 staying expanded."""
    from fastsnn.ops._triton_common import unit_neuron_stride as same

    return same(t)


def maybe_empty(want, shape, dtype):
    return poisoned(shape if want else (0,), dtype)


# ---- The emulated ops (the CUDA branches of the host entries in csrc/*/*.cpp) ---------------

def _lif_fwd_params(L, x, a, b, th, i0, u0, s, iT, uT, us, is_, reset, normalize_input):
    B, T, N = x.shape
    return L.pack("LifFwdParams", B=B, T=T, N=N, x=x, x_sb=x.stride(0), x_st=x.stride(1), s=s,
                  s_sb=s.stride(0), s_st=s.stride(1), alpha=a, beta=b, thr=th, i0=i0, u0=u0,
                  iT=iT, uT=uT, u_saved=us, i_saved=is_, reset=reset,
                  normalize_input=normalize_input)


def _fwd_outputs(x, save_u, save_i):
    B, T, N = x.shape
    acc = acc_dtype(x.dtype)
    return (poisoned(None, x.dtype, like=x), poisoned((B, N), acc), poisoned((B, N), acc),
            maybe_empty(save_u, (B, T, N), acc), maybe_empty(save_i, (B, T, N), acc))


def lif_fwd(x, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u, save_i, *,
            lib=None):
    lib = lib or library()
    x = unit_neuron_stride(x)
    out = _fwd_outputs(x, save_u, save_i)
    if x.shape[0] * x.shape[2] == 0:
        return out
    s, iT, uT, us, is_ = out
    p = _lif_fwd_params(_layout(lib), x, alpha, beta, threshold, i0, u0, s, iT, uT, us, is_,
                        reset, normalize_input)
    call(lib, "emu_lif_fwd", p, IO[x.dtype],
         dict(x=x, alpha=alpha, beta=beta, threshold=threshold, i0=i0, u0=u0),
         dict(s=s, i_T=iT, u_T=uT, u_saved=us, i_saved=is_))
    return out


def rlif_fwd(x, weight_rec, alpha, beta, threshold, i0, u0, reset, normalize_input, save_u,
             save_i, *, lib=None):
    lib = lib or library()
    x = unit_neuron_stride(x)
    out = _fwd_outputs(x, save_u, save_i)
    if x.shape[0] * x.shape[2] == 0:
        return out
    s, iT, uT, us, is_ = out
    L = _layout(lib)
    w = weight_rec.contiguous()
    lp = _lif_fwd_params(L, x, alpha, beta, threshold, i0, u0, s, iT, uT, us, is_, reset,
                         normalize_input)
    # The host's device flag all(isfinite(V)): the kernel forms R_t densely where it is false.
    w_finite = torch.isfinite(w).all().reshape(1)
    p = L.pack("RlifFwdParams", lif=lp, w=w, dense_product=False, w_finite=w_finite)
    call(lib, "emu_rlif_fwd", p, IO[x.dtype],
         dict(x=x, weight_rec=w, w_finite=w_finite, alpha=alpha, beta=beta, threshold=threshold,
              i0=i0, u0=u0),
         dict(s=s, i_T=iT, u_T=uT, u_saved=us, i_saved=is_))
    return out


def _lif_bwd_prepare(L, grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta,
                     threshold, reset, detach_reset, surrogate, scale, normalize_input,
                     param_grads):
    gs = unit_neuron_stride(grad_s)
    B, T, N = gs.shape
    acc = acc_dtype(gs.dtype)
    has_i = i_saved is not None and i_saved.dim() == 3
    if reset == 0 and not detach_reset and not has_i:
        raise ValueError("i_saved is required for the undetached zero reset")
    need_i = has_i and (param_grads or (reset == 0 and not detach_reset))
    gx = poisoned(None, gs.dtype, like=gs)
    gi0, gu0 = poisoned((B, N), acc), poisoned((B, N), acc)
    ga, gb, gt = (maybe_empty(param_grads, (B, N), acc) for _ in range(3))
    p = L.pack("LifBwdParams", B=B, T=T, N=N, gs=gs, gs_sb=gs.stride(0), gs_st=gs.stride(1),
               gx=gx, gx_sb=gx.stride(0), gx_st=gx.stride(1), giT=grad_iT, guT=grad_uT,
               u_saved=u_saved, i_saved=i_saved if need_i else None, i0=i0, u0=u0,
               alpha=alpha, beta=beta, thr=threshold, gi0=gi0, gu0=gu0, galpha=ga, gbeta=gb,
               gthr=gt, reset=reset, surrogate=surrogate, detach_reset=detach_reset,
               normalize_input=normalize_input, scale=scale)
    inputs = dict(grad_s=gs, grad_iT=grad_iT, grad_uT=grad_uT, u_saved=u_saved,
                  i_saved=i_saved if need_i else None, i0=i0, u0=u0, alpha=alpha, beta=beta,
                  threshold=threshold)
    outputs = dict(grad_x=gx, grad_i0=gi0, grad_u0=gu0, grad_alpha=ga, grad_beta=gb,
                   grad_threshold=gt)
    return gs, p, inputs, outputs


def lif_bwd(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta, threshold, reset,
            detach_reset, surrogate, scale, normalize_input, param_grads, *, lib=None):
    lib = lib or library()
    gs, p, inputs, outputs = _lif_bwd_prepare(
        _layout(lib), grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta,
        threshold, reset, detach_reset, surrogate, scale, normalize_input, param_grads)
    if gs.shape[0] * gs.shape[2] != 0:
        call(lib, "emu_lif_bwd", p, IO[gs.dtype], inputs, outputs)
    return tuple(outputs.values())


def rlif_bwd(grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, weight_rec, alpha, beta,
             threshold, reset, detach_reset, detach_recurrent, surrogate, scale,
             normalize_input, param_grads, weight_grad, *, lib=None):
    lib = lib or library()
    L = _layout(lib)
    gs, lp, inputs, outputs = _lif_bwd_prepare(
        L, grad_s, grad_iT, grad_uT, u_saved, i_saved, i0, u0, alpha, beta, threshold, reset,
        detach_reset, surrogate, scale, normalize_input, param_grads)
    B, T, N = gs.shape
    acc = acc_dtype(gs.dtype)
    gw = maybe_empty(weight_grad, (N, N), acc)
    if B * N == 0:
        if weight_grad:
            gw.zero_()
        return (*outputs.values(), gw)
    wt = weight_rec.t().contiguous()
    narrow = gs.dtype not in (torch.float64, torch.float32)
    gi_acc = maybe_empty(weight_grad and narrow, (B, T, N), acc)

    def params(workspace):
        return L.pack("RlifBwdParams", lif=lp, wt=wt, detach_recurrent=detach_recurrent,
                      gw=None, gi_acc=gi_acc, workspace=workspace)

    err = ctypes.create_string_buffer(4096)
    ws = lib.emu_rlif_bwd_workspace(params(None), IO[gs.dtype], err, len(err))
    if ws < 0:
        raise EmulationError(f"emu_rlif_bwd_workspace: {err.value.decode()}")
    workspace = poisoned((max(ws, 0),), torch.uint8)
    call(lib, "emu_rlif_bwd", params(workspace if ws > 0 else None), IO[gs.dtype],
         dict(inputs, weight_rec_t=wt), dict(outputs, gi_acc=gi_acc, workspace=workspace))
    if weight_grad and T == 0:
        gw.zero_()
    elif weight_grad:  # the host's product after the scan, dV = S_prevᵀ @ gI
        u_prev = torch.cat([u0.unsqueeze(1), u_saved[:, :T - 1]], 1)
        s_prev = (u_prev - threshold > 0).to(acc)
        g = gi_acc if narrow else outputs["grad_x"].to(acc)
        torch.mm(s_prev.reshape(B * T, N).t(), g.reshape(B * T, N), out=gw)
    return (*outputs.values(), gw)


def li_fwd(x, alpha, beta, i0, u0, normalize_input, save_state, *, lib=None):
    lib = lib or library()
    x = unit_neuron_stride(x)
    B, T, N = x.shape
    acc = acc_dtype(x.dtype)
    u = poisoned(None, x.dtype, like=x)
    iT, uT = poisoned((B, N), acc), poisoned((B, N), acc)
    is_, us = maybe_empty(save_state, (B, T, N), acc), maybe_empty(save_state, (B, T, N), acc)
    if B * N == 0:
        return u, iT, uT, is_, us
    # li fills the lif block: s holds U, no threshold, reset none (csrc/common/params.h)
    p = _layout(lib).pack("LifFwdParams", B=B, T=T, N=N, x=x, x_sb=x.stride(0),
                          x_st=x.stride(1), s=u, s_sb=u.stride(0), s_st=u.stride(1),
                          alpha=alpha, beta=beta, thr=None, reset=2, i0=i0, u0=u0, iT=iT, uT=uT,
                          i_saved=is_ if save_state else None,
                          u_saved=us if save_state else None, normalize_input=normalize_input)
    call(lib, "emu_li_fwd", p, IO[x.dtype], dict(x=x, alpha=alpha, beta=beta, i0=i0, u0=u0),
         dict(u=u, i_T=iT, u_T=uT, i_saved=is_, u_saved=us))
    return u, iT, uT, is_, us


def li_bwd(grad_u, grad_iT, grad_uT, i_saved, u_saved, i0, u0, alpha, beta, normalize_input,
           param_grads, *, lib=None):
    lib = lib or library()
    gu = unit_neuron_stride(grad_u)
    B, T, N = gu.shape
    acc = acc_dtype(gu.dtype)
    gx = poisoned(None, gu.dtype, like=gu)
    gi0, gu0 = poisoned((B, N), acc), poisoned((B, N), acc)
    ga, gb = maybe_empty(param_grads, (B, N), acc), maybe_empty(param_grads, (B, N), acc)
    if B * N == 0:
        return gx, gi0, gu0, ga, gb
    # li fills the lif block: gs holds dL/dU, no threshold, reset none (csrc/common/params.h)
    p = _layout(lib).pack("LifBwdParams", B=B, T=T, N=N, gs=gu, gs_sb=gu.stride(0),
                          gs_st=gu.stride(1), gx=gx, gx_sb=gx.stride(0), gx_st=gx.stride(1),
                          thr=None, gthr=None, reset=2, surrogate=0, detach_reset=True, scale=0.0,
                          giT=grad_iT, guT=grad_uT,
                          i_saved=i_saved if param_grads else None,
                          u_saved=u_saved if param_grads else None, i0=i0, u0=u0,
                          alpha=alpha, beta=beta, gi0=gi0, gu0=gu0, galpha=ga, gbeta=gb,
                          normalize_input=normalize_input)
    call(lib, "emu_li_bwd", p, IO[gu.dtype],
         dict(grad_u=gu, grad_iT=grad_iT, grad_uT=grad_uT,
              i_saved=i_saved if param_grads else None, u_saved=u_saved if param_grads else None,
              i0=i0, u0=u0, alpha=alpha, beta=beta),
         dict(grad_x=gx, grad_i0=gi0, grad_u0=gu0, grad_alpha=ga, grad_beta=gb))
    return gx, gi0, gu0, ga, gb


OPS = {"lif_fwd": lif_fwd, "lif_bwd": lif_bwd, "li_fwd": li_fwd, "li_bwd": li_bwd,
       "rlif_fwd": rlif_fwd, "rlif_bwd": rlif_bwd}


if __name__ == "__main__":
    path = build(*sys.argv[1:2])
    print(path)
