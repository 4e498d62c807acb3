"""The Randman command's run handling (project issue 18): arguments and the output folder are
checked before any work (argparse errors, exit code 2), run.json is written atomically after
every epoch with a status, SIGTERM leaves status "interrupted" and a non-zero exit, and --resume
continues from the checkpoint to the result of an uninterrupted run. Tiny sizes, CPU."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fastsnn.train import randman as R
from fastsnn.train import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = dict(classes=3, units=8, steps=20, samples_per_class=30, split="20,5,5", hidden=12,
            batch_size=10, lr=1e-2, seed=1, data_seed=0, threads=1, device="cpu")


def _cli(cfg, **more):
    args = []
    for k, v in dict(cfg, **more).items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args + ["--quiet", "--no-plots"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _error(capsys, argv, main=R.main):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("opt,value", [("--tau-mem", "0"), ("--tau-syn", "-1"), ("--dt", "0"),
                                       ("--hidden", "0"), ("--batch-size", "0"),
                                       ("--epochs", "-1"), ("--steps", "0"), ("--lr", "0"),
                                       ("--split", "10,5"), ("--threads", "-2")])
def test_bad_values_are_argparse_errors(capsys, tmp_path, monkeypatch, opt, value):
    monkeypatch.setattr(R, "train", lambda *a, **k: pytest.fail("trained"))
    err = _error(capsys, _cli(TINY, epochs=1, out=tmp_path / "o") + [opt, value])
    assert opt in err


def test_out_checked_before_training(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(R, "train", lambda *a, **k: pytest.fail("trained"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    err = _error(capsys, _cli(TINY, epochs=1, out=afile))
    assert "--out" in err and "not a folder" in err
    assert "--out" in _error(capsys, _cli(TINY, epochs=1, out=""))
    assert "--out" in _error(capsys, _cli(TINY, epochs=1, out=afile / "sub"))
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            assert "--out" in _error(capsys, _cli(TINY, epochs=1, out=ro / "run"))
            assert "--out" in _error(capsys, _cli(TINY, epochs=1, out=ro))
        finally:
            ro.chmod(0o700)
    err = _error(capsys, _cli(TINY, epochs=1, out=tmp_path / "empty") + ["--resume"])
    assert "--resume" in err


def test_sweep_checks_before_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "one_run", lambda *a, **k: pytest.fail("ran"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["--quick", "--device", "cpu", "--quiet"]
    assert "--out" in _error(capsys, base + ["--out", str(afile)], sweep.main)
    assert "--out" in _error(capsys, base + ["--out", ""], sweep.main)
    assert "--scales" in _error(capsys, base + ["--out", str(tmp_path / "s"),
                                                "--scales", "1,x"], sweep.main)
    assert "--parts" in _error(capsys, base + ["--out", str(tmp_path / "s"),
                                               "--parts", "nope"], sweep.main)
    assert "--epochs" in _error(capsys, base + ["--out", str(tmp_path / "s"),
                                                "--epochs", "-1"], sweep.main)


def _load(out):
    return (json.loads((out / "run.json").read_text()), torch.load(out / "model.pt"))


def test_resume_matches_uninterrupted_run(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert R.main(_cli(TINY, epochs=3, out=full)) == 0
    assert R.main(_cli(TINY, epochs=2, out=part)) == 0
    rec2 = json.loads((part / "run.json").read_text())
    assert rec2["status"] == "finished" and rec2["epochs_done"] == 2
    ck = torch.load(part / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 2 and {"model", "optimizer", "rng", "history"} <= set(ck)
    seen = {}
    evaluate = R.evaluate

    def spy(*a, **k):  # while resuming, the 2-epoch model.pt is gone, run.json says running
        seen.setdefault("model", (part / "model.pt").exists())
        seen.setdefault("status", json.loads((part / "run.json").read_text())["status"])
        return evaluate(*a, **k)

    R.evaluate = spy
    try:
        assert R.main(_cli(TINY, epochs=3, out=part) + ["--resume"]) == 0
    finally:
        R.evaluate = evaluate
    assert seen == {"model": False, "status": "running"}
    (ra, ma), (rb, mb) = _load(full), _load(part)
    assert rb["status"] == "finished" and rb["resumed_after_epochs"] == [2]
    assert set(ma) == set(mb)
    for k in ma:
        assert torch.equal(ma[k], mb[k]), k
    keys = ("train_loss", "train_reg", "train_acc", "val_loss", "val_acc")
    assert [[h[k] for k in keys] for h in ra["history"]] == \
        [[h[k] for k in keys] for h in rb["history"]]
    assert ra["test_acc"] == rb["test_acc"] and ra["hidden_rate_hz"] == rb["hidden_rate_hz"]
    # other training options than the checkpoint's: refused
    with pytest.raises(SystemExit) as e:
        R.main(_cli(TINY, epochs=4, out=part, lr=0.5) + ["--resume"])
    assert e.value.code == 2


def test_fresh_run_replaces_old_outputs(tmp_path, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"status": "finished", "test_acc": 1.0}))
    (out / "model.pt").write_text("old")
    seen = {}

    def stop(*a, **k):  # the first epoch: what is on disk is already this run's
        seen["run"] = json.loads((out / "run.json").read_text())
        seen["model"] = (out / "model.pt").exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(R, "train_epoch", stop)
    assert R.main(_cli(TINY, epochs=3, out=out)) == 130
    assert seen["run"]["status"] == "running" and seen["run"]["epochs_done"] == 0
    assert not seen["model"]
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "interrupted" and "test_acc" not in rec
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no temporary files left


def test_sigterm_mid_run_is_recorded_and_resumable(tmp_path):
    out = tmp_path / "o"
    cli = _cli(TINY, epochs=100000, out=out)
    p = subprocess.Popen([sys.executable, "-m", "fastsnn.train.randman", *cli], env=_env(),
                         cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                rec = json.loads((out / "run.json").read_text())
                if rec["epochs_done"] >= 2:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        else:
            pytest.fail("no epoch written")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + signal.SIGTERM, err[-2000:]
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "interrupted" and rec["reason"] == "SIGTERM"
    done = rec["epochs_done"]
    assert done >= 2 and "--resume" in err
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == done
    # resume to a few more epochs
    assert R.main(_cli(TINY, epochs=done + 1, out=out) + ["--resume"]) == 0
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "finished" and len(rec["history"]) == done + 1


def test_sweep_records_each_run_and_an_interruption(tmp_path, monkeypatch):
    calls = []

    def fake(args, part, log, **over):
        calls.append(part)
        if len(calls) == 2:
            rec = json.loads((tmp_path / "s" / "sweep.json").read_text())
            assert rec["status"] == "running" and len(rec["runs"]) == 1
            raise KeyboardInterrupt
        rec = dict(part=part, seed=over["seed"], test_acc=0.5)
        log(rec)
        return rec, None

    monkeypatch.setattr(sweep, "one_run", fake)
    rc = sweep.main(["--quick", "--device", "cpu", "--quiet", "--out", str(tmp_path / "s")])
    assert rc == 130 and len(calls) == 2
    rec = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert rec["status"] == "interrupted" and rec["runs"] == [dict(part="surrogate", seed=0,
                                                                  test_acc=0.5)]
    assert rec["runs_planned"] == 3 * 2 + 2


def test_sigterm_inside_an_epoch_commit_is_deferred():
    """SIGTERM while an epoch's history entry, checkpoint and run.json are being written is
    held until all three are written (it once left run.json one epoch ahead of checkpoint.pt)."""
    with R.sigterm_interrupts():
        done = []
        with pytest.raises(R.Interrupted):
            with R.sigterm_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("history")
                done.append("checkpoint")
        assert done == ["history", "checkpoint"]
