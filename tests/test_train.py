"""The Randman training command (fastsnn.train.randman) and the sweep (fastsnn.train.sweep):
a short run learns, writes its JSON and plots, two DDP processes give the gradient and the
parameters of one process on the same global batch, and the quick sweep writes its tables."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from fastsnn.train import randman as R

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A small task that trains in seconds: 4 classes (chance 0.25), 12 inputs, 40 steps, a
# smoother manifold than the paper's (alpha 2). Seeds 0-3 reach 0.96-0.99 test accuracy. On the
# CPU: the command's default device is cuda where a GPU is visible.
SMALL = dict(classes=4, units=12, steps=40, samples_per_class=150, split="100,25,25",
             randman_alpha=2.0, hidden=32, batch_size=25, epochs=8, lr=1e-2, seed=0,
             data_seed=0, threads=1, device="cpu")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _cli_args(cfg):
    args = []
    for k, v in cfg.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One short training run through the command line entry point (plots on)."""
    out = tmp_path_factory.mktemp("randman")
    rc = R.main(_cli_args(SMALL) + ["--out", str(out), "--quiet"])
    assert rc == 0
    with open(out / "run.json") as f:
        return out, json.load(f)


def test_short_run_learns(small_run):
    _, res = small_run
    chance = 1.0 / SMALL["classes"]
    assert res["test_acc"] > 0.8, res["test_acc"]          # chance is 0.25
    assert res["history"][-1]["train_acc"] > 0.8
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    assert res["test_acc"] > 2 * chance
    assert 0 < res["mean_hidden_rate_hz"] < 1000


def test_run_json_and_plots(small_run):
    out, res = small_run
    for name in ("run.json", "model.pt", "learning_curves.png", "raster.png",
                 "firing_rates.png"):
        p = out / name
        assert p.is_file() and p.stat().st_size > 0, name
    with open(out / "learning_curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert len(res["history"]) == SMALL["epochs"]
    assert res["status"] == "finished" and res["epochs_done"] == SMALL["epochs"]
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == SMALL["epochs"] and ck["history"] == res["history"]
    for h in res["history"]:
        for key in ("train_loss", "train_acc", "val_acc", "epoch_time_s"):
            assert isinstance(h[key], float), key
        assert h["epoch_time_s"] > 0
    assert res["config"]["batch_size"] == SMALL["batch_size"]
    assert res["config"]["surrogate"] == "superspike" and res["config"]["scale"] == 10.0
    assert len(res["hidden_rate_hz"]) == SMALL["hidden"]
    env = res["environment"]
    assert env["torch"] == torch.__version__ and env["fastsnn"] and env["world_size"] == 1
    assert env["device"] == "cpu"
    sd = torch.load(out / "model.pt")
    assert set(sd) == {"hidden.linear.weight", "hidden.weight_rec", "readout.linear.weight"}


def test_epoch_batches_cover_and_split():
    bs = R.epoch_batches(103, 25, seed=3, epoch=2, world=2)
    assert [len(b) for b in bs] == [25, 25, 25, 25, 3]
    assert sorted(torch.cat(bs).tolist()) == list(range(103))
    again = R.epoch_batches(103, 25, seed=3, epoch=2, world=2)
    assert all(torch.equal(a, b) for a, b in zip(bs, again))
    other = R.epoch_batches(103, 25, seed=3, epoch=3, world=2)
    assert not torch.equal(bs[0], other[0])
    assert len(R.epoch_batches(101, 25, seed=0, epoch=1, world=2)) == 4  # a 1-sample tail dropped


# ---------------------------------------------------------------- DDP == one process

# a global batch of 7 split 4 + 3 over the two ranks: the loss weighting must be exact; gloo on
# the CPU (two ranks on one GPU would fail under NCCL)
GRAD_CFG = dict(classes=3, units=8, steps=20, samples_per_class=10, split="8,1,1", hidden=12,
                dtype="float64", lower_strength=100.0, lower_nu=1.0, upper_strength=1.0,
                upper_nu=0.05, init_gain=8.0, device="cpu")
GLOBAL_BATCH = 7


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _batch(cfg):
    data = R.load_data(cfg)
    X, y = data.train
    return X[:GLOBAL_BATCH].double(), y[:GLOBAL_BATCH]


def _ddp_worker(rank, world, port, path):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from torch.nn.parallel import DistributedDataParallel as DDP

    cfg = R.make_config(**GRAD_CFG)
    dd = R.Dist("cpu")

    # DDP and its reducer are gone when step() returns, before the group is torn down: a live
    # reducer over a destroyed gloo group can abort the process at exit.
    def step():
        torch.manual_seed(cfg.seed)
        model = R.build_model(cfg).double()
        net = DDP(model)
        X, y = _batch(cfg)
        xb, yb = X[rank::world], y[rank::world]
        U, S = net(xb)
        obj, _, _ = R.local_objective(U, S, yb, GLOBAL_BATCH, world, cfg)
        obj.backward()
        torch.save(_grads(model), f"{path}.{rank}")

    try:
        step()
    finally:
        dd.close()


def test_ddp_gradient_equals_single_process(tmp_path):
    cfg = R.make_config(**GRAD_CFG)
    torch.manual_seed(cfg.seed)
    model = R.build_model(cfg).double()
    X, y = _batch(cfg)
    U, S = model(X)
    assert S.sum() > 0 and R.regularization(S, cfg) > 0  # both regularizers are active
    obj, _, _ = R.local_objective(U, S, y, GLOBAL_BATCH, 1, cfg)
    obj.backward()
    ref = _grads(model)

    path = str(tmp_path / "grads")
    mp.start_processes(_ddp_worker, args=(2, _free_port(), path), nprocs=2, join=True,
                       start_method="spawn")
    for rank in (0, 1):
        got = torch.load(f"{path}.{rank}")
        assert set(got) == set(ref)
        for n in ref:
            assert ref[n].abs().max() > 0, n
            torch.testing.assert_close(got[n], ref[n], rtol=1e-10, atol=1e-13, msg=n)


def test_torchrun_two_processes_match_one(tmp_path):
    """The command itself under torchrun (gloo) against one plain process: same parameters
    after a few Adam steps, same test accuracy."""
    cfg = dict(GRAD_CFG, samples_per_class=30, split="24,3,3", batch_size=15, epochs=1,
               batches_per_epoch=3, lr=1e-2, threads=1)
    cli = _cli_args(cfg) + ["--no-plots", "--quiet"]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "fastsnn.train.randman", *cli, "--out", str(one)],
                   check=True, env=_env(), cwd=str(tmp_path), timeout=120)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
                        "-m", "fastsnn.train.randman", *cli, "--out", str(two)],
                       env=_env(), cwd=str(tmp_path), timeout=180, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    a, b = torch.load(one / "model.pt"), torch.load(two / "model.pt")
    for n in a:
        torch.testing.assert_close(b[n], a[n], rtol=1e-9, atol=1e-11, msg=n)
    ra = json.loads((one / "run.json").read_text())
    rb = json.loads((two / "run.json").read_text())
    assert rb["environment"]["world_size"] == 2 and ra["environment"]["world_size"] == 1
    assert rb["test_acc"] == ra["test_acc"]
    assert rb["history"][0]["train_loss"] == pytest.approx(ra["history"][0]["train_loss"],
                                                           rel=1e-9)
    assert rb["mean_hidden_rate_hz"] == pytest.approx(ra["mean_hidden_rate_hz"], rel=1e-12)
    assert not (two / "model.pt.1").exists()
    assert rb["status"] == "finished"
    assert sorted(os.listdir(two)) == ["checkpoint.pt", "model.pt", "run.json"]  # rank 0 only


# ---------------------------------------------------------------- the sweep

def test_sweep_quick(tmp_path):
    from fastsnn.train import sweep

    out = tmp_path / "sweep"
    assert sweep.main(["--quick", "--backend", "auto", "--device", "cpu", "--out", str(out),
                       "--quiet", "--threads", "1"]) == 0
    md = (out / "sweep.md").read_text()
    for shape in ("superspike", "sigmoid", "esser"):
        assert f"| {shape} |" in md
    assert "| shape \\ scale k | 1 | 10 |" in md
    assert "| none |" in md and "| 0.5 |" in md
    rec = json.loads((out / "sweep.json").read_text())
    assert len(rec["runs"]) == 3 * 2 + 2 and rec["status"] == "finished"
    assert {r["part"] for r in rec["runs"]} == {"surrogate", "upper"}
    for r in rec["runs"]:
        assert 0.0 <= r["test_acc"] <= 1.0 and r["mean_hidden_rate_hz"] >= 0
    assert (out / "surrogate_scale.png").stat().st_size > 0
    assert (out / "upper_bound.png").stat().st_size > 0

    # The tables keep the two parts apart: the upper part's "none" runs use the same surrogate
    # and scale as a surrogate-part cell, and neither may leak into the other's numbers.
    for r in rec["runs"]:
        r["test_acc"] = 0.25 if r["part"] == "surrogate" else 0.75
    (out / "sweep.json").write_text(json.dumps(rec))
    (out / "sweep.md").unlink()
    assert sweep.main(["--report-from", str(out / "sweep.json"), "--quiet"]) == 0
    md = (out / "sweep.md").read_text()
    none_row = next(ln for ln in md.splitlines() if ln.startswith("| none |"))
    assert none_row.rstrip(" |").endswith("0.750")
    ss_row = next(ln for ln in md.splitlines() if ln.startswith("| superspike |"))
    assert "0.750" not in ss_row and "0.250" in ss_row


def test_adlif_hidden_layer_learns(tmp_path):
    """--neuron adlif: the adaptive LIF hidden layer (fastsnn.nn.AdLIF) learns the small task.
    Its membrane takes (1 - alpha) of the drive, so it gets a larger input gain (0.92 test
    accuracy at gain 20 and 0.76 at the LIF default of 5, seed 0, chance 0.25)."""
    rc = R.main(_cli_args(SMALL) + ["--neuron", "adlif", "--init-gain", "20",
                                     "--out", str(tmp_path), "--quiet", "--no-plots"])
    assert rc == 0
    with open(tmp_path / "run.json") as f:
        res = json.load(f)
    assert res["config"]["neuron"] == "adlif"
    assert res["test_acc"] > 0.8, res["test_acc"]
