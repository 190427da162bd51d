"""Checkpoint files (minihart/checkpoint.py): round trip, bad files named, the AlexNet importer."""
import os

import numpy as np
import pytest

from minihart.checkpoint import load, load_alexnet, save
from minihart.model import init_params, preset
from test_model import TINY


def test_save_load_round_trip_and_bad_files(tmp_path, rng):
    params = init_params(TINY, rng)
    path = str(tmp_path / "m.npz")
    save(path, params, TINY, step=np.array(7))
    p2, cfg2, extra = load(path)
    assert cfg2 == TINY and int(extra["step"]) == 7
    assert all(np.array_equal(params[k], p2[k]) for k in params)
    with pytest.raises(ValueError, match="preset 'tiny', not 'kth'"):
        load(path, expect_preset="kth")
    with pytest.raises(ValueError, match="does not exist"):
        load(str(tmp_path / "nope.npz"))
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable"):
        load(str(tmp_path / "bad.npz"))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp.npz")]
    data = dict(np.load(path))
    np.savez(tmp_path / "cfg.npz", **{**data, "config": np.array('{"name": "tiny", "bogus": 1}')})
    with pytest.raises(ValueError, match="cfg.npz' has an unusable config"):
        load(str(tmp_path / "cfg.npz"))
    np.savez(tmp_path / "nan.npz", **{**data, "param/lstm.b": np.full_like(data["param/lstm.b"], np.nan)})
    with pytest.raises(ValueError, match=r"non-finite or non-float parameters \['lstm.b'\]"):
        load(str(tmp_path / "nan.npz"))  # would have tracked with NaN boxes


def test_alexnet_importer_reads_bvlc_format(tmp_path, rng):
    cfg = preset("kitti")
    params = init_params(cfg, rng)
    shapes = {"conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384)}
    weights = {k: [rng.standard_normal(s).astype(np.float32), rng.standard_normal(s[-1]).astype(np.float32)]
               for k, s in shapes.items()}
    np.save(tmp_path / "bvlc_alexnet.npy", weights, allow_pickle=True)
    p2 = load_alexnet(params, str(tmp_path / "bvlc_alexnet.npy"))
    np.testing.assert_array_equal(p2["v1.conv2.W"][5, 7], weights["conv2"][0][:, :, 7, 5])
    weights["conv3"][0] = weights["conv3"][0][:, :, :100]
    np.save(tmp_path / "bad.npy", weights, allow_pickle=True)
    with pytest.raises(ValueError, match="conv3"):
        load_alexnet(params, str(tmp_path / "bad.npy"))
