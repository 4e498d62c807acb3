"""The Makefile builds once: `make bench` after `make test` does not rebuild the extension, and
a changed kernel source does (stamps in the venv, see the Makefile)."""

import glob
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def make_n(*args):
    return subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ, timeout=60).stdout


def test_build_is_not_redone_when_nothing_changed():
    mode = os.environ.get("FASTSNN_BUILD_CUDA", "")
    if shutil.which("make") is None or not (ROOT / ".venv" / f".fastsnn-build{mode}").exists():
        pytest.skip("the extension was not built by `make` in this mode")
    stamp = ROOT / ".venv" / f".fastsnn-build{mode}"
    sources = [p for p in glob.glob(str(ROOT / "csrc" / "**" / "*"), recursive=True)
               if "/csrc/emu/" not in p and os.path.isfile(p)]
    if any(os.path.getmtime(p) > os.path.getmtime(stamp) for p in sources):
        pytest.skip("a source changed since the last `make build`")
    assert "pip install" not in make_n("build"), "make would rebuild with nothing changed"
    assert "pip install" not in make_n("bench")
    # a changed kernel source rebuilds
    assert "pip install --no-deps --no-build-isolation -e ." in make_n(
        "-W", "csrc/lif/lif.cpp", "build")
