"""The CPU buffer pool (csrc/common/cpu_pool.cpp): pooled outputs behave like any CPU tensor,
idle memory is bounded, malformed settings raise. Settings are read once per process, so every
test that sets FASTSNN_CPU_POOL / FASTSNN_CPU_POOL_MB runs a Python subprocess."""

import copy
import io
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

import fastsnn
from fastsnn import _backends

pytestmark = pytest.mark.skipif(not _backends.extension_available(),
                                reason="fastsnn._C is not built")

MiB = 1 << 20


def pooled_output(T=200, B=8, N=1024):
    """A fused CPU output of B*T*N float32 (6.25 MiB at the defaults: pooled, class 8 MiB)."""
    X = torch.randn(B, T, N)
    S, _ = fastsnn.lif(X, 0.8, 0.9, backend="cpu")
    return S


def cached():
    return torch.ops.fastsnn.cpu_pool_cached_bytes()


def run_py(code, **env):
    """Runs `code` in a fresh interpreter with the pool settings in `env` (unset when None)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("FASTSNN_CPU_POOL")}
    e.update({k: v for k, v in env.items() if v is not None})
    prelude = "import torch, fastsnn\nfrom test_cpu_pool import pooled_output, cached, MiB\n"
    e["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), e.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=e,
                          capture_output=True, text=True, timeout=300)


# ---- pooled outputs are ordinary tensors ---------------------------------------------------

def test_outputs_are_resizable_larger_then_readable_and_writable():
    S = pooled_output()
    ref = S.clone()
    n = S.numel()
    S.resize_(n * 3)  # beyond the block's size class
    assert torch.equal(S[:n], ref.reshape(-1))
    S[n:] = 2.0
    assert S[n:].sum().item() == 2.0 * 2 * n
    S.resize_(10)
    assert torch.equal(S, ref.reshape(-1)[:10])
    S.resize_(0)
    S.resize_(n * 2)
    S.fill_(1.0)
    assert S.sum().item() == 2 * n


def test_storage_resize_and_sharing():
    S = pooled_output()
    ref = S.clone()
    view = S.view(-1)
    st = S.untyped_storage()
    st.resize_(st.nbytes() * 2)
    assert S.untyped_storage().data_ptr() == view.untyped_storage().data_ptr()
    assert torch.equal(view[:ref.numel()], ref.reshape(-1))
    S.add_(1)  # the view shares the storage
    assert torch.equal(view[:ref.numel()], ref.reshape(-1) + 1)

    other = torch.empty(0)
    other.set_(S.untyped_storage(), 0, S.shape, S.stride())
    assert torch.equal(other, S) and other.data_ptr() == S.data_ptr()
    S.set_(torch.zeros(5))
    assert S.sum().item() == 0.0 and torch.equal(other, ref + 1)  # other keeps the block alive
    t = torch.tensor([], dtype=S.dtype)
    t.set_(other)
    t.resize_(other.numel() + 100)
    assert torch.equal(t.view(-1)[:other.numel()], (ref + 1).reshape(-1))


def test_outputs_serialize_pickle_and_copy():
    S = pooled_output()
    buf = io.BytesIO()
    torch.save({"S": S, "view": S[1:3]}, buf)
    buf.seek(0)
    d = torch.load(buf)
    assert torch.equal(d["S"], S) and torch.equal(d["view"], S[1:3])
    assert torch.equal(pickle.loads(pickle.dumps(S)), S)
    assert torch.equal(copy.deepcopy(S), S)
    n = S.numpy()
    assert n.shape == tuple(S.shape) and float(n.sum()) == S.sum().item()


def test_share_memory_keeps_values_and_releases_the_block():
    torch.ops.fastsnn.empty_cache()
    S = pooled_output()
    ref = S.clone()
    S.share_memory_()
    assert S.is_shared() and torch.equal(S, ref)
    assert cached() > 0  # the pooled block went back when the storage moved to shared memory
    torch.ops.fastsnn.empty_cache()


def test_resize_returns_the_old_block_and_it_is_reused():
    torch.ops.fastsnn.empty_cache()
    S = pooled_output()
    p = S.data_ptr()
    S.resize_(S.numel() * 4)  # new memory elsewhere; the old block is idle now
    assert S.data_ptr() != p and cached() >= 8 * MiB
    S2 = pooled_output()
    assert S2.data_ptr() == p
    del S, S2
    torch.ops.fastsnn.empty_cache()
    assert cached() == 0


def test_variable_lengths_share_a_size_class():
    torch.ops.fastsnn.empty_cache()
    S = pooled_output(T=200)  # 6.25 MiB -> 8 MiB class
    p = S.data_ptr()
    del S
    assert cached() == 8 * MiB
    S = pooled_output(T=250)  # 7.8 MiB: the same class, the same block
    assert S.data_ptr() == p and cached() == 0
    del S
    S = pooled_output(T=180)  # 5.6 MiB -> 6 MiB class: not that block
    assert cached() == 8 * MiB
    del S
    torch.ops.fastsnn.empty_cache()


# ---- the same in fresh processes, under each setting (nothing may crash) -------------------

ABUSE = """
import io, pickle
S = pooled_output()
ref = S.clone()
n = S.numel()
S.resize_(n * 3); S[n:] = 1; assert torch.equal(S[:n], ref.reshape(-1)); S.sum()
S.resize_(0); S.resize_(n); S.fill_(3); assert S.sum().item() == 3 * n
T = pooled_output(); T.untyped_storage().resize_(0); T.untyped_storage().resize_(T.numel() * 4)
T.fill_(1); assert T.sum().item() == T.numel()
U = pooled_output(); W = torch.empty(0); W.set_(U); del U; W.resize_(W.numel() * 2); W.sum()
buf = io.BytesIO(); torch.save(W, buf); buf.seek(0); assert torch.equal(torch.load(buf), W)
assert torch.equal(pickle.loads(pickle.dumps(W)), W)
V = pooled_output(); V.share_memory_(); V.sum()
del S, T, W, V
fastsnn.empty_cache()
print("ok", cached())
"""


@pytest.mark.parametrize("env", [{}, {"FASTSNN_CPU_POOL": "0"}, {"FASTSNN_CPU_POOL_MB": "0"},
                                 {"FASTSNN_CPU_POOL": "1", "FASTSNN_CPU_POOL_MB": "8"}],
                         ids=["default", "off", "cap0", "cap8"])
def test_resize_pickle_share_in_subprocess(env):
    r = run_py(ABUSE, **env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok", "0"]


# ---- bounded idle memory -----------------------------------------------------------------

def test_default_cap_is_256_mib():
    r = run_py("""
        outs = [pooled_output(T=1000) for _ in range(10)]  # 31.25 MiB each -> 32 MiB class
        del outs
        print(cached())
        """)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == 256 * MiB


def test_cap_keeps_the_most_recently_freed_blocks():
    r = run_py("""
        a = pooled_output(T=200)   # 8 MiB class
        b = pooled_output(T=300)   # 9.4 MiB -> 10 MiB class
        pa, pb = a.data_ptr(), b.data_ptr()
        del a
        assert cached() == 8 * MiB
        del b  # 8 + 10 > 16: a's block (freed earlier) goes
        assert cached() == 10 * MiB, cached()
        c = pooled_output(T=300)
        assert c.data_ptr() == pb and cached() == 0
        big = pooled_output(T=1000)  # 32 MiB class, over the cap: not kept
        del big
        assert cached() == 0
        print("ok")
        """, FASTSNN_CPU_POOL_MB="16")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_pool_off_caches_nothing():
    r = run_py("""
        S = pooled_output(); S.add_(1); del S
        print(cached())
        """, FASTSNN_CPU_POOL="0")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == 0


# ---- malformed settings --------------------------------------------------------------------

BAD = [("FASTSNN_CPU_POOL_MB", "-1"), ("FASTSNN_CPU_POOL_MB", "abc"),
       ("FASTSNN_CPU_POOL_MB", "1e3"), ("FASTSNN_CPU_POOL_MB", "12MB"),
       ("FASTSNN_CPU_POOL_MB", "99999999999999999999999"),
       ("FASTSNN_CPU_POOL_MB", str(1 << 44)),  # bytes would overflow int64
       ("FASTSNN_CPU_POOL", "-1"), ("FASTSNN_CPU_POOL", "yes"), ("FASTSNN_CPU_POOL", "2")]


@pytest.mark.parametrize("name,value", BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_malformed_setting_raises_naming_the_variable(name, value):
    r = run_py("""
        for make in (lambda: fastsnn.lif(torch.randn(2, 3, 4), 0.8, 0.9, backend="cpu"),
                     pooled_output):
            try:
                make()
            except RuntimeError as e:
                print("raised:", str(e).splitlines()[0])
            else:
                print("no error")
        """, **{name: value})
    assert r.returncode == 0, r.stderr  # an exception, not an abort
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all(l.startswith("raised:") and name in l for l in lines), r.stdout
    assert repr(value)[1:-1] in r.stdout


@pytest.mark.parametrize("name,value", [("FASTSNN_CPU_POOL_MB", " 64 "), ("FASTSNN_CPU_POOL", ""),
                                        ("FASTSNN_CPU_POOL_MB", "0"), ("FASTSNN_CPU_POOL", "1")])
def test_wellformed_settings_accepted(name, value):
    r = run_py("S = pooled_output(); del S; print('ok')", **{name: value})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
