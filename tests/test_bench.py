"""The benchmark command (tiny sizes only: it is not part of the timed suite), its FLOP count,
and the PyTorch twin of the model, which must agree with minihart exactly in float64."""
import json

import numpy as np
import pytest

from minihart.bench import frame_flops, main, model_flops, percent_of_peak
from minihart.gradcheck import rel_error
from minihart.model import Config, backward, forward, init_params, preset, sample_noise

# every kind of layer the presets use: asymmetric padding, LRN, pooling, groups, ELU
TINY = Config("tiny", 2, (8, 10), (
    ("conv", 4, 3, 1, (1, 1, 0, 2), 1), ("relu",), ("lrn",), ("pool", 2, 2),
    ("conv", 4, 3, 1, 1, 2), ("elu",)),
    ventral_maps=2, dfn=((1, 3), (3, 2)), n_units=6, mask_features=3, zoneout=0.3, image_hw=(12, 14))


def _inputs(rng, B=2, T=3):
    H, W = TINY.image_hw
    frames = rng.random((B, T, TINY.channels, H, W))
    boxes = np.empty((B, T, 4))
    boxes[...] = [3.0, 4.0, 4.5, 5.0]
    boxes[..., :2] += rng.uniform(-1, 1, (B, T, 2))
    presence = np.ones((B, T))
    presence[1, 2] = 0
    return frames, boxes, presence


def test_torch_twin_matches_minihart_in_float64(rng):
    torch = pytest.importorskip("torch")
    from minihart.bench_torch import TorchHART
    params = {k: v.astype(np.float64) for k, v in init_params(TINY, rng).items()}
    for k in params:  # away from the tiny init so that every path carries gradient
        if k.endswith(".b") or k in ("att2.W", "box2.W"):
            params[k] = params[k] + 0.1 * rng.standard_normal(params[k].shape)
    frames, boxes, presence = _inputs(rng)
    noise = [{k: v.astype(np.float64) for k, v in n.items()} for n in sample_noise(TINY, rng, 2, 3)]
    out, cache = forward(params, TINY, frames, boxes, presence, noise)
    grads = backward(cache)
    model = TorchHART(params, TINY, dtype=torch.float64)
    tout = model(*(torch.as_tensor(a) for a in (frames, boxes, presence)),
                 [{k: torch.as_tensor(v) for k, v in n.items()} for n in noise])
    tout["loss"].backward()
    assert rel_error(out["loss"], tout["loss"].item()) < 1e-12
    for k in ("pred", "att"):
        assert rel_error(out[k], tout[k].detach().numpy()) < 1e-12
    tgrads = model.grads()
    errs = {k: rel_error(grads[k], tgrads[k].numpy()) for k in params}
    worst = max(errs, key=errs.get)
    assert errs[worst] < 1e-10, (worst, errs[worst])
    assert np.abs(grads["att_bias"]).max() > 0 and np.abs(grads["v1.conv1.W"]).max() > 0


def test_flop_count_by_hand():
    """synthetic preset, one frame: the conv layers and the glimpse counted by hand."""
    cfg = preset("synthetic")
    f = frame_flops(cfg, (60, 80))
    # x A_x^T: (60, 80) @ (80, 24), then A_y (x A_x^T): (24, 60) @ (60, 24)
    assert f["glimpse"] == 2 * 60 * 80 * 24 + 2 * 24 * 60 * 24
    assert f["glimpse_bwd"] == 2 * 24 * 24 * 60 * 2 + 2 * 24 * 60 * 80  # dA_y, du; dA_x
    conv = 2 * 8 * 9 * 24 * 24 + 2 * 16 * 8 * 9 * 12 * 12
    lstm = 2 * 2 * 64 * 4 * 64
    assert f["init"] == conv + 2 * 5 * 16 * 144 + 2 * (5 * 144 + 4) * 64 + lstm
    assert f["step"] > f["init"]
    train, track = model_flops(cfg, (60, 80), 3, 4)
    assert train == 3 * (5 * (f["glimpse"] + f["glimpse_bwd"]) + 3 * (f["init"] + 4 * f["step"]))
    assert track == f["glimpse"] + f["step"]
    assert 1.5e9 < model_flops(preset("kitti"), (187, 621), 1, 1)[0] < 4e9


def test_bad_arguments_give_messages_not_tracebacks(capsys, monkeypatch):
    for flag, value in (("--steps", "1"), ("--batch", "0"), ("--repeat", "0")):
        with pytest.raises(SystemExit) as exc:
            main(["--presets", "synthetic", flag, value])
        assert exc.value.code == 2 and f"argument {flag}: must be at least" in capsys.readouterr().err
    import minihart.backend as backend
    monkeypatch.setattr(backend, "_import_cupy", lambda: (None, "no CUDA GPU here (test)"))
    with pytest.raises(SystemExit, match="device 'gpu' was requested but cannot be used: no CUDA GPU here"):
        main(["--tiny", "--device", "gpu"])


def test_percent_of_peak_sets_each_run_against_its_own_round():
    # the machine is twice as fast in round 2: the run keeps 25 % of the peak in every round,
    # while against the best product (0.5 s) its median (2 s) would be 12.5 %
    assert percent_of_peak(1.0, [2.0, 1.0, 2.0, 2.0, 4.0], 2.0, [1.0, 0.5, 1.0, 1.0, 2.0]) == 25.0
    assert percent_of_peak(1.0, [2.0, 1.0, 3.0], 2.0, [1.0, 1.0, 1.0]) == 25.0  # the median of 25, 50, 16.7


@pytest.mark.parametrize("against", [[], ["--against", "torch"]], ids=["alone", "vs-torch"])
def test_bench_runs_on_tiny_sizes_and_writes_json(tmp_path, against):
    if against:
        pytest.importorskip("torch")
    path = tmp_path / "bench.json"
    results = main(["--tiny", "--presets", "synthetic", "--json", str(path), *against])
    saved = json.loads(path.read_text())
    assert saved["results"][0]["preset"] == "synthetic" and saved["machine"]["matmul_gflops"] > 0
    r = results[0]
    assert r["batch"] == 2 and r["steps"] == 2 and r["train_gflop"] > 0 and r["peak_mib"] > 0
    assert r["matmul_gflops"] > 0 and 0 < r["minihart"]["peak_percent"] and 0 < r["minihart"]["best_peak_percent"]
    assert r["minihart"]["train_ms"] > 0 and r["minihart"]["track_fps_1"] > 0
    assert ("torch" in r) == bool(against)
    if against:
        assert r["max_rel_error_vs_torch"] < 1e-3 and r["ratio_train"] > 0


def test_gpu_bench_path_runs_on_the_cupy_emulator(tmp_path, emulator):
    """``--device gpu`` (CuPy against CUDA) without a GPU: the CuPy side on ``cupy_emulator``,
    which runs the code path (sync, memory pool, device name), not a measurement."""
    r = main(["--tiny", "--presets", "synthetic", "--device", "gpu", "--json", str(tmp_path / "b.json")])[0]
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["machine"]["device"] == "cupy_emulator (host C++)"
    assert r["minihart"]["train_ms"] > 0 and r["minihart"]["track_fps_1"] > 0 and "torch" not in r
