"""Smoke tests of the benchmark runner (benchmarks/run.py) on tiny sizes.

The runner must write results.json, results.md and the plot, and it must refuse a speedup to a
provider whose output or gradient disagrees with the reference.
"""

import json
import sys
import time
from pathlib import Path

import pytest
import torch

import fastsnn

# benchmarks/ is a top-level package of the source tree, not of the installed fastsnn.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import run  # noqa: E402

SIZES = "2,8,16;2,16,16;4,8,32"  # a T sweep (B*N = 32) and a B*N sweep (T = 8)
# The CPU run, pinned: on a GPU machine the runner's default device is cuda.
FAST = ["--device", "cpu", "--quick", "--sizes", SIZES, "--reps", "2", "--min-time", "0.001"]
FUSED = [b for b in fastsnn.available_backends() if b == "cpu"]


def _run(tmp_path, *extra):
    hdr, rows = run.main(FAST + ["--out", str(tmp_path)] + list(extra))
    return hdr, rows, json.loads((tmp_path / "results.json").read_text())


def test_quick_run_writes_json_markdown_and_plot(tmp_path):
    hdr, rows, data = _run(tmp_path)
    assert data["header"]["torch"] == torch.__version__
    assert data["header"]["device"] == "cpu"
    assert data["rows"] == json.loads(json.dumps(rows))
    want = {(op, mode, B, T, N, p) for op in ("lif", "rlif", "li") for mode in ("fwd", "fwdbwd")
            for B, T, N in ((2, 8, 16), (2, 16, 16), (4, 8, 32)) for p in ["torch"] + FUSED}
    got = {(r["op"], r["mode"], r["B"], r["T"], r["N"], r["provider"]) for r in rows}
    assert got == want  # torch-compile is off by default on the CPU
    for r in rows:
        assert r["status"] == "ok", r
        assert r["dtype"] == "float32"
        # the spread of the reps is reported with every timing
        assert 0 < r["min_ms"] <= r["q25_ms"] <= r["time_ms"] <= r["q75_ms"] <= r["max_ms"]
        assert r["iqr_rel"] >= 0 and isinstance(r["noisy"], bool)
        assert r["noisy"] == (r["iqr_rel"] > run.NOISY_IQR)
        assert r["time_ms"] > 0 and r["neuron_steps_per_s"] > 0 and r["speedup"] > 0
        assert r["peak_mem_mib"] is None and r["gbps"] is None  # CUDA only
        if r["mode"] == "fwd":
            assert r["saved_bytes_per_step"] == 0  # inference saves nothing
        if r["provider"] == "torch":
            assert r["speedup"] == 1.0
    # The eager LIF reference keeps several bytes per neuron-step; the linear LI only its
    # scalar constants (a few bytes in all, not per step).
    lif_ref = [r for r in rows if (r["op"], r["mode"], r["provider"]) == ("lif", "fwdbwd", "torch")]
    assert all(r["saved_bytes_per_step"] >= 8 for r in lif_ref)
    li_ref = [r for r in rows if (r["op"], r["mode"], r["provider"]) == ("li", "fwdbwd", "torch")]
    assert all(r["saved_bytes_per_step"] * r["B"] * r["T"] * r["N"] <= 32 for r in li_ref)

    md = (tmp_path / "results.md").read_text()
    assert "| op | mode | dtype | B | T | N | provider | time ms | speedup vs torch |" in md
    assert "| min / max ms | IQR/med | status |" in md and "Summary (speedup vs torch" in md
    assert "torch " + torch.__version__ in md and "CPU threads" in md
    table = [ln for ln in md.splitlines() if ln.startswith(("| l", "| r"))]
    assert len(table) == len(rows)
    assert "| lif | fwdbwd | float32 | 4 | 8 | 32 | torch | " in md
    png = (tmp_path / "speedup.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def _wrong_spikes(op):  # forward wrong: the complement of the spikes, or a scaled trace
    def call(x):
        out, state = run.OPS[op](x, "torch")
        return (1 - out if op in ("lif", "rlif") else 1.5 * out), state
    return call


def _wrong_grad(op):  # forward right (2x - x == x exactly), gradient doubled
    return lambda x: run.OPS[op](2 * x - x.detach(), "torch")


def _nan(op):
    def call(x):
        out, state = run.OPS[op](x, "torch")
        return out * float("nan"), state
    return call


def _raises(op):
    def call(x):
        raise RuntimeError("kernel exploded")
    return call


@pytest.mark.parametrize("factory, bad_modes, status", [
    pytest.param(_wrong_spikes, {"fwd", "fwdbwd"}, "MISMATCH", id="wrong-forward"),
    pytest.param(_wrong_grad, {"fwdbwd"}, "MISMATCH", id="wrong-gradient"),
    pytest.param(_nan, {"fwd", "fwdbwd"}, "MISMATCH", id="nan-output"),
    pytest.param(_raises, {"fwd", "fwdbwd"}, "ERROR", id="raises"),
])
def test_disagreeing_provider_gets_no_speedup(tmp_path, monkeypatch, factory, bad_modes, status):
    monkeypatch.setitem(run.EXTRA_PROVIDERS, "fake", factory)
    _, rows, data = _run(tmp_path, "--backends", "fake")
    fake = [r for r in data["rows"] if r["provider"] == "fake"]
    assert len(fake) == 3 * 2 * 3  # ops x modes x sizes
    for r in fake:
        if r["mode"] in bad_modes:
            assert r["status"] == status and r["detail"], r
            for k in ("time_ms", "speedup", "neuron_steps_per_s", "saved_bytes_per_step"):
                assert r[k] is None, (k, r)
        else:
            assert r["status"] == "ok" and r["speedup"] > 0, r
    md_rows = [ln.split(" | ") for ln in (tmp_path / "results.md").read_text().splitlines()
               if ln.startswith(("| l", "| r")) and " fake " in ln]
    assert len(md_rows) == len(fake)
    for cells, r in zip(md_rows, fake):
        if r["mode"] in bad_modes:
            assert cells[7:10] == ["-", "-", "-"], cells  # time, speedup, neuron-steps/s
            assert cells[-1] == f"{status} |"
    # The reference itself still gets its numbers, and the notes under the table say why.
    assert all(r["status"] == "ok" for r in data["rows"] if r["provider"] == "torch")
    md = (tmp_path / "results.md").read_text()
    for r in fake:
        if r["mode"] in bad_modes:
            assert (f"- fake {r['op']} {r['mode']} float32 B={r['B']} T={r['T']} N={r['N']}: "
                    f"{status}: {r['detail']}") in md


def test_gate_bounds():
    ref = (torch.rand(1000, 10) < 0.1).float()
    flip = ref.clone()
    flip.view(-1)[:10] = 1 - flip.view(-1)[:10]  # 10 of 10000 = 1e-3: allowed in float32
    assert run.check("lif", "fwd", torch.float32, flip, None, ref, None) == ""
    flip.view(-1)[10] = 1 - flip.view(-1)[10]
    assert "spike mismatch" in run.check("lif", "fwd", torch.float32, flip, None, ref, None)
    assert "spike mismatch" in run.check("lif", "fwd", torch.float64, flip.double(), None,
                                         ref.double(), None)
    g = torch.randn(1000, 10)
    assert run.check("li", "fwdbwd", torch.float32, g, g * (1 + 1e-6), g, g) == ""
    assert "dX" in run.check("li", "fwdbwd", torch.float32, g, g * 1.01, g, g)
    assert "dX" in run.check("lif", "fwdbwd", torch.float32, ref, None, ref, g)


def test_unknown_backend_is_an_error(tmp_path):
    with pytest.raises(SystemExit):
        run.parse_args(["--device", "cpu", "--backends", "nonesuch", "--out", str(tmp_path)])


def test_rlif_has_its_own_default_sizes():
    a = run.parse_args(["--device", "cpu", "--quick"])
    assert a.rlif_sizes == run.RLIF_SIZES["quick"] and a.sizes != a.rlif_sizes
    assert set(run.cases(a)) >= {("rlif", torch.float32, (4, 8, 32), "fwd", "torch")}
    assert not any(op == "rlif" and size not in a.rlif_sizes
                   for op, _, size, _, _ in run.cases(a))
    a = run.parse_args(["--device", "cpu", "--sizes", "2,3,4"])
    assert a.rlif_sizes is None
    assert {size for op, _, size, _, _ in run.cases(a) if op == "rlif"} == {(2, 3, 4)}


def test_plot_draws_bars_for_sizes_without_a_sweep(tmp_path):
    from benchmarks.plot import plot

    rows = [dict(op="rlif", mode="fwdbwd", dtype="float32", B=B, T=T, N=N, provider=p,
                 speedup=s) for (B, T, N), p, s in [((250, 100, 100), "torch", 1.0),
                                                   ((250, 100, 100), "cpu", 6.5),
                                                   ((64, 500, 512), "torch", 1.0),
                                                   ((64, 500, 512), "cpu", 4.5)]]
    (tmp_path / "r.json").write_text(json.dumps({"header": {"device": "cpu"}, "rows": rows}))
    png = plot(str(tmp_path / "r.json"), str(tmp_path / "s.png"))
    assert open(png, "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not FUSED, reason="needs the fused CPU backend")
def test_randman_epoch_side_by_side(tmp_path):
    from benchmarks import randman_epoch

    res = randman_epoch.main(["--rounds", "2", "--batches-per-epoch", "2", "--quiet",
                              "--out", str(tmp_path)])
    assert len(res["ratios"]) == 2 and all(r > 0 for r in res["ratios"])
    assert res["fused"] == "cpu" and res["baseline"] == "torch"
    # the two networks start equal and see the same batches: same first-epoch accuracy
    assert res["fused_train_acc"][0] == pytest.approx(res["baseline_train_acc"][0], abs=0.01)
    assert (tmp_path / "epoch.json").exists() and "median of the per-round ratios" in (
        tmp_path / "epoch.md").read_text()


def _jittery(op):
    """Correct output; every other call 20 ms slower: an IQR far wider than the median's 25%."""
    calls = [0]

    def call(x):
        calls[0] += 1
        if calls[0] % 2:
            time.sleep(0.02)
        return run.OPS[op](x, "torch")
    return call


def test_spread_statistics():
    st = run.spread([1.0, 1.0, 1.1, 1.0, 5.0])  # one outlier: max moves, the IQR does not
    assert st["min_ms"] == 1.0 and st["max_ms"] == 5.0 and st["time_ms"] == 1.0
    assert not st["noisy"] and st["reps"] == 5
    st = run.spread([1.0, 3.0, 1.0, 3.0, 1.0, 3.0])
    assert st["noisy"] and st["iqr_rel"] > run.NOISY_IQR


def test_noisy_timing_is_flagged_and_kept_out_of_the_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(run.EXTRA_PROVIDERS, "jittery", _jittery)
    hdr, rows = run.main(["--device", "cpu", "--ops", "li", "--modes", "fwd", "--sizes",
                          "2,8,16", "--reps", "8", "--min-time", "0.001", "--backends",
                          "jittery", "--no-plot", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    data = json.loads((tmp_path / "results.json").read_text())
    jit = next(r for r in data["rows"] if r["provider"] == "jittery")
    assert jit["status"] == "ok" and jit["noisy"] and jit["speedup_noisy"]
    assert jit["max_ms"] > 10 * jit["min_ms"] and jit["iqr_rel"] > run.NOISY_IQR
    assert "warning:" in err and "jittery li fwd float32 B=2 T=8 N=16: noisy" in err
    md = (tmp_path / "results.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| li |") and " jittery " in ln)
    cells = row.split(" | ")
    assert cells[8].endswith("x noisy") and cells[-1] == "ok, noisy |"
    assert "Noisy timings" in md and "- jittery li fwd float32 B=2 T=8 N=16: noisy" in md
    summary = md.split("Summary (speedup vs torch")[1]
    assert "- jittery li fwd float32: no steady timing (1 noisy left out)" in summary
    # the plot draws it hollow, and still draws
    from benchmarks.plot import plot

    png = plot(str(tmp_path / "results.json"), str(tmp_path / "s.png"))
    assert open(png, "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adlif_cases_leave_out_missing_kernels():
    """--ops adlif runs at its own default size; fused providers the op lacks (ops/registry.py:
    Triton and CUDA so far) are left out instead of erroring."""
    a = run.parse_args(["--device", "cpu", "--ops", "adlif", "--compile-ref", "on",
                        "--backends", "torch-compile,cpu,triton"])
    cases = set(run.cases(a))
    assert {size for _, _, size, _, _ in cases} == {(256, 250, 256)}
    assert {p for *_, p in cases} == {"torch", "torch-compile", "cpu"}
