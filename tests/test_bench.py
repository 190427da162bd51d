"""The benchmark command (tiny sizes only: it is not part of the timed suite) and the PyTorch twin
of the model (benchmarks/torch_hart.py), which must agree with minihart exactly in float64."""
import json

import numpy as np
import pytest

from minihart.bench import load_torch_twin, main, percent_of_peak
from minihart.gradcheck import rel_error
from minihart.model import Config, backward, forward, init_params, sample_noise

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
    TorchHART = load_torch_twin()
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


def test_the_twin_is_loaded_only_for_against_torch_and_named_when_missing(tmp_path):
    import subprocess
    import sys
    code = "import sys, minihart.bench; print('torch' in sys.modules, 'torch_hart' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "False"]
    with pytest.raises(RuntimeError, match="needs the PyTorch twin of the model, .*missing.py"):
        load_torch_twin(str(tmp_path / "missing.py"))


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
