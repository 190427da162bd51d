"""--v1-init kmeans: V1's convolutions from k-means on whitened patches of the training glimpses."""
import dataclasses
import json

import numpy as np
import pytest

from minihart import kmeans
from minihart.data import sot
from minihart.model import hart, init_params, preset


def test_kmeans_filters_find_the_clusters_and_keep_the_he_spread():
    """Four clusters of patches, stretched unevenly (so whitening matters): each cluster answers most
    to a filter of its own, every filter's response spreads as a He-normal filter's would
    (sqrt(2 E[x^2])), and the bias centres it (b = -W . mean)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 6)) * 3
    label = rng.integers(0, 4, 4000)
    X = (centres[label] + rng.standard_normal((4000, 6))) * np.array([1, 1, 1, 4, 0.5, 2]) + 5
    W, b = kmeans.kmeans_filters(X, 4, np.random.default_rng(1))
    assert W.shape == (4, 6) and b.shape == (4,)
    y = X @ W.T + b
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(y.std(axis=0), np.sqrt(2 * (X ** 2).mean()), rtol=1e-9)
    best = [int(np.argmax(y[label == k].mean(axis=0))) for k in range(4)]
    assert sorted(best) == [0, 1, 2, 3], best
    # the cluster's own filter answers its patches above every other filter for most of them
    assert np.mean(y.argmax(axis=1) == np.array(best)[label]) > 0.9


def _glimpse_set(n=12, hw=(48, 64), present=1.0):
    rng = np.random.default_rng(3)
    frames = (rng.random((n, *hw)) * 60).astype(np.uint8)
    boxes = np.array([[12 + i, 16 + i, 16, 20] for i in range(n)], np.float32)
    for i, (y, x, h, w) in enumerate(boxes.astype(int)):
        frames[i, y:y + h, x:x + w] = 200  # a bright target with a dark stripe
        frames[i, y + h // 2:y + h // 2 + 3, x:x + w] = 20
    return sot.SOTSet("sot", [frames], [(0, 0, boxes, np.full(n, present, np.float32))], 1, [], [], augment=False)


@pytest.mark.parametrize("groups", [1, 2])
def test_kmeans_v1_sets_each_convolution_from_the_layers_before_it(groups):
    """Only V1's convolutions change (grouped ones are kept), in their shapes and float32; the
    second convolution is fitted to the first one's new output, and the same seed gives the same
    filters."""
    cfg = dataclasses.replace(preset("real", image_hw=(48, 64)),
                              v1=(("conv", 8, 5, 1, 2, 1), ("relu",), ("pool", 2, 2), ("conv", 8, 3, 1, 1, groups),
                                  ("relu",)))
    ds = _glimpse_set()
    p0 = init_params(cfg, np.random.default_rng(0))
    p = kmeans.kmeans_v1(p0, cfg, ds, np.random.default_rng(5), n_patches=3000)
    again = kmeans.kmeans_v1(p0, cfg, ds, np.random.default_rng(5), n_patches=3000)
    changed = {k for k in p0 if not np.array_equal(p0[k], p[k])}
    assert changed == ({"v1.conv1.W", "v1.conv1.b", "v1.conv2.W", "v1.conv2.b"} if groups == 1
                       else {"v1.conv1.W", "v1.conv1.b"})
    assert all(p[k].shape == p0[k].shape and p[k].dtype == np.float32 for k in p0)
    assert all(np.array_equal(p[k], again[k]) for k in p)
    # the same draws by hand: glimpses, conv1's patches and filters, then conv2's from conv1 as set
    rng = np.random.default_rng(5)
    g = kmeans.sample_glimpses(ds, cfg, rng)
    W1, b1 = kmeans.kmeans_filters(kmeans.patches(g, 5, 1, 2, 3000, rng), 8, rng)
    np.testing.assert_allclose(p["v1.conv1.W"].reshape(8, -1), W1, rtol=1e-6, atol=1e-6)
    if groups == 1:
        x, _ = hart.v1_forward(p, dataclasses.replace(cfg, v1=cfg.v1[:3]), g)
        W2, _ = kmeans.kmeans_filters(kmeans.patches(x, 3, 1, 1, 3000, rng), 8, rng)
        np.testing.assert_allclose(p["v1.conv2.W"].reshape(8, -1), W2, rtol=1e-5, atol=1e-6)


def test_glimpses_and_patches_are_what_v1_sees():
    """The glimpses are the first windows' (the context window about the true box), mean removed;
    a patch is a k x k piece of the zero-padded input at the convolution's stride."""
    cfg = preset("real", image_hw=(48, 64))
    ds = _glimpse_set(n=12)
    g = kmeans.sample_glimpses(ds, cfg, np.random.default_rng(0), n_windows=2, seq_len=3)
    assert g.shape == (6, 1, 32, 32) and g.dtype == np.float32
    np.testing.assert_allclose(g.mean(axis=(2, 3)), 0, atol=1e-5)
    # the object fills the middle half of the glimpse (context twice the box): bright there
    assert (g[:, 0, 10:14, 8:24].mean() > 0.2) and (g[:, 0, :3].mean() < 0)
    x = np.arange(2 * 3 * 5 * 7, dtype=np.float64).reshape(2, 3, 5, 7)
    rows = kmeans.patches(x, 3, 2, 1, 500, np.random.default_rng(1))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    allowed = {padded[n, :, r:r + 3, c:c + 3].tobytes()
               for n in range(2) for r in range(0, 5, 2) for c in range(0, 7, 2)}
    assert rows.shape == (500, 27) and {r.tobytes() for r in rows} == allowed


def test_training_starts_from_kmeans_filters(tmp_path, capsys):
    from minihart import train
    from minihart.checkpoint import load
    from tests.test_data_sot import LINES, otb_seq
    root = tmp_path / "set"
    for split, names in (("train", ["A", "B"]), ("val", ["C"])):
        for name in names:
            otb_seq(root / split / name, LINES * 2, hw=(45, 60))
    args = ["--dataset", "sot", "--data-root", str(root), "--preset", "synthetic", "--steps", "1", "--eval-every", "1",
            "--batch-size", "2", "--no-final-eval", "--quiet", "--max-len", "5", "--lr", "1e-12"]
    assert train.main(args + ["--out", str(tmp_path / "km"), "--v1-init", "kmeans"]) == 0
    assert train.main(args + ["--out", str(tmp_path / "he")]) == 0
    assert json.loads((tmp_path / "km" / "config.json").read_text())["run"]["v1_init"] == "kmeans"
    assert json.loads((tmp_path / "he" / "config.json").read_text())["run"]["v1_init"] == "random"
    km, he = (load(str(tmp_path / r / "last.npz"))[0] for r in ("km", "he"))
    assert not np.allclose(km["v1.conv1.W"], he["v1.conv1.W"], atol=1e-3)
    np.testing.assert_allclose(km["lstm.Wx"], he["lstm.Wx"], atol=1e-6)  # the rest: the same seed's start
    with pytest.raises(SystemExit) as exc:  # argparse's own refusal of a choice
        train.main(args + ["--out", str(tmp_path / "bad"), "--v1-init", "pca"])
    assert exc.value.code == 2 and "--v1-init" in capsys.readouterr().err
    # it would overwrite the V1 a run starts from: refused, naming both, and no run is made
    assert train.main(args + ["--out", str(tmp_path / "both"), "--v1-init", "kmeans",
                              "--init-from", str(tmp_path / "he" / "best.npz")]) == 2
    assert "--v1-init kmeans sets V1 afresh: not with --init-from" in capsys.readouterr().err
    assert not (tmp_path / "both").exists()


def test_a_set_without_a_present_target_is_named():
    """No glimpse to fit: the set's own error names it, before any k-means."""
    ds = _glimpse_set(present=0.0)
    with pytest.raises(ValueError, match="sot: no window of 5 frames"):
        kmeans.sample_glimpses(ds, preset("real", image_hw=(48, 64)), np.random.default_rng(0))
