"""The GPU-machine tooling, checked on any machine: the --simulate-gpu switch of
tests/conftest.py, and scripts/gpu_check.sh --dry-run (every step of the GPU check that needs
no GPU: syntax, arguments, imports, the test selection, the benchmark command on the CPU, the
summary and the tarball)."""

import os
import subprocess
import sys
import tarfile

import pytest
import torch

import fastsnn
from fastsnn import _backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.sh")
REAL_CUDA = getattr(torch.cuda.is_available, "__wrapped__", torch.cuda.is_available)()
STEPS = ("syntax", "build", "import", "tests-cuda", "tests-triton", "tests-triton-rlif",
         "memcheck", "racecheck", "bench", "bench-rlif")


# ---------------------------------------------------------------- --simulate-gpu

def test_simulated_gpu_machine(simulated_gpu):
    """Under --simulate-gpu (test_simulate_gpu_switch starts it): backend selection as on a
    GPU machine with a CUDA build, in this process and in subprocesses."""
    if not simulated_gpu:
        pytest.skip("runs under --simulate-gpu (test_simulate_gpu_switch starts it)")
    assert torch.cuda.is_available() and torch.cuda.device_count() == 1
    assert not torch.cuda.is_available.__wrapped__()  # torch's own code sees the real machine
    assert "TRITON_INTERPRET" not in os.environ
    avail = fastsnn.available_backends()
    assert avail[-1] == "torch"
    assert ("cuda" in avail) == _backends.extension_available()
    x = torch.zeros(2, 3, 4)
    assert _backends.resolve("auto", x) == ("cpu" if _backends.extension_available() else "torch")
    if _backends.triton_available():  # compiled for a GPU, not interpreted: CUDA tensors only
        assert avail[:2] in (["cuda", "triton"], ["triton", "torch"])
        with pytest.raises(RuntimeError, match="backend='triton' runs on CUDA tensors"):
            _backends.resolve("triton", x)
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available(), "
                          "torch.cuda.device_count())"], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["True", "1"], out.stderr[-2000:]


@pytest.mark.skipif(REAL_CUDA, reason="--simulate-gpu is for machines without a GPU")
@pytest.mark.parametrize("how", ["flag", "env"])
def test_simulate_gpu_switch(simulated_gpu, how):
    if simulated_gpu:
        pytest.skip("already simulating")
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTSNN_TEST_SIMULATE_GPU", "TRITON_INTERPRET")}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
            "tests/test_gpu_check.py::test_simulated_gpu_machine"]
    if how == "flag":
        args.append("--simulate-gpu")
    else:
        env["FASTSNN_TEST_SIMULATE_GPU"] = "1"
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    # passed, not skipped: the test saw the simulation
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]


# ---------------------------------------------------------------- scripts/gpu_check.sh

def _gpu_check(*args, timeout=600):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("OUT", None)
    return subprocess.run(["bash", SCRIPT, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_gpu_check_arguments():
    assert _gpu_check("--help").returncode == 0
    for bad in (["--bogus"], ["--budget", "soon"], ["--out"]):
        res = _gpu_check(*bad)
        assert res.returncode == 2 and "gpu_check.sh:" in res.stderr, (bad, res.stderr)


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "out"
    res = _gpu_check("--dry-run", "--out", str(out))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    # what comes back from the device machine: two files, the summary also printed last
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check_logs.tar.gz", "summary.md"]
    summary = (out / "summary.md").read_text()
    assert res.stdout.rstrip().endswith(summary.rstrip())
    lines = summary.rstrip().splitlines()
    table = lines[lines.index("| step | result | s | note |"):]
    assert len(table) == 2 + len(STEPS)  # the step table comes last
    rows = {ln.split(" | ")[0].lstrip("| "): ln.split(" | ") for ln in table[2:]}
    assert list(rows) == list(STEPS)
    assert all(r[1] == "ok" for r in rows.values()), table
    for name in ("tests-cuda", "tests-triton", "tests-triton-rlif"):  # a real selection
        assert " tests collected" in rows[name][3] and not rows[name][3].startswith("0"), rows[name]
    assert "forward+backward runs" in rows["memcheck"][3]
    assert "| lif | fwdbwd | float32 | 2,8,16 |" in summary  # the benchmark table
    with tarfile.open(out / "gpu_check_logs.tar.gz") as tar:
        names = set(tar.getnames())
    assert {f"logs/{s}.log" for s in STEPS} <= names
    assert {"logs/env.log", "logs/summary.md", "bench/results.json",
            "bench_rlif/results.json"} <= names
