"""DCFNet's pretrained V1 (``train --dcfnet``) and a V1 kept as it starts (``--freeze-v1 on``)."""
import json

import numpy as np
import pytest

scipy_io = pytest.importorskip("scipy.io")  # in requirements.txt; the importer reads MatConvNet files with it

from minihart import train  # noqa: E402
from minihart.checkpoint import DCFNET_V1, load, load_dcfnet  # noqa: E402
from minihart.model import hart, init_params, preset  # noqa: E402


def _dcfnet_mat(path, rng, conv2_in=32):
    """A file laid out as DCFNet's ``DCFNet-net-7-125-2.mat``: ``net.layers``, a cell array of structs."""
    def layer(name, kind, **fields):
        return dict(name=name, type=kind, **fields)
    w1 = [rng.standard_normal((3, 3, 3, 32)).astype(np.float32), rng.standard_normal(32).astype(np.float32)]
    w2 = [rng.standard_normal((3, 3, conv2_in, 32)).astype(np.float32), rng.standard_normal(32).astype(np.float32)]
    layers = np.empty(4, dtype=object)
    cells = []
    for w in (w1, w2):
        c = np.empty(2, dtype=object)
        c[0], c[1] = w
        cells.append(c)
    layers[0] = layer("conv1", "conv", weights=cells[0], pad=1.0)
    layers[1] = layer("relu1", "relu")
    layers[2] = layer("conv2", "conv", weights=cells[1], pad=1.0)
    layers[3] = layer("norm1", "lrn", param=np.array([5, 1, 2e-5, 0.75]))
    scipy_io.savemat(str(path), {"net": {"layers": layers, "meta": {"arch": "DCFNet"}}})
    return w1, w2


@pytest.mark.parametrize("channels", [1, 3])
def test_dcfnet_importer_transposes_scales_and_sums_colour_for_grey(tmp_path, rng, channels):
    w1, w2 = _dcfnet_mat(tmp_path / "net.mat", rng)
    cfg = preset("real", v1=DCFNET_V1, channels=channels)
    start = init_params(cfg, rng)
    p = load_dcfnet(start, str(tmp_path / "net.mat"))
    # MatConvNet (kh, kw, in, out) -> (out, in, kh, kw); biases / 255 for glimpses in [0, 1]
    np.testing.assert_allclose(p["v1.conv2.W"][5, 7, 2, 0], w2[0][2, 0, 7, 5])
    np.testing.assert_allclose(p["v1.conv2.b"] * 255, w2[1], rtol=1e-6)
    colour = w1[0].transpose(3, 2, 0, 1)
    want = colour.sum(axis=1, keepdims=True) if channels == 1 else colour
    np.testing.assert_allclose(p["v1.conv1.W"], want, rtol=1e-6)
    np.testing.assert_array_equal(p["lstm.Wx"], start["lstm.Wx"])  # only V1 changes
    # before its LRN, V1 on a glimpse g in [0, 1] is DCFNet's conv2(relu(conv1(255 g))) / 255
    two_convs = preset("real", v1=DCFNET_V1[:3], channels=channels)
    dcfnet = {**p, "v1.conv1.W": want, "v1.conv1.b": w1[1], "v1.conv2.W": w2[0].transpose(3, 2, 0, 1),
              "v1.conv2.b": w2[1]}
    g = rng.random((2, channels, 32, 32))
    ours, _ = hart.v1_forward({k: np.float64(v) for k, v in p.items()}, two_convs, g)
    theirs, _ = hart.v1_forward({k: np.float64(v) for k, v in dcfnet.items()}, two_convs, 255 * g)
    np.testing.assert_allclose(255 * ours, theirs, rtol=1e-5, atol=1e-4)
    f, _ = hart.v1_forward(p, cfg, np.float32(g))
    assert f.shape == (2, 32, 16, 16)


def test_dcfnet_importer_names_a_wrong_file_or_model(tmp_path, rng):
    _dcfnet_mat(tmp_path / "bad.mat", rng, conv2_in=16)
    params = init_params(preset("real", v1=DCFNET_V1), rng)
    with pytest.raises(ValueError, match=r"bad\.mat.*conv2 has W\(32, 16, 3, 3\)"):
        load_dcfnet(params, str(tmp_path / "bad.mat"))
    # the preset's own V1 (conv1 of 16 maps 5x5): named, with the V1 it needs
    with pytest.raises(ValueError, match=r"needs W\(16, 1, 5, 5\) \(is its V1 DCFNET_V1\?\)"):
        load_dcfnet(init_params(preset("real"), rng), str(tmp_path / "bad.mat"))
    (tmp_path / "text.mat").write_text("not a MAT file")
    with pytest.raises(ValueError, match=r"text\.mat' is not DCFNet's MatConvNet network file"):
        load_dcfnet(params, str(tmp_path / "text.mat"))


def _sot_args(tmp_path):
    from tests.test_data_sot import LINES, otb_seq
    root = tmp_path / "set"
    for split, names in (("train", ["A", "B"]), ("val", ["C"])):
        for name in names:
            otb_seq(root / split / name, LINES * 2, hw=(45, 60))
    return ["--dataset", "sot", "--data-root", str(root), "--steps", "2", "--eval-every", "2", "--batch-size", "2",
            "--no-final-eval", "--quiet", "--max-len", "5", "--frame-size", "45x60"]


def test_training_from_dcfnet_and_with_v1_frozen(tmp_path, rng, capsys):
    w1, w2 = _dcfnet_mat(tmp_path / "net.mat", rng)
    args = _sot_args(tmp_path)
    assert train.main(args + ["--out", str(tmp_path / "d"), "--dcfnet", str(tmp_path / "net.mat")]) == 0
    assert train.main(args + ["--out", str(tmp_path / "f"), "--dcfnet", str(tmp_path / "net.mat"),
                              "--freeze-v1", "on"]) == 0
    run = json.loads((tmp_path / "f" / "config.json").read_text())
    assert run["run"]["dcfnet"] == str(tmp_path / "net.mat") and run["run"]["freeze_v1"] is True
    (d, cfg, _), (f, _, _) = (load(str(tmp_path / r / "last.npz")) for r in ("d", "f"))
    assert cfg.v1 == DCFNET_V1
    start = load_dcfnet(init_params(cfg, np.random.default_rng(0)), str(tmp_path / "net.mat"))
    for k in ("v1.conv1.W", "v1.conv1.b", "v1.conv2.W", "v1.conv2.b"):
        np.testing.assert_array_equal(f[k], start[k])  # frozen: not one update
        assert not np.allclose(d[k], start[k], rtol=0, atol=1e-7), k  # trained: moved
    assert not np.allclose(f["lstm.Wx"], start["lstm.Wx"], rtol=0, atol=1e-7)  # the rest trains
    # refused, named, and no run folder is made
    assert train.main(args + ["--out", str(tmp_path / "x"), "--dcfnet", str(tmp_path / "net.mat"),
                              "--init-from", str(tmp_path / "d" / "last.npz")]) == 2
    assert "--dcfnet sets V1's layers and weights: not with --init-from" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert train.main(args + ["--out", str(tmp_path / "y"), "--dcfnet", str(tmp_path / "missing.mat")]) == 2
    err = capsys.readouterr().err
    assert "--dcfnet:" in err and "missing.mat" in err
    assert train.main(["--resume", str(tmp_path / "d"), "--dcfnet", str(tmp_path / "net.mat"), "--quiet"]) == 2
    assert "--dcfnet initialises a new run" in capsys.readouterr().err
