"""load_shd on a small file written in the layout of the Spiking Heidelberg Digits."""

import numpy as np
import pytest
import torch

from fastsnn.data import load_shd

h5py = pytest.importorskip("h5py")


def _write(path, times, units, labels):
    with h5py.File(path, "w") as f:
        vt, vu = h5py.vlen_dtype(np.float16), h5py.vlen_dtype(np.uint16)
        dt = f.create_dataset("spikes/times", (len(times),), dtype=vt)
        du = f.create_dataset("spikes/units", (len(units),), dtype=vu)
        for i, (t, u) in enumerate(zip(times, units)):
            dt[i], du[i] = np.asarray(t, np.float16), np.asarray(u, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint8))


def test_binning(tmp_path):
    path = tmp_path / "shd.h5"
    # bins of 0.25 s over [0, 1); times exact in float16
    _write(path,
           times=[[0.0, 0.125, 0.25, 0.5, 0.9375, 1.0, 1.5], [0.75, 0.75], []],
           units=[[0, 0, 3, 1, 4, 2, 2], [4, 4], []],
           labels=[7, 0, 19])
    X, y = load_shd(path, num_steps=4, max_time=1.0, num_units=5)
    assert X.shape == (3, 4, 5) and X.dtype == torch.float32
    assert y.tolist() == [7, 0, 19] and y.dtype == torch.int64
    expected = torch.zeros(3, 4, 5)
    expected[0, 0, 0] = 2          # 0 and 0.125 s: both in the first bin
    expected[0, 1, 3] = 1          # 0.25 s opens the second bin
    expected[0, 2, 1] = 1
    expected[0, 3, 4] = 1          # 0.9375 s; 1.0 and 1.5 s are past max_time
    expected[1, 3, 4] = 2          # two spikes in one bin are counted
    assert torch.equal(X, expected)

    X64, _ = load_shd(str(path), num_steps=2, max_time=2.0, num_units=5, dtype=torch.float64)
    assert X64.dtype == torch.float64
    assert X64.sum().item() == 9 and X64[0, 1, 2].item() == 2  # 1.0 and 1.5 s now inside


def test_errors(tmp_path):
    path = tmp_path / "shd.h5"
    _write(path, times=[[0.5]], units=[[6]], labels=[1])
    with pytest.raises(ValueError, match="num_units=5"):
        load_shd(path, num_units=5)
    with pytest.raises(ValueError, match="max_time"):
        load_shd(path, max_time=0.0)
    with pytest.raises(ValueError, match="num_steps"):
        load_shd(path, num_steps=0)
    with pytest.raises(TypeError, match="dtype"):
        load_shd(path, dtype=torch.int64)
