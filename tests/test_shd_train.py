"""python -m fastsnn.train.shd end to end on small synthetic files in the SHD layout.

The real Spiking Heidelberg Digits are not downloadable here. The test writes shd_train.h5 and
shd_test.h5 as the SHD files are laid out (variable-length spike times and units, labels) with
a learnable structure: each of 4 classes fires its own band of channels at its own time, and
the recipe (two recurrent adaptive LIF layers, summed readout) must learn it.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastsnn.train import shd

h5py = pytest.importorskip("h5py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_shd(path, n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    times, units = [], []
    for c in labels:
        k = rng.integers(30, 60)
        u = rng.integers(150 * c, 150 * c + 120, k)  # the class's band of channels
        t = np.clip(0.2 + 0.25 * c + 0.05 * rng.standard_normal(k), 0, 1.3)
        noise = rng.integers(0, 700, 10)
        times.append(np.concatenate([t, rng.uniform(0, 1.3, 10)]))
        units.append(np.concatenate([u, noise]))
    with h5py.File(path, "w") as f:
        vt, vu = h5py.vlen_dtype(np.float16), h5py.vlen_dtype(np.uint16)
        dt = f.create_dataset("spikes/times", (n,), dtype=vt)
        du = f.create_dataset("spikes/units", (n,), dtype=vu)
        for i in range(n):
            dt[i], du[i] = times[i].astype(np.float16), units[i].astype(np.uint16)
        f.create_dataset("labels", data=labels.astype(np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("shd")
    write_shd(d / "shd_train.h5", 160, 0)
    write_shd(d / "shd_test.h5", 60, 1)
    return d


ARGS = ["--hidden", "24", "--steps", "28", "--epochs", "6", "--batch-size", "16", "--lr",
        "1e-2", "--threads", "1", "--device", "cpu"]


def test_recipe_learns_and_writes_its_files(data, tmp_path):
    out = tmp_path / "run"
    rc = shd.main(["--data", str(data), "--out", str(out), "--quiet"] + ARGS)
    assert rc == 0
    with open(out / "run.json") as f:
        res = json.load(f)
    assert res["status"] == "finished" and res["epochs_done"] == 6
    assert res["samples"] == {"train": 144, "val": 16, "test": 60}
    assert res["test_acc"] > 0.6, res["test_acc"]  # chance 0.25
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    assert (out / "model.pt").stat().st_size > 0 and (out / "learning_curves.png").exists()


@pytest.mark.parametrize("args,match", [
    (["--data", "/nonexistent"], "shd_train.h5 not found"),
    (["--epochs", "0"], "--epochs"),
    (["--val-fraction", "1"], "--val-fraction"),
    (["--lr", "nan"], "--lr"),
])
def test_arguments_checked_before_training(data, tmp_path, args, match, capsys):
    base = ["--data", str(data), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as e:
        shd.main(base + args)
    assert e.value.code == 2
    assert match in capsys.readouterr().err


def test_out_is_a_file(data, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit):
        shd.main(["--data", str(data), "--out", str(f)])
    assert "--out" in capsys.readouterr().err


def test_sigterm_leaves_an_interrupted_run_json(data, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "fastsnn.train.shd", "--data", str(data),
                             "--out", str(out), "--quiet", *ARGS[:-6], "--epochs", "1000",
                             "--threads", "1", "--device", "cpu"], env=env)
    run_json = out / "run.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if run_json.exists() and json.loads(run_json.read_text())["epochs_done"] >= 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    res = json.loads(run_json.read_text())
    assert res["status"] == "interrupted" and res["epochs_done"] >= 1
